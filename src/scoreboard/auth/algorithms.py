"""The JWT algorithms the service knows: one list, read by the settings and the verifier.

Kept free of any cryptography import, so that validating the settings stays cheap.
"""

from __future__ import annotations

SUPPORTED = ("HS256", "RS256", "ES256", "EdDSA")
"""Every algorithm ``SCOREBOARD_JWT_ALGORITHMS`` may name (compared exactly)."""
ASYMMETRIC = ("RS256", "ES256", "EdDSA")
"""Those verified with a public key (PEM file or JWKS)."""
DEFAULT = ("HS256",)
"""The allow-list when only a secret is configured (the default)."""

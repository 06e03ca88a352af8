"""Public keys and the algorithms they verify: each algorithm is bound to one kind of key.

HS256 only ever gets the HMAC secret, RS256/ES256/EdDSA only a public key object of their own
type (RSA of at least 2048 bits, EC P-256, Ed25519/Ed448). So an HS256 token "signed" with the
text of our public key (algorithm confusion) finds no key to match.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from scoreboard.auth.algorithms import ASYMMETRIC

MIN_RSA_BITS = 2048

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


def key_fits(algorithm: str, key: object) -> bool:
    """Whether ``key`` is a public key of the kind ``algorithm`` verifies with."""
    if algorithm == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    if algorithm == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def load_public_key(path: Path) -> PublicKey:
    """The PEM public key in ``path``; ``ValueError`` (one line) for anything else, including a
    private key (the service must never hold one) or an RSA key under 2048 bits."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"SCOREBOARD_JWT_PUBLIC_KEY: cannot read {path}: {exc.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError(
            f"SCOREBOARD_JWT_PUBLIC_KEY: {path} is not a PEM public key (BEGIN PUBLIC KEY)"
        ) from None
    if not any(key_fits(alg, key) for alg in ASYMMETRIC):
        raise ValueError(
            f"SCOREBOARD_JWT_PUBLIC_KEY: {path} must be an RSA key of at least {MIN_RSA_BITS} "
            "bits (RS256), an EC P-256 key (ES256) or an Ed25519/Ed448 key (EdDSA)"
        )
    assert isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    )
    return key


def algorithms_for_key(key: PublicKey) -> tuple[str, ...]:
    return tuple(alg for alg in ASYMMETRIC if key_fits(alg, key))

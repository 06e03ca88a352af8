"""``bootstrap``: the verifier the token settings describe (``verifier_from_settings``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from scoreboard.auth.verify import Identity, TokenVerifier
from scoreboard.bootstrap import verifier_from_settings
from scoreboard.errors import Unauthorized
from scoreboard.settings import Settings
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    KeyPair,
    claims,
    ec_key,
    ed_key,
    rsa_key,
)
from tests.support.server import SECRET

KEY = SECRET.encode()
OTHER = "another-secret-that-is-long-enough-0123456789"


KEY = SECRET.encode()


def check(verifier: TokenVerifier, value: str) -> Identity:
    """One verification, run to completion (the HS256 path never awaits anything)."""
    return asyncio.run(verifier.verify(value))


RSA, EC, ED = rsa_key(), ec_key(), ed_key()


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "data",
        **values,
    )


# -- configuration -----------------------------------------------------------------------------

AUD = {"jwt_audience": AUDIENCE}
"""Required with a public key or JWKS URL (RFC 8725, 3.9)."""


def test_the_settings_derive_the_allow_list_from_the_keys(tmp_path: Path) -> None:
    assert _settings(tmp_path).token_algorithms == ("HS256",)
    pem = EC.write_pem(tmp_path)
    verifier = verifier_from_settings(_settings(tmp_path, jwt_public_key=pem, **AUD))
    assert verifier.algorithms == {"ES256"}
    assert not (tmp_path / "data").exists()  # no secret generated: HS256 is not in use
    jwks_settings = _settings(tmp_path, jwks_url="http://127.0.0.1:9/jwks.json", **AUD)
    assert set(verifier_from_settings(jwks_settings).algorithms) == {"RS256", "ES256", "EdDSA"}


def test_the_configured_verifier_applies_every_setting(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    settings = _settings(
        tmp_path,
        jwt_public_key=pem,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway=10,
        jwt_max_ttl=600,
    )
    verifier = verifier_from_settings(settings)
    assert check(verifier, RSA.sign(claims("a", ttl=-5))).user_id == "a"  # within leeway
    for bad in (claims(ttl=900), claims(iss="x"), claims(aud="x")):
        with pytest.raises(Unauthorized):
            check(verifier, RSA.sign(bad))
    with pytest.raises(Unauthorized):
        check(verifier, jwt.encode(claims(), KEY, algorithm="HS256"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"jwt_algorithms": "none"}, "not one of", id="alg-none"),
        pytest.param({"jwt_algorithms": "hs256"}, "not one of", id="alg-lowercase"),
        pytest.param({"jwt_algorithms": "HS384"}, "not one of", id="alg-HS384"),
        pytest.param({"jwt_algorithms": " , "}, "at least one", id="alg-empty-list"),
        pytest.param({"jwt_algorithms": "RS256"}, "need", id="alg-without-key"),
        pytest.param({"jwt_leeway": 31}, "30", id="leeway-over-30"),
        pytest.param({"jwt_leeway": -1}, "0", id="leeway-negative"),
        pytest.param({"jwt_max_ttl": 0}, "0", id="max-ttl-zero"),
        pytest.param({"jwks_url": "file:///etc/passwd", **AUD}, "http", id="jwks-file-url"),
        pytest.param({"jwks_url": "ftp://keys.example/jwks", **AUD}, "http", id="jwks-ftp-url"),
        pytest.param({"jwks_url": "https://", **AUD}, "http", id="jwks-no-host"),
        pytest.param(
            {"jwt_public_key": "/nonexistent/key.pem", **AUD}, "cannot read", id="key-missing"
        ),
        pytest.param({"auth_mode": "admin"}, "user", id="auth-mode-unknown"),
    ],
)
def test_bad_token_settings_are_refused(tmp_path: Path, values: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(tmp_path, **values)


def test_hs256_next_to_a_public_key_needs_an_explicit_secret(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    with pytest.raises(ValidationError, match="SCOREBOARD_JWT_SECRET"):
        _settings(tmp_path, jwt_public_key=pem, jwt_algorithms="HS256,RS256", **AUD)
    with pytest.raises(ValidationError, match="not both"):
        _settings(tmp_path, jwt_public_key=pem, jwks_url="https://keys.example/jwks.json", **AUD)
    both = _settings(
        tmp_path, jwt_public_key=pem, jwt_algorithms="HS256,RS256", jwt_secret=SECRET, **AUD
    )
    assert verifier_from_settings(both).algorithms == {"HS256", "RS256"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(lambda: b"not a key", "not a PEM public key", id="garbage"),
        pytest.param(
            lambda: RSA.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "not a PEM public key",
            id="private-key",
        ),
        pytest.param(
            lambda: KeyPair(
                "small",
                "RS256",
                rsa.generate_private_key(65537, 1024),  # noqa: S505 (the point of the test)
            ).public_pem(),
            "2048",
            id="rsa-1024",
        ),
        pytest.param(
            lambda: KeyPair("p384", "ES256", ec.generate_private_key(ec.SECP384R1())).public_pem(),
            "P-256",
            id="ec-p384",
        ),
    ],
)
def test_an_unusable_public_key_file_is_refused(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content())
    with pytest.raises(ValueError, match=message):
        verifier_from_settings(_settings(tmp_path, jwt_public_key=path, **AUD))


def test_a_key_that_does_not_fit_the_configured_algorithms_is_refused(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    with pytest.raises(ValueError, match="ES256"):
        verifier_from_settings(
            _settings(tmp_path, jwt_public_key=pem, jwt_algorithms="ES256", **AUD)
        )

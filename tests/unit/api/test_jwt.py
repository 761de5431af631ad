"""JWTs: HS256 with the shared secret, RS256 with any of several public keys; anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flowline.credentials import Principal
from flowline.settings import Settings
from flowline_api.auth import JwtVerifier


def _rsa_pair() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def _claims(**changes: Any) -> dict[str, Any]:
    return {
        "sub": "ada",
        "tenant": "dev",
        "roles": ["viewer", "operator"],
        "exp": datetime.now(UTC) + timedelta(minutes=5),
        **changes,
    }


def test_rs256_tokens_verify_against_any_configured_public_key_and_take_the_highest_role() -> None:
    (old_private, old_public), (new_private, new_public) = _rsa_pair(), _rsa_pair()
    verifier = JwtVerifier(msgspec.structs.replace(Settings(), jwt_rs256_public_keys=old_public + new_public))

    for private in (old_private, new_private):
        assert verifier.principal(jwt.encode(_claims(), private, algorithm="RS256")) == Principal(
            "ada", "dev", "operator"
        )
    stranger, _ = _rsa_pair()
    assert verifier.principal(jwt.encode(_claims(), stranger, algorithm="RS256")) is None


def test_hs256_tokens_need_the_secret_every_claim_and_a_future_expiry() -> None:
    secret = "s" * 40
    verifier = JwtVerifier(msgspec.structs.replace(Settings(), jwt_hs256_secret=secret))

    assert verifier.principal(jwt.encode(_claims(), secret, algorithm="HS256")) == Principal("ada", "dev", "operator")
    refused = [
        jwt.encode(_claims(), "t" * 40, algorithm="HS256"),  # another secret
        jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(seconds=1)), secret, algorithm="HS256"),
        jwt.encode({key: value for key, value in _claims().items() if key != "tenant"}, secret, algorithm="HS256"),
        jwt.encode(_claims(roles=["root"]), secret, algorithm="HS256"),  # no role Flowline knows
        jwt.encode(_claims(), secret, algorithm="HS512"),  # not the configured algorithm
        "not.a.token",
    ]
    assert [verifier.principal(token) for token in refused] == [None] * len(refused)


def test_without_keys_no_jwt_is_accepted() -> None:
    assert JwtVerifier(Settings()).principal(jwt.encode(_claims(), "s" * 40, algorithm="HS256")) is None

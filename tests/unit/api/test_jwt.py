"""JWTs: HS256 with the shared secret, RS256 with any of several public keys; anything else is refused.

A token is bound to the configured issuer and audience (when set), lives at most the configured lifetime, and
cannot name an API key's principal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flowline.domain.credentials import Principal
from flowline.settings import Settings
from flowline_api.auth import JwtVerifier


def _rsa_pair() -> tuple[Any, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": "ada",
        "tenant": "dev",
        "roles": ["viewer", "operator"],
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **changes,
    }


def _without(claim: str, **changes: Any) -> dict[str, Any]:
    return {key: value for key, value in _claims(**changes).items() if key != claim}


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


SECRET = "s" * 40


def _verifier(**settings: Any) -> JwtVerifier:
    return JwtVerifier(msgspec.structs.replace(Settings(), jwt_hs256_secret=SECRET, **settings))


def _hs256(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_a_jwt_cannot_take_an_api_keys_identity() -> None:
    """An API key's principal is ``api-key:<id>``: a JWT naming it would own that key's executions."""
    verifier = _verifier()

    assert verifier.principal(_hs256(_claims(sub="api-key:0190f5d2-7c1e-7a3b-9c1d-2f4e5a6b7c8d"))) is None
    assert verifier.principal(_hs256(_claims(sub="api-key:"))) is None
    assert verifier.principal(_hs256(_claims(sub="ada-api-key:1"))) == Principal("ada-api-key:1", "dev", "operator")


def test_issuer_and_audience_must_match_when_set() -> None:
    bound = _verifier(jwt_issuer="https://idp.example", jwt_audience="flowline")
    good = _claims(iss="https://idp.example", aud="flowline")

    assert bound.principal(_hs256(good)) == Principal("ada", "dev", "operator")
    assert bound.principal(_hs256({**good, "aud": ["other", "flowline"]})) == Principal("ada", "dev", "operator")
    refused = [
        {**good, "iss": "https://evil.example"},
        {**good, "aud": "other"},
        _without("iss", iss="https://idp.example", aud="flowline"),
        _without("aud", iss="https://idp.example", aud="flowline"),
    ]
    assert [bound.principal(_hs256(claims)) for claims in refused] == [None] * len(refused)
    # Unset, neither is checked: a token may carry any issuer and audience, or none.
    assert _verifier().principal(_hs256(good)) == Principal("ada", "dev", "operator")
    assert _verifier().principal(_hs256(_claims())) == Principal("ada", "dev", "operator")


def test_a_token_lives_at_most_the_maximum_lifetime() -> None:
    now = datetime.now(UTC)
    verifier = _verifier(jwt_max_lifetime_seconds=3600)

    assert verifier.principal(_hs256(_claims(iat=now, exp=now + timedelta(seconds=3600)))) is not None
    refused = [
        _claims(iat=now, exp=now + timedelta(seconds=3601)),  # too long
        _claims(iat=now - timedelta(days=300), exp=now + timedelta(minutes=5)),  # long-lived, nearly over
        _claims(iat=now + timedelta(days=30), exp=now + timedelta(days=30, minutes=5)),  # issued in the future
        _without("iat"),  # its lifetime cannot be told
        _without("exp"),
    ]
    assert [verifier.principal(_hs256(claims)) for claims in refused] == [None] * len(refused)


def test_the_default_lifetime_is_a_day_and_zero_turns_it_off() -> None:
    now = datetime.now(UTC)
    year = _claims(iat=now, exp=now + timedelta(days=365))

    assert Settings().jwt_max_lifetime_seconds == 86_400
    assert _verifier().principal(_hs256(year)) is None
    assert _verifier().principal(_hs256(_claims(exp=now + timedelta(hours=23)))) is not None
    unbounded = _verifier(jwt_max_lifetime_seconds=0)
    assert unbounded.principal(_hs256(year)) is not None
    assert unbounded.principal(_hs256(_without("iat"))) is not None  # no lifetime to check, no iat needed
    assert unbounded.principal(_hs256(_without("exp"))) is None  # an expiry is always needed

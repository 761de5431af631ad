"""Sealing agent credentials, validating them per auth type, and the headers they produce."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flowline.domain.agents import (
    Agent,
    AuthConfigUnreadable,
    auth_cipher,
    auth_headers,
    decrypt_auth_config,
    encrypt_auth_config,
    header_secrets,
    redact,
    redact_values,
    validate_auth_config,
)
from flowline.errors import ValidationFailed
from flowline.settings import ConfigurationError

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_sealed_config_opens_with_its_key_and_hides_its_values() -> None:
    cipher = auth_cipher(KEY_A)

    sealed = encrypt_auth_config(cipher, {"token": "t0ken-value"})

    assert sealed is not None
    assert b"t0ken-value" not in sealed
    assert decrypt_auth_config(cipher, sealed) == {"token": "t0ken-value"}


def test_an_empty_config_is_stored_as_null() -> None:
    cipher = auth_cipher(KEY_A)

    assert encrypt_auth_config(cipher, {}) is None
    assert decrypt_auth_config(cipher, None) == {}


def test_keys_rotate_new_first_old_still_readable() -> None:
    old = encrypt_auth_config(auth_cipher(KEY_A), {"token": "t"})

    rotated = auth_cipher(f"{KEY_B}, {KEY_A}")

    assert decrypt_auth_config(rotated, old) == {"token": "t"}
    assert decrypt_auth_config(auth_cipher(KEY_B), encrypt_auth_config(rotated, {"token": "t"})) == {"token": "t"}


def test_another_key_cannot_read_a_config() -> None:
    sealed = encrypt_auth_config(auth_cipher(KEY_A), {"token": "t"})

    with pytest.raises(AuthConfigUnreadable, match="FLOWLINE_SECRET_KEY"):
        decrypt_auth_config(auth_cipher(KEY_B), sealed)


@pytest.mark.parametrize(
    "value", ["", " , ", "not-a-fernet-key", f"{KEY_A},short"], ids=["empty", "commas", "not-a-key", "one-bad"]
)
def test_a_missing_or_bad_key_is_a_configuration_error_that_hides_the_value(value: str) -> None:
    with pytest.raises(ConfigurationError, match="FLOWLINE_SECRET_KEY") as caught:
        auth_cipher(value)

    assert "not-a-fernet-key" not in str(caught.value)
    assert "short" not in str(caught.value)


def test_defaults_are_filled_in() -> None:
    assert validate_auth_config("api_key", {"key": "k"}) == {"key": "k", "header": "X-API-Key"}
    assert validate_auth_config("hmac", {"secret": "s"}) == {
        "secret": "s",
        "header": "X-Flowline-Signature",
        "algorithm": "sha256",
    }
    assert validate_auth_config("none", None) == {}
    assert validate_auth_config("none", {}) == {}


def test_validation_errors_name_the_field_not_the_value() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_auth_config("bearer", {"token": "trailing-space-secret "})

    assert caught.value.pointer == "/authConfig/token"
    assert "trailing-space-secret" not in caught.value.detail


def agent(auth_type: str, **config: str) -> Agent:
    return Agent(id=uuid.uuid4(), tenant_id=uuid.uuid4(), name="a", url="http://x", auth_type=auth_type,
                 auth_config=config)  # fmt: skip


def test_auth_headers_per_type() -> None:
    assert auth_headers(agent("none"), b"") == {}
    assert auth_headers(agent("bearer", token="t"), b"") == {"Authorization": "Bearer t"}
    assert auth_headers(agent("basic", username="u", password="p"), b"") == {"Authorization": "Basic dTpw"}
    assert auth_headers(agent("api_key", key="k", header="X-K"), b"") == {"X-K": "k"}
    # printf '{"a":1}' | openssl dgst -sha256 -hmac key
    assert auth_headers(agent("hmac", secret="key", header="X-Sig"), b'{"a":1}') == {
        "X-Sig": "sha256=88a67f24bbcdaed0e6c997404bb79a743baf44c6bab2f4c27328e3009d22e342"
    }


def test_the_repr_of_an_agent_hides_its_credentials() -> None:
    assert "t0ken" not in repr(agent("bearer", token="t0ken"))


def test_redact_removes_credentials_and_their_encoded_forms() -> None:
    basic = agent("basic", username="flowuser", password="pa55word")

    text = redact("bad header b'Basic Zmxvd3VzZXI6cGE1NXdvcmQ=' for flowuser/pa55word", basic)

    assert text == "bad header b'***' for ***/***"


def test_redact_values_masks_secrets_inside_strings_and_keys_at_any_depth() -> None:
    secrets = header_secrets(["Bearer sk-0a1b2c3d", "k"])
    assert secrets[:2] == ["Bearer sk-0a1b2c3d", "sk-0a1b2c3d"]  # longest first: the whole value is masked whole
    value = {"a": ["x Bearer sk-0a1b2c3d y", {"sk-0a1b2c3d": 1, "n": None, "t": True}], "b": 2.5}
    assert redact_values(value, secrets[:2]) == {"a": ["x *** y", {"***": 1, "n": None, "t": True}], "b": 2.5}
    assert redact_values("no secret here", secrets[:2]) == "no secret here"
    assert redact_values(value, []) is value

    deep: Any = "sk-0a1b2c3d"
    for _ in range(100_000):  # far past the recursion limit
        deep = [deep]
    masked = redact_values(deep, secrets[:2])
    for _ in range(100_000):
        masked = masked[0]
    assert masked == "***"

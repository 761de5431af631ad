"""Registered agents as the executor calls them: auth config sealed at rest, auth headers, loading by name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flowline_schemas.agents import AUTH_TYPES, RetryConfig

from flowline.errors import FlowlineError, NotFound, ValidationFailed
from flowline.settings import ConfigurationError, env_name

DEFAULT_API_KEY_HEADER = "X-API-Key"
DEFAULT_SIGNATURE_HEADER = "X-Flowline-Signature"
HMAC_ALGORITHMS = frozenset({"sha256"})
# Auth config fields holding credentials (the others name a header or an algorithm).
SECRET_AUTH_FIELDS = frozenset({"token", "username", "password", "key", "secret"})
# Those masked in an agent's output too: a user name alone opens nothing, and masking it everywhere in an
# answer would mangle ordinary text (it stays masked in error messages).
OUTPUT_SECRET_FIELDS = SECRET_AUTH_FIELDS - {"username"}

# Per auth type: the fields a config must hold, and the optional ones with their defaults.
AUTH_FIELDS: dict[str, tuple[frozenset[str], dict[str, str]]] = {
    "none": (frozenset(), {}),
    "bearer": (frozenset({"token"}), {}),
    "basic": (frozenset({"username", "password"}), {}),
    "api_key": (frozenset({"key"}), {"header": DEFAULT_API_KEY_HEADER}),
    "hmac": (frozenset({"secret"}), {"header": DEFAULT_SIGNATURE_HEADER, "algorithm": "sha256"}),
}
MAX_AUTH_VALUE_LENGTH = 4096
# RFC 9110 token characters: what a header name may hold.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Visible ASCII and spaces: anything else (CR, LF, NUL…) cannot travel in a header value.
_HEADER_VALUE = re.compile(r"^[\x20-\x7e]+$")
# Headers Flowline sets itself or that would break the request; auth may not replace them.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "transfer-encoding", "connection", "idempotency-key"}
)


class AuthConfigUnreadable(FlowlineError):
    """A stored auth config (or another sealed secret) does not decrypt with the configured key.

    The key changed without rotation.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """An agent as loaded for a call; ``auth_config`` is decrypted and kept out of ``repr``."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    url: str
    auth_type: str
    auth_config: Mapping[str, str] = field(repr=False, default_factory=dict)
    timeout_ms: int = 30_000
    retry_config: RetryConfig | None = None


def auth_cipher(secret_key: str) -> MultiFernet:
    """The cipher sealing auth configs, from ``FLOWLINE_SECRET_KEY``.

    The setting holds one or more Fernet keys separated by commas: the first encrypts, every one decrypts,
    so a key is rotated by putting the new key first and keeping the old one until configs are rewritten.

    Raises:
        ConfigurationError: the setting is empty or holds something that is not a Fernet key.
    """
    name = env_name("secret_key")
    keys = [key.strip() for key in secret_key.split(",") if key.strip()]
    if not keys:
        raise ConfigurationError(
            f"missing required setting {name}: a Fernet key that encrypts agent credentials; generate one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as err:
        # The message deliberately omits the value: it is a secret.
        raise ConfigurationError(f"invalid setting {name}: each key must be 32 url-safe base64-encoded bytes") from err


def encrypt_auth_config(cipher: MultiFernet, config: Mapping[str, str]) -> bytes | None:
    """The sealed form of ``config`` for ``agents.auth_config_encrypted`` (None for an empty config)."""
    if not config:
        return None
    return cipher.encrypt(msgspec.json.encode(dict(config)))


def decrypt_auth_config(cipher: MultiFernet, sealed: bytes | None) -> dict[str, str]:
    """The config ``encrypt_auth_config`` sealed (empty for None).

    Raises:
        AuthConfigUnreadable: no configured key opens it.
    """
    if not sealed:
        return {}
    try:
        config = msgspec.json.decode(cipher.decrypt(bytes(sealed)), type=dict[str, str])
    except InvalidToken as err:
        raise AuthConfigUnreadable(
            f"an agent's credentials cannot be decrypted with {env_name('secret_key')}: the key changed; "
            "list the previous key after the new one"
        ) from err
    return config


def seal_secret(cipher: MultiFernet, value: str) -> str:
    """``value`` sealed as text (a Fernet token), for a secret kept inside JSON such as an http step header."""
    return cipher.encrypt(value.encode()).decode()


def open_secret(cipher: MultiFernet, token: str, what: str) -> str:
    """The value ``seal_secret`` sealed; ``what`` names it in the error.

    Raises:
        AuthConfigUnreadable: no configured key opens it.
    """
    try:
        return cipher.decrypt(token.encode()).decode()
    except InvalidToken as err:
        raise AuthConfigUnreadable(
            f"{what} cannot be decrypted with {env_name('secret_key')}: the key changed; "
            "list the previous key after the new one"
        ) from err


def check_secret_value(value: Any, label: str, pointer: str) -> str:
    """``value`` when it is a credential that can travel in an HTTP header; the error names ``label``, never the value.

    Raises:
        ValidationFailed: not a non-empty string, too long, or characters a header cannot carry.
    """
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{label}: must be a non-empty string", pointer=pointer)
    if len(value) > MAX_AUTH_VALUE_LENGTH:
        raise ValidationFailed(f"{label}: at most {MAX_AUTH_VALUE_LENGTH} characters", pointer=pointer)
    if not _HEADER_VALUE.match(value) or value != value.strip():
        raise ValidationFailed(
            f"{label}: only printable ASCII characters, no leading or trailing spaces (it travels in an HTTP header)",
            pointer=pointer,
        )
    return value


def validate_auth_config(auth_type: str, config: Mapping[str, Any] | None) -> dict[str, str]:
    """``config`` checked for ``auth_type``, with defaults filled in.

    Error messages name fields, never values: every value may be a secret.

    Raises:
        ValidationFailed: an unknown type, a missing, unknown or malformed field (the pointer names it).
    """
    if auth_type not in AUTH_FIELDS:
        raise ValidationFailed(f"authType: must be one of {', '.join(AUTH_TYPES)}", pointer="/authType")
    required, optional = AUTH_FIELDS[auth_type]
    given = dict(config or {})
    unknown = sorted(set(given) - required - set(optional))
    if unknown:
        allowed = ", ".join(sorted(required | set(optional))) or "no fields"
        raise ValidationFailed(
            f"authConfig.{unknown[0]}: not a field of {auth_type} auth (allowed: {allowed})",
            pointer=f"/authConfig/{unknown[0]}",
        )
    missing = sorted(required - set(given))
    if missing:
        raise ValidationFailed(
            f"authConfig.{missing[0]}: required for {auth_type} auth", pointer=f"/authConfig/{missing[0]}"
        )
    checked = dict(optional)
    for name, value in given.items():
        checked[name] = check_secret_value(value, f"authConfig.{name}", f"/authConfig/{name}")
    if "header" in checked and (
        not _HEADER_NAME.match(checked["header"]) or checked["header"].lower() in _RESERVED_HEADERS
    ):
        raise ValidationFailed(
            "authConfig.header: must be an HTTP header name that Flowline does not set itself",
            pointer="/authConfig/header",
        )
    if auth_type == "basic" and ":" in checked["username"]:
        raise ValidationFailed("authConfig.username: must not contain ':'", pointer="/authConfig/username")
    if auth_type == "hmac" and checked["algorithm"] not in HMAC_ALGORITHMS:
        raise ValidationFailed(
            f"authConfig.algorithm: must be one of {', '.join(sorted(HMAC_ALGORITHMS))}",
            pointer="/authConfig/algorithm",
        )
    return checked


def sign_body(secret: str, body: bytes) -> str:
    """The HMAC signature of ``body`` as sent in the signature header: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def auth_headers(agent: Agent, body: bytes) -> dict[str, str]:
    """The headers that authenticate a request to ``agent`` carrying exactly ``body``.

    An HMAC signature covers the body bytes, so the caller must send the very bytes it passes here.
    """
    config = agent.auth_config
    match agent.auth_type:
        case "bearer":
            return {"Authorization": f"Bearer {config['token']}"}
        case "basic":
            credentials = base64.b64encode(f"{config['username']}:{config['password']}".encode()).decode()
            return {"Authorization": f"Basic {credentials}"}
        case "api_key":
            return {config.get("header", DEFAULT_API_KEY_HEADER): config["key"]}
        case "hmac":
            return {config.get("header", DEFAULT_SIGNATURE_HEADER): sign_body(config["secret"], body)}
        case _:
            return {}


def agent_secrets(agent: Agent, fields: frozenset[str] = SECRET_AUTH_FIELDS) -> list[str]:
    """The credentials of ``agent`` as they may be quoted back, longest first.

    Its config's ``fields`` and the header values built from them.
    """
    secrets = {value for name, value in agent.auth_config.items() if name in fields and len(value) >= 4}
    secrets.update(value for value in auth_headers(agent, b"").values() if len(value) >= 4)
    return sorted(secrets, key=len, reverse=True)


def redact(text: str, agent: Agent) -> str:
    """``text`` with every credential of ``agent`` (and its encoded forms) replaced by ``***``.

    A guard for messages built from third-party errors, which may quote a header value.
    """
    for secret in agent_secrets(agent):
        text = text.replace(secret, "***")
    return text


def header_secrets(values: Iterable[str]) -> list[str]:
    """Secret header values as they may be echoed back, longest first so that a longer one is masked whole.

    Each value whole, and the credentials after an auth scheme on their own (``Bearer <token>``: the token).
    """
    secrets: set[str] = set()
    for value in values:
        if value:
            secrets.add(value)
        scheme, _, credentials = value.partition(" ")
        if scheme and len(credentials.strip()) >= 4:
            secrets.add(credentials.strip())
    return sorted(secrets, key=len, reverse=True)


def redact_values(value: Any, secrets: Sequence[str], mask: str = "***") -> Any:
    """``value`` (JSON builtins) with each of ``secrets`` replaced by ``mask`` wherever a string or key holds it.

    An answer that echoes a credential (a header dump, an error quoting it) is then stored without it.
    ``secrets`` come longest first (as ``agent_secrets`` and ``header_secrets`` give them).

    Iterative, so that a deeply nested answer cannot exhaust the recursion limit.
    """
    if not secrets:
        return value

    def text(item: str) -> str:
        for secret in secrets:
            if secret in item:
                item = item.replace(secret, mask)
        return item

    if isinstance(value, str):
        return text(value)
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                copy: Any = {} if isinstance(item, dict) else []
                stack.append((item, copy))
            elif isinstance(item, str):
                copy = text(item)
            else:
                copy = item
            if isinstance(target, dict):
                target[text(key) if isinstance(key, str) else key] = copy
            else:
                target.append(copy)
    return root


def agent_from_record(record: Mapping[str, Any], cipher: MultiFernet) -> Agent:
    """An ``Agent`` from an ``agents`` row, its auth config decrypted."""
    retry = record["retry_config"]
    return Agent(
        id=record["id"],
        tenant_id=record["tenant_id"],
        name=record["name"],
        url=record["url"],
        auth_type=record["auth_type"],
        auth_config=decrypt_auth_config(cipher, record["auth_config_encrypted"]),
        timeout_ms=record["timeout_ms"],
        retry_config=None if retry is None else msgspec.convert(retry, RetryConfig),
    )


async def load_agent(
    connection: asyncpg.Connection | asyncpg.Pool, cipher: MultiFernet, tenant_id: uuid.UUID, name: str
) -> Agent:
    """The live, active agent ``name`` of ``tenant_id``, ready to call.

    Raises:
        NotFound: no such agent, or it is deleted or inactive.
        AuthConfigUnreadable: its credentials do not decrypt with the configured key.
    """
    record = await connection.fetchrow(
        "SELECT id, tenant_id, name, url, auth_type, auth_config_encrypted, timeout_ms, retry_config, status "
        "FROM agents WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL",
        tenant_id,
        name,
    )
    if record is None:
        raise NotFound(f"agent {name!r} does not exist")
    if record["status"] != "active":
        raise NotFound(f"agent {name!r} is {record['status']}")
    return agent_from_record(record, cipher)


async def read_agent_max_attempts(connection: asyncpg.Connection, tenant_id: uuid.UUID, name: str) -> int | None:
    """The ``maxAttempts`` of the retryConfig of agent ``name`` (deleted agents aside, any status), if it has one."""
    max_attempts: int | None = await connection.fetchval(
        "SELECT (retry_config ->> 'maxAttempts')::int FROM agents "
        "WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL",
        tenant_id,
        name,
    )
    return max_attempts

"""Where the CLI finds the api, the tenant and the key: flags, then the environment, then a profile."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("api_url", "tenant", "api_key")
ENVIRONMENT = {"api_url": "FLOWLINE_API_URL", "tenant": "FLOWLINE_TENANT", "api_key": "FLOWLINE_API_KEY"}
DEFAULT_API_URL = "http://127.0.0.1:8000"


class ConfigError(Exception):
    """The configuration is incomplete or unreadable (a usage error)."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """The api to talk to and as whom."""

    api_url: str
    tenant: str
    api_key: str | None


def config_path(environ: Mapping[str, str]) -> Path:
    """``$FLOWLINE_CONFIG``, else ``$XDG_CONFIG_HOME/flowline/config.toml``, else ``~/.config/flowline/config.toml``."""
    if explicit := environ.get("FLOWLINE_CONFIG"):
        return Path(explicit)
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "flowline" / "config.toml"


def read_profile(path: Path, name: str | None) -> dict[str, str]:
    """The profile ``name`` of the config file (``default_profile``, else ``default``, when None).

    The file looks like::

        default_profile = "dev"

        [profiles.dev]
        api_url = "http://127.0.0.1:8000"
        tenant = "dev"
        api_key = "fl_…"

    Raises:
        ConfigError: the file is not valid TOML, or a profile named explicitly does not exist.
    """
    try:
        document: dict[str, Any] = tomllib.loads(path.read_text())
    except FileNotFoundError:
        if name is not None:
            raise ConfigError(f"profile {name!r}: there is no config file {path}") from None
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from err
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: profiles is not a table")
    chosen = name or document.get("default_profile") or "default"
    profile = profiles.get(chosen)
    if profile is None:
        if name is not None or "default_profile" in document:
            raise ConfigError(f"{path}: no profile {chosen!r} (known: {', '.join(profiles) or 'none'})")
        return {}
    if not isinstance(profile, dict):
        raise ConfigError(f"{path}: profiles.{chosen} is not a table")
    return {field: str(profile[field]) for field in FIELDS if profile.get(field)}


def resolve_config(flags: Mapping[str, str | None], environ: Mapping[str, str], profile_name: str | None) -> Config:
    """Each field from its flag, else the environment, else the default profile.

    A profile named with ``--profile`` or ``FLOWLINE_PROFILE`` replaces the environment instead: asking for
    ``prod`` in a shell where ``source .flowline/dev.env`` ran must not send the dev key (or tenant) to prod.

    Raises:
        ConfigError: no tenant anywhere, or an unreadable config file.
    """
    chosen = profile_name or environ.get("FLOWLINE_PROFILE") or None
    profile = read_profile(config_path(environ), chosen)
    sources: list[Mapping[str, str | None]] = [flags, profile]
    if chosen is None:
        sources.insert(1, {field: environ.get(variable) for field, variable in ENVIRONMENT.items()})

    def pick(field: str) -> str | None:
        return next((value for source in sources if (value := source.get(field))), None)

    tenant = pick("tenant")
    if tenant is None:
        raise ConfigError("no tenant: pass --tenant, set FLOWLINE_TENANT or choose a profile with one")
    return Config(api_url=pick("api_url") or DEFAULT_API_URL, tenant=tenant, api_key=pick("api_key"))

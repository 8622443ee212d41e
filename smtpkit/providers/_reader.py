"""The strict reader of ``presets.toml``: TOML text in, checked :class:`Preset` values out.

Invariants:
    * A malformed file raises :class:`~smtpkit.errors.ConfigurationError` naming the preset
      and the key, never a half-filled preset; an unknown key is an error, not ignored.
    * Names and aliases are unique across the file; every preset lists https:// sources.
    * Domains are exact or ``*.`` and a domain, in lower case; ports are positive integers.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from types import MappingProxyType
from typing import Any

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError
from smtpkit.providers._model import DayWindow, Limits, Preset

__all__ = ["DATA_FILE", "parse_presets"]

#: The data file, inside this package.
DATA_FILE = "presets.toml"

_SECURITY = {"starttls": Security.STARTTLS, "tls": Security.TLS, "none": Security.NONE}
# Both used with fullmatch(): with match(), "$" also accepts a value ending in "\n".
_ALTERNATIVE_RE = re.compile(r"^(\d{1,5})/(starttls|tls|none)$")
#: An exact domain, or "*." and a domain (every subdomain of it); lower case.
_DOMAIN_RE = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _fail(name: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"{DATA_FILE}: preset {name!r}: {message}")


def _text(name: str, data: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"{key!r} must be a non-empty string")
    return value


def _texts(name: str, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(name, f"{key!r} must be a list of non-empty strings")
    return tuple(value)


def _int(name: str, value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(name, f"{key!r} must be a positive integer")
    return value


def _limits(name: str, data: object) -> Limits:
    if data is None:
        return Limits()
    if not isinstance(data, dict):
        raise _fail(name, "'limits' must be a table")
    known = {f.name for f in fields(Limits)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise _fail(name, f"unknown limits {unknown}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("resets", "applies_to"):
            values[key] = _text(name, data, key)
        elif key == "day_window":
            try:
                values[key] = DayWindow(value)
            except ValueError:
                kinds = [w.value for w in DayWindow]
                raise _fail(name, f"'limits.day_window' must be one of {kinds}") from None
        else:
            values[key] = _int(name, value, f"limits.{key}")
    return Limits(**values)


_PRESET_KEYS = frozenset(
    {
        "display_name",
        "family",
        "host",
        "port",
        "security",
        "alternatives",
        "auth_mechanisms",
        "credentials",
        "username",
        "oauth2_scope",
        "token_endpoint",
        "domains",
        "aliases",
        "regions",
        "default_region",
        "region_domains",
        "local",
        "notes",
        "auth_hint",
        "sender_hint",
        "limits",
        "sources",
    }
)


def _security(name: str, text: str | None) -> Security:
    security = _SECURITY.get((text or "").lower())
    if security is None:
        raise _fail(name, f"security must be one of {sorted(_SECURITY)}, got {text!r}")
    return security


def _alternatives(name: str, items: tuple[str, ...]) -> tuple[tuple[int, Security], ...]:
    result: list[tuple[int, Security]] = []
    for item in items:
        match = _ALTERNATIVE_RE.fullmatch(item)
        if match is None:
            raise _fail(name, f"alternatives look like '465/tls', got {item!r}")
        result.append((_int(name, int(match.group(1)), "alternatives"), _SECURITY[match[2]]))
    return tuple(result)


def _domains(name: str, items: tuple[str, ...]) -> tuple[str, ...]:
    domains = tuple(item.strip().lower() for item in items)
    for domain in domains:
        if not _DOMAIN_RE.fullmatch(domain):
            raise _fail(
                name,
                f"domain {domain!r} must be an exact domain or '*.' and a domain (any "
                "subdomain); list each domain instead of a wildcard such as 'yahoo.*'",
            )
    return domains


def _string_table(name: str, data: object, key: str) -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
        raise _fail(name, f"{key!r} must be a table of strings")
    return {str(k).lower(): v for k, v in data.items()}


def _preset(name: str, data: Mapping[str, Any]) -> Preset:
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise _fail(name, f"unknown keys {unknown}")
    regions = _string_table(name, data.get("regions"), "regions")
    region_domains_raw = data.get("region_domains") or {}
    if not isinstance(region_domains_raw, dict):
        raise _fail(name, "'region_domains' must be a table of lists")
    region_domains = {
        str(region).lower(): _domains(name, _texts(name, region_domains_raw, str(region)))
        for region in region_domains_raw
    }
    default_region = _text(name, data, "default_region")
    if regions and (default_region is None or default_region not in regions):
        raise _fail(name, "a preset with regions needs a default_region among them")
    if set(region_domains) - set(regions):
        raise _fail(name, "region_domains names a region that is not in regions")
    host = _text(name, data, "host", required=True) or ""
    if regions and default_region is not None and regions[default_region] != host:
        raise _fail(name, "host must be the default region's host")
    local = data.get("local", False)
    if not isinstance(local, bool):
        raise _fail(name, "'local' must be true or false")
    sources = _texts(name, data, "sources")
    if not sources or not all(s.startswith("https://") for s in sources):
        raise _fail(name, "'sources' must list at least one https:// URL")
    return Preset(
        name=name,
        display_name=_text(name, data, "display_name", required=True) or name,
        host=host,
        port=_int(name, data.get("port"), "port"),
        security=_security(name, _text(name, data, "security", required=True)),
        family=_text(name, data, "family"),
        alternatives=_alternatives(name, _texts(name, data, "alternatives")),
        auth_mechanisms=tuple(m.upper() for m in _texts(name, data, "auth_mechanisms")),
        credentials=_texts(name, data, "credentials"),
        username=_text(name, data, "username"),
        oauth2_scope=_text(name, data, "oauth2_scope"),
        token_endpoint=_text(name, data, "token_endpoint"),
        domains=_domains(name, _texts(name, data, "domains")),
        aliases=tuple(a.lower() for a in _texts(name, data, "aliases")),
        regions=MappingProxyType(regions),
        region=default_region,
        region_domains=MappingProxyType(region_domains),
        local=local,
        notes=_texts(name, data, "notes"),
        auth_hint=_text(name, data, "auth_hint"),
        sender_hint=_text(name, data, "sender_hint"),
        limits=_limits(name, data.get("limits")),
        sources=sources,
    )


def parse_presets(text: str) -> tuple[Preset, ...]:
    """Parse and check the text of a presets file.

    Raises:
        ConfigurationError: invalid TOML, an unknown key, a missing or mistyped value, or a
            name or alias used twice.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{DATA_FILE} is not valid TOML: {error}") from None
    table = document.get("presets")
    if not isinstance(table, dict) or not table:
        raise ConfigurationError(f"{DATA_FILE} has no [presets.<name>] tables")
    presets = tuple(_preset(str(name), data) for name, data in table.items())
    seen: dict[str, str] = {}
    for preset in presets:
        for alias in (preset.name, *preset.aliases):
            if alias in seen:
                raise _fail(preset.name, f"name or alias {alias!r} is also {seen[alias]!r}'s")
            seen[alias] = preset.name
    return presets

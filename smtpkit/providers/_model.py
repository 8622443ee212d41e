"""The preset values and the strict reader of ``presets.toml``.

Invariants:
    * Every value here is frozen; a malformed file raises
      :class:`~smtpkit.errors.ConfigurationError` naming the preset and the key, never a
      half-filled preset.
    * Names and aliases are unique across the file; every preset lists https:// sources.
"""

from __future__ import annotations

import difflib
import enum
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError

__all__ = ["DATA_FILE", "DayWindow", "Limits", "Preset", "format_size", "parse_presets"]

#: The data file, inside this package.
DATA_FILE = "presets.toml"

_SECURITY = {"starttls": Security.STARTTLS, "tls": Security.TLS, "none": Security.NONE}
# Both used with fullmatch(): with match(), "$" also accepts a value ending in "\n".
_ALTERNATIVE_RE = re.compile(r"^(\d{1,5})/(starttls|tls|none)$")
#: An exact domain, or "*." and a domain (every subdomain of it); lower case.
_DOMAIN_RE = re.compile(r"^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class DayWindow(enum.Enum):
    """How a provider counts its per-day limits (``day_window`` in ``presets.toml``).

    ``ROLLING``: any 24 hours; a message counts until 24 hours after it was sent, not until
    a set time of day. It is the only kind the presets' sources document so far, and
    :mod:`smtpkit.quotas` counts every daily limit this way (a rolling count never allows
    more than one reset at midnight would).
    """

    ROLLING = "rolling"


@dataclass(frozen=True, slots=True)
class Limits:
    """A provider's documented sending limits (``None``: not documented or plan-dependent).

    ``concurrent_connections`` and the per-minute and per-second message limits are applied
    to Submitters built from the preset (``max_connections``, ``rate_limit``); every limit
    feeds the error hints.

    Attributes:
        messages_per_day: messages per 24 hours.
        messages_per_minute: messages per minute.
        messages_per_second: messages per second.
        recipients_per_message: addresses in To, Cc and Bcc of one message.
        recipients_per_day: recipients summed over every message in 24 hours.
        concurrent_connections: simultaneous SMTP connections per mailbox.
        message_size: the largest message in bytes, as sent (encoded).
        resets: when a reached limit clears, in words ("over a rolling 24-hour period").
        day_window: how the per-day limits are counted, when the provider documents it.
        applies_to: whom the numbers are for when that matters ("consumer accounts",
            "the free plan", "the sandbox").
    """

    messages_per_day: int | None = None
    messages_per_minute: int | None = None
    messages_per_second: int | None = None
    recipients_per_message: int | None = None
    recipients_per_day: int | None = None
    concurrent_connections: int | None = None
    message_size: int | None = None
    resets: str | None = None
    applies_to: str | None = None
    day_window: DayWindow | None = None

    def describe(self) -> list[str]:
        """Each known limit as a short phrase, e.g. ``["500 messages a day", ...]``."""
        phrases: list[str] = []
        for value, unit in (
            (self.messages_per_day, "messages a day"),
            (self.messages_per_minute, "messages a minute"),
            (self.messages_per_second, "messages a second"),
            (self.recipients_per_day, "recipients a day"),
            (self.recipients_per_message, "recipients per message"),
            (self.concurrent_connections, "connections at once"),
        ):
            if value is not None:
                singular = unit.replace("messages", "message").replace("recipients", "recipient")
                phrases.append(f"{value:,} {singular if value == 1 else unit}")
        if self.message_size is not None:
            phrases.append(f"messages up to {format_size(self.message_size)}")
        return phrases


@dataclass(frozen=True)
class Preset:
    """One provider's settings, from ``presets.toml``.

    Attributes:
        name: the preset's key (``"gmail"``, ``"microsoft365"``, ``"ses"``).
        display_name: the provider's name for people.
        family: the provider name error hints know (:mod:`smtpkit.errors._providers`),
            or ``None`` when they have no specific advice for it.
        host, port, security: where and how to connect.
        alternatives: other documented ``(port, security)`` pairs (e.g. ``(465, TLS)``).
        auth_mechanisms: the SASL mechanisms the server accepts.
        credentials: what to log in with, best first (``"app_password"``, ``"oauth2"``,
            ``"password"``, ``"api_key"``, ``"smtp_credentials"``, ``"bridge_password"``,
            ``"none"``).
        username: what the user name is.
        oauth2_scope, token_endpoint: for OAuth2 (``{tenant}`` marks a per-tenant endpoint).
        domains: mailbox domains that belong to this preset, each exact or ``*.name``
            for any subdomain of ``name`` (there is no TLD wildcard).
        aliases: other names :func:`get` accepts.
        regions: region name to host, for providers with one host per region.
        region: the region this preset's ``host`` is for, when it has regions.
        region_domains: region name to mailbox domains of that region.
        local: the server runs on this machine (Proton Mail Bridge).
        notes: facts worth knowing, for docs and ``smtpkit check``.
        auth_hint: login advice added to authentication errors.
        sender_hint: advice added to refused senders and messages.
        limits: documented sending limits.
        sources: where the facts come from.
    """

    name: str
    display_name: str
    host: str
    port: int
    security: Security
    family: str | None = None
    alternatives: tuple[tuple[int, Security], ...] = ()
    auth_mechanisms: tuple[str, ...] = ()
    credentials: tuple[str, ...] = ()
    username: str | None = None
    oauth2_scope: str | None = None
    token_endpoint: str | None = None
    domains: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    regions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    region: str | None = None
    region_domains: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    local: bool = False
    notes: tuple[str, ...] = ()
    auth_hint: str | None = None
    sender_hint: str | None = None
    limits: Limits = field(default_factory=Limits)
    sources: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The name :func:`get` maps back to this exact preset (``"ses:eu-west-1"``)."""
        return f"{self.name}:{self.region}" if self.region and self.regions else self.name

    @property
    def wants_app_password(self) -> bool:
        """Whether a password login here takes an app password.

        True when the first of :attr:`credentials` that a password can be (anything but
        ``oauth2`` and ``none``) is ``app_password``: Gmail, Yahoo, iCloud, Yandex,
        Mail.ru, Outlook.com. Microsoft 365 (``oauth2``, ``password``) and Zoho
        (``password``, ``app_password``) take the account password first.
        """
        for kind in self.credentials:
            if kind not in ("oauth2", "none"):
                return kind == "app_password"
        return False

    def with_region(self, region: str) -> Preset:
        """This preset for another region (the host changes).

        Raises:
            ConfigurationError: the preset has no regions, or not this one.
        """
        if not self.regions:
            raise ConfigurationError(f"the {self.display_name} preset has no regions")
        wanted = region.strip().lower()
        host = self.regions.get(wanted)
        if host is None:
            known = ", ".join(self.regions)
            close = difflib.get_close_matches(wanted, list(self.regions), n=3)
            suggestion = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigurationError(
                f"unknown {self.display_name} region {region!r}{suggestion}",
                hint=f"known regions: {known}; for another one pass the host to Submitter",
            )
        return replace(self, host=host, region=wanted)

    def __repr__(self) -> str:
        return (
            f"Preset({self.key!r}, {self.host!r}, {self.port}, "
            f"security=Security.{self.security.name})"
        )


def format_size(size: int) -> str:
    """``25000000`` -> ``"25 MB"`` (decimal megabytes, as providers document them)."""
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000} MB"
    return f"{size:,} bytes"


# -- loading ---------------------------------------------------------------------------------


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

"""The preset values: a provider's settings, login rules and documented limits.

:class:`Preset` and :class:`Limits` are what ``presets.toml`` describes; the strict reader
that builds them is :mod:`smtpkit.providers._reader`.

Invariants:
    * Every value here is frozen (``with_region`` returns a copy); mappings are read-only.
    * A limit is ``None`` when the provider does not document it: never a guess.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError

__all__ = ["DayWindow", "Limits", "Preset", "format_size"]


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

"""Provider presets: the right host, port, security and login for well-known mail services.

The facts live in one reviewed data file, ``presets.toml`` next to this module, where every
fact carries its source. This module loads it (stdlib ``tomllib``), checks it strictly and
offers it as immutable values::

    from smtpkit import providers

    preset = providers.get("gmail")              # by name or alias
    preset.host, preset.port, preset.security    # 'smtp.gmail.com', 587, Security.STARTTLS
    providers.get("ses:eu-west-1").host          # 'email-smtp.eu-west-1.amazonaws.com'
    providers.lookup("someone@hotmail.co.uk")    # the Outlook.com preset
    providers.for_host("smtp.office365.com")     # the Microsoft 365 preset

``Submitter.for_provider(name, auth=...)`` builds a Submitter from a preset, with the
preset's connection and message-rate limits as ``max_connections`` and ``rate_limit``;
:func:`smtpkit.providers.enrich` adds a preset's limits and login advice to an error's hint.

Invariants:
    * Presets are frozen; the data file is read once and a malformed file fails loudly
      (:class:`~smtpkit.errors.ConfigurationError` naming the preset and key) instead of
      yielding a half-filled preset.
    * Names are case-insensitive; ``name:region`` picks a region (``ses:eu-west-1``,
      ``zoho:eu``, ``mailgun:eu``); an unknown name or region raises ``ConfigurationError``
      listing the known ones with the closest matches first.
    * :func:`lookup` never touches the network: it matches the mailbox domain against the
      presets' domain lists only.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from collections.abc import Mapping
from types import MappingProxyType

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError
from smtpkit.providers._hints import enrich, provider_hint
from smtpkit.providers._model import DayWindow, Limits, Preset, format_size
from smtpkit.providers._reader import DATA_FILE, parse_presets

__all__ = [
    "DayWindow",
    "Limits",
    "Preset",
    "all_presets",
    "enrich",
    "find",
    "for_host",
    "format_size",
    "get",
    "lookup",
    "parse_presets",
    "provider_hint",
    "render_markdown",
]


@functools.cache
def _presets() -> tuple[Preset, ...]:
    text = importlib.resources.files(__name__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return parse_presets(text)


@functools.cache
def _by_name() -> Mapping[str, Preset]:
    names: dict[str, Preset] = {}
    for preset in _presets():
        for alias in (preset.name, *preset.aliases):
            names[alias] = preset
    return MappingProxyType(names)


# -- queries ---------------------------------------------------------------------------------


def all_presets() -> tuple[Preset, ...]:
    """Every preset, in the data file's order (each at its default region)."""
    return _presets()


def get(name: str) -> Preset:
    """The preset called ``name`` (or one of its aliases), optionally ``name:region``.

    >>> get("gmail").host
    'smtp.gmail.com'
    >>> get("mailgun:eu").host
    'smtp.eu.mailgun.org'

    Raises:
        ConfigurationError: an unknown name (the message suggests close ones) or region.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError("a provider preset name must be a non-empty string")
    base, _, region = name.strip().lower().partition(":")
    preset = _by_name().get(base)
    if preset is None:
        names = [p.name for p in _presets()]
        close = difflib.get_close_matches(base, list(_by_name()), n=3, cutoff=0.6)
        suggestion = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigurationError(
            f"unknown provider preset {name!r}{suggestion}",
            hint=f"known presets: {', '.join(names)}",
        )
    return preset.with_region(region) if region else preset


def find(name: str | None) -> Preset | None:
    """Like :func:`get`, but ``None`` for ``None`` or a name no preset has (never raises).

    For code that holds a provider name from configuration, which may be a preset key
    (``"ses:eu-west-1"``), an alias, or a provider family the error hints know but no preset
    covers (``"qq"``)::

        preset = providers.find(settings.provider)
        family = preset.family if preset else settings.provider
    """
    if not name:
        return None
    try:
        return get(name)
    except ConfigurationError:
        return None


def _domain_of(address_or_domain: str) -> str:
    domain = address_or_domain.strip().rsplit("@", 1)[-1].strip().strip(">").rstrip(".")
    return domain.lower()


def _matches(domain: str, pattern: str) -> bool:
    # Patterns are exact domains or "*.name" (any subdomain of a name the provider owns);
    # the loader refuses anything else, so "yahoo.*" can never claim yahoo.co.jp.
    if pattern.startswith("*."):  # any subdomain: "*.onmicrosoft.com"
        return domain.endswith(pattern[1:])
    return domain == pattern


def lookup(address_or_domain: str) -> Preset | None:
    """The preset for a mailbox address or domain, or ``None`` when no preset claims it.

    >>> lookup("someone@googlemail.com").name
    'gmail'
    >>> lookup("bk.ru").name
    'mailru'
    >>> lookup("example.com") is None
    True

    Only the domain lists in the data are consulted (no DNS): a custom domain hosted at
    Google Workspace or Microsoft 365 is not recognised; name the preset instead. Domains
    are listed one by one (no ``yahoo.*``), so a look-alike such as ``yahoo.co.jp``
    (Yahoo! JAPAN, a separate service) is ``None`` rather than the wrong preset.
    """
    if not isinstance(address_or_domain, str) or not address_or_domain.strip():
        return None
    domain = _domain_of(address_or_domain)
    for preset in _presets():
        for region, domains in preset.region_domains.items():
            if any(_matches(domain, pattern) for pattern in domains):
                return preset.with_region(region)
        if any(_matches(domain, pattern) for pattern in preset.domains):
            return preset
    return None


def for_host(host: str) -> Preset | None:
    """The first preset whose server (in any region) is ``host``, or ``None``.

    ``smtp.gmail.com`` serves both Gmail and Google Workspace; the first, Gmail, is returned.
    Loopback presets (Proton Mail Bridge) are never matched by host.
    """
    if not isinstance(host, str):
        return None
    wanted = host.strip().strip("[]").rstrip(".").lower()
    for preset in _presets():
        if preset.local:
            continue
        if preset.host == wanted:
            return preset
        for region, region_host in preset.regions.items():
            if region_host == wanted:
                return preset.with_region(region)
    return None


# -- documentation ---------------------------------------------------------------------------


def _mode(port: int, security: Security) -> str:
    return f"{port} {'STARTTLS' if security is Security.STARTTLS else security.name}"


def render_markdown() -> str:
    """The preset table and per-preset details as Markdown (embedded in docs/providers.md)."""
    lines = [
        "| preset | provider | host | port / security | also | AUTH | log in with | limits |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in _presets():
        also = ", ".join(_mode(port, sec) for port, sec in p.alternatives) or "-"
        limits = "; ".join(p.limits.describe()) or "-"
        login = ", ".join(c.replace("_", " ") for c in p.credentials) or "-"
        lines.append(
            f"| `{p.name}` | {p.display_name} | `{p.host}` | {_mode(p.port, p.security)} | "
            f"{also} | {' '.join(p.auth_mechanisms) or '-'} | {login} | {limits} |"
        )
    for p in _presets():
        lines += ["", f"### {p.display_name} (`{p.name}`)", ""]
        if p.username:
            lines.append(f"- User name: {p.username}.")
        if p.regions:
            regions = ", ".join(f"`{r}` `{h}`" for r, h in p.regions.items())
            lines.append(f"- Regions (`{p.name}:<region>`, default `{p.region}`): {regions}.")
        if p.domains or p.region_domains:
            domains = [*p.domains, *(d for ds in p.region_domains.values() for d in ds)]
            lines.append(f"- Mailbox domains: {', '.join(f'`{d}`' for d in domains)}.")
        if p.oauth2_scope:
            lines.append(f"- OAuth2 scope `{p.oauth2_scope}`, token endpoint `{p.token_endpoint}`.")
        if p.limits.resets:
            lines.append(f"- Limits reset {p.limits.resets}.")
        lines.extend(f"- {note}" for note in p.notes)
        lines.append(f"- Sources: {', '.join(f'<{s}>' for s in p.sources)}")
    return "\n".join(lines) + "\n"

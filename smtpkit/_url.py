"""Server URLs: ``smtp+starttls://user:pass@host:587``, ``smtps://host:465``, ``smtp://host``.

Invariants:
    * The password is held in a :class:`~smtpkit.auth.Secret`; ``repr`` of a parsed URL and
      every error message about a URL show ``***`` in its place.
    * Percent-encoded user names and passwords are decoded (``you%40gmail.com``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.auth import Secret
from smtpkit.config import Security
from smtpkit.errors import ConfigurationError

__all__ = ["SCHEMES", "ServerURL", "parse_url", "redact_url"]

#: URL scheme -> security mode. ``smtp+starttls`` is the explicit spelling of port 587
#: submission (RFC 6409); ``smtps`` is implicit TLS (RFC 8314).
SCHEMES = MappingProxyType(
    {
        "smtp+starttls": Security.STARTTLS,
        "submission": Security.STARTTLS,
        "smtps": Security.TLS,
        "smtp+tls": Security.TLS,
        "smtp": Security.NONE,
    }
)


@dataclass(frozen=True)
class ServerURL:
    """A parsed server URL."""

    host: str
    port: int
    security: Security
    username: str | None = None
    password: Secret | None = field(default=None, repr=False)
    options: MappingProxyType[str, str] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __repr__(self) -> str:
        user = f"{self.username!r}, password=***" if self.password else repr(self.username)
        return f"ServerURL({self.host!r}, {self.port}, {self.security.name}, user={user})"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def parse_url(url: str) -> ServerURL:
    """Parse a server URL.

    >>> parse_url("smtp+starttls://you%40gmail.com:pw@smtp.gmail.com:587")
    ServerURL('smtp.gmail.com', 587, STARTTLS, user='you@gmail.com', password=***)

    Raises:
        ConfigurationError: unknown scheme, missing host, bad port, or a path.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            "a server URL looks like smtp+starttls://user:password@host:587",
            hint="schemes: smtp+starttls:// (587), smtps:// (465), smtp:// (plaintext)",
        )
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigurationError(f"invalid server URL {shown}: {error}") from None
    security = SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise ConfigurationError(
            f"unknown URL scheme {parts.scheme!r} in {shown}",
            hint="use smtp+starttls:// (port 587), smtps:// (465) or smtp:// (plaintext)",
        )
    if not parts.hostname:
        raise ConfigurationError(f"the server URL {shown} has no host")
    if parts.path not in ("", "/"):
        raise ConfigurationError(f"the server URL {shown} must not have a path")
    options: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        options[key] = value
    username = urllib.parse.unquote(parts.username) if parts.username else None
    password = Secret(urllib.parse.unquote(parts.password)) if parts.password else None
    host = parts.hostname
    if ":" in host:  # an IPv6 literal came out of its brackets
        host = f"[{host}]"
    return ServerURL(
        host=host,
        port=port or security.default_port,
        security=security,
        username=username,
        password=password,
        options=MappingProxyType(options),
    )

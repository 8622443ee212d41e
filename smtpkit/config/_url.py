"""Server URLs: ``smtp+starttls://user:pass@host:587``, ``smtps://host:465``, ``smtp://host``.

Invariants:
    * The password is held in a :class:`~smtpkit.auth.Secret`; ``repr`` of a parsed URL and
      every error message about a URL show ``***`` in its place.
    * Percent-encoded user names and passwords are decoded as UTF-8 (``you%40gmail.com``);
      an escape that is not UTF-8 (``%E9``) is refused, never replaced.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.auth import Secret
from smtpkit.config import Security, check_host
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
    options: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:
        user = f"{self.username!r}, password=***" if self.password else repr(self.username)
        return f"ServerURL({self.host!r}, {self.port}, {self.security.name}, user={user})"


#: The hint for a URL whose user name or password holds an unencoded special character.
_ENCODE_HINT = (
    "percent-encode special characters in the user name and password "
    "(@ as %40, / as %2F, ? as %3F, # as %23, : as %3A), or put the password in "
    "SMTPKIT_PASSWORD"
)


#: A ``proxy=`` or ``quota=`` query option, whose value is a URL that may hold a password.
_PROXY_OPTION = re.compile(r"([?&](?:proxy|quota)=)([^&#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for messages and logs).

    The password is taken to run from the first ``:`` after ``user`` to the *last* ``@``,
    without trusting a URL parser: a password holding an unencoded ``/``, ``?`` or ``#``
    would otherwise be read as part of a path, query or fragment and shown. An ``@`` in
    a query can make this hide more than the password, never less. The password of a
    URL in a ``proxy=`` or ``quota=`` query option is masked too, percent-encoded or not:

    >>> redact_url("smtps://mail.example?proxy=socks5%3A%2F%2Fu%3Apw%40proxy%3A1080")
    'smtps://mail.example?proxy=socks5://u:***@proxy:1080'
    """
    if not isinstance(url, str):
        return "<not a URL>"
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return _redact_proxy_option(url)
    userinfo, host = rest.rsplit("@", 1)
    if ":" not in userinfo:
        return f"{scheme}://{userinfo}@{_redact_proxy_option(host)}"
    user = userinfo.split(":", 1)[0]
    # Everything up to the last "@" is masked already; the rest holds no URL password.
    return f"{scheme}://{user}:***@{_redact_proxy_option(host)}"


def _redact_proxy_option(text: str) -> str:
    """``text`` with the credentials of a ``proxy=`` or ``quota=`` option's URL masked."""

    def mask(match: re.Match[str]) -> str:
        value = urllib.parse.unquote(match.group(2))
        if "@" not in value:
            return match.group(0)
        shown = redact_url(value) if "://" in value else "***@" + value.rsplit("@", 1)[1]
        return match.group(1) + shown

    return _PROXY_OPTION.sub(mask, text)


def _unquote(text: str, what: str, shown: str) -> str:
    """Percent-decode ``text`` as UTF-8, refusing escapes that are not UTF-8.

    ``urllib.parse.unquote`` would turn ``%E9`` (Latin-1 "é") into U+FFFD and the login
    would fail later with a password nobody typed.
    """
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        pass  # raised below, outside the handler: the decode error holds the bytes
    raise ConfigurationError(
        f"the {what} in {shown} holds a percent-escape that is not UTF-8",
        hint="percent-encode the UTF-8 bytes (é is %C3%A9), or put the password in "
        "SMTPKIT_PASSWORD",
    )


def parse_url(url: str) -> ServerURL:
    """Parse a server URL.

    >>> parse_url("smtp+starttls://you%40gmail.com:pw@smtp.gmail.com:587")
    ServerURL('smtp.gmail.com', 587, STARTTLS, user='you@gmail.com', password=***)

    Raises:
        ConfigurationError: unknown scheme, missing or malformed host (a space, a line
            break...), bad port, or a path.
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
    except ValueError:
        # urllib's message quotes the text it took for a port, which is a piece of the
        # password when the password holds an unencoded "/", "?" or "#".
        raise ConfigurationError(
            f"invalid server URL {shown}: the host or port is malformed",
            hint=f"the port is a number from 1 to 65535; {_ENCODE_HINT}",
        ) from None
    security = SCHEMES.get(parts.scheme.lower())
    if security is None:
        raise ConfigurationError(
            f"unknown URL scheme {parts.scheme!r} in {shown}",
            hint="use smtp+starttls:// (port 587), smtps:// (465) or smtp:// (plaintext)",
        )
    if not parts.hostname:
        raise ConfigurationError(f"the server URL {shown} has no host")
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"the server URL {shown} must not have a path",
            hint=_ENCODE_HINT if "@" in parts.path else None,
        )
    if port == 0:
        raise ConfigurationError(
            f"invalid server URL {shown}: the port must be a number from 1 to 65535"
        )
    options: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        options[key] = value
    username = _unquote(parts.username, "user name", shown) if parts.username else None
    password = Secret(_unquote(parts.password, "password", shown)) if parts.password else None
    # RFC 3986 §3.2.2: a host may be percent-encoded; "mail%20server" is "mail server",
    # and "%0D%0A" a line break, refused with the rest by check_host.
    host = urllib.parse.unquote(parts.hostname, errors="replace")
    if ":" in host:  # an IPv6 literal came out of its brackets
        host = f"[{host}]"
    try:
        check_host(host)  # U+FFFD from an undecodable escape is refused here too
    except ConfigurationError as error:
        raise ConfigurationError(f"{error.message} in {shown}", hint=error.hint) from None
    return ServerURL(
        host=host,
        port=port or security.default_port,
        security=security,
        username=username,
        password=password,
        options=MappingProxyType(options),
    )

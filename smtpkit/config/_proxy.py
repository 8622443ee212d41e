"""``smtpkit.Proxy``: a SOCKS5, SOCKS4 or HTTP CONNECT proxy to reach the mail server through.

::

    Submitter("smtp.gmail.com", auth=..., proxy="socks5h://me:secret@proxy.internal:1080")
    Submitter("smtp.gmail.com", auth=..., proxy=Proxy.from_url("http://proxy.internal:3128"))
    Submitter("smtp.gmail.com", auth=..., proxy="env")  # ALL_PROXY / HTTPS_PROXY, if set
    Submitter.from_url("smtps://me:pw@smtp.gmail.com?proxy=socks5h%3A%2F%2Fproxy.internal%3A1080")

The environment (``ALL_PROXY``, then ``HTTPS_PROXY``, lower case first, with ``NO_PROXY``)
is read only when asked for (``proxy="env"``, ``?proxy=env``, :meth:`Proxy.from_env`): a
mail library that silently followed a variable set for web browsing could send mail, and
credentials, somewhere unexpected.

Invariants:
    * The password lives in a :class:`~smtpkit.auth.Secret`: ``repr``/``str`` of a Proxy
      and every message about one show ``***``; a Proxy with a password refuses to pickle.
    * A Proxy is valid once built: a known scheme, a host without whitespace or controls,
      a port, and credentials the protocol can carry (RFC 1929: 1-255 octets each; SOCKS4
      carries a user ID and no password; HTTP Basic: no ``:`` in the user name).
    * This module connects nowhere: the transports do (:mod:`smtpkit.transports._tunnel`).
"""

from __future__ import annotations

import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from smtpkit.auth import Secret
from smtpkit.config import check_host
from smtpkit.config._url import redact_url
from smtpkit.errors import ConfigurationError
from smtpkit.transports import LoopbackOnlyTransport, SocketTransport
from smtpkit.transports._proxy_route import ProxyKind, require_python_socks

__all__ = ["ENV_VARIABLES", "Proxy", "ProxyKind", "proxy_option", "with_proxy"]

#: The variables :meth:`Proxy.from_env` reads, in order (the first one set wins).
ENV_VARIABLES = ("all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY")
_NO_PROXY = ("no_proxy", "NO_PROXY")
#: What ``proxy=`` / ``?proxy=`` take to mean "the environment's proxy, if any".
FROM_ENV = "env"
#: RFC 1929 §2: UNAME and PASSWD are 1 to 255 octets.
_SOCKS5_FIELD_MAX = 255

_SCHEMES_HINT = (
    "use socks5:// (names resolved here), socks5h:// (by the proxy), socks4://, socks4a:// or "
    "http:// (HTTP CONNECT), e.g. socks5h://user:password@proxy.example:1080"
)

T = TypeVar("T")


def _decode(text: str, what: str, shown: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        pass  # raised outside the handler: the decode error holds the bytes
    raise ConfigurationError(
        f"the {what} in the proxy URL {shown} holds a percent-escape that is not UTF-8",
        hint="percent-encode the UTF-8 bytes (é is %C3%A9)",
    )


@dataclass(frozen=True)
class Proxy:
    """A proxy between smtpkit and the mail server.

    >>> Proxy.from_url("socks5://alice:s3cret@127.0.0.1:1080")
    Proxy('socks5://alice:***@127.0.0.1:1080')
    >>> Proxy(ProxyKind.HTTP, "proxy.example", 3128).url
    'http://proxy.example:3128'

    Args:
        kind: the protocol (:class:`ProxyKind`); it also says who resolves the mail
            server's name.
        host: the proxy's name or address.
        port: the proxy's port; ``0`` (or left out) means the default: 1080 for SOCKS.
            HTTP proxies have no default port.
        username: the proxy user name (for SOCKS4, the user ID).
        password: the proxy password, a ``str`` or a :class:`~smtpkit.auth.Secret` (kept
            as a Secret). Sent in the clear to the proxy, as SOCKS5 (RFC 1929) and HTTP
            Basic do: use a proxy you reach over a trusted network or loopback.

    Raises:
        ConfigurationError: an invalid value (see the module invariants).
    """

    kind: ProxyKind
    host: str
    port: int = 0
    username: str | None = None
    password: Secret | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ProxyKind):
            raise ConfigurationError(
                f"kind must be a ProxyKind, got {self.kind!r}",
                hint="e.g. ProxyKind.SOCKS5, or build from a URL with Proxy.from_url()",
            )
        host = check_host(self.host).strip("[]")
        object.__setattr__(self, "host", host)
        port = self.port or self.kind.default_port
        if port is None:
            raise ConfigurationError(
                f"the HTTP proxy {host} needs a port",
                hint="HTTP proxies listen on many ports (3128, 8080, ...): give it, e.g. "
                f"http://{host}:3128",
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(
                f"the proxy port must be a number from 1 to 65535, got {port!r}"
            )
        object.__setattr__(self, "port", port)
        password = self.password
        if isinstance(password, str):
            password = Secret(password)
            object.__setattr__(self, "password", password)
        elif password is not None and not isinstance(password, Secret):
            raise ConfigurationError(
                f"the proxy password must be a str or a smtpkit.auth.Secret, got "
                f"{type(password).__name__}"
            )
        self._check_credentials(password)

    def _check_credentials(self, password: Secret | None) -> None:
        user = self.username
        kind = self.kind
        if user is not None and (not isinstance(user, str) or not user):
            raise ConfigurationError("the proxy user name must be a non-empty str or None")
        if user is not None and any(ord(c) < 32 or ord(c) == 127 for c in user):
            raise ConfigurationError("the proxy user name contains a control character")
        if kind.protocol != "HTTP CONNECT" and user is not None and not user.isascii():
            raise ConfigurationError(
                f"a {kind.protocol} proxy user name must be ASCII ({self.url})",
                hint="python-socks sends SOCKS credentials as ASCII; percent-encoding does "
                "not change that",
            )
        if kind.protocol == "SOCKS4":
            if password is not None:
                raise ConfigurationError(
                    f"SOCKS4 carries a user ID but no password ({self.url})",
                    hint="use socks5:// (or socks5h://) for a user name and password, or give "
                    "the SOCKS4 user ID alone: socks4://USERID@host:1080",
                )
            return
        if (user is None) != (password is None) or (password is not None and not password.reveal()):
            raise ConfigurationError(
                f"the proxy {self.url} needs both a user name and a password, or neither",
                hint="e.g. socks5://user:password@host:1080 (percent-encoded)",
            )
        if user is None or password is None:
            return
        secret = password.reveal()
        if kind.protocol == "HTTP CONNECT":
            if ":" in user:
                raise ConfigurationError(
                    "an HTTP proxy user name cannot contain ':' (RFC 7617 Basic authentication)"
                )
            try:
                (user + secret).encode("latin-1")  # what python-socks encodes Basic with
            except UnicodeEncodeError:
                raise ConfigurationError(
                    f"the HTTP proxy credentials of {self.url} must be Latin-1 text",
                    hint="python-socks encodes HTTP Basic credentials as Latin-1",
                ) from None
            return
        if not secret.isascii():
            raise ConfigurationError(
                f"a SOCKS5 proxy password must be ASCII ({self.url})",
                hint="python-socks sends SOCKS credentials as ASCII",
            )
        if len(user) > _SOCKS5_FIELD_MAX or len(secret) > _SOCKS5_FIELD_MAX:
            raise ConfigurationError(
                "a SOCKS5 proxy user name and password are at most 255 bytes each (RFC 1929)"
            )

    # -- how it is shown -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The proxy as a URL with the password masked: ``socks5://alice:***@host:1080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = ""
        if self.username is not None:
            user = urllib.parse.quote(self.username, safe="")
            user += ":***@" if self.password is not None else "@"
        return f"{self.kind.value}://{user}{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Proxy({self.url!r})"

    def __str__(self) -> str:
        return self.url

    # -- other ways to build one -----------------------------------------------------------

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """A Proxy from ``socks5://``, ``socks5h://``, ``socks4://``, ``socks4a://`` or
        ``http://`` URL, with optional ``user:password@`` (percent-encoded).

        Raises:
            ConfigurationError: a malformed URL or an unknown scheme (``https://``, a TLS
                connection to the proxy itself, is not supported). The message shows the URL
                with its password masked.
        """
        if not isinstance(url, str) or "://" not in url:
            raise ConfigurationError(
                f"a proxy URL looks like socks5://host:1080, got {redact_url(str(url))!r}",
                hint=_SCHEMES_HINT,
            )
        shown = redact_url(url.strip())
        try:
            parts = urllib.parse.urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise ConfigurationError(
                f"invalid proxy URL {shown}: the host or port is malformed",
                hint="percent-encode special characters in the user name and password "
                "(@ as %40, : as %3A, / as %2F)",
            ) from None
        try:
            kind = ProxyKind(parts.scheme.lower())
        except ValueError:
            raise ConfigurationError(
                f"unknown proxy scheme {parts.scheme!r} in {shown}", hint=_SCHEMES_HINT
            ) from None
        if not parts.hostname:
            raise ConfigurationError(f"the proxy URL {shown} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigurationError(
                f"the proxy URL {shown} must be only scheme://[user:password@]host:port",
                hint="percent-encode special characters in the password (/ as %2F, ? as %3F, "
                "# as %23)",
            )
        username = _decode(parts.username, "user name", shown) if parts.username else None
        password = _decode(parts.password, "password", shown) if parts.password else None
        try:
            return cls(
                kind,
                parts.hostname,
                port or 0,
                username=username,
                password=Secret(password) if password is not None else None,
            )
        except ConfigurationError as error:
            raise ConfigurationError(
                f"{error.message} (proxy URL {shown})", hint=error.hint
            ) from None

    @classmethod
    def from_env(
        cls, host: str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Proxy | None:
        """The proxy the environment names for ``host``, or ``None``.

        Reads ``all_proxy``, ``ALL_PROXY``, ``https_proxy``, ``HTTPS_PROXY`` (the first one
        set wins; ``ALL_PROXY`` is the one meant for every protocol, ``HTTPS_PROXY`` the
        usual one for TLS traffic). With ``host``, ``no_proxy``/``NO_PROXY`` is honoured:
        ``*``, a domain (``example.com`` also covers its subdomains), an address or a
        network (``10.0.0.0/8``).

        Raises:
            ConfigurationError: the variable holds an invalid proxy URL (named in the
                message, its password masked).
        """
        env = os.environ if environ is None else environ
        for name in ENV_VARIABLES:
            value = (env.get(name) or "").strip()
            if not value:
                continue
            if host is not None and _bypassed(host, env):
                return None
            if "://" not in value:
                value = f"http://{value}"  # curl's reading of a bare host:port
            try:
                return cls.from_url(value)
            except ConfigurationError as error:
                raise ConfigurationError(f"{name}: {error.message}", hint=error.hint) from None
        return None


def _bypassed(host: str, env: Mapping[str, str]) -> bool:
    """Whether ``no_proxy``/``NO_PROXY`` in ``env`` exempts ``host``."""
    listed = next((env[name] for name in _NO_PROXY if env.get(name)), "")
    name = host.strip().strip("[]").rstrip(".").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for raw in listed.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if not entry.startswith("[") and entry.count(":") == 1:
            entry = entry.split(":", 1)[0]  # host:port - the port does not matter here
        entry = entry.strip("[]").lstrip("*").lstrip(".").rstrip(".")
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if name == entry or name.endswith("." + entry):
            return True
    return False


def proxy_option(value: object, *, host: object) -> Proxy | None:
    """The Proxy that a ``proxy=`` keyword asks for: a Proxy, a proxy URL, ``"env"`` or None.

    Raises:
        ConfigurationError: anything else, or an invalid URL or environment variable.
    """
    if value is None or isinstance(value, Proxy):
        return value
    if isinstance(value, str):
        if value.strip().lower() == FROM_ENV:
            return Proxy.from_env(host if isinstance(host, str) else None)
        return Proxy.from_url(value)
    raise ConfigurationError(
        f"proxy must be a smtpkit.Proxy, a proxy URL or 'env', got {type(value).__name__}",
        hint="e.g. proxy='socks5h://user:password@proxy.example:1080'",
    )


def with_proxy(transport: T, proxy: object, *, host: object) -> T | SocketTransport:
    """The transport a Submitter uses for ``transport=`` and ``proxy=`` together.

    Without a proxy: ``transport`` as given. With one: a socket transport through it; a
    transport that already goes through that very proxy (``from_url`` builds one for
    ``smtp://127.0.0.1?proxy=...``) is kept.

    Raises:
        ConfigurationError: an invalid ``proxy``; python-socks is missing; or ``transport``
            is another kind of transport (a test fake, a custom one), which opens its own
            connections and could not honour the proxy.
    """
    resolved = proxy_option(proxy, host=host)
    if resolved is None:
        return transport
    require_python_socks()
    if transport is None:
        return SocketTransport(proxy=resolved)
    inner = transport.inner if isinstance(transport, LoopbackOnlyTransport) else transport
    if type(inner) is SocketTransport and inner.proxy is resolved:
        return transport
    if isinstance(transport, SocketTransport) and type(transport) is SocketTransport:
        if transport.proxy is None:
            return SocketTransport(proxy=resolved)
        raise ConfigurationError(
            f"transport={transport!r} already goes through another proxy than proxy={resolved}",
            hint="give the proxy once: proxy= or SocketTransport(proxy=...)",
        )
    raise ConfigurationError(
        f"proxy= needs smtpkit's socket transport, but transport={transport!r} opens its "
        "own connections",
        hint="drop proxy=, or drop transport= (a test fake never connects anywhere)",
    )

"""What a transport knows about a proxy, and how a proxy's failure becomes an smtpkit error.

A proxy sits between smtpkit and the mail server: SOCKS5 (RFC 1928, with the user name and
password of RFC 1929), SOCKS4 (and SOCKS4a) or HTTP ``CONNECT`` (RFC 9110 §9.3.6). The
handshakes are python-socks' (the ``[proxy]`` extra); this module holds what both drivers
share around them:

* :class:`ProxyKind`, the protocol and who resolves the mail server's name;
* :class:`ProxyRoute`, the structural type of a proxy (``smtpkit.Proxy`` is the value users
  build; it holds the password in an ``smtpkit.auth.Secret``, which this layer may not
  import: transports and auth stay independent);
* :func:`tunnel_peer`, the mail server's address as this machine sees it, for the rules that
  relax security for loopback;
* :func:`proxy_failure` and friends, which turn python-socks' errors into
  :class:`~smtpkit.errors.ProxyError` subclasses that name the proxy and the server.

Invariants:
    * No message, error or ``repr`` built here holds the proxy password: proxies are shown
      by :attr:`ProxyRoute.url`, which masks it, and the bytes sent during a handshake
      (which carry it) are never kept - only the first byte of each, to tell the stage.
    * A tunnel's peer is loopback only when the mail server is named by a loopback IP
      literal *and* the proxy itself was reached on loopback: the proxy's ``127.0.0.1`` is
      this machine's only when the proxy runs here, and only then does nothing cross a
      network in the clear.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from collections.abc import Sequence
from typing import Protocol

from smtpkit.config import Endpoint
from smtpkit.errors import (
    ConfigurationError,
    OperationTimeout,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    TransportError,
)
from smtpkit.transports._peer import is_loopback_peer

__all__ = [
    "INSTALL_HINT",
    "ProxyKind",
    "ProxyRoute",
    "closed_before_greeting",
    "proxy_failure",
    "proxy_timeout",
    "proxy_unreachable",
    "require_python_socks",
    "tunnel_peer",
]

#: The install hint for the optional dependency.
INSTALL_HINT = "install the proxy extra: pip install 'smtpkit[proxy]' (it brings python-socks)"


class ProxyKind(enum.Enum):
    """The proxy protocol, named as in proxy URLs (curl's and requests' convention).

    * ``SOCKS5``: SOCKS5; this machine resolves the mail server's name.
    * ``SOCKS5H``: SOCKS5; the proxy resolves the name (nothing leaks to the local DNS).
    * ``SOCKS4``: SOCKS4, which carries IPv4 addresses only: resolved here.
    * ``SOCKS4A``: SOCKS4a; the proxy resolves the name.
    * ``HTTP``: HTTP ``CONNECT``; the proxy resolves the name.
    """

    SOCKS5 = "socks5"
    SOCKS5H = "socks5h"
    SOCKS4 = "socks4"
    SOCKS4A = "socks4a"
    HTTP = "http"

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy, not this machine, resolves the mail server's name."""
        return self in (ProxyKind.SOCKS5H, ProxyKind.SOCKS4A, ProxyKind.HTTP)

    @property
    def protocol(self) -> str:
        """The protocol's name for messages: ``SOCKS5``, ``SOCKS4`` or ``HTTP CONNECT``."""
        if self in (ProxyKind.SOCKS5, ProxyKind.SOCKS5H):
            return "SOCKS5"
        if self in (ProxyKind.SOCKS4, ProxyKind.SOCKS4A):
            return "SOCKS4"
        return "HTTP CONNECT"

    @property
    def default_port(self) -> int | None:
        """1080 (the SOCKS port IANA registered) for SOCKS; HTTP proxies have no one port."""
        return None if self is ProxyKind.HTTP else 1080


class _Revealable(Protocol):
    """A secret that shows itself only when asked (``smtpkit.auth.Secret``)."""

    def reveal(self) -> str: ...


class ProxyRoute(Protocol):
    """A proxy as the transports see it; :class:`smtpkit.Proxy` is the one to build."""

    @property
    def kind(self) -> ProxyKind: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def username(self) -> str | None: ...

    @property
    def password(self) -> _Revealable | None: ...

    @property
    def url(self) -> str:
        """The proxy as a URL with its password masked; the only way it is ever shown."""
        ...


def require_python_socks() -> None:
    """Fail with a hint, before anything connects, when python-socks is not installed.

    Raises:
        ConfigurationError: python-socks cannot be imported.
    """
    try:
        import python_socks  # noqa: F401, PLC0415 - an optional dependency, checked on use
    except ImportError:
        raise ConfigurationError(
            "connecting through a proxy needs python-socks, which is not installed",
            hint=INSTALL_HINT,
        ) from None


def tunnel_peer(target_host: str, proxy_peer: str | None) -> str | None:
    """The mail server's address as seen from this machine, through a proxy; else ``None``.

    Through a proxy the socket's peer is the proxy, so ``getpeername()`` says nothing about
    the mail server. Only an IP literal names it without the proxy's help (a name is
    resolved by the proxy, or by a resolver smtpkit does not see), and a loopback literal
    means this machine only when the proxy runs here too.

    >>> tunnel_peer("127.0.0.1", "127.0.0.1"), tunnel_peer("127.0.0.1", "192.0.2.7")
    ('127.0.0.1', None)
    >>> tunnel_peer("localhost", "127.0.0.1"), tunnel_peer("[2001:db8::25]", "192.0.2.7")
    (None, '2001:db8::25')
    """
    try:
        address = ipaddress.ip_address(target_host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None  # a name: the address it leads to is the proxy's (or resolver's) choice
    if is_loopback_peer(str(address)) and not is_loopback_peer(proxy_peer):
        return None  # the proxy's own loopback, reached over a network
    return str(address)


def _target(endpoint: Endpoint) -> str:
    return f"{endpoint.host}:{endpoint.port}"


def proxy_unreachable(route: ProxyRoute, endpoint: Endpoint, error: OSError) -> TransportError:
    """The error for a proxy that could not be reached at all (TCP to the proxy failed)."""
    where = f"{route.host}:{route.port}"
    if isinstance(error, TimeoutError):
        return OperationTimeout(
            f"connecting to the proxy {route.url} timed out",
            hint="check the proxy's host and port, and that this network lets you reach it",
        )
    reason = error.strerror or str(error) or type(error).__name__
    if isinstance(error, socket.gaierror):
        message = f"cannot resolve the proxy host {route.host!r}: {reason}"
    else:
        message = f"cannot connect to the proxy {route.url} ({where}): {reason}"
    return ProxyError(
        message,
        proxy=route.url,
        target=_target(endpoint),
        hint="check the proxy's host and port (from the proxy URL or ALL_PROXY/HTTPS_PROXY) "
        "and that the proxy is running",
    )


def proxy_timeout(route: ProxyRoute, endpoint: Endpoint) -> OperationTimeout:
    """The error for a proxy handshake that did not finish within the connect timeout."""
    return OperationTimeout(
        f"the {route.kind.protocol} handshake with the proxy {route.url} for "
        f"{_target(endpoint)} did not finish within {endpoint.connect_timeout:g} s",
        hint="the proxy is slow to reach the mail server or does not speak "
        f"{route.kind.protocol}: check the proxy URL's scheme",
    )


#: SOCKS5 reply codes (RFC 1928 §6) meaning the proxy could not or would not connect.
_SOCKS5_REFUSALS = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
}
#: SOCKS4 reply codes: 0x5B "request rejected or failed"; 0x5C and 0x5D concern identd.
_SOCKS4_REJECTED = 0x5B
_SOCKS4_IDENT = {0x5C: "it could not reach identd on this machine", 0x5D: "identd disagreed"}
#: HTTP statuses to CONNECT meaning the proxy would not (403, 405) or could not (5xx) connect.
_HTTP_REFUSALS = frozenset({403, 405, 502, 503, 504})
#: RFC 1929 §2: the user name/password sub-negotiation starts with version 1.
_RFC1929_VERSION = 0x01
#: RFC 1928 §3/§4: SOCKS5 requests start with version 5.
_SOCKS5_VERSION = 0x05
#: RFC 1928 §3: the method-selection reply "no acceptable methods".
_NO_ACCEPTABLE_METHODS = b"\x05\xff"


def proxy_failure(
    route: ProxyRoute,
    endpoint: Endpoint,
    *,
    code: int | None,
    detail: str,
    sent: Sequence[int],
    answered: bytes,
) -> ProxyError:
    """The error for a handshake the proxy failed or refused.

    Args:
        route: the proxy.
        endpoint: the mail server it was asked for.
        code: the failure code the proxy replied with (a SOCKS reply code, an HTTP status),
            or ``None`` when it sent none (it closed the connection, or answered garbage).
        detail: python-socks' description, for the message.
        sent: the first byte of each handshake message sent, in order: tells the stage a
            silent close happened at (proxies such as pproxy close without a reply).
        answered: the first bytes the proxy sent in answer to the last message (empty when
            it closed without a word).
    """
    kind = route.kind
    target = _target(endpoint)
    proxy = route.url
    credentials = route.username is not None
    prefix = f"the {kind.protocol} proxy {proxy}"

    def make(cls: type[ProxyError], message: str, hint: str) -> ProxyError:
        return cls(message, proxy=proxy, target=target, hint=hint)

    refused_hint = (
        f"check that {target} is the right mail server and port, and that the proxy may and "
        "can connect to it (its rules may allow only some ports, e.g. 443)"
    )
    credentials_hint = (
        "check the proxy user name and password in the proxy URL (percent-encoded)"
        if credentials
        else "the proxy wants a user name and password: put them in the proxy URL, e.g. "
        "socks5://user:password@host:1080"
    )
    if kind.protocol == "HTTP CONNECT":
        if code == 407:
            return make(
                ProxyAuthenticationError,
                f"{prefix} refused CONNECT {target}: 407 Proxy Authentication Required",
                credentials_hint,
            )
        if code in _HTTP_REFUSALS:
            return make(
                ProxyConnectionRefused, f"{prefix} refused CONNECT {target}: {detail}", refused_hint
            )
        if code is None and sent and not answered:
            return make(
                ProxyConnectionRefused,
                f"{prefix} closed the connection without answering CONNECT {target}: it "
                "most likely could not reach the mail server",
                refused_hint,
            )
        return make(
            ProxyError,
            f"{prefix} failed CONNECT {target}: {detail}",
            "check the proxy URL's scheme: this proxy may not speak HTTP CONNECT",
        )
    if kind.protocol == "SOCKS5":
        if code in _SOCKS5_REFUSALS:
            return make(
                ProxyConnectionRefused,
                f"{prefix} could not connect to {target}: {_SOCKS5_REFUSALS[code]}",
                refused_hint,
            )
        stage = _socks5_stage(sent)
        if stage == "auth":
            return make(
                ProxyAuthenticationError,
                f"{prefix} refused the user name and password of {proxy} ({detail})",
                credentials_hint,
            )
        if stage == "greeting" and answered[:2] == _NO_ACCEPTABLE_METHODS:
            return make(
                ProxyAuthenticationError,
                f"{prefix} accepted none of the authentication methods offered",
                credentials_hint,
            )
        if stage == "greeting" and not answered:
            # RFC 1928 §3 wants X'FF' here; some proxies (pproxy) hang up instead.
            return make(
                ProxyAuthenticationError,
                f"{prefix} closed the connection at the greeting: it most likely wants "
                + ("another authentication method" if credentials else "a user name and password"),
                credentials_hint,
            )
        if stage == "connect" and code is None and not answered:
            return make(
                ProxyConnectionRefused,
                f"{prefix} closed the connection when asked for {target}: it most likely "
                "could not reach the mail server",
                refused_hint,
            )
        return make(
            ProxyError,
            f"{prefix} failed the request for {target}: {detail}",
            "check the proxy URL's scheme: this proxy may not speak SOCKS5",
        )
    # SOCKS4 / SOCKS4a: one request, one 8-byte reply.
    if code == _SOCKS4_REJECTED:
        return make(
            ProxyConnectionRefused, f"{prefix} rejected the request for {target}", refused_hint
        )
    if code in _SOCKS4_IDENT:
        return make(
            ProxyAuthenticationError,
            f"{prefix} refused the request for {target}: {_SOCKS4_IDENT[code]}",
            "the proxy checks the user ID through identd: give the user ID it expects "
            "(socks4://USERID@host:1080), or use SOCKS5 with a password",
        )
    if code is None and sent and credentials and not answered:
        return make(
            ProxyAuthenticationError,
            f"{prefix} closed the connection without answering a request with user ID "
            f"{route.username!r}: it most likely does not accept that user ID",
            "check the user ID in the proxy URL (socks4://USERID@host:1080)",
        )
    return make(
        ProxyError,
        f"{prefix} failed the request for {target}: {detail}",
        "check the proxy URL's scheme: this proxy may not speak SOCKS4",
    )


def _socks5_stage(sent: Sequence[int]) -> str:
    """Which SOCKS5 step the last message sent belongs to (RFC 1928 §3-4, RFC 1929 §2)."""
    if not sent:
        return "none"
    if sent[-1] == _RFC1929_VERSION:
        return "auth"
    if sent[-1] == _SOCKS5_VERSION:
        return "greeting" if len(sent) == 1 else "connect"
    return "unknown"


def closed_before_greeting(route: ProxyRoute, endpoint: Endpoint) -> ProxyConnectionRefused:
    """The error for a tunnel that closed before the mail server sent its first byte.

    Some proxies (pproxy's SOCKS server, for one) confirm the tunnel before connecting to
    the mail server, then close it when that connection fails: the client sees the tunnel
    succeed and end at once.
    """
    return ProxyConnectionRefused(
        f"the connection through the {route.kind.protocol} proxy {route.url} closed before "
        f"{_target(endpoint)} sent a byte: the proxy most likely could not reach the mail "
        "server (some proxies confirm a tunnel before they connect it)",
        proxy=route.url,
        target=_target(endpoint),
        hint=f"check that {_target(endpoint)} is the right mail server and port, and that "
        "the proxy can reach it",
    )

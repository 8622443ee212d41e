"""Connecting through a proxy with the socket transport: the tunnel, then SMTP inside it.

:func:`connect_through` opens TCP to the proxy, lets python-socks run the SOCKS5, SOCKS4 or
HTTP ``CONNECT`` handshake for the mail server's host and port, and returns a
:class:`TunnelStream` - a :class:`~smtpkit.transports.SocketStream` over the tunnel. TLS,
implicit or after STARTTLS, runs end to end inside it: the handshake is with the mail
server, and the certificate is checked against the mail server's name (``Endpoint.host``),
never the proxy's.

python-socks is handed a socket of ours (:class:`HandshakeSocket`, through its ``forward``
hook, which asks for an already connected socket), so that:

* the TCP connection to the proxy uses the endpoint's source address and TCP_NODELAY, and
  failing to reach the proxy is reported as such (:func:`proxy_unreachable`);
* every read of the handshake gets only the time left of one connect deadline (DESIGN rule
  11) rather than a fresh timeout each;
* an HTTP proxy's reply is read up to its blank line and no further. python-socks reads
  the reply with one ``recv(65536)``, which would swallow the mail server's greeting when
  it arrives in the same segment as ``200 Connection established`` (the server speaks
  first: RFC 5321 §3.1); what follows the blank line is kept and handed to SMTP first.

Invariants:
    * Everything python-socks or the socket raises becomes one smtpkit error here: a
      :class:`~smtpkit.errors.ProxyError` subclass naming the proxy (never its password),
      an :class:`~smtpkit.errors.OperationTimeout`, or the TLS errors of the socket
      transport.
    * A tunnel that ends before the mail server sent a byte is reported as
      :class:`~smtpkit.errors.ProxyConnectionRefused` (a proxy may confirm a tunnel before
      it connects it), from ``receive`` or the implicit-TLS handshake.
    * :attr:`TunnelStream.peer_address` is :func:`tunnel_peer`'s answer, not the proxy's
      address.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

from smtpkit.config import Endpoint, Security
from smtpkit.errors import (
    ConnectError,
    OperationTimeout,
    ServerDisconnected,
    SMTPError,
    TransportError,
)
from smtpkit.transports._deadline import Deadline
from smtpkit.transports._proxy_route import (
    ProxyKind,
    ProxyRoute,
    closed_before_greeting,
    proxy_failure,
    proxy_timeout,
    proxy_unreachable,
    tunnel_peer,
)
from smtpkit.transports._socket import SocketStream

__all__ = [
    "HandshakeSocket",
    "TunnelStream",
    "connect_through",
    "credentials",
    "finished",
    "handshake_error",
    "python_socks_type",
]

#: The most an HTTP proxy's reply head may hold before the blank line (a status line and a
#: few headers; anything longer is not a CONNECT reply).
HEAD_LIMIT = 16 * 1024
#: How many first bytes of the proxy's answer are kept to tell a failure's stage.
_ANSWER_KEPT = 2


class HandshakeSocket(socket.socket):
    """The socket python-socks drives during the handshake; see the module docstring.

    It records the first byte of each message sent (the stage, never the credentials the
    messages carry) and the first bytes of the answer to the last one; with ``head_only``
    (HTTP CONNECT) ``recv`` returns the reply head whole and keeps what follows in
    :attr:`extra`. It works blocking (the socket transport) and non-blocking (asyncio's
    ``sock_recv``, which calls ``recv`` again when the socket is readable: data is always
    consumed before ``BlockingIOError`` is raised, so that never spins).
    """

    def __init__(
        self, sock: socket.socket, *, head_only: bool, deadline: Deadline | None = None
    ) -> None:
        family, kind, proto, timeout = sock.family, sock.type, sock.proto, sock.gettimeout()
        super().__init__(family, kind, proto, fileno=sock.detach())
        self.settimeout(timeout)
        self.sent: list[int] = []
        self.answered = b""
        self.extra = bytearray()
        self.head_complete = not head_only
        self._head_only = head_only
        self._buffer = bytearray()
        self._deadline = deadline

    def _arm(self) -> None:
        if self._deadline is not None:
            self.settimeout(self._deadline.remaining("the proxy handshake"))

    def _note_sent(self, data: Any) -> None:
        first = bytes(memoryview(data)[:1])
        if first:
            self.sent.append(first[0])
            self.answered = b""

    def _note_received(self, data: bytes) -> None:
        if len(self.answered) < _ANSWER_KEPT:
            self.answered += data[: _ANSWER_KEPT - len(self.answered)]

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._note_sent(data)
        self._arm()
        super().sendall(data, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._note_sent(data)
        self._arm()
        return super().send(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._head_only:
            self._arm()
            data = super().recv(bufsize, flags)
            self._note_received(data)
            return data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0 or len(self._buffer) > HEAD_LIMIT:
                cut = end + 4 if end >= 0 else len(self._buffer)
                self.head_complete = end >= 0
                head = bytes(self._buffer[:cut])
                self.extra += self._buffer[cut:]
                self._buffer.clear()
                self._head_only = False
                return head
            self._arm()
            chunk = super().recv(65536)  # BlockingIOError (non-blocking) leaves the buffer
            self._note_received(chunk)
            if not chunk:  # the proxy closed: hand over what came (python-socks says why)
                head = bytes(self._buffer)
                self._buffer.clear()
                self._head_only = False
                return head
            self._buffer += chunk

    def release(self) -> socket.socket:
        """A plain socket for the same connection (this object is left closed)."""
        family, kind, proto = self.family, self.type, self.proto
        timeout = self.gettimeout()
        plain = socket.socket(family, kind, proto, fileno=self.detach())
        plain.settimeout(timeout)
        return plain


def python_socks_type(kind: ProxyKind) -> Any:
    """python-socks' ``ProxyType`` member for ``kind`` (imported here: an optional extra)."""
    from python_socks import ProxyType  # noqa: PLC0415

    if kind.protocol == "SOCKS5":
        return ProxyType.SOCKS5
    if kind.protocol == "SOCKS4":
        return ProxyType.SOCKS4
    return ProxyType.HTTP


class _FirstHop:
    """python-socks' ``forward`` hook: the TCP connection to the proxy, opened here."""

    def __init__(self, route: ProxyRoute, endpoint: Endpoint, deadline: Deadline) -> None:
        self._route = route
        self._endpoint = endpoint
        self._deadline = deadline
        self.socket: HandshakeSocket | None = None

    def connect(self, dest_host: str, dest_port: int, **_: object) -> HandshakeSocket:
        try:
            raw = socket.create_connection(
                (dest_host.strip("[]"), dest_port),
                timeout=self._deadline.remaining(f"connecting to the proxy {self._route.url}"),
                source_address=self._endpoint.source_address,
            )
        except OSError as error:
            raise proxy_unreachable(self._route, self._endpoint, error) from None
        with contextlib.suppress(OSError):  # SMTP's small commands (see SocketTransport)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = HandshakeSocket(
            raw, head_only=self._route.kind is ProxyKind.HTTP, deadline=self._deadline
        )
        return self.socket


def credentials(route: ProxyRoute) -> tuple[str | None, str | None]:
    password = route.password.reveal() if route.password is not None else None
    return route.username, password


def connect_through(route: ProxyRoute, endpoint: Endpoint) -> TunnelStream:
    """Open a tunnel to ``endpoint`` through ``route``; TLS too for ``Security.TLS``.

    Raises:
        ProxyError: the proxy could not be reached, refused the credentials
            (``ProxyAuthenticationError``) or the mail server (``ProxyConnectionRefused``),
            or broke its protocol.
        OperationTimeout: the proxy, its handshake or the TLS handshake took longer than
            ``endpoint.connect_timeout`` (one deadline for all of it).
        ConnectError: the mail server's name did not resolve here (SOCKS5 and SOCKS4, which
            resolve names on this machine).
        TLSError: as for a direct connection.
    """
    # python-socks is the [proxy] extra: imported only when a proxy is used.
    from python_socks import ProxyError as SocksError  # noqa: PLC0415
    from python_socks.sync import Proxy as SyncProxy  # noqa: PLC0415

    deadline = Deadline(endpoint.connect_timeout)
    first = _FirstHop(route, endpoint, deadline)
    username, password = credentials(route)
    proxy = SyncProxy(
        python_socks_type(route.kind),
        route.host,
        route.port,
        username=username,
        password=password,
        rdns=route.kind.remote_dns,
        forward=first,  # type: ignore[arg-type]  # duck-typed: connect() -> socket
    )
    try:
        proxy.connect(endpoint.host.strip("[]"), endpoint.port, timeout=endpoint.connect_timeout)
    except SMTPError:
        if first.socket is not None:
            first.socket.close()
        raise  # from _FirstHop or the deadline: already ours
    except (SocksError, OSError) as error:
        raise handshake_error(route, endpoint, error, first.socket) from None
    hop = finished(route, endpoint, first.socket)
    stream = TunnelStream(hop.release(), endpoint, route=route, pending=bytes(hop.extra))
    if endpoint.security is Security.TLS:
        context = endpoint.tls_context or ssl.create_default_context()
        try:
            stream.set_timeout(deadline.remaining(f"connecting to {endpoint.host}"))
        except OperationTimeout:
            stream.close()
            raise
        stream.start_tls(context, endpoint.server_hostname)
    return stream


def handshake_error(
    route: ProxyRoute, endpoint: Endpoint, error: Exception, hop: HandshakeSocket | None
) -> TransportError:
    """The smtpkit error for what python-socks raised during a handshake; closes ``hop``."""
    from python_socks import ProxyError as SocksError  # noqa: PLC0415 - the [proxy] extra
    from python_socks import ProxyTimeoutError  # noqa: PLC0415

    if hop is not None:
        hop.close()
    if isinstance(error, ProxyTimeoutError | TimeoutError):
        return proxy_timeout(route, endpoint)
    if isinstance(error, socket.gaierror):  # SOCKS5 and SOCKS4 resolve the name here
        remote = "socks5h" if route.kind.protocol == "SOCKS5" else "socks4a"
        return ConnectError(
            f"cannot resolve {endpoint.host!r} on this machine: {error.strerror}",
            hint=f"{route.kind.value}:// resolves the mail server's name here; use "
            f"{remote}:// to let the proxy resolve it",
        )
    detail = str(error.strerror or error) if isinstance(error, OSError) else str(error)
    return proxy_failure(
        route,
        endpoint,
        code=getattr(error, "error_code", None) if isinstance(error, SocksError) else None,
        detail=detail,
        sent=hop.sent if hop else (),
        answered=hop.answered if hop else b"",
    )


def finished(route: ProxyRoute, endpoint: Endpoint, hop: HandshakeSocket | None) -> HandshakeSocket:
    """The socket of a handshake python-socks reported done, checked: the HTTP reply head
    must have ended (a reply head with no blank line is no ``200`` to trust)."""
    assert hop is not None  # python-socks calls forward.connect() before anything
    if not hop.head_complete:
        hop.close()
        raise proxy_failure(
            route,
            endpoint,
            code=None,
            detail="its reply to CONNECT has no end",
            sent=(),
            answered=b"?",
        )
    return hop


class TunnelStream(SocketStream):
    """A :class:`~smtpkit.transports.SocketStream` through a proxy tunnel.

    Differs from a direct stream in three ways: ``peer_address`` is the mail server's
    address when known (:func:`tunnel_peer`), bytes that came with the proxy's reply are
    read first, and a tunnel that ends before the server's first byte raises
    :class:`~smtpkit.errors.ProxyConnectionRefused`.
    """

    def __init__(
        self, sock: socket.socket, endpoint: Endpoint, *, route: ProxyRoute, pending: bytes
    ) -> None:
        super().__init__(sock, endpoint)
        self._proxy_address = self._peer
        self._peer = tunnel_peer(endpoint.host, self._proxy_address)
        self._route = route
        self._pending = bytearray(pending)
        self._heard = bool(pending)  # whether the mail server has sent anything yet

    @property
    def proxy(self) -> ProxyRoute:
        """The proxy this stream goes through."""
        return self._route

    def receive(self, max_bytes: int = 65536) -> bytes:
        if self._pending:
            data = bytes(self._pending[:max_bytes])
            del self._pending[:max_bytes]
            return data
        data = super().receive(max_bytes)
        if not data and not self._heard:
            self.close()
            raise closed_before_greeting(self._route, self._endpoint)
        self._heard = True
        return data

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._pending.clear()  # RFC 3207 §4.2: nothing read before TLS is trusted after it
        try:
            super().start_tls(context, server_hostname)
        except ServerDisconnected:
            if self._heard:
                raise
            raise closed_before_greeting(self._route, self._endpoint) from None
        self._heard = True

    def __repr__(self) -> str:
        tls = "TLS" if self.is_encrypted else "plaintext"
        return (
            f"<TunnelStream {self._endpoint.host}:{self._endpoint.port} via "
            f"{self._route.url} {tls}>"
        )

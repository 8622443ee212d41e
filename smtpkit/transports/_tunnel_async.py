"""Connecting through a proxy on the event loop: :class:`~smtpkit.transports.AsyncioTransport`'s
half of :mod:`smtpkit.transports._tunnel`.

python-socks' asyncio client runs the handshake over a :class:`HandshakeSocket` opened here
(its ``forward`` hook), non-blocking; the connected socket then becomes an asyncio transport
(``loop.create_connection(sock=...)``), with implicit TLS done at that point, verified
against the mail server's name. The same protocol object as a direct connection buffers
what the server sends, primed with whatever came after an HTTP proxy's reply head.

Invariants:
    * One ``asyncio.timeout`` bounds the TCP connection to the proxy, its handshake and the
      implicit-TLS handshake together (``Endpoint.connect_timeout``); cancellation passes
      through and closes the socket.
    * Errors are those of :func:`~smtpkit.transports._tunnel.connect_through`, built by the
      same functions, so both drivers report a proxy failure alike.
    * The guard on the HTTP reply head relies on the loop calling ``socket.recv`` (the
      selector loops do). Windows' proactor loop reads the socket handle directly: there a
      greeting that arrives in the same segment as ``200`` may be lost, as with
      python-socks alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from smtpkit.config import Endpoint, Security
from smtpkit.errors import OperationTimeout, ServerDisconnected, SMTPError
from smtpkit.transports._asyncio import AsyncioStream, _ClientProtocol
from smtpkit.transports._proxy_route import (
    ProxyKind,
    ProxyRoute,
    closed_before_greeting,
    proxy_unreachable,
    tunnel_peer,
)
from smtpkit.transports._socket import translate_os_error
from smtpkit.transports._tunnel import (
    HandshakeSocket,
    credentials,
    finished,
    handshake_error,
    python_socks_type,
)

__all__ = ["TunnelAsyncStream", "connect_through_async"]


class _FirstHop:
    """python-socks' ``forward`` hook: the non-blocking TCP connection to the proxy."""

    def __init__(self, route: ProxyRoute, endpoint: Endpoint) -> None:
        self._route = route
        self._endpoint = endpoint
        self.socket: HandshakeSocket | None = None

    async def connect(self, dest_host: str, dest_port: int, **_: object) -> HandshakeSocket:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                dest_host.strip("[]"), dest_port, type=socket.SOCK_STREAM
            )
        except OSError as error:
            raise proxy_unreachable(self._route, self._endpoint, error) from None
        failure: OSError = OSError("the proxy host has no address")
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                if self._endpoint.source_address is not None:
                    sock.bind(self._endpoint.source_address)
                await loop.sock_connect(sock, address)
            except OSError as error:
                sock.close()
                failure = error
                continue
            except BaseException:  # cancelled (the deadline): leave no socket open
                sock.close()
                raise
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socket = HandshakeSocket(sock, head_only=self._route.kind is ProxyKind.HTTP)
            return self.socket
        raise proxy_unreachable(self._route, self._endpoint, failure)


async def connect_through_async(route: ProxyRoute, endpoint: Endpoint) -> TunnelAsyncStream:
    """Open a tunnel to ``endpoint`` through ``route`` on the running loop.

    Raises:
        ProxyError, OperationTimeout, ConnectError, TLSError: as
            :func:`~smtpkit.transports._tunnel.connect_through`.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    hop = await _handshake(route, endpoint)
    plain = hop.release()
    protocol = _ClientProtocol()
    context: ssl.SSLContext | None = None
    if endpoint.security is Security.TLS:
        context = endpoint.tls_context or ssl.create_default_context()
    else:
        protocol.buffer += hop.extra  # the server's first bytes, read with the proxy's reply
    left = endpoint.connect_timeout - (loop.time() - started)
    try:
        if left <= 0:
            raise TimeoutError
        async with asyncio.timeout(left):
            await loop.create_connection(
                lambda: protocol,
                sock=plain,
                ssl=context,
                server_hostname=endpoint.server_hostname if context else None,
                ssl_handshake_timeout=left + 1 if context else None,
            )
    except TimeoutError:
        plain.close()
        raise OperationTimeout(
            f"the TLS handshake with {endpoint.host}:{endpoint.port} through the proxy "
            f"{route.url} did not finish within {endpoint.connect_timeout:g} s"
        ) from None
    except OSError as error:
        plain.close()
        translated = translate_os_error(error, during="the TLS handshake", endpoint=endpoint)
        if isinstance(translated, ServerDisconnected):
            raise closed_before_greeting(route, endpoint) from None
        raise translated from None
    except BaseException:
        plain.close()
        raise
    return TunnelAsyncStream(protocol, endpoint, encrypted=context is not None, route=route)


async def _handshake(route: ProxyRoute, endpoint: Endpoint) -> HandshakeSocket:
    """The proxy's handshake for ``endpoint``, by python-socks, within the connect timeout."""
    # python-socks is the [proxy] extra: imported only when a proxy is used.
    from python_socks import ProxyError as SocksError  # noqa: PLC0415
    from python_socks.async_.asyncio import Proxy as AsyncioProxy  # noqa: PLC0415

    first = _FirstHop(route, endpoint)
    username, password = credentials(route)
    proxy = AsyncioProxy(
        python_socks_type(route.kind),
        route.host,
        route.port,
        username=username,
        password=password,
        rdns=route.kind.remote_dns,
        forward=first,  # type: ignore[arg-type]  # duck-typed: async connect() -> socket
    )
    try:
        async with asyncio.timeout(endpoint.connect_timeout):
            # python-socks' own timeout is set to fire after ours, so ours names the step.
            await proxy.connect(
                endpoint.host.strip("[]"), endpoint.port, timeout=endpoint.connect_timeout + 1
            )
    except TimeoutError:
        if first.socket is None:
            raise proxy_unreachable(route, endpoint, TimeoutError()) from None
        raise handshake_error(route, endpoint, TimeoutError(), first.socket) from None
    except SMTPError:
        raise  # from _FirstHop: already ours
    except (SocksError, OSError) as error:
        raise handshake_error(route, endpoint, error, first.socket) from None
    return finished(route, endpoint, first.socket)


class TunnelAsyncStream(AsyncioStream):
    """An :class:`~smtpkit.transports.AsyncioStream` through a proxy tunnel (see
    :class:`~smtpkit.transports._tunnel.TunnelStream` for how it differs)."""

    def __init__(
        self,
        protocol: _ClientProtocol,
        endpoint: Endpoint,
        *,
        encrypted: bool,
        route: ProxyRoute,
    ) -> None:
        super().__init__(protocol, endpoint, encrypted=encrypted)
        self._peer = tunnel_peer(endpoint.host, self._peer)
        self._route = route
        self._heard = encrypted or bool(protocol.buffer)

    @property
    def proxy(self) -> ProxyRoute:
        """The proxy this stream goes through."""
        return self._route

    async def receive(self, timeout: float) -> bytes:
        data = await super().receive(timeout)
        if not data and not self._heard:
            self.abort()
            raise closed_before_greeting(self._route, self._endpoint)
        self._heard = True
        return data

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        try:
            await super().start_tls(context, server_hostname, timeout)
        except ServerDisconnected:
            if self._heard:
                raise
            raise closed_before_greeting(self._route, self._endpoint) from None
        self._heard = True

    def __repr__(self) -> str:
        tls = "TLS" if self.is_encrypted else "plaintext"
        return f"<TunnelAsyncStream {self._where()} via {self._route.url} {tls}>"

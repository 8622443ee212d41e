"""The asyncio transport seam: ``AsyncTransport.connect(endpoint) -> AsyncStream``.

:class:`AsyncioTransport` is the real one: TCP through the running event loop (TCP_NODELAY is
asyncio's default), implicit TLS at connect, STARTTLS through ``loop.start_tls`` - the
primitive under ``StreamWriter.start_tls`` - with a protocol of our own, so the plaintext
the server sent after its ``220`` is provably dropped before the handshake (RFC 3207 §4.2;
a ``StreamReader`` would keep it in its buffer and hand it out as if it came over TLS).

:func:`async_transport` turns whatever the caller passed into an ``AsyncTransport``: an
async one as is, the socket transport (or nothing) as :class:`AsyncioTransport`, a
``LoopbackOnlyTransport`` (``smtp://localhost`` URLs) as the same check over asyncio, and
any other synchronous :class:`~smtpkit.transports.Transport` through
:class:`SyncTransportAdapter` - called inline when it declares ``nonblocking = True`` (an
in-memory fake such as ``smtpkit.testing.FakeTransport``), else in a worker thread.

Invariants:
    * ``OSError``, ``ssl.SSLError`` and timeouts become smtpkit errors here, once, through
      :func:`~smtpkit.transports.translate_os_error`; cancellation (``CancelledError``)
      passes through untouched.
    * ``receive`` returns ``b""`` only at end of stream (a reset counts as one), so the
      protocol core reports which commands went unanswered.
    * Certificates are verified with the context the caller passes; nothing here turns
      verification off.

The seam itself (the :class:`AsyncStream` and :class:`AsyncTransport` protocols) is
:mod:`smtpkit.transports._async_base`, the asyncio twin of :mod:`smtpkit.transports._base`.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from collections.abc import Callable
from typing import TypeVar

from smtpkit.config import Endpoint, Security
from smtpkit.errors import ConfigurationError, OperationTimeout, ServerDisconnected, TransportError
from smtpkit.transports._async_base import AsyncStream, AsyncTransport
from smtpkit.transports._base import Stream, Transport
from smtpkit.transports._peer import LoopbackOnlyTransport, is_loopback_peer, peer_address
from smtpkit.transports._proxy_route import ProxyRoute
from smtpkit.transports._release import release_transport
from smtpkit.transports._socket import SocketTransport, translate_os_error

__all__ = [
    "AsyncStream",
    "AsyncTransport",
    "AsyncioStream",
    "AsyncioTransport",
    "SyncTransportAdapter",
    "async_transport",
]

T = TypeVar("T")

#: Bytes buffered from the server before reading pauses (replies are small; this bounds
#: what a misbehaving server can make the client hold between two reads).
_READ_HIGH_WATER = 1 << 20


def _time_out(reader: asyncio.Future[bool | None]) -> None:
    """End a read's wait: its reply deadline has come (the reader then raises)."""
    if not reader.done():
        reader.set_result(True)


class _ClientProtocol(asyncio.Protocol):
    """Buffers what the server sends; wakes the one reader; honours write flow control."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        #: The waiting read: completed with None when data or the end arrives, with True
        #: by the read's timer (:func:`_time_out`).
        self.reader: asyncio.Future[bool | None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake_reader()
        self.paused = False
        self._wake_writer()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def _wake_writer(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.set_result(None)


class AsyncioStream:
    """An :class:`AsyncStream` over an asyncio transport (TCP, optionally TLS)."""

    def __init__(self, protocol: _ClientProtocol, endpoint: Endpoint, *, encrypted: bool) -> None:
        assert protocol.transport is not None
        self._protocol = protocol
        self._transport: asyncio.Transport = protocol.transport
        self._loop = asyncio.get_running_loop()  # the only thread allowed to touch the transport
        self._endpoint = endpoint
        self._encrypted = encrypted
        peer = self._transport.get_extra_info("peername")
        self._peer: str | None = str(peer[0]) if isinstance(peer, tuple) and peer else None

    @property
    def peer_address(self) -> str | None:
        return self._peer

    @property
    def is_encrypted(self) -> bool:
        return self._encrypted

    def _where(self) -> str:
        return f"{self._endpoint.host}:{self._endpoint.port}"

    async def send(self, data: bytes, timeout: float) -> None:
        protocol = self._protocol
        if self._transport.is_closing():
            raise ServerDisconnected(f"connection to {self._where()} lost during send")
        self._transport.write(data)
        if not protocol.paused:
            return
        protocol.writer = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await protocol.writer
        except TimeoutError:
            raise OperationTimeout(f"send to {self._where()} timed out") from None
        finally:
            protocol.writer = None
        if self._transport.is_closing():
            raise ServerDisconnected(f"connection to {self._where()} lost during send")

    async def receive(self, timeout: float) -> bytes:
        protocol = self._protocol
        if not protocol.buffer and not protocol.eof:
            # What is buffered is read without a timer. Else one timer handle bounds the
            # wait (the time left for the reply: the driver's deadline is per reply, not
            # per read): it ends the wait by completing the future with True. Cheaper than
            # ``asyncio.timeout`` (an object, its context-manager calls and a task lookup
            # per read), and a timeout never has to cancel the task.
            loop = asyncio.get_running_loop()
            reader = protocol.reader = loop.create_future()
            timer = loop.call_later(timeout, _time_out, reader)
            try:
                timed_out = await reader
            finally:
                timer.cancel()
                protocol.reader = None
            if timed_out:
                raise OperationTimeout(f"receive from {self._where()} timed out")
        if not protocol.buffer:
            return b""
        data = bytes(protocol.buffer)
        protocol.buffer.clear()
        if not self._transport.is_closing():
            self._transport.resume_reading()
        return data

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        # RFC 3207 §4.2: whatever the server sent in plaintext after its 220 is not trusted.
        self._protocol.buffer.clear()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport,
                    self._protocol,
                    context,
                    server_hostname=server_hostname,
                    ssl_handshake_timeout=timeout + 1,  # ours fires first, as OperationTimeout
                )
        except TimeoutError:
            self.abort()
            raise OperationTimeout(f"the TLS handshake with {self._where()} timed out") from None
        except OSError as error:
            self.abort()
            raise translate_os_error(
                error, during="the TLS handshake", endpoint=self._endpoint
            ) from None
        if transport is None:  # pragma: no cover - the connection closed during the handshake
            raise ServerDisconnected(f"{self._where()} closed the connection during TLS")
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._protocol.transport = transport
        self._encrypted = True

    def abort(self) -> None:
        # Also called by the garbage collector (any thread) and after the loop closed.
        release_transport(self._transport, self._loop)

    def __repr__(self) -> str:
        tls = "TLS" if self._encrypted else "plaintext"
        return f"<AsyncioStream {self._where()} {tls}>"


class AsyncioTransport:
    """Opens TCP connections on the running event loop, with implicit TLS when asked.

    Args:
        proxy: connect through this proxy, as :class:`~smtpkit.transports.SocketTransport`
            does (:mod:`smtpkit.transports._tunnel_async`).
    """

    def __init__(self, *, proxy: ProxyRoute | None = None) -> None:
        self.proxy = proxy

    async def connect(self, endpoint: Endpoint) -> AsyncioStream:
        if self.proxy is not None:
            # Imported on use: python-socks is an optional extra.
            from smtpkit.transports._tunnel_async import connect_through_async  # noqa: PLC0415

            return await connect_through_async(self.proxy, endpoint)
        loop = asyncio.get_running_loop()
        protocol = _ClientProtocol()
        context = None
        if endpoint.security is Security.TLS:
            context = endpoint.tls_context or ssl.create_default_context()
        try:
            async with asyncio.timeout(endpoint.connect_timeout):
                await loop.create_connection(
                    lambda: protocol,
                    endpoint.host.strip("[]"),
                    endpoint.port,
                    ssl=context,
                    server_hostname=endpoint.server_hostname if context else None,
                    local_addr=endpoint.source_address,
                    ssl_handshake_timeout=endpoint.connect_timeout + 1 if context else None,
                )
        except TimeoutError:
            raise OperationTimeout(
                f"connect to {endpoint.host}:{endpoint.port} timed out", hint=None
            ) from None
        except OSError as error:
            raise translate_os_error(error, during="connect", endpoint=endpoint) from None
        return AsyncioStream(protocol, endpoint, encrypted=context is not None)

    def __repr__(self) -> str:
        return f"AsyncioTransport(proxy={self.proxy.url!r})" if self.proxy else "AsyncioTransport()"


class _SyncStream:
    """An :class:`AsyncStream` over a synchronous :class:`~smtpkit.transports.Stream`."""

    def __init__(self, stream: Stream, peer: str | None, *, blocking: bool) -> None:
        self._stream = stream
        self._peer = peer
        self._blocking = blocking

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        if self._blocking:
            return await asyncio.to_thread(function, *args)
        return function(*args)

    @property
    def peer_address(self) -> str | None:
        return self._peer

    @property
    def is_encrypted(self) -> bool:
        return self._stream.is_encrypted

    async def send(self, data: bytes, timeout: float) -> None:
        self._stream.set_timeout(timeout)
        await self._call(self._stream.send, data)

    async def receive(self, timeout: float) -> bytes:
        # An in-memory fake judges its simulated delays against this timeout.
        self._stream.set_timeout(timeout)
        return await self._call(self._stream.receive)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        self._stream.set_timeout(timeout)
        await self._call(self._stream.start_tls, context, server_hostname)

    def abort(self) -> None:
        self._stream.close()


class SyncTransportAdapter:
    """Serves a synchronous :class:`~smtpkit.transports.Transport` to asyncio code.

    A transport whose class says ``nonblocking = True`` (an in-memory fake that answers at
    once, such as ``smtpkit.testing.FakeTransport``) is called inline on the event loop;
    any other runs each call in a worker thread (``asyncio.to_thread``) so the loop never
    blocks on a socket.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._blocking = getattr(transport, "nonblocking", False) is not True

    async def connect(self, endpoint: Endpoint) -> AsyncStream:
        if self._blocking:
            stream = await asyncio.to_thread(self._transport.connect, endpoint)
        else:
            stream = self._transport.connect(endpoint)
        return _SyncStream(stream, peer_address(stream), blocking=self._blocking)

    def __repr__(self) -> str:
        return f"SyncTransportAdapter({self._transport!r})"


class _LoopbackOnly:
    """:class:`~smtpkit.transports.LoopbackOnlyTransport` for asyncio: plaintext
    (``Security.NONE``) only to a peer whose *address* is loopback."""

    def __init__(self, inner: AsyncTransport) -> None:
        self._inner = inner

    async def connect(self, endpoint: Endpoint) -> AsyncStream:
        stream = await self._inner.connect(endpoint)
        if endpoint.security is not Security.NONE or is_loopback_peer(stream.peer_address):
            return stream
        stream.abort()
        reached = stream.peer_address or "an address the transport did not report"
        raise ConfigurationError(
            f"plaintext SMTP to a loopback host was asked for, but {endpoint.host} led to "
            f"{reached}, which is not loopback: nothing was sent",
            hint=(
                "check what the name resolves to; use smtp+starttls:// (port 587) or "
                "smtps:// (port 465), or for a trusted network add ?allow_plaintext=true"
            ),
        )

    def __repr__(self) -> str:
        return f"_LoopbackOnly({self._inner!r})"


def async_transport(transport: Transport | AsyncTransport | None) -> AsyncTransport:
    """The :class:`AsyncTransport` to use for what the caller passed (see the module doc).

    Raises:
        TransportError: never; a wrong type was refused at construction already.
    """
    if transport is None or type(transport) is SocketTransport:
        return AsyncioTransport(proxy=transport.proxy if transport is not None else None)
    if isinstance(transport, LoopbackOnlyTransport):  # from_url("smtp://localhost...")
        return _LoopbackOnly(async_transport(transport.inner))
    if inspect.iscoroutinefunction(transport.connect):
        return transport  # type: ignore[return-value]  # an AsyncTransport
    if isinstance(transport, Transport):
        return SyncTransportAdapter(transport)
    raise TransportError(f"{transport!r} is not a transport")  # pragma: no cover

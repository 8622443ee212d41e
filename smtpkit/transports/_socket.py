"""The socket transport: TCP (with TCP_NODELAY) and TLS, the only place smtpkit opens sockets.

Invariants:
    * ``OSError`` and ``ssl.SSLError`` never escape: :func:`translate_os_error` maps each to
      one smtpkit :class:`~smtpkit.errors.TransportError` subclass, in this one module.
    * TLS is verified with the context the caller passes (``ssl.create_default_context()``
      by default, set by the Submitter); this module never disables verification.
    * ``receive`` returns ``b""`` at end of stream, including a peer reset or a TLS close,
      so the protocol core reports which commands went unanswered.
    * ``send`` on a plaintext socket writes first and waits only if the kernel did not take
      every byte: a socket with a timeout otherwise polls before each write, one system call
      per command for nothing (the send buffer is all but always free). The wait that
      follows a short write keeps the socket's timeout. TLS writes go through the
      ``ssl`` module (its records must not be bypassed).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl

from smtpkit.config import Endpoint, Security
from smtpkit.errors import (
    ConnectError,
    OperationTimeout,
    ServerDisconnected,
    TLSError,
    TLSModeMismatch,
    TransportError,
)
from smtpkit.transports._deadline import Deadline
from smtpkit.transports._proxy_route import ProxyRoute

__all__ = ["SocketStream", "SocketTransport", "translate_os_error"]

#: Writing to the descriptor directly works on POSIX sockets only (not on Windows).
_WRITE_FIRST = os.name == "posix"

#: OpenSSL reasons meaning "the peer did not speak TLS": a plaintext greeting ("220 ...")
#: read as a TLS record.
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL", "HTTP_REQUEST"}
)


def _mode_hint(endpoint: Endpoint) -> str:
    if endpoint.security is Security.TLS:
        return (
            f"port {endpoint.port} answered in plaintext: it expects STARTTLS. Use "
            "Security.STARTTLS (usually port 587), or Security.TLS with port 465"
        )
    return (
        f"port {endpoint.port} expects TLS from the first byte (implicit TLS). Use "
        "Security.TLS (usually port 465), or Security.STARTTLS with port 587"
    )


def translate_os_error(error: OSError, *, during: str, endpoint: Endpoint) -> TransportError:
    """Map a socket/ssl error to the smtpkit error a caller can act on."""
    where = f"{endpoint.host}:{endpoint.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return TLSError(
            f"the TLS certificate of {where} did not verify: {error.verify_message}",
            hint=(
                "check the host name; for a private CA pass tls_context="
                "ssl.create_default_context(cafile=...) - never disable verification"
            ),
        )
    if isinstance(error, ssl.SSLError):
        # ``reason`` is set by the C layer only; an SSLError raised elsewhere lacks it.
        reason = getattr(error, "reason", None)
        if reason in _NOT_TLS_REASONS:
            return TLSModeMismatch(
                f"TLS handshake with {where} failed ({reason}): the server did not answer in TLS",
                hint=_mode_hint(endpoint),
            )
        if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return ServerDisconnected(f"{where} closed the connection during {during}")
        return TLSError(f"TLS error with {where} during {during}: {reason or error}")
    if isinstance(error, TimeoutError | socket.timeout):
        return OperationTimeout(f"{during} with {where} timed out")
    if isinstance(error, socket.gaierror):
        return ConnectError(
            f"cannot resolve {endpoint.host!r}: {error.strerror}",
            hint="check the server host name and your DNS",
        )
    if during == "connect":
        return ConnectError(
            f"cannot connect to {where}: {error.strerror or error}",
            hint=(
                "check host and port (587 for STARTTLS, 465 for implicit TLS) and that no "
                "firewall blocks outgoing SMTP"
            ),
        )
    return ServerDisconnected(f"connection to {where} lost during {during}: {error}")


def _peer_address(sock: socket.socket) -> str | None:
    """The connected peer's IP address (as ``getpeername()`` gives it), or ``None``."""
    try:
        peer = sock.getpeername()
    except OSError:
        return None
    if not isinstance(peer, tuple) or not peer or not isinstance(peer[0], str):
        return None  # not an IP socket (e.g. AF_UNIX)
    address: str = peer[0]
    return address


class SocketStream:
    """A :class:`~smtpkit.transports.Stream` over a TCP socket, optionally TLS-wrapped."""

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self._sock = sock
        self._endpoint = endpoint
        self._encrypted = False
        self._closed = False
        # Whether to write to the descriptor without a poll first. Not with TLS (the bytes
        # must be encrypted) nor on a blocking socket (a write could block past the
        # timeout; a socket with a timeout is non-blocking underneath).
        # Only a plain socket: one given already TLS-wrapped (ssl.SSLSocket, or a wrapper
        # such as pyOpenSSL's) has a fileno() too, but its bytes must go through its sendall.
        self._write_first = (
            _WRITE_FIRST and type(sock) is socket.socket and sock.gettimeout() is not None
        )
        # Read once: the peer does not change (TLS wraps the same connection), and a
        # socket reset later would make getpeername() fail.
        self._peer = _peer_address(sock)

    @property
    def is_encrypted(self) -> bool:
        return self._encrypted

    @property
    def peer_address(self) -> str | None:
        """The IP address this socket is connected to (``getpeername()``)."""
        return self._peer

    def set_timeout(self, seconds: float) -> None:
        self._sock.settimeout(seconds)

    def send(self, data: bytes) -> None:
        try:
            # fileno() is -1 once closed: a stale number could name another file by now.
            fd = self._sock.fileno() if self._write_first else -1
            if fd < 0:
                self._sock.sendall(data)
                return
            try:
                sent = os.write(fd, data)
            except BlockingIOError:  # the send buffer is full: wait below
                sent = 0
            if sent < len(data):  # the rest waits for room within the socket's timeout
                self._sock.sendall(memoryview(data)[sent:])
        except OSError as error:
            raise translate_os_error(error, during="send", endpoint=self._endpoint) from None

    def receive(self, max_bytes: int = 65536) -> bytes:
        try:
            return self._sock.recv(max_bytes)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b""
        except OSError as error:
            raise translate_os_error(error, during="receive", endpoint=self._endpoint) from None

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._write_first = False  # from now on every byte goes through TLS
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=server_hostname)
        except OSError as error:
            self.close()
            raise translate_os_error(
                error, during="the TLS handshake", endpoint=self._endpoint
            ) from None
        self._encrypted = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):  # close() on a dead socket
            self._sock.close()

    def __repr__(self) -> str:
        tls = "TLS" if self._encrypted else "plaintext"
        peer = f" ({self._peer})" if self._peer and self._peer != self._endpoint.host else ""
        return f"<SocketStream {self._endpoint.host}:{self._endpoint.port}{peer} {tls}>"


class SocketTransport:
    """Opens TCP connections (TCP_NODELAY on) and does the implicit-TLS handshake.

    TCP_NODELAY matters: SMTP sends small commands and waits for replies, and Nagle's
    algorithm would hold a command back behind an unacknowledged one (costing a round
    trip, e.g. on the EHLO that follows the TLS handshake).

    Args:
        proxy: connect through this SOCKS5, SOCKS4 or HTTP CONNECT proxy
            (:class:`smtpkit.Proxy`; needs the ``[proxy]`` extra). TLS still runs end to
            end with the mail server (:mod:`smtpkit.transports._tunnel`).
    """

    def __init__(self, *, proxy: ProxyRoute | None = None) -> None:
        self.proxy = proxy

    def connect(self, endpoint: Endpoint) -> SocketStream:
        if self.proxy is not None:
            # Imported on use: python-socks is an optional extra.
            from smtpkit.transports._tunnel import connect_through  # noqa: PLC0415

            return connect_through(self.proxy, endpoint)
        # One deadline for the TCP connect and the implicit-TLS handshake together
        # (DESIGN rule 11): ``Timeouts.connect`` is the time to a usable connection.
        deadline = Deadline(endpoint.connect_timeout)
        try:
            sock = socket.create_connection(
                (endpoint.host.strip("[]"), endpoint.port),
                timeout=endpoint.connect_timeout,
                source_address=endpoint.source_address,
            )
        except OSError as error:
            raise translate_os_error(error, during="connect", endpoint=endpoint) from None
        with contextlib.suppress(OSError):  # not every socket family supports it
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = SocketStream(sock, endpoint)
        if endpoint.security is Security.TLS:
            context = endpoint.tls_context or ssl.create_default_context()
            try:
                stream.set_timeout(deadline.remaining(f"connecting to {endpoint.host}"))
            except OperationTimeout:
                stream.close()
                raise
            stream.start_tls(context, endpoint.server_hostname)
        return stream

    def __repr__(self) -> str:
        return f"SocketTransport(proxy={self.proxy.url!r})" if self.proxy else "SocketTransport()"

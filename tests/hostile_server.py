"""A scripted, misbehaving SMTP server on 127.0.0.1 for hardening tests (plaintext only).

:class:`HostileServer` accepts connections on a loopback port and hands each one to a
handler function running in its own thread. The handler talks raw bytes through a
:class:`Peer`: it can read the client's lines, send replies whole, or drip them (a byte, or
a continuation line, at a time) the way a slow or hostile server does. LocalServer
(aiosmtpd) cannot misbehave like this, which is why these tests have their own server.

Invariants:
    * It listens on 127.0.0.1 only and never connects anywhere.
    * Every wait is bounded: reads time out after :data:`READ_TIMEOUT`, a drip stops after
      its ``limit`` or when the server is stopped, and ``stop()`` joins with a timeout.
    * A client that hangs up ends the handler quietly (``OSError`` while sending is the
      client leaving, not a test failure).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

#: Seconds a handler waits for a client line before giving up.
READ_TIMEOUT = 5.0
#: Seconds ``stop()`` waits for each thread.
JOIN_TIMEOUT = 5.0
#: Connections one server accepts at most (a test needs one or two).
MAX_CONNECTIONS = 8


class ClientGone(Exception):
    """The client closed the connection (or the server is stopping)."""


class Peer:
    """The server's end of one connection, for a handler."""

    def __init__(self, sock: socket.socket, stopping: threading.Event) -> None:
        self._sock = sock
        self._stopping = stopping
        self._buffer = b""
        #: Every line the client sent, without CRLF, in order.
        self.lines: list[bytes] = []
        sock.settimeout(READ_TIMEOUT)

    def send(self, data: bytes) -> None:
        """Send ``data`` at once."""
        try:
            self._sock.sendall(data)
        except OSError:
            raise ClientGone() from None

    def read_line(self) -> bytes:
        """The client's next line, without CRLF.

        Raises:
            ClientGone: the client closed the connection, or sent nothing for READ_TIMEOUT.
        """
        while b"\r\n" not in self._buffer:
            try:
                data = self._sock.recv(65536)
            except OSError:
                raise ClientGone() from None
            if not data:
                raise ClientGone()
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        self.lines.append(line)
        return line

    def read_raw(self) -> bytes:
        """Whatever the client sent next (at least one octet), e.g. a TLS ClientHello.

        Raises:
            ClientGone: the client closed the connection, or sent nothing for READ_TIMEOUT.
        """
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        try:
            data = self._sock.recv(65536)
        except OSError:
            raise ClientGone() from None
        if not data:
            raise ClientGone()
        return data

    def read_content(self) -> bytes:
        """Message content after ``354``, up to and without the ``.`` line."""
        lines = []
        while (line := self.read_line()) != b".":
            lines.append(line)
        return b"\r\n".join(lines)

    def drip(self, pieces: Callable[[int], bytes], *, every: float, limit: float) -> None:
        """Send ``pieces(0)``, ``pieces(1)``, ... one every ``every`` seconds.

        Stops when the client leaves, the server stops, or after ``limit`` seconds; then
        returns (the handler usually closes the connection next).
        """
        end = time.monotonic() + limit
        index = 0
        while time.monotonic() < end and not self._stopping.is_set():
            self.send(pieces(index))
            index += 1
            if self._stopping.wait(every):
                return


Handler = Callable[[Peer], None]


class HostileServer:
    """Run ``handler(peer)`` for each connection to ``127.0.0.1:port``.

    Use it as a context manager; ``host`` and ``port`` are set once it runs. Exceptions
    other than :class:`ClientGone` raised by a handler are kept in :attr:`errors`.
    """

    host = "127.0.0.1"

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(MAX_CONNECTIONS)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.peers: list[Peer] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        accepted = 0
        while not self._stopping.is_set() and accepted < MAX_CONNECTIONS:
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        peer = Peer(sock, self._stopping)
        self.peers.append(peer)
        try:
            self._handler(peer)
        except ClientGone:
            pass
        except BaseException as error:  # kept for the test to report
            self.errors.append(error)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> Self:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        self._acceptor.join(JOIN_TIMEOUT)
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)

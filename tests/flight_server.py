"""An SMTP server on 127.0.0.1 that counts the client's flights: round trips, seen from the server.

A *flight* is what the client sends before it waits for an answer. This server reads until
the client has been quiet for :data:`SETTLE` seconds, then answers every complete command of
that flight in one write and records the flight's verbs. A client that pipelines the end of
one message with the next envelope (RFC 2920 §3.1) shows ``[".", "MAIL", "RCPT", "DATA"]``
in one flight; one that waits for each reply shows ``["."]`` and ``["MAIL", "RCPT",
"DATA"]`` apart, one round trip more per message.

It speaks just enough SMTP for ``Security.NONE`` without AUTH: EHLO (PIPELINING), MAIL,
RCPT, DATA (354, then the content up to ``.``), RSET, NOOP, QUIT.

Invariants:
    * It listens on 127.0.0.1 only and never connects anywhere.
    * Every wait is bounded: a connection silent for :data:`READ_TIMEOUT` is closed, and
      ``stop()`` closes every socket and joins every thread with a timeout.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType
from typing import Self

__all__ = ["FlightServer"]

#: Seconds of client silence that end a flight. Loopback delivers a pipelined flight in
#: microseconds; this leaves room for a loaded machine without merging two flights (the
#: client cannot send its next flight before this server has answered).
SETTLE = 0.05
#: Seconds a connection may stay silent before the server closes it.
READ_TIMEOUT = 10.0
JOIN_TIMEOUT = 5.0


class FlightServer:
    """``flights``: one list of verbs per flight, per connection, in order."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        #: Per connection, the verbs of each flight (``"."`` is the end of the content).
        self.flights: list[list[list[str]]] = []
        self.messages = 0
        self.errors: list[BaseException] = []

    def __enter__(self) -> Self:
        thread = threading.Thread(target=self._accept, name="flight-server", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(JOIN_TIMEOUT)

    def _accept(self) -> None:
        while not self._stopping.is_set():  # bounded by __exit__
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            flights: list[list[str]] = []
            with self._lock:
                self._socks.append(sock)
                self.flights.append(flights)
            thread = threading.Thread(target=self._serve, args=(sock, flights), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read_flight(self, sock: socket.socket) -> bytes:
        """Everything the client sends until it has been quiet for SETTLE seconds."""
        data = b""
        while not self._stopping.is_set():
            ready, _, _ = select.select([sock], [], [], SETTLE if data else READ_TIMEOUT)
            if not ready:
                return data  # quiet: the flight is over (or the client never spoke)
            chunk = sock.recv(65536)
            if not chunk:
                return data  # EOF: what arrived is the last flight
            data += chunk
        return data

    def _serve(self, sock: socket.socket, flights: list[list[str]]) -> None:
        in_content = False
        pending = b""
        try:
            sock.sendall(b"220 flights.test ESMTP\r\n")
            while not self._stopping.is_set():
                data = self._read_flight(sock)
                if not data:
                    return
                pending += data
                verbs: list[str] = []
                replies: list[bytes] = []
                while b"\r\n" in pending:
                    line, pending = pending.split(b"\r\n", 1)
                    if in_content:
                        if line == b".":
                            in_content = False
                            verbs.append(".")
                            with self._lock:
                                self.messages += 1
                            replies.append(b"250 2.0.0 queued\r\n")
                        continue
                    verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper().decode()
                    verbs.append(verb)
                    if verb in ("EHLO", "HELO"):
                        replies.append(b"250-flights.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
                    elif verb == "DATA":
                        in_content = True
                        replies.append(b"354 go ahead\r\n")
                    elif verb == "QUIT":
                        replies.append(b"221 2.0.0 bye\r\n")
                    else:
                        replies.append(b"250 2.0.0 OK\r\n")
                flights.append(verbs)
                sock.sendall(b"".join(replies))
                if "QUIT" in verbs:
                    return
        except OSError:
            return
        except BaseException as error:  # kept for the test to report
            self.errors.append(error)
        finally:
            sock.close()

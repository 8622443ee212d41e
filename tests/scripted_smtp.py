"""A small, scriptable, hostile SMTP server on 127.0.0.1 that timestamps what it reads.

LocalServer (aiosmtpd) answers the commands a well-behaved server answers; some send-path
bugs only show with replies it cannot be told to give (``421`` to ``RSET``) or need to know
*when* each line arrived (a client that waits inside an open transaction). This server
speaks just enough SMTP for a client with ``Security.NONE`` and no AUTH::

    def answer(verb: str, line: str, count: int) -> str | None:
        return "421 4.7.0 Closing" if verb == "RSET" else None   # None: the usual reply

    with ScriptedServer(answer=answer, pipelining=False) as server:
        Submitter(server.host, server.port, security=Security.NONE).send(msg)
        server.events  # [(monotonic time, "C: MAIL FROM:<...>"), (..., "S: 250 OK"), ...]

Invariants:
    * It listens on 127.0.0.1 only and never connects anywhere.
    * A reply starting with ``421`` is sent and the connection is then closed (RFC 5321
      §3.8); so is one given as :data:`DROP` (closed without a reply).
    * ``stop()`` closes the listener and every connection and joins every thread (bounded).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

__all__ = ["DROP", "ScriptedServer"]

#: What ``answer`` returns to close the connection without replying.
DROP = "<drop>"

Answer = Callable[[str, str, int], "str | None"]


class ScriptedServer:
    """Args:
    answer: ``answer(verb, line, count)`` -> a reply (lines joined with ``"\\n"``), or
        ``None`` for the default; ``count`` is how many times ``verb`` was seen on this
        connection, this one included. The verb ``"."`` is the end of DATA content.
    pipelining: advertise PIPELINING (RFC 2920).
    """

    def __init__(self, *, answer: Answer | None = None, pipelining: bool = True) -> None:
        self._answer = answer or (lambda verb, line, count: None)
        self._pipelining = pipelining
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.events: list[tuple[float, str]] = []
        #: The lines of each connection ("C: ..." and "S: ..."), in the order they opened.
        self.sessions: list[list[str]] = []
        self.connections = 0
        self.closed = 0
        self.messages: list[bytes] = []
        self.host = "127.0.0.1"
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self.host, 0))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        thread = threading.Thread(target=self._accept, name="scripted-smtp", daemon=True)
        self._threads.append(thread)
        thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what happened -----------------------------------------------------------------

    def lines(self, prefix: str = "C: ") -> list[str]:
        with self._lock:
            return [text for _, text in self.events if text.startswith(prefix)]

    def wait_closed(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.closed < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.closed} of {count} connections closed")
            time.sleep(0.01)

    # -- the server --------------------------------------------------------------------

    def _record(self, text: str, session: list[str] | None = None) -> None:
        with self._lock:
            self.events.append((time.monotonic(), text))
            if session is not None:
                session.append(text)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():  # bounded by stop()
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        reader = conn.makefile("rb")
        counts: dict[str, int] = {}
        accepted = 0  # recipients accepted in the current transaction
        session: list[str] = []
        with self._lock:
            self.sessions.append(session)

        def reply(text: str) -> bool:
            """Send ``text``; False when the connection is to be closed."""
            if text == DROP:
                return False
            lines = text.split("\n")
            code = lines[0][:3]
            wire = "".join(
                f"{code}{'-' if n < len(lines) - 1 else ' '}{line.removeprefix(code).lstrip(' -')}"
                "\r\n"
                for n, line in enumerate(lines)
            )
            self._record(f"S: {text}", session)
            conn.sendall(wire.encode())
            return not text.startswith(("421", "221"))

        def answer(verb: str, line: str, default: str) -> str | None:
            """Reply to ``verb``; the reply sent, or None when the connection must close."""
            counts[verb] = counts.get(verb, 0) + 1
            scripted = self._answer(verb, line, counts[verb])
            text = default if scripted is None else scripted
            return text if reply(text) else None

        try:
            if not reply("220 scripted.test ESMTP"):
                return
            while not self._stopping.is_set():
                raw = reader.readline(4096)
                if not raw:
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._record(f"C: {line}", session)
                verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    extensions = ["scripted.test", "8BITMIME", "ENHANCEDSTATUSCODES"]
                    if self._pipelining:
                        extensions.append("PIPELINING")
                    sent = answer(verb, line, "\n".join(f"250 {e}" for e in extensions))
                elif verb == "DATA":
                    # RFC 2920 §3.1: DATA with no valid recipient is refused, not 354.
                    go = "354 End data with <CR><LF>.<CR><LF>"
                    sent = answer(verb, line, go if accepted else "554 5.5.1 No valid recipients")
                    if sent is not None and sent.startswith("354"):
                        content = bytearray()
                        while True:  # bounded by the socket timeout and EOF
                            chunk = reader.readline(65536)
                            if not chunk:
                                return
                            if chunk == b".\r\n":
                                break
                            content += chunk
                        self._record(f"C: <{len(content)} octets> .", session)
                        with self._lock:
                            self.messages.append(bytes(content))
                        sent = answer(".", ".", "250 2.0.0 OK queued")
                        accepted = 0
                elif verb == "QUIT":
                    answer(verb, line, "221 2.0.0 Bye")
                    return
                else:
                    sent = answer(verb, line, "250 2.0.0 OK")
                    if verb in ("MAIL", "RSET"):
                        accepted = 0
                    elif verb == "RCPT" and sent is not None and sent.startswith("2"):
                        accepted += 1
                if sent is None:
                    return
        except OSError:
            return
        finally:
            reader.close()
            conn.close()
            with self._lock:
                self.closed += 1
                session.append("* closed")

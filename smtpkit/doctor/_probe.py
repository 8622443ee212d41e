"""The doctor's instruments: a TLS context that keeps what it saw, and a one-connection driver.

The Submitter's transport hides TLS details on purpose (it maps every ``ssl`` error to one
smtpkit error). The doctor must show them - the certificate's issuer, the verification
code, the negotiated version - so it gives the socket transport a context that records the
``SSLSocket`` it produced or the ``ssl`` error it raised. Sockets are still opened and
wrapped only by :class:`~smtpkit.transports.SocketTransport` and its stream.

Invariants:
    * The verifying context starts from ``ssl.create_default_context()`` (same options,
      flags and minimum version as the Submitter's default); only ``cafile`` changes trust.
    * A non-verifying context exists only to read a certificate that already failed
      verification, so that the report can name it; nothing is ever sent over it.
    * Every read has a finite timeout; every connection is closed by ``close()``.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Sequence
from typing import Any

from smtpkit.config import Endpoint, Security
from smtpkit.config._proxy import Proxy
from smtpkit.errors import OperationTimeout, ServerDisconnected, SMTPError, TransportError
from smtpkit.protocol import NEED_DATA, ClientConnection, Command, ConnectionClosed, ReplyReceived
from smtpkit.replies import Reply
from smtpkit.transports import Deadline, SocketTransport, Stream

__all__ = ["RecordingContext", "Wire", "connect", "recording_context", "resolve"]


class RecordingContext(ssl.SSLContext):
    """An ``SSLContext`` that remembers the last socket it wrapped or error it raised."""

    last_socket: ssl.SSLSocket | None = None
    last_error: ssl.SSLError | None = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """``SSLContext.wrap_socket``, recording the outcome."""
        try:
            wrapped = super().wrap_socket(*args, **kwargs)
        except ssl.SSLError as error:
            self.last_error = error
            raise
        self.last_socket = wrapped
        return wrapped


def recording_context(cafile: str | None = None, *, verify: bool = True) -> RecordingContext:
    """A client context like ``ssl.create_default_context(cafile=...)`` that records.

    Args:
        cafile: trust only this PEM bundle instead of the system's CAs.
        verify: ``False`` only to read an already-rejected certificate (see module docs).
    """
    reference = ssl.create_default_context(cafile=cafile)
    context = RecordingContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options = reference.options
    context.verify_flags = reference.verify_flags
    context.minimum_version = reference.minimum_version
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # reads the certificate only; sends nothing
        return context
    if cafile is not None:
        context.load_verify_locations(cafile=cafile)
    else:
        context.load_default_certs()
    return context


def resolve(host: str, port: int, timeout: float) -> list[str]:
    """The addresses of ``host``, in resolver order, within ``timeout`` seconds.

    ``getaddrinfo`` takes no timeout, so it runs on a daemon thread that is abandoned (not
    killed) when it overruns.

    Raises:
        socket.gaierror: the name does not resolve.
        TimeoutError: no answer within ``timeout``.
    """
    outcome: list[list[str] | OSError] = []

    def work() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            outcome.append(error)
            return
        outcome.append(list(dict.fromkeys(str(info[4][0]) for info in infos)))

    thread = threading.Thread(target=work, name="smtpkit-doctor-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"no DNS answer for {host} within {timeout:g} s")
    result = outcome[0]
    if isinstance(result, OSError):
        raise result
    return result


def connect(host: str, port: int, timeout: float, *, proxy: Proxy | None = None) -> Stream:
    """A plaintext TCP stream through the socket transport (TLS is started separately),
    through ``proxy`` when one is given (a tunnel to ``host:port``)."""
    endpoint = Endpoint(host=host, port=port, security=Security.NONE, connect_timeout=timeout)
    return SocketTransport(proxy=proxy).connect(endpoint)


class Wire:
    """One SMTP connection driven through the sans-IO core, one reply at a time."""

    def __init__(self, stream: Stream, host: str) -> None:
        self.stream = stream
        self.conn = ClientConnection()
        self._host = host

    @property
    def transcript(self) -> tuple[str, ...]:
        """The redacted conversation so far."""
        return self.conn.transcript

    def read(self, timeout: float) -> Reply:
        """The next reply, which must arrive whole within ``timeout`` seconds.

        One deadline for the reply, not one per read (DESIGN rule 11): a server that drips
        its reply would otherwise hold the check for as long as it likes.

        Raises:
            OperationTimeout, ServerDisconnected, RemoteProtocolError: as the transport and
                the protocol core report them.
        """
        deadline = Deadline(timeout)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                self.stream.set_timeout(deadline.remaining(f"the reply from {self._host}"))
                self.conn.receive_data(self.stream.receive())
                continue
            if isinstance(event, ConnectionClosed):
                raise ServerDisconnected(f"{self._host} closed the connection")
            assert isinstance(event, ReplyReceived)
            return event.reply

    def exchange(self, command: Command, timeout: float) -> Reply:
        """Send ``command`` and return its reply."""
        self.stream.send(self.conn.send(command))
        return self.read(timeout)

    def run(self, commands: Sequence[Command], timeout: float) -> list[Reply]:
        """Exchange each command in turn (for short fixed dialogues)."""
        return [self.exchange(command, timeout) for command in commands]

    def close(self, timeout: float) -> None:
        """QUIT (best effort, never raises) and close the stream."""
        with contextlib.suppress(SMTPError):  # closing must never fail a report
            self.exchange(Command.quit(), min(timeout, 2.0))
        self.conn.mark_closed()
        self.stream.close()


def read_greeting(
    host: str, port: int, timeout: float, *, proxy: Proxy | None = None
) -> Reply | None:
    """Connect in plaintext and return the greeting, or ``None`` if none came in time."""
    try:
        stream = connect(host, port, timeout, proxy=proxy)
    except TransportError:
        return None
    wire = Wire(stream, host)
    try:
        return wire.read(timeout)
    except (TransportError, OperationTimeout):
        return None
    finally:
        stream.close()

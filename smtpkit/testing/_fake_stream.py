"""``FakeStream``: the client's end of one connection to the fake server.

Job: implement the :class:`~smtpkit.transports.Stream` contract over a
:class:`~smtpkit.testing._fake_session.ServerSession`: ``send`` feeds the session,
``receive`` hands out what it queued, ``start_tls`` completes the handshake it agreed to.

Invariants:
    * ``receive`` never blocks: with nothing queued and the connection open it raises
      ``OperationTimeout`` at once; after the server closed and everything was read it
      returns ``b""``.
    * ``start_tls`` succeeds only right after the client read ``220`` to STARTTLS, and fails
      on ``FakeTLS.UNTRUSTED_CERTIFICATE`` unless the context verifies nothing, as a real
      handshake would.
    * Errors carry the connection's redacted transcript tail.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading

from smtpkit.config import Endpoint
from smtpkit.errors import OperationTimeout, ServerDisconnected, TLSError
from smtpkit.testing._fake_config import FakeTLS
from smtpkit.testing._fake_session import ServerSession
from smtpkit.testing._fake_wire import TRANSCRIPT_LINES, Mode

__all__ = ["FakeStream", "rejects", "untrusted_error"]

#: How many transcript lines a timeout error quotes.
_ERROR_TAIL = 12


class FakeStream:
    """The client's end of one connection to the fake server (a ``Stream``).

    Attributes:
        endpoint: what the client connected to.
        number: the connection's number on its transport (1 for the first).
        timeout: the last value given to :meth:`set_timeout` (``None`` before).
        server_hostname: the name given to :meth:`start_tls` (``None`` before).
    """

    def __init__(self, session: ServerSession, endpoint: Endpoint, lock: threading.Lock) -> None:
        self.endpoint = endpoint
        self.number = session.number
        self.timeout: float | None = None
        self.server_hostname: str | None = None
        self._session = session
        self._lock = lock
        self._closed = False
        self._lines: list[str] = []

    @property
    def is_encrypted(self) -> bool:
        """True over implicit TLS or after a successful :meth:`start_tls`."""
        return self._session.encrypted

    @property
    def peer_address(self) -> str:
        """The address of the server the fake stands for (the plaintext-AUTH rule reads it).

        The host itself when it is an IP address, ``127.0.0.1`` for ``localhost``, and
        otherwise ``192.0.2.1`` (TEST-NET-1, RFC 5737): a fake named host is not loopback.
        """
        host = self.endpoint.host.strip("[]")
        if host.lower() == "localhost":
            return "127.0.0.1"
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return "192.0.2.1"
        return host

    @property
    def transcript(self) -> list[str]:
        """This connection's redacted transcript (its last 100 lines)."""
        return self._session.transcript_tail(TRANSCRIPT_LINES)

    @property
    def closed(self) -> bool:
        """Whether the client closed this stream."""
        return self._closed

    @property
    def server_closed(self) -> bool:
        """Whether the server closed its side (QUIT, 421, a scripted disconnect)."""
        return self._session.mode is Mode.CLOSED

    def send(self, data: bytes) -> None:
        """Deliver ``data`` to the server, which processes every complete line at once.

        Raises:
            ServerDisconnected: the server closed the connection (or the client did).
        """
        with self._lock:
            self._check_open()
            if self._session.mode is Mode.CLOSED:
                raise ServerDisconnected(
                    "the fake server closed the connection; nothing more can be sent",
                    transcript=self._tail(),
                )
            self._session.feed(bytes(data))

    def receive(self, max_bytes: int = 65536) -> bytes:
        """Return queued reply bytes, ``b""`` once the server closed and all was read.

        Raises:
            OperationTimeout: nothing is queued and the server will not say more, or the
                next reply is held back (``fake.delay``) longer than :attr:`timeout`. This
                is how a timeout is simulated: at once, without sleeping.
        """
        with self._lock:
            self._check_open()
            if max_bytes < 1:
                raise ValueError("max_bytes must be >= 1")
            if self._session.pending():
                gave_up = self._session.wait(self.timeout)
                if gave_up is not None:
                    raise OperationTimeout(
                        f"the fake server held its reply back: {gave_up}",
                        transcript=self._tail(),
                    )
                return self._session.read(max_bytes)
            if self._session.mode is Mode.CLOSED:
                return b""
            why = self._session.hang_reason or "it waits for a command from the client"
            shown = "" if self.timeout is None else f" (timeout {self.timeout:g} s)"
            raise OperationTimeout(
                "the fake server has nothing more to say: the client waits for a reply that "
                f"will never come{shown}; server: {why}",
                transcript=self._tail(),
            )

    def set_timeout(self, seconds: float) -> None:
        """Remember the timeout: it decides whether a delayed reply arrives in time."""
        self.timeout = seconds

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Complete the TLS handshake the server agreed to with ``220`` to STARTTLS.

        Raises:
            TLSError: the server is not expecting a handshake now, or the fake was made
                with ``FakeTLS.UNTRUSTED_CERTIFICATE`` and ``context`` verifies certificates.
        """
        with self._lock:
            self._check_open()
            session = self._session
            if not session.tls_ready():
                raise TLSError(
                    "TLS handshake failed: the fake server is not waiting for one (start_tls "
                    "belongs right after reading '220' to STARTTLS, with no reply unread)",
                    transcript=self._tail(),
                )
            self.server_hostname = server_hostname
            if rejects(session.config.tls, context):
                session.close("TLS handshake failed: untrusted certificate")
                raise untrusted_error(server_hostname)
            session.tls_established()

    def close(self) -> None:
        """Close the client's end; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._session.close("the client closed the connection")

    def _check_open(self) -> None:
        if self._closed:
            raise ServerDisconnected("the stream was closed by the client; open a new one")

    def _tail(self) -> list[str]:
        return self._session.transcript_tail(_ERROR_TAIL)

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._session.mode.value
        return f"<FakeStream #{self.number} to {self.endpoint.host}:{self.endpoint.port} {state}>"


def rejects(tls: FakeTLS, context: ssl.SSLContext | None) -> bool:
    """Whether a handshake with ``context`` fails on the fake's certificate."""
    if tls is not FakeTLS.UNTRUSTED_CERTIFICATE:
        return False
    # A client that turned verification off connects, exactly as it would to a real server.
    return context is None or context.verify_mode is not ssl.CERT_NONE


def untrusted_error(host: str) -> TLSError:
    return TLSError(
        f"TLS handshake with {host} failed: certificate verify failed: self-signed "
        "certificate (the fake server uses FakeTLS.UNTRUSTED_CERTIFICATE)",
        hint="trust the server's CA in the SSLContext, or fix the server's certificate",
    )

"""``FakeTransport``: an in-memory SMTP submission server behind the transport seam.

Job: let tests drive the real client (``smtpkit.Submitter`` over the real protocol core)
against a strict, byte-level SMTP server with no sockets, threads or sleeps, then inspect
what it received and script how it fails, in the words LocalServer also speaks
(:mod:`smtpkit.testing._kit`)::

    fake = FakeTransport(credentials={"me@example.com": "app-password"})
    fake.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.com")
    fake.delay("message", 30)     # the final reply takes 30 s (simulated, never slept)
    submitter = Submitter("smtp.example.com", transport=fake, auth=PasswordAuth(...))
    ...
    fake.assert_sent(to="you@example.com", subject="Hello")

Each ``connect`` opens a :class:`FakeStream` with its own server session
(:mod:`smtpkit.testing._fake_session`); everything the sessions record lands in one
:class:`~smtpkit.testing._fake_record.Recorder` under one lock, so several connections (and
threads) may use one fake.

Invariants:
    * ``FakeStream.receive`` never blocks: with nothing queued and the connection open it
      raises ``OperationTimeout`` at once, which is how a client timeout is simulated. A
      reply held back by :meth:`FakeTransport.delay` is measured against the stream's
      timeout instead of a clock: it arrives when the client would wait long enough.
    * ``messages`` holds only messages the server accepted (a ``2xx`` after the content).
      Content whose final reply never came (a scripted disconnect or timeout at "message",
      the unknown-outcome case) lands in ``dropped`` instead: the server may deliver it.
    * ``transcript`` never holds an AUTH payload or message content; nothing here keeps a
      password or token except the ``credentials`` mapping the test passed in.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from smtpkit.config import Endpoint, Security
from smtpkit.errors import ConfigurationError, ConnectError, TLSModeMismatch
from smtpkit.testing._arguments import (
    check_credentials,
    check_flag,
    check_host_name,
    check_instance,
    check_optional_flag,
    check_positive_int,
)
from smtpkit.testing._deprecation import renamed
from smtpkit.testing._fake_auth import SUPPORTED_MECHANISMS
from smtpkit.testing._fake_config import FakeCapabilities, FakeTLS, ServerConfig
from smtpkit.testing._fake_record import Recorder
from smtpkit.testing._fake_session import ServerSession
from smtpkit.testing._fake_stream import FakeStream, rejects, untrusted_error
from smtpkit.testing._kit import ScriptableServer
from smtpkit.testing._record import ReceivedMessage
from smtpkit.testing._script import Script

__all__ = ["FakeStream", "FakeTransport"]


class FakeTransport(ScriptableServer):
    """An in-memory SMTP submission server that plugs in where a real transport would.

    Scripting (``reply``, ``disconnect``, ``timeout``, ``delay``) and what arrived
    (``messages``, ``dropped``, ``auth_attempts``, ``protocol_errors``, ``assert_sent``,
    ``wait_for``) are shared with :class:`~smtpkit.testing.LocalServer`.

    Args:
        capabilities: what EHLO advertises (see :class:`FakeCapabilities`).
        credentials: user name -> password (or OAuth2 access token) accepted by AUTH;
            ``None`` accepts any well-formed credentials.
        require_auth: refuse ``MAIL`` before a successful AUTH (``530 5.7.0``). ``None``
            (the default) requires AUTH exactly when ``credentials`` are given.
        auth_requires_tls: hide AUTH and refuse it (``530 5.7.0 Must issue a STARTTLS
            command first``) until the link is encrypted, as Gmail does.
        tls: how TLS behaves (:class:`FakeTLS`).
        hostname: the server's name in the greeting and EHLO reply.
        max_recipients: answer further RCPTs with ``452 4.5.3 Too many recipients``.
    """

    #: Never blocks: ``AsyncSubmitter`` calls it on the event loop, without a thread.
    nonblocking = True

    _noun = "fake"

    def __init__(
        self,
        *,
        capabilities: FakeCapabilities | None = None,
        credentials: Mapping[str, str] | None = None,
        require_auth: bool | None = None,
        auth_requires_tls: bool = True,
        tls: FakeTLS = FakeTLS.OK,
        hostname: str = "fake.smtpkit.test",
        max_recipients: int | None = None,
    ) -> None:
        # Every argument is checked before anything is built (smtpkit.testing._arguments).
        caps = check_instance(
            "capabilities",
            FakeCapabilities() if capabilities is None else capabilities,
            FakeCapabilities,
            example="FakeCapabilities(pipelining=False), or leave it out",
        )
        unknown = set(caps.auth) - SUPPORTED_MECHANISMS
        if unknown:
            raise ConfigurationError(
                f"the fake server cannot run auth mechanisms {sorted(unknown)}; it supports "
                f"{sorted(SUPPORTED_MECHANISMS)}",
                hint="list only those in FakeCapabilities(auth=...)",
            )
        accepted = check_credentials(credentials)
        required = check_optional_flag("require_auth", require_auth)
        self.config = ServerConfig(
            hostname=check_host_name("hostname", hostname),
            capabilities=caps,
            credentials=accepted,
            require_auth=accepted is not None if required is None else required,
            auth_requires_tls=check_flag("auth_requires_tls", auth_requires_tls),
            tls=check_instance("tls", tls, FakeTLS, example="FakeTLS.UNTRUSTED_CERTIFICATE"),
            max_recipients=check_positive_int("max_recipients", max_recipients),
        )
        self._script = Script()
        self._recorder = Recorder(self._script)
        self._records = self._recorder
        self._streams: list[FakeStream] = []
        self._endpoints: list[Endpoint] = []
        self._refusals = 0

    # -- the seam -------------------------------------------------------------------------

    def connect(self, endpoint: Endpoint) -> FakeStream:
        """Open a connection: a new server session, greeting queued.

        Raises:
            ConnectError: scripted with :meth:`refuse_connect`.
            TLSError: implicit TLS (``Security.TLS``) with ``FakeTLS.UNTRUSTED_CERTIFICATE``.
            TLSModeMismatch: implicit TLS with ``FakeTLS.UNAVAILABLE`` (a plaintext server).
        """
        recorder = self._recorder
        number = recorder.connection_opened()
        with recorder.lock:
            self._endpoints.append(endpoint)
            refuse = self._refusals > 0
            self._refusals -= 1 if refuse else 0
            recorder.lines.append(
                f"* connection {number} to {endpoint.host}:{endpoint.port} "
                f"({endpoint.security.value}){' refused' if refuse else ''}"
            )
        if refuse:
            raise ConnectError(
                f"connection to {endpoint.host}:{endpoint.port} refused "
                "(scripted with fake.refuse_connect())"
            )
        implicit = endpoint.security is Security.TLS
        if implicit and self.config.tls is FakeTLS.UNAVAILABLE:
            raise TLSModeMismatch(
                f"TLS handshake with {endpoint.host}:{endpoint.port} failed: wrong version "
                "number (the fake server speaks plaintext: FakeTLS.UNAVAILABLE)",
                hint="use Security.STARTTLS (port 587) for this server",
            )
        if implicit and rejects(self.config.tls, endpoint.tls_context):
            raise untrusted_error(endpoint.server_hostname)
        session = ServerSession(self.config, recorder, number=number, encrypted=implicit)
        stream = FakeStream(session, endpoint, threading.Lock())
        with recorder.lock:
            self._streams.append(stream)
        session.start()
        return stream

    # -- scripting (reply, disconnect, timeout, delay: see ScriptableServer) -------------

    def refuse_connect(self, times: int = 1) -> None:
        """Make the next ``times`` calls to :meth:`connect` raise ``ConnectError``."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigurationError(f"times must be a positive int, got {times!r}")
        with self._recorder.lock:
            self._refusals += times

    # -- what happened (messages, dropped, ...: see ScriptableServer) ----------------------

    @property
    def outbox(self) -> list[ReceivedMessage]:
        """Deprecated: :attr:`messages`."""
        renamed("FakeTransport.outbox", "FakeTransport.messages")
        return self.messages

    @property
    def transcript(self) -> list[str]:
        """The server's view of every connection: ``C:``/``S:`` lines, ``*`` notes; redacted.

        Commands that travelled together (one flight, see :attr:`flights`) come first, then
        the replies, each when the client read it.
        """
        with self._recorder.lock:
            return list(self._recorder.lines)

    @property
    def flights(self) -> list[tuple[str, ...]]:
        """What the client sent between two reads, flight by flight, over all connections.

        Each flight is the tuple of its redacted ``C:`` lines (``"MAIL FROM:<a@x>"``,
        ``"<1234 octets>"``, ``"."``, ``"****"`` for an AUTH response). Commands that were
        pipelined (RFC 2920) share a flight: ``("MAIL FROM:<a@x>", "RCPT TO:<b@y>", "DATA")``.
        """
        with self._recorder.lock:
            return [tuple(lines) for _, lines in self._recorder.flights if lines]

    @property
    def waited(self) -> float:
        """Simulated seconds clients spent waiting for replies held back by :meth:`delay`."""
        with self._recorder.lock:
            return self._recorder.waited

    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoint of each :meth:`connect` call, in order."""
        with self._recorder.lock:
            return list(self._endpoints)

    @property
    def streams(self) -> list[FakeStream]:
        """Every stream opened, in order (``stream.closed`` shows whether the client closed)."""
        with self._recorder.lock:
            return list(self._streams)

    def clear(self) -> None:
        """Forget messages, transcript, flights, AUTH attempts, errors, waiting and
        connection counts. Scripted steps stay (use ``step.cancel()`` to drop one)."""
        self._recorder.clear()
        with self._recorder.lock:
            self._endpoints.clear()
            self._streams.clear()

    def __repr__(self) -> str:
        return (
            f"<FakeTransport {self.config.hostname}: {self.connections} connection(s), "
            f"{len(self.messages)} message(s)>"
        )

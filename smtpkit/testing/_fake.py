"""``FakeTransport``: an in-memory SMTP submission server behind the transport seam.

Job: let tests drive the real client (``smtpkit.Submitter`` over the real protocol core)
against a strict, byte-level SMTP server with no sockets, threads or sleeps, then inspect
what it received and script how it fails::

    fake = FakeTransport(credentials={"me@example.com": "app-password"})
    fake.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.com")
    fake.delay("message", 30)     # the final reply takes 30 s (simulated, never slept)
    submitter = Submitter("smtp.example.com", transport=fake, auth=PasswordAuth(...))
    ...
    fake.assert_sent(to="you@example.com", subject="Hello")

Each ``connect`` opens a :class:`FakeStream` with its own server session
(:mod:`smtpkit.testing._fake_session`); everything the sessions record lands here under
one lock, so several connections (and threads) may use one fake.

Invariants:
    * ``FakeStream.receive`` never blocks: with nothing queued and the connection open it
      raises ``OperationTimeout`` at once, which is how a client timeout is simulated. A
      reply held back by :meth:`FakeTransport.delay` is measured against the stream's
      timeout instead of a clock: it arrives when the client would wait long enough.
    * ``outbox`` holds only messages the server accepted (a ``2xx`` after the content).
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
from smtpkit.replies import Phase
from smtpkit.testing._fake_auth import SUPPORTED_MECHANISMS
from smtpkit.testing._fake_record import Recorder, SentMessage
from smtpkit.testing._fake_report import describe_outbox, matches
from smtpkit.testing._fake_script import (
    FakeCapabilities,
    FakeTLS,
    Script,
    ScriptAction,
    Scripted,
    build_reply,
    coerce_phase,
    parse_reply,
)
from smtpkit.testing._fake_session import ServerSession
from smtpkit.testing._fake_stream import FakeStream, rejects, untrusted_error
from smtpkit.testing._fake_wire import ServerConfig
from smtpkit.testing._server_state import AuthAttempt

__all__ = ["FakeStream", "FakeTransport", "SentMessage"]


class FakeTransport:
    """An in-memory SMTP submission server that plugs in where a real transport would.

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
        caps = capabilities if capabilities is not None else FakeCapabilities()
        unknown = set(caps.auth) - SUPPORTED_MECHANISMS
        if unknown:
            raise ConfigurationError(
                f"the fake server cannot run {sorted(unknown)}; it supports "
                f"{sorted(SUPPORTED_MECHANISMS)}"
            )
        if not isinstance(tls, FakeTLS):
            raise ConfigurationError(f"tls must be a FakeTLS member, got {tls!r}")
        self.config = ServerConfig(
            hostname=hostname,
            capabilities=caps,
            credentials=None if credentials is None else dict(credentials),
            require_auth=credentials is not None if require_auth is None else require_auth,
            auth_requires_tls=auth_requires_tls,
            tls=tls,
            max_recipients=max_recipients,
        )
        self._script = Script()
        self._recorder = Recorder(self._script)
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
        with recorder.lock:
            self._endpoints.append(endpoint)
            number = len(self._endpoints)
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

    # -- scripting ------------------------------------------------------------------------

    def reply(
        self,
        phase: Phase | str,
        reply: str | None = None,
        *,
        code: int | None = None,
        enhanced: str | None = None,
        text: str | None = None,
        recipient: str | None = None,
        times: int | None = 1,
    ) -> Scripted:
        """Answer ``phase`` with a scripted reply instead of the server's own.

        Give the reply as it travels (``"550 5.1.1 User unknown"``, multi-line with
        ``\\n``) or by parts (``code=550, enhanced="5.1.1", text="User unknown"``).

        Args:
            phase: a :class:`~smtpkit.Phase` or its value (``"rcpt"``). ``"auth"`` replaces
                the final AUTH reply (after the credentials); ``"message"`` the reply after
                the content; ``"data"`` the reply to DATA and to non-final BDAT chunks.
            recipient: only for ``"rcpt"``: apply to this address only.
            times: how many times to use it; ``None`` means every time.

        A ``421`` reply also closes the connection. In a reply to ``"message"``, ``{id}``
        is replaced by the queue id the server assigned.

        Returns:
            The scripted step (``.used``, ``.exhausted``, ``.cancel()``).
        """
        if (reply is None) == (code is None):
            raise ConfigurationError("give either a reply text or code= (with enhanced/text)")
        if reply is not None:
            if enhanced is not None or text is not None:
                raise ConfigurationError("enhanced= and text= go with code=, not a reply text")
            value = parse_reply(reply)
        else:
            assert code is not None
            value = build_reply(code, enhanced, text)
        step = Scripted(
            coerce_phase(phase), ScriptAction.REPLY, reply=value, recipient=recipient, times=times
        )
        return self._script.add(step)

    def disconnect(
        self, phase: Phase | str, *, recipient: str | None = None, times: int | None = 1
    ) -> Scripted:
        """Close the connection at ``phase`` instead of answering.

        At ``"message"`` the content was fully received first: the client cannot know
        whether it will be delivered. Such content is kept in :attr:`dropped`.
        """
        step = Scripted(
            coerce_phase(phase), ScriptAction.DISCONNECT, recipient=recipient, times=times
        )
        return self._script.add(step)

    def timeout(
        self, phase: Phase | str, *, recipient: str | None = None, times: int | None = 1
    ) -> Scripted:
        """Never answer at ``phase``: the client's ``receive`` raises ``OperationTimeout``.

        The session then ignores everything the client sends. At ``"message"`` the content
        was received first and is kept in :attr:`dropped`.
        """
        step = Scripted(coerce_phase(phase), ScriptAction.TIMEOUT, recipient=recipient, times=times)
        return self._script.add(step)

    def delay(
        self,
        phase: Phase | str,
        seconds: float,
        *,
        recipient: str | None = None,
        times: int | None = 1,
    ) -> Scripted:
        """Hold back the reply at ``phase`` until the client has waited ``seconds``.

        Nothing sleeps: the wait is simulated against the client's timeout for that reply
        (what it gave :meth:`FakeStream.set_timeout`). A client willing to wait at least
        ``seconds`` gets the reply, at once; one with a shorter timeout gets
        ``OperationTimeout``, as it would from a slow server. The reply itself is the
        server's own, or one scripted with :meth:`reply` for the same phase. The simulated
        waiting adds up in :attr:`waited`, and the transcript notes each delay.

        At ``"message"`` the server has already accepted the content when it delays the
        final reply: a client that gives up cannot know the outcome, and the message is in
        :attr:`outbox` (a real server would deliver it).

        Args:
            phase: a :class:`~smtpkit.Phase` or its value (``"message"``, ``"mail"``...).
            seconds: how long the reply takes (> 0).
            recipient: only for ``"rcpt"``: delay the reply for this address only.
            times: how many replies to delay; ``None`` means every one.
        """
        step = Scripted(
            coerce_phase(phase),
            ScriptAction.DELAY,
            recipient=recipient,
            times=times,
            seconds=seconds,
        )
        return self._script.add(step)

    def refuse_connect(self, times: int = 1) -> None:
        """Make the next ``times`` calls to :meth:`connect` raise ``ConnectError``."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigurationError(f"times must be a positive int, got {times!r}")
        with self._recorder.lock:
            self._refusals += times

    @property
    def scripts(self) -> list[Scripted]:
        """Every scripted step, in the order scripted."""
        return self._script.steps

    # -- what happened --------------------------------------------------------------------

    @property
    def outbox(self) -> list[SentMessage]:
        """A copy of the accepted messages, oldest first."""
        with self._recorder.lock:
            return list(self._recorder.outbox)

    @property
    def dropped(self) -> list[SentMessage]:
        """Content received without a final reply (scripted disconnect/timeout at "message")."""
        with self._recorder.lock:
            return list(self._recorder.dropped)

    @property
    def transcript(self) -> list[str]:
        """The server's view of every connection: ``C:``/``S:`` lines, ``*`` notes; redacted."""
        with self._recorder.lock:
            return list(self._recorder.lines)

    @property
    def waited(self) -> float:
        """Simulated seconds clients spent waiting for replies held back by :meth:`delay`."""
        with self._recorder.lock:
            return self._recorder.waited

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Completed AUTH exchanges as ``(mechanism, username, success)``, oldest first."""
        with self._recorder.lock:
            return list(self._recorder.attempts)

    @property
    def protocol_errors(self) -> list[str]:
        """Client mistakes the server noticed (improper pipelining, bare LF, ...)."""
        with self._recorder.lock:
            return list(self._recorder.errors)

    @property
    def connections(self) -> int:
        """How many times :meth:`connect` was called (refused attempts included)."""
        with self._recorder.lock:
            return len(self._endpoints)

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
        """Forget messages, transcript, AUTH attempts, errors, waiting and connection counts.

        Scripted steps stay (use ``step.cancel()`` to drop one).
        """
        with self._recorder.lock:
            for kept in (
                self._recorder.outbox,
                self._recorder.dropped,
                self._recorder.attempts,
                self._recorder.lines,
                self._recorder.errors,
                self._endpoints,
                self._streams,
            ):
                kept.clear()
            self._recorder.waited = 0.0

    def assert_sent(
        self,
        *,
        to: str | None = None,
        subject: str | None = None,
        sender: str | None = None,
        count: int | None = None,
        contains: str | None = None,
    ) -> list[SentMessage]:
        """Check that accepted messages match; return the matching ones.

        Args:
            to: an accepted recipient (case-insensitive).
            subject: the exact decoded subject.
            sender: the envelope sender (case-insensitive).
            count: exactly this many must match (default: at least one).
            contains: text found in a decoded text part, a header, or the raw content.

        Raises:
            AssertionError: naming the criteria and listing every message that was sent.
        """
        sent = self.outbox
        found = [m for m in sent if matches(m, to, subject, sender, contains)]
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        asked = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("to", to),
                ("subject", subject),
                ("sender", sender),
                ("contains", contains),
                ("count", count),
            )
            if value is not None
        )
        wanted = "at least one" if count is None else str(count)
        raise AssertionError(
            f"assert_sent({asked}): expected {wanted} matching message(s), found "
            f"{len(found)}.\n{describe_outbox(sent, self.dropped)}"
        )

    def __repr__(self) -> str:
        return (
            f"<FakeTransport {self.config.hostname}: {self.connections} connection(s), "
            f"{len(self.outbox)} message(s)>"
        )

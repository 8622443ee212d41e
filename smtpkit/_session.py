"""One SMTP session: drive the sans-IO protocol core over a transport stream.

A :class:`Session` opens a connection and negotiates it (greeting, EHLO, STARTTLS, EHLO
again, AUTH with OAuth2's refresh-and-retry-once). It owns the stream, applies the timeouts,
turns replies into typed errors through the one table in :mod:`smtpkit.errors`, and logs the
redacted transcript. :mod:`smtpkit._transaction` sends messages over it with the I/O helpers
here (``encode``, ``write``, ``send_bytes``, ``read_reply``, ``exchange``).

Invariants:
    * With ``Security.STARTTLS``, nothing but EHLO and STARTTLS is sent before TLS is up; a
      server that does not offer STARTTLS gets no further command (RFC 3207 §4; no silent
      downgrade).
    * AUTH is never sent over plaintext to a peer address that is not loopback (decided
      on ``getpeername()``, never on the host name) unless the caller opted in.
    * Any transport error, a 421, or a reply the protocol does not allow leaves the session
      closed (``alive`` is false).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from smtpkit import providers
from smtpkit._login import ReconnectForToken, log_in
from smtpkit.auth import AuthStrategy
from smtpkit.config import Endpoint, Security, Timeouts
from smtpkit.errors import (
    MessageError,
    MessageTooLarge,
    OperationTimeout,
    RemoteProtocolError,
    ReplyError,
    ServerDisconnected,
    SMTPError,
    StartTLSNotOffered,
    TLSModeMismatch,
    TransportError,
    detect_provider,
    error_for_reply,
)
from smtpkit.message import BodyType, PreparedMessage
from smtpkit.protocol import (
    NEED_DATA,
    ClientConnection,
    Command,
    ConnectionClosed,
    Extensions,
    ReplyReceived,
)
from smtpkit.replies import Phase, Reply
from smtpkit.transports import Deadline, Stream, Transport, peer_address

__all__ = ["Session", "SessionSettings"]

E = TypeVar("E", bound=SMTPError)

logger = logging.getLogger("smtpkit")
wire_logger = logging.getLogger("smtpkit.wire")

#: The implicit-TLS submission port (RFC 8314 §7.3).
IMPLICIT_TLS_PORT = 465


@dataclass(frozen=True)
class SessionSettings:
    """Everything a session needs to connect and log in."""

    host: str
    port: int
    security: Security
    timeouts: Timeouts
    local_hostname: str
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    auth: AuthStrategy | None = None
    allow_unencrypted_auth: bool = False
    provider: str | None = None
    chunking: bool = True  # use BDAT (RFC 3030) when the server offers CHUNKING

    def endpoint(self) -> Endpoint:
        """The transport endpoint for these settings."""
        return Endpoint(
            host=self.host,
            port=self.port,
            security=self.security,
            tls_context=self.tls_context,
            connect_timeout=self.timeouts.connect,
        )


class Session:
    """A negotiated (and, with auth, authenticated) SMTP connection."""

    def __init__(
        self,
        settings: SessionSettings,
        stream: Stream,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._stream = stream
        self._conn = ClientConnection()
        self._clock = clock
        # A preset key ("microsoft365", "ses:eu-west-1") names a provider family for the
        # reply table and adds preset-specific advice (limits, login rules) to errors.
        self._preset = providers.find(settings.provider)
        self._provider = self._preset.family if self._preset else settings.provider
        self._alive = True
        # The time each following reply may take as a whole (see _read); the stream gets
        # it too, for sends.
        self._timeout = settings.timeouts.command
        stream.set_timeout(self._timeout)
        #: Octets of a reply that had arrived when the last read failed (0: none).
        self.partial_octets = 0
        self.opened_at = clock()
        self.last_used = self.opened_at
        self.messages_sent = 0
        #: True once the session was handed out again after being idle (pool reuse).
        self.reused = False
        #: When the OAuth2 token used to log in expires (None: no token, or no expiry).
        self.auth_expires_at: datetime | None = None

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: SessionSettings,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Session:
        """Connect, read the greeting, EHLO, STARTTLS when asked, and AUTH when configured.

        Transcript (STARTTLS, AUTH PLAIN)::

            S: 220 smtp.example.com ESMTP
            C: EHLO client.example.com
            S: 250-smtp.example.com
            S: 250 STARTTLS
            C: STARTTLS
            S: 220 2.0.0 Ready to start TLS
            (TLS handshake; plaintext buffered so far is discarded, RFC 3207 §4.2)
            C: EHLO client.example.com
            S: 250-smtp.example.com
            S: 250 AUTH PLAIN LOGIN
            C: AUTH PLAIN ****
            S: 235 2.7.0 Accepted
        """
        stream = transport.connect(settings.endpoint())
        session = cls(settings, stream, clock=clock)
        try:
            session._negotiate(token_retry=True)
        except ReconnectForToken:
            # The server hung up after refusing the OAuth2 token; the provider now holds a
            # fresh one. One new connection, and no further refresh on it.
            session = cls(settings, transport.connect(settings.endpoint()), clock=clock)
            try:
                session._negotiate(token_retry=False)
            except BaseException:
                session.abort()
                raise
        except BaseException:
            session.abort()
            raise
        return session

    def _negotiate(self, *, token_retry: bool) -> None:
        settings = self._settings
        greeting = self._greeting()
        self._provider = self._provider or detect_provider(greeting)
        if not greeting.is_positive:
            self._quit_quietly()
            raise self.error(greeting, Phase.GREETING)
        self._ehlo()
        if settings.security is Security.STARTTLS and not self._stream.is_encrypted:
            self._starttls()
        if settings.auth is not None:
            self._authenticate(settings.auth, token_retry=token_retry)

    def _greeting(self) -> Reply:
        try:
            event = self._read(self._settings.timeouts.command)
        except OperationTimeout as error:
            if self.partial_octets:
                raise  # a greeting started and stalled: not a TLS port read in plaintext
            if (
                self._settings.security is not Security.TLS
                and self._settings.port == IMPLICIT_TLS_PORT
            ):
                raise TLSModeMismatch(
                    f"no greeting from {self._settings.host}:{IMPLICIT_TLS_PORT} in plaintext",
                    hint=(
                        "port 465 expects TLS from the first byte: use Security.TLS, or "
                        "Security.STARTTLS with port 587"
                    ),
                ) from None
            if self._settings.security is not Security.TLS and error.hint is None:
                # An implicit-TLS server waits for the client's handshake and says nothing,
                # so on another port the client cannot tell it from a slow server.
                error.hint = (
                    "the server sent no greeting: if this port expects TLS from the first "
                    "byte (implicit TLS, usually port 465), use Security.TLS"
                )
            raise
        return event.reply

    def _ehlo(self) -> Extensions:
        reply = self.exchange(Command.ehlo(self._settings.local_hostname))
        if reply.is_positive:
            assert self._conn.extensions is not None
            return self._conn.extensions
        if reply.code in (500, 502, 504):
            # RFC 5321 §3.2: a server that does not know EHLO is answered with HELO.
            helo = self.exchange(Command.helo(self._settings.local_hostname))
            if helo.is_positive:
                assert self._conn.extensions is not None
                return self._conn.extensions
            reply = helo
        self._quit_quietly()
        raise self.error(reply, Phase.EHLO)

    def _starttls(self) -> None:
        extensions = self.extensions
        if not extensions.starttls:
            # Required STARTTLS: send nothing else, not even QUIT (RFC 3207 §4, DESIGN 7).
            self.abort()
            raise StartTLSNotOffered(
                f"{self._settings.host}:{self._settings.port} does not offer STARTTLS; "
                "refusing to continue in plaintext",
                hint=(
                    "check the port (587 offers STARTTLS; 465 needs Security.TLS); only for a "
                    "trusted local relay use Security.NONE"
                ),
                transcript=self._conn.transcript,
            )
        reply = self.exchange(Command.starttls())
        if reply.code != 220:
            self._quit_quietly()
            raise self.error(reply, Phase.STARTTLS)
        context = self._settings.tls_context or ssl.create_default_context()
        self._stream.set_timeout(self._settings.timeouts.connect)
        try:
            self._stream.start_tls(context, self._settings.host.strip("[]"))
        except SMTPError as error:
            self._alive = False
            error.attach_transcript(self._conn.transcript)
            raise
        # The handshake ran under the connect timeout (CPython bounds the whole handshake
        # by the socket timeout); EHLO and AUTH are commands.
        self.set_timeout(self._settings.timeouts.command)
        self._conn.tls_established()
        self._ehlo()

    def _authenticate(self, strategy: AuthStrategy, *, token_retry: bool) -> None:
        settings = self._settings
        self.auth_expires_at = log_in(
            self,
            strategy,
            host=settings.host,
            port=settings.port,
            allow_unencrypted_auth=settings.allow_unencrypted_auth,
            token_retry=token_retry,
        )

    def token_expires_within(self, seconds: float, now: datetime) -> bool:
        """Whether the OAuth2 token this session logged in with expires within ``seconds``.

        Gmail ends an OAuth2 session when its token expires, so a kept connection must be
        replaced (and logged in again) before that.
        """
        expires = self.auth_expires_at
        return expires is not None and (expires - now).total_seconds() <= seconds

    # -- state ---------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """False once the connection failed, was closed, or the server said 421."""
        return self._alive

    @property
    def extensions(self) -> Extensions:
        """The server's capabilities from the latest EHLO."""
        extensions = self._conn.extensions
        if extensions is None:
            raise RemoteProtocolError("no EHLO capabilities known for this session")
        return extensions

    @property
    def transcript(self) -> tuple[str, ...]:
        """The redacted conversation so far (newest last)."""
        return self._conn.transcript

    @property
    def encrypted(self) -> bool:
        """Whether TLS is active."""
        return self._stream.is_encrypted

    @property
    def peer_address(self) -> str | None:
        """The IP address the connection reached (``None`` if the stream cannot tell)."""
        return peer_address(self._stream)

    @property
    def settings(self) -> SessionSettings:
        """The settings this session was opened with."""
        return self._settings

    @property
    def conn(self) -> ClientConnection:
        """The sans-IO protocol state (for the transaction driver)."""
        return self._conn

    def clock(self) -> float:
        """The session's monotonic clock."""
        return self._clock()

    def set_timeout(self, seconds: float) -> None:
        """Time each following reply may take as a whole, and each send."""
        self._timeout = seconds
        self._stream.set_timeout(seconds)

    @property
    def preset(self) -> providers.Preset | None:
        """The provider preset named in the settings, if any."""
        return self._preset

    @property
    def provider(self) -> str | None:
        """The provider recognised from configuration or the server's wording."""
        return self._provider

    # -- transactions (driven by smtpkit._transaction) ----------------------------------

    def mail_params(self, prepared: PreparedMessage) -> list[str]:
        """ESMTP parameters for MAIL FROM; checks SIZE, 8BITMIME and SMTPUTF8 first.

        Raises:
            MessageTooLarge: the message exceeds the advertised SIZE (nothing is sent).
            MessageError: the message needs SMTPUTF8/8BITMIME and the server lacks it, or
                it has more recipients than the provider preset allows per message.
        """
        extensions = self.extensions
        params: list[str] = []
        preset = self._preset
        count = len(prepared.envelope.recipients)
        allowed = preset.limits.recipients_per_message if preset else None
        if preset is not None and allowed is not None and count > allowed:
            # Past the limit a provider refuses the extra RCPTs (Gmail: 452 4.5.3) and the
            # message reaches only some recipients; refusing it whole is the clearer outcome.
            raise MessageError(
                f"the message has {count} recipients; {preset.display_name} accepts at most "
                f"{allowed} per message",
                hint="send it in batches (e.g. one message per recipient with send_many)",
            )
        size = prepared.size
        if extensions.max_size is not None and size > extensions.max_size:
            raise self.enrich(
                MessageTooLarge(
                    Reply(
                        552,
                        (
                            f"5.3.4 Message is {size} octets; the server accepts at most "
                            f"{extensions.max_size} (SIZE, RFC 1870)",
                        ),
                    ),
                    Phase.MAIL,
                    hint="send a smaller message, e.g. link to large attachments instead",
                    provider=self._provider,
                    from_server=False,
                )
            )
        if extensions.size_declared:
            params.append(f"SIZE={size}")
        if prepared.body_type is BodyType.EIGHT_BIT_MIME:
            if not extensions.eight_bit_mime:
                raise MessageError(
                    "the message has 8-bit content and the server does not offer 8BITMIME",
                    hint="send an EmailMessage (smtpkit re-encodes it) or 7-bit bytes",
                )
            params.append("BODY=8BITMIME")
        if prepared.needs_smtputf8:
            if not extensions.smtputf8:
                raise MessageError(
                    "the message has non-ASCII addresses and the server does not offer "
                    "SMTPUTF8 (RFC 6531)",
                    hint="use ASCII addresses (IDNA domains are converted automatically)",
                )
            params.append("SMTPUTF8")
        return params

    # -- closing -------------------------------------------------------------------------

    def noop(self) -> bool:
        """A health check: True when the server answers NOOP with 250."""
        try:
            return self.exchange(Command.noop()).code == 250
        except (TransportError, ReplyError):
            self.abort()
            return False

    def quit(self) -> None:
        """Send QUIT, wait briefly for 221, and close. Never raises."""
        self._quit_quietly()

    def _quit_quietly(self) -> None:
        if self._alive:
            try:
                self.set_timeout(min(self._settings.timeouts.command, 5.0))
                self.exchange(Command.quit())
            except SMTPError:
                pass
        self.abort()

    def abort(self) -> None:
        """Close the stream without QUIT."""
        self._alive = False
        self._conn.mark_closed()
        self._stream.close()

    # -- I/O helpers ---------------------------------------------------------------------

    def encode(self, commands: Sequence[Command]) -> bytes:
        """Register ``commands`` with the protocol core and return their bytes."""
        data = b"".join([self._conn.send(command) for command in commands])
        if wire_logger.isEnabledFor(logging.DEBUG):
            for command in commands:
                wire_logger.debug("C: %s", command.redacted)
        return data

    def encode_chunk(self, data: bytes, *, last: bool) -> bytes:
        """``BDAT`` with its chunk (RFC 3030 §2), registered and logged like a command."""
        wire = self._conn.send_chunk(data, last=last)
        if wire_logger.isEnabledFor(logging.DEBUG):
            wire_logger.debug("C: BDAT %d%s", len(data), " LAST" if last else "")
            wire_logger.debug("C: <%d octets of message content>", len(data))
        return wire

    def write(self, commands: Sequence[Command]) -> None:
        """Send ``commands`` in one write (pipelined when more than one)."""
        self.send_bytes(self.encode(commands))

    def send_bytes(self, data: bytes) -> None:
        # A failed send leaves the protocol state mid-command or mid-content: the session
        # must never be used again, or the next MAIL would be refused locally.
        try:
            self._stream.send(data)
        except TransportError as error:
            self.abort()
            error.attach_transcript(self._conn.transcript)
            raise

    def exchange(self, command: Command) -> Reply:
        self.write([command])
        return self.read_reply()

    def read_reply(self) -> Reply:
        return self._read(None).reply

    def _read(self, timeout: float | None) -> ReplyReceived:
        """The next reply, which must arrive whole within the current timeout.

        One deadline covers the whole reply (DESIGN rule 11): a server that sends a byte,
        or a continuation line, just inside the socket timeout each time would otherwise
        hold the client forever. The first receive runs under the full timeout already set
        on the stream; each later one gets only the time left.
        """
        if timeout is not None:
            self.set_timeout(timeout)
        conn = self._conn
        deadline: Deadline | None = None
        shortened = False
        received = 0
        try:
            while True:
                event = conn.next_event()
                if event is not NEED_DATA:
                    break
                if deadline is None:
                    deadline = Deadline(self._timeout, self._clock)
                else:
                    self._stream.set_timeout(deadline.remaining(self._awaited()))
                    shortened = True
                data = self._stream.receive()
                received += len(data)
                conn.receive_data(data)
        except TransportError as error:
            self.partial_octets = received
            stalled = self._stalled(received) if isinstance(error, OperationTimeout) else None
            self.abort()
            if stalled is not None:
                stalled.attach_transcript(conn.transcript)
                raise stalled from None
            error.attach_transcript(conn.transcript)
            raise
        if shortened and self._alive:
            # Later receives ran under a shortened timeout: give sends the whole one back.
            self._stream.set_timeout(self._timeout)
        if isinstance(event, ConnectionClosed):
            self.abort()
            waiting = event.unanswered[0].redacted if event.unanswered else "the greeting"
            raise ServerDisconnected(
                f"{self._settings.host} closed the connection while the client waited for "
                f"the reply to {waiting}",
                transcript=conn.transcript,
            )
        if wire_logger.isEnabledFor(logging.DEBUG):
            for line in event.reply.to_bytes().decode("utf-8", "replace").splitlines():
                wire_logger.debug("S: %s", line)
        if event.reply.code == 421:
            # RFC 5321 §3.8: the server is closing the channel; nothing more will come.
            self.abort()
        return event

    def _awaited(self) -> str:
        """What the client is waiting for, for timeout messages."""
        pending = self._conn.pending
        if not pending or pending[0].phase is Phase.GREETING:
            return "the greeting"
        shown = pending[0].redacted
        if shown == ".":
            return "the reply to the message content"
        return f"the reply to {shown or 'an AUTH continuation'}"

    def _stalled(self, received: int) -> OperationTimeout | None:
        """The error for a reply that started to arrive but did not complete in time."""
        if not received:
            return None  # nothing came: the transport's own timeout error says it
        settings = self._settings
        return OperationTimeout(
            f"{self._awaited()} from {settings.host}:{settings.port} did not complete within "
            f"{self._timeout:g} s: {received} octets of it arrived, too slowly",
            hint=(
                "the server answers a little at a time and stalls; try again later, or allow "
                "more time with Timeouts (command, or final_reply for the reply to the content)"
            ),
        )

    def error(self, reply: Reply, phase: Phase, *, command: str | None = None) -> SMTPError:
        """The typed error for a failure reply, with the preset's advice added.

        A positive reply where another was required (``250`` to STARTTLS, say) is not a
        refusal the reply table can classify: it is the server breaking the protocol.
        """
        if reply.is_positive:
            return self.unexpected(reply, command or phase.value.upper())
        return self.enrich(
            error_for_reply(
                reply,
                phase,
                command=command,
                provider=self._provider,
                credential_kind=(
                    self._settings.auth.credential_kind if self._settings.auth else None
                ),
                transcript=self._conn.transcript,
            )
        )

    def unexpected(self, reply: Reply, command: str) -> RemoteProtocolError:
        """Close the session for a reply the protocol does not allow; the error to raise."""
        self.abort()
        return RemoteProtocolError(
            f"the server answered {command} with {reply}, which the protocol does not allow there",
            transcript=self._conn.transcript,
        )

    def enrich(self, error: E) -> E:
        """Add the provider preset's advice (limits, login rules) to ``error``'s hint."""
        return providers.enrich(error, self._preset)

    def __repr__(self) -> str:
        state = "alive" if self._alive else "closed"
        tls = "TLS" if self.encrypted else "plaintext"
        return f"<Session {self._settings.host}:{self._settings.port} {tls} {state}>"

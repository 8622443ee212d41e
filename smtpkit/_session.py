"""One SMTP session: drive the sans-IO protocol core over a transport stream.

A :class:`Session` opens a connection, negotiates it (greeting, EHLO, STARTTLS, EHLO again,
AUTH) and then sends messages on it. It owns the stream, applies the timeouts, turns replies
into typed errors through the one table in :mod:`smtpkit.errors`, and logs the redacted
transcript.

Invariants:
    * With ``Security.STARTTLS``, nothing but EHLO and STARTTLS is sent before TLS is up; a
      server that does not offer STARTTLS gets no further command (RFC 3207 §4; no silent
      downgrade).
    * AUTH is never sent over plaintext to a non-loopback host unless the caller opted in.
    * A message is reported sent only after a 2xx final reply. A failure after the content's
      final ``.`` raises :class:`~smtpkit.errors.DeliveryUnknown`, never a retryable error.
    * After a failed envelope (MAIL/RCPT/DATA refused) the session sends RSET and stays usable.
    * Any transport error leaves the session closed (``alive`` is false).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit._result import SendResult
from smtpkit.auth import AuthContext, AuthStrategy
from smtpkit.config import Endpoint, Security, Timeouts, is_loopback
from smtpkit.errors import (
    DeliveryUnknown,
    InsecureAuthRefused,
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
from smtpkit.transports import Stream, Transport

__all__ = ["ConnectionStale", "Session", "SessionSettings"]

logger = logging.getLogger("smtpkit")
wire_logger = logging.getLogger("smtpkit.wire")

#: Content is written in slices of this size, so a large message is not copied whole.
CONTENT_SLICE = 1 << 20
#: The implicit-TLS submission port (RFC 8314 §7.3).
IMPLICIT_TLS_PORT = 465


class ConnectionStale(ServerDisconnected):
    """A reused connection turned out closed before the server accepted anything.

    Raised only when the failure came before MAIL was accepted, so the message can be sent
    again on a new connection without any risk of a duplicate.
    """


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
        self._provider = settings.provider
        self._alive = True
        self.opened_at = clock()
        self.last_used = self.opened_at
        self.messages_sent = 0

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
            session._negotiate()
        except BaseException:
            session.abort()
            raise
        return session

    def _negotiate(self) -> None:
        settings = self._settings
        greeting = self._greeting()
        self._provider = self._provider or detect_provider(greeting)
        if not greeting.is_positive:
            self._quit_quietly()
            raise self._error(greeting, Phase.GREETING)
        self._ehlo()
        if settings.security is Security.STARTTLS and not self._stream.is_encrypted:
            self._starttls()
        if settings.auth is not None:
            self._authenticate(settings.auth)

    def _greeting(self) -> Reply:
        try:
            event = self._read(self._settings.timeouts.command)
        except OperationTimeout as error:
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
        reply = self._exchange(Command.ehlo(self._settings.local_hostname))
        if reply.is_positive:
            assert self._conn.extensions is not None
            return self._conn.extensions
        if reply.code in (500, 502, 504):
            # RFC 5321 §3.2: a server that does not know EHLO is answered with HELO.
            helo = self._exchange(Command.helo(self._settings.local_hostname))
            if helo.is_positive:
                assert self._conn.extensions is not None
                return self._conn.extensions
            reply = helo
        self._quit_quietly()
        raise self._error(reply, Phase.EHLO)

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
        reply = self._exchange(Command.starttls())
        if reply.code != 220:
            self._quit_quietly()
            raise self._error(reply, Phase.STARTTLS)
        context = self._settings.tls_context or ssl.create_default_context()
        self._stream.set_timeout(self._settings.timeouts.connect)
        try:
            self._stream.start_tls(context, self._settings.host.strip("[]"))
        except SMTPError as error:
            self._alive = False
            error.attach_transcript(self._conn.transcript)
            raise
        # The handshake ran under the connect timeout; EHLO and AUTH are commands.
        self._stream.set_timeout(self._settings.timeouts.command)
        self._conn.tls_established()
        self._ehlo()

    def _authenticate(self, strategy: AuthStrategy) -> None:
        settings = self._settings
        if not (
            self._stream.is_encrypted
            or is_loopback(settings.host)
            or settings.allow_unencrypted_auth
        ):
            self._quit_quietly()
            raise InsecureAuthRefused(
                f"refusing to send credentials to {settings.host} over an unencrypted connection",
                hint=(
                    "use Security.STARTTLS or Security.TLS; pass allow_unencrypted_auth=True "
                    "only for a trusted network"
                ),
            )
        context = AuthContext(
            mechanisms=self.extensions.auth_mechanisms,
            host=settings.host,
            port=settings.port,
            encrypted=self._stream.is_encrypted,
        )
        try:
            flow = strategy.flow(context)
            command = next(flow)
        except SMTPError:
            self._quit_quietly()
            raise
        details = None
        while True:
            reply = self._exchange(command)
            try:
                command = flow.send(reply)
            except StopIteration as stop:
                details = stop.value
                break
        if reply.code == 334:
            # The flow gave up mid-exchange: cancel it (RFC 4954 §4) so the server resets.
            reply = self._exchange(Command.auth_response("*"))
        if reply.code != 235:
            self._quit_quietly()
            raise error_for_reply(
                reply,
                Phase.AUTH,
                command=f"AUTH {strategy.choose_mechanism(context)}",
                provider=self._provider,
                credential_kind=strategy.credential_kind,
                challenge=details,
                transcript=self._conn.transcript,
            )
        logger.debug("authenticated to %s as %s", settings.host, strategy.username)

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
    def provider(self) -> str | None:
        """The provider recognised from configuration or the server's wording."""
        return self._provider

    # -- sending -------------------------------------------------------------------------

    def send(self, prepared: PreparedMessage) -> SendResult:
        """Send one prepared message: MAIL, RCPT for each recipient, DATA, content.

        With PIPELINING (RFC 2920 §3.1) the envelope travels in one flight::

            C: MAIL FROM:<a@example.com> SIZE=1234
            C: RCPT TO:<b@example.com>
            C: RCPT TO:<c@example.com>
            C: DATA
            S: 250 2.1.0 OK
            S: 250 2.1.5 OK
            S: 550 5.1.1 No such user
            S: 354 Go ahead
            C: <content, dot-stuffed> .
            S: 250 2.0.0 OK queued as 1A2B3C

        Raises:
            MessageTooLarge: the message exceeds the advertised SIZE (nothing was sent).
            MessageError: the message needs SMTPUTF8/8BITMIME and the server lacks it.
            SenderRejected, RecipientRejected, MessageRejected, RateLimited, ...: refusals.
            ConnectionStale: the connection was found closed before anything was accepted.
            DeliveryUnknown: the connection failed after the final ``.``.
        """
        envelope = prepared.envelope
        params = self._mail_params(prepared)
        mail = Command.mail(envelope.sender, params)
        rcpts = [Command.rcpt(address) for address in envelope.recipients]
        self._stream.set_timeout(self._settings.timeouts.command)
        mail_reply, rcpt_replies, data_reply = self._envelope(mail, rcpts)
        if not mail_reply.is_positive:
            self._abandon(data_reply)
            raise self._error(mail_reply, Phase.MAIL, command=mail.redacted)

        accepted = [
            c.address or "" for c, r in zip(rcpts, rcpt_replies, strict=False) if r.is_positive
        ]
        rejected = {
            c.address or "": r
            for c, r in zip(rcpts, rcpt_replies, strict=False)
            if not r.is_positive
        }
        for reply in rejected.values():
            if reply.code == 421:
                self._abandon(data_reply)
                raise self._error(reply, Phase.RCPT)
        if not accepted:
            self._abandon(data_reply)
            first_address, first_reply = next(iter(rejected.items()))
            raise error_for_reply(
                first_reply,
                Phase.RCPT,
                command=f"RCPT TO:<{first_address}>",
                recipient=first_address,
                rejected=rejected,
                provider=self._provider,
                transcript=self._conn.transcript,
            )
        if data_reply is None:
            data_reply = self._exchange(Command.data())
        if data_reply.code != 354:
            self._abandon(None)
            raise self._error(data_reply, Phase.DATA, command="DATA")

        final = self._send_content(prepared)
        self.last_used = self._clock()
        if not final.is_positive:
            if final.code == 421:
                self._alive = False
            raise self._error(final, Phase.MESSAGE, command="end of data")
        self.messages_sent += 1
        return SendResult(
            message_id=prepared.message_id,
            sender=envelope.sender,
            accepted=tuple(accepted),
            rejected=MappingProxyType(rejected),
            reply=final,
        )

    def _envelope(
        self, mail: Command, rcpts: Sequence[Command]
    ) -> tuple[Reply, list[Reply], Reply | None]:
        """Send MAIL, RCPT (and with PIPELINING, DATA); return their replies.

        The DATA reply is ``None`` when DATA was not sent yet (no PIPELINING).
        """
        pipelined = self.extensions.pipelining
        first_use = self.messages_sent == 0
        try:
            if pipelined:
                self._write([mail, *rcpts, Command.data()])
                mail_reply = self._read_reply()
            else:
                mail_reply = self._exchange(mail)
        except (ServerDisconnected, OperationTimeout) as error:
            if first_use:
                raise
            raise ConnectionStale(str(error), transcript=self._conn.transcript) from None
        if mail_reply.code == 421 and not first_use:
            self._alive = False
            raise ConnectionStale(
                f"the server closed the idle connection: {mail_reply}",
                transcript=self._conn.transcript,
            )

        rcpt_replies: list[Reply] = []
        data_reply = None
        if pipelined:
            rcpt_replies = [self._read_reply() for _ in rcpts]
            data_reply = self._read_reply()
        elif mail_reply.is_positive:
            for command in rcpts:
                rcpt_replies.append(self._exchange(command))
                if rcpt_replies[-1].code == 421:
                    break
        return mail_reply, rcpt_replies, data_reply

    def _mail_params(self, prepared: PreparedMessage) -> list[str]:
        extensions = self.extensions
        params: list[str] = []
        size = prepared.size
        if extensions.max_size is not None and size > extensions.max_size:
            raise MessageTooLarge(
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

    def _send_content(self, prepared: PreparedMessage) -> Reply:
        content = memoryview(prepared.content)
        conn = self._conn
        # Everything before the terminator: a failure here means the server cannot have
        # accepted the message (no final "."), so the error stays a retryable one.
        last_start = max(0, len(content) - CONTENT_SLICE)
        for start in range(0, last_start, CONTENT_SLICE):
            chunk = bytes(content[start : min(start + CONTENT_SLICE, last_start)])
            self._send_bytes(conn.content(chunk))
        tail = conn.content(bytes(content[last_start:])) + conn.end_content()
        recipients = prepared.envelope.recipients
        try:
            self._stream.send(tail)
            self._stream.set_timeout(self._settings.timeouts.final_reply)
            return self._read_reply()
        except (ServerDisconnected, OperationTimeout, RemoteProtocolError) as error:
            self.abort()
            raise DeliveryUnknown(
                f"the connection failed after the message was sent, before the server "
                f"confirmed it ({error.message}); it may or may not have been delivered",
                message_id=prepared.message_id,
                recipients=recipients,
                hint=(
                    "check the recipient's mailbox or the server's logs before sending "
                    "again; smtpkit never resends such a message by itself"
                ),
                transcript=self._conn.transcript,
            ) from None
        finally:
            if self._alive:
                self._stream.set_timeout(self._settings.timeouts.command)

    def _abandon(self, data_reply: Reply | None) -> None:
        """Close a failed transaction: finish a stray 354, then RSET (RFC 5321 §4.1.1.5)."""
        if not self._alive:
            return
        if data_reply is not None and data_reply.code == 354:
            # RFC 2920 §3.1: DATA accepted with no valid recipient - send an empty message's
            # terminator, and the server refuses it.
            self._send_bytes(self._conn.end_content())
            self._read_reply()
        if self._alive:
            self._exchange(Command.rset())

    # -- closing -------------------------------------------------------------------------

    def noop(self) -> bool:
        """A health check: True when the server answers NOOP with 250."""
        try:
            return self._exchange(Command.noop()).code == 250
        except (TransportError, ReplyError):
            self.abort()
            return False

    def quit(self) -> None:
        """Send QUIT, wait briefly for 221, and close. Never raises."""
        self._quit_quietly()

    def _quit_quietly(self) -> None:
        if self._alive:
            try:
                self._stream.set_timeout(min(self._settings.timeouts.command, 5.0))
                self._exchange(Command.quit())
            except SMTPError:
                pass
        self.abort()

    def abort(self) -> None:
        """Close the stream without QUIT."""
        self._alive = False
        self._conn.mark_closed()
        self._stream.close()

    # -- I/O helpers ---------------------------------------------------------------------

    def _write(self, commands: Sequence[Command]) -> None:
        data = b"".join(self._conn.send(command) for command in commands)
        for command in commands:
            wire_logger.debug("C: %s", command.redacted)
        self._send_bytes(data)

    def _send_bytes(self, data: bytes) -> None:
        # A failed send leaves the protocol state mid-command or mid-content: the session
        # must never be used again, or the next MAIL would be refused locally.
        try:
            self._stream.send(data)
        except TransportError as error:
            self.abort()
            error.attach_transcript(self._conn.transcript)
            raise

    def _exchange(self, command: Command) -> Reply:
        self._write([command])
        return self._read_reply()

    def _read_reply(self) -> Reply:
        return self._read(None).reply

    def _read(self, timeout: float | None) -> ReplyReceived:
        if timeout is not None:
            self._stream.set_timeout(timeout)
        conn = self._conn
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    conn.receive_data(self._stream.receive())
                    continue
                break
        except TransportError as error:
            self.abort()
            error.attach_transcript(conn.transcript)
            raise
        if isinstance(event, ConnectionClosed):
            self.abort()
            waiting = event.unanswered[0].redacted if event.unanswered else "the greeting"
            raise ServerDisconnected(
                f"{self._settings.host} closed the connection while the client waited for "
                f"the reply to {waiting}",
                transcript=conn.transcript,
            )
        for line in event.reply.to_bytes().decode("utf-8", "replace").splitlines():
            wire_logger.debug("S: %s", line)
        if event.command is None and conn.pending:
            # An unsolicited reply while commands await theirs (RFC 5321 §4.1.1.10 only
            # allows 421 here): treat it as the server giving up.
            self.abort()
            raise self._error(event.reply, Phase.GREETING)
        if event.reply.code == 421:
            self._alive = False
            self._stream.close()
        return event

    def _error(self, reply: Reply, phase: Phase, *, command: str | None = None) -> ReplyError:
        return error_for_reply(
            reply,
            phase,
            command=command,
            provider=self._provider,
            credential_kind=(self._settings.auth.credential_kind if self._settings.auth else None),
            transcript=self._conn.transcript,
        )

    def __repr__(self) -> str:
        state = "alive" if self._alive else "closed"
        tls = "TLS" if self.encrypted else "plaintext"
        return f"<Session {self._settings.host}:{self._settings.port} {tls} {state}>"

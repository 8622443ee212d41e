"""One connection's protocol state, and the I/O steps every engine module speaks through.

A :class:`Link` is what a negotiated connection is to the engine: the sans-IO
:class:`~smtpkit.protocol.ClientConnection`, the settings, what the server offered, and the
bookkeeping a pool needs (opened, last used, messages sent, login expiry). It holds no
stream: the driver keeps the stream next to it and performs the effects the link's steps
yield (:mod:`smtpkit.engine._effects`).

The steps here are the only places that yield ``Write`` and ``Receive``:

* :meth:`Link.write` registers commands with the protocol core and writes them in one go;
* :meth:`Link.read_reply` reads one reply under one deadline for the *whole* reply
  (``Timeouts.command``, or ``final_reply`` after content): a server dripping a reply byte by
  byte times out when the reply is due, not never.

Invariants:
    * Any transport failure, a closed stream, a ``421`` or a reply the protocol does not
      allow leaves the link dead (``alive`` false); the driver then closes its stream.
    * Errors are built here, from the one reply table. Secrets the server echoes in replies
      to AUTH are masked by the protocol core before any reply reaches the link.
    * No socket, TLS, clock, thread or logging: the clock is the callable the driver gave.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from smtpkit import providers
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security, Timeouts
from smtpkit.engine._effects import Log, LogLevel, Receive, Steps, Write
from smtpkit.errors import (
    LocalProtocolError,
    OperationTimeout,
    RemoteProtocolError,
    ServerDisconnected,
    SMTPError,
    TransportError,
    error_for_reply,
)
from smtpkit.protocol import (
    NEED_DATA,
    ClientConnection,
    Command,
    ConnectionClosed,
    Extensions,
    ReplyReceived,
)
from smtpkit.replies import Phase, Reply

if TYPE_CHECKING:
    from smtpkit.dkim import DKIMSigner

__all__ = ["DEADLINE_PASSED", "Link", "LinkSettings"]

E = TypeVar("E", bound=SMTPError)


@dataclass(frozen=True)
class LinkSettings:
    """Everything the engine needs to negotiate a connection and send on it.

    The TLS context and the transport stay with the driver: the engine only asks for a
    handshake (``StartTLS``) and for a connection (``Connect``).

    Attributes:
        host, port: the server (``host`` names the certificate and the OAUTHBEARER message).
        security: the :class:`~smtpkit.Security` mode.
        timeouts: the per-step :class:`~smtpkit.Timeouts`.
        local_hostname: the EHLO argument.
        auth: the authentication strategy, or ``None``.
        allow_unencrypted_auth: AUTH over plaintext to a peer that is not loopback.
        provider: a preset name or provider family, for hints.
        dkim: the submitter's DKIM signer for every message (a message's own wins).
        chunking: use BDAT (RFC 3030) when the server offers CHUNKING.
        window: with PIPELINING and CHUNKING, keep up to this many whole transactions in
            flight on one connection (:mod:`smtpkit.engine._window`); ``1`` sends the
            next message's envelope only behind the previous one's content.
    """

    host: str
    port: int
    security: Security
    timeouts: Timeouts
    local_hostname: str
    auth: AuthStrategy | None = None
    allow_unencrypted_auth: bool = False
    provider: str | None = None
    dkim: DKIMSigner | None = None
    chunking: bool = True
    window: int = 1

    @property
    def server_hostname(self) -> str:
        """The name the certificate must match (the host, without IPv6 brackets)."""
        return self.host.strip("[]")


class Link:
    """The protocol state of one connection, between the engine's steps.

    Attributes:
        settings: what the link was opened with.
        conn: the sans-IO protocol state.
        peer: the address the driver connected to (``Connected.peer``).
        encrypted: TLS is up.
        alive: false once the connection failed, was closed, or the server said 421.
        opened_at, last_used: clock values (the driver's clock).
        messages_sent: messages the server accepted on this link.
        reused: the link was handed out again after being idle (a pool sets it).
        auth_expires_at: when the OAuth2 token used to log in expires, if known.
        trace: yield ``Log(WIRE, ...)`` for every line (the driver sets it when its wire
            logger is enabled).
    """

    def __init__(
        self,
        settings: LinkSettings,
        clock: Callable[[], float],
        *,
        peer: str | None,
        encrypted: bool,
        trace: bool = False,
    ) -> None:
        self.settings = settings
        self.conn = ClientConnection()
        self.clock = clock
        self.peer = peer
        self.encrypted = encrypted
        self.trace = trace
        self.alive = True
        # A preset key ("microsoft365", "ses:eu-west-1") names a provider family for the
        # reply table and adds preset-specific advice (limits, login rules) to errors.
        self.preset = providers.find(settings.provider)
        self.provider = self.preset.family if self.preset else settings.provider
        self.opened_at = clock()
        self.last_used = self.opened_at
        self.messages_sent = 0
        self.reused = False
        self.auth_expires_at: datetime | None = None
        #: Octets received towards the reply being read (0 when none has started).
        self.partial = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def extensions(self) -> Extensions:
        """The server's capabilities from the latest EHLO."""
        extensions = self.conn.extensions
        if extensions is None:
            raise RemoteProtocolError("no EHLO capabilities known for this connection")
        return extensions

    @property
    def transcript(self) -> tuple[str, ...]:
        """The redacted conversation so far (newest last)."""
        return self.conn.transcript

    def mark_dead(self) -> None:
        """Record that the stream is gone or must not be used again."""
        self.alive = False
        self.conn.mark_closed()

    def token_expires_within(self, seconds: float, now: datetime) -> bool:
        """Whether the OAuth2 token this link logged in with expires within ``seconds``."""
        expires = self.auth_expires_at
        return expires is not None and (expires - now).total_seconds() <= seconds

    # -- I/O steps -----------------------------------------------------------------------

    def encode(self, commands: Sequence[Command]) -> bytes:
        """Register ``commands`` with the protocol core and return their bytes."""
        return b"".join([self.conn.send(command) for command in commands])

    def write(self, commands: Sequence[Command]) -> Steps[None]:
        """Send ``commands`` in one write (pipelined when more than one)."""
        yield from self.send_bytes(self.encode(commands))
        if self.trace:
            for command in commands:
                yield Log(LogLevel.WIRE, f"C: {command.redacted}")

    def send_bytes(self, data: bytes, *, keep: bool = False) -> Steps[None]:
        """Write ``data``; a failure kills the link (its protocol state is mid-command).

        With ``keep`` a failed write leaves the link as it is, so that the replies already
        due can still be read (the BDAT window: a ``421`` may be waiting); the caller must
        write nothing more and mark the link dead once it has read them.
        """
        try:
            yield Write(data, self.settings.timeouts.command)
        except TransportError as error:
            if not keep:
                self.mark_dead()
            error.attach_transcript(self.transcript)
            raise

    def read_reply(self, timeout: float | None = None) -> Steps[Reply]:
        """The next reply, complete within ``timeout`` seconds (default: ``command``).

        Raises:
            OperationTimeout: the reply was not complete in time (the link is dead).
            ServerDisconnected: the server closed the connection first.
            RemoteProtocolError: the server sent something that is not SMTP.
        """
        conn = self.conn
        limit = self.settings.timeouts.command if timeout is None else timeout
        deadline: float | None = None
        self.partial = 0
        while True:
            try:
                event = conn.next_event()
                if event is not NEED_DATA:
                    break
                if deadline is None:
                    deadline = self.clock() + limit
                try:
                    data = yield Receive(deadline)
                except OperationTimeout as late:
                    raise self._late(limit, late) from None
                if not isinstance(data, bytes):
                    raise LocalProtocolError(f"Receive was answered with {type(data).__name__}")
                self.partial += len(data)
                conn.receive_data(data)
            except TransportError as error:
                self.mark_dead()
                error.attach_transcript(self.transcript)
                raise
        reply = self._reply_of(event)
        if self.trace:
            shown = reply.to_bytes().decode("utf-8", "replace")
            for line in shown.splitlines():
                yield Log(LogLevel.WIRE, f"S: {line}")
        return reply

    def poll_reply(self) -> Reply | None:
        """The next reply if it has already arrived whole, else ``None`` (nothing is read).

        The cheap path for pipelined replies, which mostly arrive in one read: no step and
        no effect. With ``trace`` on it answers ``None``, so :meth:`read_reply` logs it.
        """
        if self.trace:
            return None
        try:
            event = self.conn.next_event()
        except TransportError as error:
            self.mark_dead()
            error.attach_transcript(self.transcript)
            raise
        if event is NEED_DATA:
            return None
        return self._reply_of(event)

    def _reply_of(self, event: ReplyReceived | ConnectionClosed) -> Reply:
        """The reply an event carries; a closed connection raises, a ``421`` kills the link."""
        if isinstance(event, ConnectionClosed):
            self.mark_dead()
            waiting = event.unanswered[0].redacted if event.unanswered else "the greeting"
            raise ServerDisconnected(
                f"{self.settings.host} closed the connection while the client waited for "
                f"the reply to {waiting}",
                transcript=self.transcript,
            )
        self.partial = 0
        reply = event.reply
        if reply.code == 421:
            # RFC 5321 §3.8: the server is closing the channel; nothing more will come.
            self.mark_dead()
        return reply

    def _late(self, timeout: float, late: OperationTimeout) -> OperationTimeout:
        """The error for a reply not complete when due (``late``: the driver's timeout).

        A reply that started and stalled gets a hint (the server drips); one that never
        started keeps what the driver knew (a fake's held-back reply says how late it was).
        """
        waiting = self.conn.pending[0].redacted if self.conn.pending else "a reply"
        waiting = "the greeting" if waiting == "<greeting>" else waiting
        message = f"{self.settings.host} sent no complete reply to {waiting} within {timeout:g} s"
        if self.partial:
            return OperationTimeout(
                f"{message} ({self.partial} octets of it arrived)",
                hint=(
                    "the server answers a little at a time and stalls; try again later, or "
                    "allow more time with Timeouts (command, or final_reply for the reply "
                    "to the content)"
                ),
                transcript=self.transcript,
            )
        detail = f" ({late.message})" if late.message and late.message != DEADLINE_PASSED else ""
        return OperationTimeout(f"{message}{detail}", hint=late.hint, transcript=self.transcript)

    def exchange(self, command: Command, timeout: float | None = None) -> Steps[Reply]:
        """Send one command and read its reply."""
        yield from self.write([command])
        return (yield from self.read_reply(timeout))

    def quit(self) -> Steps[None]:
        """QUIT politely when the link is still usable (never raises); the link is dead after.

        Transcript::

            C: QUIT
            S: 221 2.0.0 Bye
        """
        if self.alive:
            # A server that hangs up instead of answering QUIT changes nothing.
            with contextlib.suppress(SMTPError):
                yield from self.exchange(
                    Command.quit(), min(self.settings.timeouts.command, QUIT_TIMEOUT)
                )
        self.mark_dead()

    # -- errors --------------------------------------------------------------------------

    def error(self, reply: Reply, phase: Phase, *, command: str | None = None) -> SMTPError:
        """The typed error for a failure reply, with the preset's advice added.

        A positive reply where another was required (``250`` to STARTTLS, say) is not a
        refusal the reply table can classify: it is the server breaking the protocol.
        """
        if reply.is_positive:
            return self.unexpected(reply, command or phase.value.upper())
        auth = self.settings.auth
        return self.enrich(
            error_for_reply(
                reply,
                phase,
                command=command,
                provider=self.provider,
                credential_kind=auth.credential_kind if auth is not None else None,
                transcript=self.transcript,
            )
        )

    def unexpected(self, reply: Reply, command: str) -> RemoteProtocolError:
        """Kill the link for a reply the protocol does not allow; the error to raise."""
        self.mark_dead()
        return RemoteProtocolError(
            f"the server answered {command} with {reply}, which the protocol does not allow there",
            transcript=self.transcript,
        )

    def enrich(self, error: E) -> E:
        """Add the provider preset's advice (limits, login rules) to ``error``'s hint."""
        return providers.enrich(error, self.preset)

    def __repr__(self) -> str:
        state = "alive" if self.alive else "closed"
        tls = "TLS" if self.encrypted else "plaintext"
        return f"<Link {self.settings.host}:{self.settings.port} {tls} {state}>"


#: Seconds to wait for the reply to QUIT at most: the answer changes nothing.
QUIT_TIMEOUT = 5.0

#: What a driver's ``OperationTimeout`` says when a deadline passed before it could even
#: read (the engine's own message then says it all).
DEADLINE_PASSED = "the deadline passed before the step could start"

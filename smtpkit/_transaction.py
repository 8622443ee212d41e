"""Mail transactions on one session, pipelined within and across messages.

With PIPELINING (RFC 2920 §3.1) a steady stream of messages costs about one round trip
each: the end of one message's content travels together with the next message's envelope::

    C: MAIL FROM:<a@example.com>         \\
    C: RCPT TO:<b@example.com>            > one flight
    C: DATA                              /
    S: 250 / 250 / 354
    C: <content 1> .                     \\
    C: MAIL FROM:<a@example.com>          > one flight: end of message 1 + envelope of 2
    C: RCPT TO:<c@example.com>           /
    C: DATA
    S: 250 queued (message 1) / 250 / 250 / 354 (message 2)
    ...

With CHUNKING (RFC 3030) ``BDAT n LAST`` replaces ``DATA`` + ``354`` + dot-stuffing: the
content goes out as soon as the envelope's replies show at least one accepted recipient.

Invariants:
    * Every reply is matched to its command by the protocol core, so a refusal is reported
      against the right message and recipient.
    * Content is sent only after the server accepted at least one recipient (and, for DATA,
      answered 354).
    * A message's outcome is a :class:`~smtpkit.SendResult` only after a 2xx final reply. A
      transport failure after its final ``.`` / ``BDAT LAST`` gives ``DeliveryUnknown``; a
      failure before that gives a retryable error (``ConnectionStale`` when nothing of the
      message could have been accepted).
    * After a failed envelope, RSET is sent (pipelined with the next envelope); after a
      refused BDAT chunk before the last, RSET is sent before the next MAIL.
    * Nothing waits between a transaction's MAIL and its final reply: the next message is
      taken only if it may start at once, and outcomes of a refused envelope are handed
      out after its RSET.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

from smtpkit._result import SendResult
from smtpkit._session import Session
from smtpkit.errors import (
    ConnectionStale,
    DeliveryUnknown,
    RemoteProtocolError,
    SMTPError,
    TransportError,
    error_for_reply,
)
from smtpkit.message import PreparedMessage
from smtpkit.protocol import Command
from smtpkit.replies import Phase, Reply

__all__ = ["Outcome", "run_transactions"]

J = TypeVar("J")
_DATA = Command.data()  # immutable: one instance serves every message
Outcome = SendResult | SMTPError


@dataclass
class _Flight(Generic[J]):
    """One message on its way through the transaction."""

    job: J
    prepared: PreparedMessage
    mail: Command
    rcpts: list[Command]
    with_data: bool  # DATA is part of the envelope (no CHUNKING)
    replies: list[Reply] = field(default_factory=list)
    _envelope: list[Command] | None = field(default=None, repr=False)

    def envelope(self) -> list[Command]:
        if self._envelope is None:
            commands = [self.mail, *self.rcpts]
            if self.with_data:
                commands.append(_DATA)
            self._envelope = commands
        return self._envelope


def _unknown(session: Session, flight: _Flight[J], error: SMTPError) -> DeliveryUnknown:
    prepared = flight.prepared
    return DeliveryUnknown(
        "the connection failed after the message was sent, before the server confirmed it "
        f"({getattr(error, 'message', error)}); it may or may not have been delivered",
        message_id=prepared.message_id,
        recipients=prepared.envelope.recipients,
        hint=(
            "check the recipient's mailbox or the server's logs before sending again; "
            "smtpkit never resends such a message by itself"
        ),
        transcript=session.transcript,
    )


def _stale(session: Session, error: SMTPError) -> ConnectionStale:
    stale = ConnectionStale(
        f"{error}; the message was not accepted and can be sent again",
        transcript=session.transcript,
    )
    stale.__cause__ = error
    return stale


def run_transactions(
    session: Session,
    jobs: Iterator[J],
    prepare: Callable[[J], PreparedMessage],
) -> Iterator[tuple[J, Outcome]]:
    """Send every job's message on ``session``, yielding each job with its outcome.

    Stops early (after yielding the outcome of every message in flight) when the session
    dies; jobs not yet taken from ``jobs`` stay there for another session.

    Args:
        session: a negotiated session.
        jobs: where to take messages from; pulled lazily, one ahead at most.
        prepare: turns a job into a prepared message (may raise ``SMTPError``, which
            becomes that job's outcome without anything being sent).
    """
    runner = _Runner(session, jobs, prepare)
    yield from runner.run()


class _Runner(Generic[J]):
    def __init__(
        self,
        session: Session,
        jobs: Iterator[J],
        prepare: Callable[[J], PreparedMessage],
    ) -> None:
        self.session = session
        self.jobs = jobs
        self.prepare = prepare
        extensions = session.extensions
        self.pipelining = extensions.pipelining
        self.chunking = extensions.chunking and session.settings.chunking
        self.early: list[tuple[J, Outcome]] = []
        # Nothing accepted on this session yet in this run and the session was used
        # before: a failure at the first envelope means the idle connection had died.
        self.may_be_stale = session.messages_sent > 0 or session.reused

    # -- taking jobs ---------------------------------------------------------------------

    def take(self) -> _Flight[J] | None:
        """The next job that prepares cleanly; local failures become outcomes at once."""
        for job in self.jobs:
            try:
                prepared = self.prepare(job)
                params = self.session.mail_params(prepared)
                mail = Command.mail(prepared.envelope.sender, params)
                rcpts = [Command.rcpt(address) for address in prepared.envelope.recipients]
            except SMTPError as error:
                self.early.append((job, error))
                continue
            return _Flight(job, prepared, mail, rcpts, with_data=not self.chunking)
        return None

    def drain_early(self) -> Iterator[tuple[J, Outcome]]:
        while self.early:
            yield self.early.pop(0)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> Iterator[tuple[J, Outcome]]:
        session = self.session
        flight = self.take()
        yield from self.drain_early()
        if flight is None:
            return
        try:
            if self.pipelining:
                session.write(flight.envelope())
        except TransportError as error:
            yield flight.job, self._before_accept(error)
            return
        while flight is not None:
            try:
                outcome = self._read_envelope(flight)
            except TransportError as error:
                yield flight.job, self._before_accept(error)
                return
            # Later envelopes travel behind an earlier message on a connection this run
            # has used: a server closing it there (a per-session limit, an idle cutoff)
            # cannot have accepted them, so they count as stale too.
            self.may_be_stale = True
            if outcome is not None:
                # Refused envelope: RSET (after an empty DATA if the server said 354).
                if not session.alive:
                    yield flight.job, outcome
                    return
                next_flight = self.take()
                try:
                    self._reset(flight, next_flight)
                except TransportError as error:
                    yield from self.drain_early()
                    yield flight.job, outcome
                    if next_flight is not None:
                        yield next_flight.job, _stale(session, error)
                    return
                # Outcomes are handed out once the refused transaction is reset, so the
                # caller's code never runs while it is open (DESIGN rule 10).
                yield from self.drain_early()
                yield flight.job, outcome
                if not session.alive:
                    # 421 to RSET (RFC 5321 §3.8): the server closed the channel, so the
                    # next message, pipelined or not yet sent, was not accepted; it goes
                    # out on a new connection.
                    if next_flight is not None:
                        yield next_flight.job, self._gone(next_flight)
                    return
                flight = next_flight
                continue
            next_flight = self.take()
            yield from self.drain_early()
            result, next_sent = self._content(flight, next_flight)
            yield flight.job, result
            if next_flight is None:
                return
            if not session.alive:
                yield next_flight.job, self._gone(next_flight)
                return
            if not next_sent:
                try:
                    if self.pipelining:
                        session.write(next_flight.envelope())
                except TransportError as error:
                    yield next_flight.job, _stale(session, error)
                    return
            flight = next_flight

    def _gone(self, flight: _Flight[J]) -> SMTPError:
        return ConnectionStale(
            "the server closed the connection before this message's envelope was answered; "
            "the message was not accepted and can be sent again",
            transcript=self.session.transcript,
        )

    def _before_accept(self, error: TransportError) -> SMTPError:
        if self.may_be_stale and not isinstance(error, RemoteProtocolError):
            return _stale(self.session, error)
        return error

    # -- envelope ------------------------------------------------------------------------

    def _read_envelope(self, flight: _Flight[J]) -> SMTPError | None:
        """Read (or, without PIPELINING, exchange) the envelope; an error if it failed."""
        session = self.session
        replies = flight.replies
        if self.pipelining:
            for _ in flight.envelope():
                replies.append(session.read_reply())
                if not session.alive:
                    # 421 (RFC 5321 §3.8): the server closed the channel; the commands
                    # after it get no reply, and reading on would fail on a closed stream.
                    break
        else:
            replies.append(session.exchange(flight.mail))
            if replies[0].is_positive:
                for command in flight.rcpts:
                    replies.append(session.exchange(command))
                    if replies[-1].code == 421:
                        break
                accepted = any(r.is_positive for r in replies[1:])
                if flight.with_data and accepted and session.alive:
                    replies.append(session.exchange(Command.data()))
        return self._judge(flight)

    def _judge(self, flight: _Flight[J]) -> SMTPError | None:
        session = self.session
        replies = flight.replies
        mail_reply = replies[0]
        if mail_reply.code == 421 and self.may_be_stale:
            return _stale(session, session.error(mail_reply, Phase.MAIL))
        if not mail_reply.is_positive:
            return session.error(mail_reply, Phase.MAIL, command=flight.mail.redacted)
        rcpt_replies = replies[1 : 1 + len(flight.rcpts)]
        rejected = {
            command.address or "": reply
            for command, reply in zip(flight.rcpts, rcpt_replies, strict=False)
            if not reply.is_positive
        }
        for address, reply in rejected.items():
            if reply.code == 421:
                return session.error(reply, Phase.RCPT, command=f"RCPT TO:<{address}>")
        if len(rejected) == len(flight.rcpts) or len(rcpt_replies) < len(flight.rcpts):
            first_address, first_reply = next(iter(rejected.items()))
            return session.enrich(
                error_for_reply(
                    first_reply,
                    Phase.RCPT,
                    command=f"RCPT TO:<{first_address}>",
                    recipient=first_address,
                    rejected=rejected,
                    provider=session.provider,
                    transcript=session.transcript,
                )
            )
        if flight.with_data:
            data_reply = replies[-1]
            if data_reply.code != 354:
                return session.error(data_reply, Phase.DATA, command="DATA")
        return None

    def _reset(self, flight: _Flight[J], next_flight: _Flight[J] | None) -> None:
        """RSET after a refused envelope, with the next envelope in the same flight."""
        session = self.session
        conn = session.conn
        data = b""
        stray_354 = flight.with_data and flight.replies and flight.replies[-1].code == 354
        if stray_354:
            # RFC 2920 §3.1: DATA accepted without a valid recipient: end an empty message.
            data += conn.end_content()
        commands = [Command.rset()]
        if next_flight is not None and self.pipelining:
            commands.extend(next_flight.envelope())
        # Without PIPELINING the flight is RSET alone: DATA was sent only after an accepted
        # RCPT, so there is no stray 354 to end, and no next envelope rides along.
        data += session.encode(commands)
        session.send_bytes(data)
        if stray_354:
            session.read_reply()
        session.read_reply()

    # -- content -------------------------------------------------------------------------

    def _abandon_chunks(self) -> None:
        """RSET after a refused BDAT chunk before the last: whether that ended the
        transaction is up to the server (RFC 3030 §2), and RSET is right either way."""
        session = self.session
        if not session.alive:
            return
        # A failure closes the session; the refusal stays the message's outcome.
        with contextlib.suppress(TransportError):
            session.exchange(Command.rset())

    def _final_reply(self) -> tuple[Reply, Phase]:
        """Read the replies to the content and return the one that decides, with its phase.

        Pipelined BDAT chunks (RFC 3030 §4.2) get one reply each: the first refusal decides
        (``Phase.DATA`` for a chunk before the last), later replies are read and dropped.
        After a 421 nothing more comes (RFC 5321 §3.8), so reading stops there.
        """
        session = self.session
        if not self.chunking:
            return session.read_reply(), Phase.MESSAGE  # DATA: one reply, to the final "."
        phases = [c.phase for c in session.conn.pending if c.verb in ("BDAT", ".")]
        decided: tuple[Reply, Phase] | None = None
        reply = None
        for phase in phases or [Phase.MESSAGE]:
            reply = session.read_reply()
            if decided is None and not reply.is_positive:
                decided = (reply, phase)
            if not session.alive:
                break
        assert reply is not None  # at least one reply was read
        return decided or (reply, Phase.MESSAGE)

    def _content(self, flight: _Flight[J], next_flight: _Flight[J] | None) -> tuple[Outcome, bool]:
        """Send the content (with the next envelope pipelined behind it) and read the
        final reply. Returns the outcome and whether the next envelope was sent."""
        session = self.session
        conn = session.conn
        chunks = _lookahead(flight.prepared.iter_content())
        several_chunks = False
        try:
            if self.chunking:
                tail = b""
                for chunk, last in chunks:
                    piece = session.encode_chunk(chunk, last=last)
                    if last:
                        tail = piece
                    else:
                        several_chunks = True
                        session.send_bytes(piece)
                        if not self.pipelining:
                            reply = session.read_reply()
                            if not reply.is_positive:
                                error = session.error(reply, Phase.DATA, command="BDAT")
                                self._abandon_chunks()
                                return error, False
            else:
                tail = b""
                for chunk, last in chunks:
                    encoded = conn.content(chunk)
                    if last:
                        tail = encoded
                    else:
                        session.send_bytes(encoded)
                tail += conn.end_content()
        except TransportError as error:
            # The end of the content never left: the server cannot have accepted it.
            return error, False
        # After a refused chunk before the last, RSET must precede the next MAIL: servers
        # differ on whether the refusal ended the transaction (RFC 3030 §2; Postfix ends it
        # at BDAT LAST, others keep it open and would answer MAIL with 503). Only the
        # replies tell, so the next envelope does not ride behind a message sent in several
        # chunks (at least 1 MiB: one round trip more is small beside its transfer).
        next_sent = next_flight is not None and self.pipelining and not several_chunks
        if next_sent:
            assert next_flight is not None
            tail += session.encode(next_flight.envelope())
        try:
            session.send_bytes(tail)
            session.set_timeout(session.settings.timeouts.final_reply)
            final, phase = self._final_reply()
        except TransportError as error:
            return _unknown(session, flight, error), next_sent
        finally:
            if session.alive:
                session.set_timeout(session.settings.timeouts.command)
        session.last_used = session.clock()
        if not final.is_positive:
            command = "BDAT" if phase is Phase.DATA else "end of data"
            refusal = session.error(final, phase, command=command)
            if phase is Phase.DATA:  # a chunk before the last was refused (pipelined)
                self._abandon_chunks()
            return refusal, next_sent
        session.messages_sent += 1
        return _result(flight, final), next_sent


def _result(flight: _Flight[J], final: Reply) -> SendResult:
    """The result of a message the server accepted with ``final``."""
    rcpt_replies = flight.replies[1 : 1 + len(flight.rcpts)]
    accepted = tuple(
        c.address or "" for c, r in zip(flight.rcpts, rcpt_replies, strict=True) if r.is_positive
    )
    rejected = {
        c.address or "": r
        for c, r in zip(flight.rcpts, rcpt_replies, strict=True)
        if not r.is_positive
    }
    return SendResult(
        message_id=flight.prepared.message_id,
        sender=flight.prepared.envelope.sender,
        accepted=accepted,
        rejected=MappingProxyType(rejected),
        reply=final,
    )


def _lookahead(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Pair each chunk with whether it is the last; an empty content yields one b""."""
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    yield (previous if previous is not None else b""), True

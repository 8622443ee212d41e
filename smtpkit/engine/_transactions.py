"""Mail transactions on one link, pipelined within and across messages.

With PIPELINING (RFC 2920 §3.1) a steady stream of messages costs about one round trip
each: the end of one message's content travels with the next message's envelope::

    C: MAIL FROM:<a@example.com>         \\
    C: RCPT TO:<b@example.com>            > one write
    C: DATA                              /
    S: 250 / 250 / 354
    C: <content 1> .                     \\
    C: MAIL FROM:<a@example.com>          > one write: end of message 1 + envelope of 2
    C: RCPT TO:<c@example.com>           /
    C: DATA
    S: 250 queued (message 1) / 250 / 250 / 354 (message 2)

With CHUNKING (RFC 3030) ``BDAT n LAST`` replaces ``DATA``, ``354`` and dot-stuffing, and
with ``LinkSettings.window`` > 1 the run keeps several whole transactions in flight
(:mod:`smtpkit.engine._window`); this module's loop is then ``window=1``.

The next message is taken (``TakeNext``) only when its envelope can ride along *now*; the
driver answers at once, so nothing ever waits inside an open transaction.

Each message taken ends with exactly one ``Report``:

* a :class:`~smtpkit.SendResult` after a 2xx final reply (accepted);
* a typed error for a refusal (envelope, content) or a local check (SIZE, 8BITMIME...);
* :class:`~smtpkit.errors.DeliveryUnknown` when the link failed after the final ``.`` /
  ``BDAT LAST`` went out and before its reply: the server may have accepted it;
* :class:`~smtpkit.errors.ConnectionStale` when the link failed where the server cannot have
  accepted anything (an envelope behind another message, or on a reused link): not started,
  safe to send again on another connection.

Invariants:
    * Content is sent only after the server accepted at least one recipient (and, for DATA,
      answered 354).
    * RSET follows a refused envelope (ending an empty message first if the server said
      354 anyway, RFC 2920 §3.1) and a refused BDAT chunk (RFC 3030: the state is then
      indeterminate), before any other command of the next message.
    * After a 421 (RFC 5321 §3.8) nothing more is sent; the messages behind it are stale.
    * :meth:`Transactions.abandoned` gives the outcome of every message still open when the
      driver stops the run (a cancelled task, a crash): unknown after the final ``.``, stale
      before it.
"""

from __future__ import annotations

import contextlib
from typing import Generic, TypeVar, cast

from smtpkit.engine._effects import TAKE_NEXT, Report, Steps
from smtpkit.engine._flight import (
    Flight,
    Submission,
    envelope_error,
    lookahead,
    result_of,
)
from smtpkit.engine._link import Link
from smtpkit.engine._options import prepare_envelope
from smtpkit.engine._result import SendResult
from smtpkit.engine._window import Window
from smtpkit.errors import (
    ConnectionStale,
    DeliveryUnknown,
    RemoteProtocolError,
    SMTPError,
    TransportError,
)
from smtpkit.protocol import Command
from smtpkit.replies import Phase, Reply

__all__ = ["Transactions"]

J = TypeVar("J", bound=Submission)

_RSET = Command.rset()  # immutable: one instance serves every reset
#: Octets of content written at a time (PreparedMessage.iter_content's default).
_CHUNK = 1 << 20


class Transactions(Generic[J]):
    """Send ``first`` and then whatever ``TakeNext`` hands out, on one live link.

    Usage (the driver performs the effects)::

        run = Transactions(link, job)
        drive(run.steps())       # Report(job, outcome) for every job taken

    The run ends when no job is ready, or when the link dies (``link.alive`` false).
    """

    def __init__(self, link: Link, first: J) -> None:
        self.link = link
        self._first: J | None = first
        self.extensions = extensions = link.extensions
        self.pipelining = extensions.pipelining
        self.chunking = extensions.chunking and link.settings.chunking
        #: Whole transactions in flight at once (BDAT only: DATA waits for its 354).
        self.window = link.settings.window if self.chunking and self.pipelining else 1
        #: Flights taken whose outcome is not reported yet, oldest first.
        self.open: list[Flight[J]] = []
        # A failure before a message could be accepted is "stale" (resend for free) when
        # the link was used before: an idle link the server dropped, or a message queued
        # behind another one on this link.
        self._stale_ok = link.messages_sent > 0 or link.reused

    # -- outcomes ------------------------------------------------------------------------

    def abandoned(self, cause: BaseException | None = None) -> list[tuple[J, SMTPError]]:
        """Outcomes for every message still open, when the driver stops the run early.

        A message whose final ``.`` / ``BDAT LAST`` was written is ``DeliveryUnknown``; any
        other was certainly not accepted (``ConnectionStale``). Clears :attr:`open`.
        """
        why = f" ({cause})" if cause is not None and str(cause) else ""
        out: list[tuple[J, SMTPError]] = []
        for flight in self.open:
            if flight.committed:
                out.append((flight.job, self._unknown(flight, f"the send was stopped{why}")))
            else:
                out.append((flight.job, self._stale(f"the send was stopped{why}")))
        self.open.clear()
        return out

    def _report(self, flight: Flight[J], result: SendResult | SMTPError) -> Steps[None]:
        if flight in self.open:
            self.open.remove(flight)
        yield Report(flight.job, result)

    def _stale(self, why: str) -> ConnectionStale:
        return ConnectionStale(
            f"{why}; the message was not accepted and can be sent again",
            transcript=self.link.transcript,
        )

    def _unknown(self, flight: Flight[J], why: str) -> DeliveryUnknown:
        prepared = flight.prepared
        return DeliveryUnknown(
            f"the connection failed after the message was sent, before the server confirmed "
            f"it ({why}); it may or may not have been delivered",
            message_id=prepared.message_id,
            recipients=prepared.envelope.recipients,
            hint=(
                "check the recipient's mailbox or the server's logs for this Message-ID "
                "before sending again; smtpkit never resends such a message by itself"
            ),
            transcript=self.link.transcript,
        )

    def _before_accept(self, error: SMTPError) -> SMTPError:
        if isinstance(error, ConnectionStale):
            return error
        if self._stale_ok and not isinstance(error, RemoteProtocolError):
            stale = self._stale(str(error))
            stale.__cause__ = error
            return stale
        return error

    def _abandon_rest(self, why: str) -> Steps[None]:
        """The link is dead: every open message that was not committed is stale."""
        for flight in list(self.open):
            if flight.committed:
                yield from self._report(flight, self._unknown(flight, why))
            else:
                yield from self._report(flight, self._stale(why))

    # -- taking jobs ---------------------------------------------------------------------

    def _prepare(self, job: J) -> Steps[Flight[J] | None]:
        """A flight for ``job``, or ``None`` after reporting why it cannot be sent."""
        link = self.link
        extensions = self.extensions
        try:
            # Prepared, DKIM-signed, with its parameters (SIZE, DSN...): engine/_options.py
            prepared, mail, rcpts = prepare_envelope(job, link, extensions)
        except SMTPError as error:
            yield Report(job, error)
            return None
        flight = Flight(job, prepared, mail, rcpts, with_data=not self.chunking)
        self.open.append(flight)
        return flight

    def _take(self) -> Steps[Flight[J] | None]:
        """The next job that prepares cleanly, if one is ready now."""
        while True:
            if self._first is not None:
                job, self._first = self._first, None
            else:
                answer = yield TAKE_NEXT
                if answer is None:
                    return None
                job = cast(J, answer)  # the driver hands out its own jobs
            flight = yield from self._prepare(job)
            if flight is not None:
                return flight

    # -- the loop ------------------------------------------------------------------------

    def steps(self) -> Steps[None]:
        """The run: every job taken gets one ``Report``."""
        if self.window > 1:
            yield from Window(self, self.window).steps()
            return
        link = self.link
        flight = yield from self._take()
        sent_ahead = False  # the flight's envelope went out with the previous write
        while flight is not None and link.alive:
            try:
                if not sent_ahead and self.pipelining:
                    yield from link.write(flight.commands)
                refusal = yield from self._read_envelope(flight)
            except TransportError as error:
                yield from self._report(flight, self._before_accept(error))
                yield from self._abandon_rest(str(error))
                return
            # Messages after this one travel behind it on a link this run has used.
            self._stale_ok = True
            if refusal is not None:
                flight, sent_ahead = yield from self._refused(flight, refusal)
                continue
            following = (yield from self._take()) if self.pipelining else None
            sent_ahead = yield from self._content(flight, following)
            if following is None and link.alive:
                following = yield from self._take()
            flight = following
        if flight is not None:  # the link died with a message taken and not sent
            yield from self._abandon_rest("the server closed the connection")

    # -- envelope ------------------------------------------------------------------------

    def _read_envelope(self, flight: Flight[J]) -> Steps[SMTPError | None]:
        """Read (or, without PIPELINING, exchange) the envelope; an error if refused."""
        link = self.link
        replies = flight.replies
        if not link.alive:
            raise self._stale("the server closed the connection before the envelope was answered")
        if self.pipelining:
            if flight.redo:
                # Sent behind a refused BDAT: the server's state was indeterminate (RFC
                # 3030). Drop those answers, RSET, and send the envelope again.
                for _ in flight.envelope():
                    yield from link.read_reply()
                    if not link.alive:
                        raise self._stale("the server closed the connection after a refused BDAT")
                flight.redo = False
                yield from link.write([_RSET, *flight.envelope()])
                yield from link.read_reply()
            for _ in flight.commands:
                # Pipelined replies mostly arrive in one read: the later ones are there.
                reply = link.poll_reply()
                if reply is None:
                    reply = yield from link.read_reply()
                replies.append(reply)
                if not link.alive:
                    # 421 (RFC 5321 §3.8): the commands after it get no reply.
                    break
        else:
            replies.append((yield from link.exchange(flight.mail)))
            if replies[0].is_positive:
                for command in flight.rcpts:
                    replies.append((yield from link.exchange(command)))
                    if not link.alive:
                        break
                accepted = any(reply.is_positive for reply in replies[1:])
                if flight.with_data and accepted and link.alive:
                    replies.append((yield from link.exchange(Command.data())))
        return envelope_error(link, flight, stale_ok=self._stale_ok)

    def _refused(
        self, flight: Flight[J], refusal: SMTPError
    ) -> Steps[tuple[Flight[J] | None, bool]]:
        """Report a refused envelope and reset; returns the next flight and whether its
        envelope already went out (pipelined behind the RSET)."""
        link = self.link
        stray_354 = flight.with_data and bool(flight.replies) and flight.replies[-1].code == 354
        following = (yield from self._take()) if self.pipelining and link.alive else None
        yield from self._report(flight, refusal)
        if not link.alive:
            return following, False  # the loop reports it stale
        try:
            data = b""
            if stray_354:
                # RFC 2920 §3.1: DATA accepted without a valid recipient: end an empty message.
                data += link.conn.end_content()
            commands = [_RSET]
            if following is not None:
                commands.extend(following.envelope())
            data += link.encode(commands)
            yield from link.send_bytes(data)
            if stray_354:
                yield from link.read_reply()
            yield from link.read_reply()
        except TransportError as error:
            if following is not None:
                yield from self._report(following, self._before_accept(error))
            return None, False
        if following is None and link.alive:
            following = yield from self._take()
            return following, False
        return following, following is not None

    # -- content -------------------------------------------------------------------------

    def _content(self, flight: Flight[J], following: Flight[J] | None) -> Steps[bool]:
        """Send the content, with the next envelope behind its end, and report the outcome.

        Returns whether the next envelope went out.
        """
        link = self.link
        conn = link.conn
        tail = b""
        several_chunks = False
        prepared = flight.prepared
        # The common small message is one chunk: no generator pair to walk.
        chunks = (
            ((prepared.content, True),)
            if prepared.size <= _CHUNK
            else lookahead(prepared.iter_content(_CHUNK))
        )
        try:
            for chunk, last in chunks:
                piece = conn.send_chunk(chunk, last=last) if self.chunking else conn.content(chunk)
                if last:
                    tail = piece
                    break
                several_chunks = self.chunking
                yield from link.send_bytes(piece)
                if self.chunking and not self.pipelining:
                    reply = yield from link.read_reply(link.settings.timeouts.final_reply)
                    if not reply.is_positive:
                        # RFC 3030: send no more chunks; RSET clears the indeterminate state.
                        refused = link.error(reply, Phase.DATA, command="BDAT")
                        yield from self._report(flight, refused)
                        yield from self._reset_now()
                        return False
            if not self.chunking:
                tail += conn.end_content()
        except TransportError as error:
            # The end of the content never left: the server cannot have accepted it.
            yield from self._report(flight, error)
            return False
        # After a chunk before the last is refused, RSET must precede the next MAIL
        # (servers differ on whether that ended the transaction, RFC 3030 §2): the next
        # envelope does not ride behind several chunks (at least 1 MiB, beside which one
        # round trip more is small).
        ahead = following is not None and self.pipelining and not several_chunks
        if following is not None and ahead:
            tail += link.encode(following.commands)
        flight.committed = True
        try:
            yield from link.send_bytes(tail)
            final, phase = yield from self._final_reply()
        except TransportError as error:
            yield from self._report(flight, self._unknown(flight, str(error)))
            return ahead
        link.last_used = link.clock()
        if not final.is_positive:
            command = "BDAT" if phase is Phase.DATA else "end of data"
            yield from self._report(flight, link.error(final, phase, command=command))
            if self.chunking:
                if following is not None and ahead:
                    following.redo = True
                else:
                    yield from self._reset_now()
            return ahead
        link.messages_sent += 1
        self.open.remove(flight)  # (_report, inlined on the path every message takes)
        yield Report(flight.job, result_of(flight, final))
        return ahead

    def _final_reply(self) -> Steps[tuple[Reply, Phase]]:
        """Read the replies to the content; return the one that decides, with its phase.

        Pipelined BDAT chunks (RFC 3030 §4.2) get one reply each: the first refusal decides
        (``Phase.DATA`` for a chunk before the last); later replies are read and dropped.
        After a 421 nothing more comes (RFC 5321 §3.8), so reading stops there.
        """
        link = self.link
        timeout = link.settings.timeouts.final_reply
        if not self.chunking:
            return (yield from link.read_reply(timeout)), Phase.MESSAGE
        phases = [c.phase for c in link.conn.pending if c.verb == "BDAT"]
        decided: tuple[Reply, Phase] | None = None
        reply: Reply | None = None
        for phase in phases:
            reply = yield from link.read_reply(timeout)
            if decided is None and not reply.is_positive:
                decided = (reply, phase)
            if not link.alive:
                break
        assert reply is not None  # the last chunk is always pending here
        return decided or (reply, Phase.MESSAGE)

    def _reset_now(self) -> Steps[None]:
        """RSET on its own; a failure ends the link (the refusal stays the outcome)."""
        link = self.link
        if not link.alive:
            return
        with contextlib.suppress(TransportError):  # the link is then dead; the loop stops
            yield from link.exchange(_RSET)

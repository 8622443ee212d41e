"""The BDAT window: up to ``window`` whole transactions in flight on one connection.

With PIPELINING (RFC 2920) and CHUNKING (RFC 3030) nothing in a transaction waits for the
server: ``BDAT n LAST`` is not a synchronisation point (RFC 2920 §3.1 lists DATA, not BDAT),
so the next MAIL may follow the content at once. A run keeps up to ``window`` transactions
written and unanswered, and reads the replies as they come, oldest first::

    C: MAIL FROM:<a> / RCPT TO:<b>             the run's first envelope goes alone: a link
    S: 250 / 250                                the server dropped fails here, stale
    C: BDAT 1093 LAST <content 1>  MAIL FROM:<a> RCPT TO:<c> BDAT 1102 LAST <content 2>
       MAIL FROM:<a> RCPT TO:<d> BDAT 1088 LAST <content 3>    ... up to ``window``
    S: 250 queued (1) / 250 / 250 / 250 queued (2) / 250 / ...
    C: MAIL ... BDAT n LAST <content 4>         one more written for each one answered

Each message's replies are matched to its own commands (RSET?, MAIL, RCPT..., BDAT...), and
its outcome is exactly the one :class:`~smtpkit.engine.Transactions` gives with
``window=1``: accepted with its queue id, refused recipients listed, refused, or rate
limited.

Accounting when something fails (the rules every outcome follows; what a ``421`` or a lost
connection leaves is given its outcome in :mod:`smtpkit.engine._window_end`):

* a message whose ``BDAT LAST`` was written and whose final reply never came is
  ``DeliveryUnknown``: the server may have queued it. Only messages in the window can be
  in that state, so **one connection loss leaves at most ``window`` messages unknown**;
* a message not written yet (taken and held back, or to be written again) is
  ``ConnectionStale``: resent on another connection like any stale message;
* a message whose MAIL or every RCPT was refused gets that refusal, whatever happened
  after: the server cannot have accepted its content (RFC 3030 §3: BDAT without a
  transaction is refused with ``503`` and its octets are read and dropped);
* after a ``421`` (RFC 5321 §3.8) the server reads nothing more: the message it answered
  gets the ``421`` and every message behind it is stale;
* one failed message does not disturb the next: every MAIL written while an earlier
  message's ``BDAT LAST`` is unanswered has an ``RSET`` in front of it (RFC 2920 §3.1 allows
  RSET anywhere in a group). A refused ``BDAT`` leaves the server's transaction state
  indeterminate (RFC 3030 §2: "a RSET command must be issued"), and a server that keeps a
  transaction open after it would otherwise add the next message's recipients to it and
  answer its MAIL ``503`` (nested MAIL). The reply to that RSET costs no round trip. After a
  refusal read with nothing in flight, RSET goes in front of the next MAIL as with
  ``window=1``;
* a server that breaks those rules (refuses RSET, or accepts content whose MAIL it
  refused) ends the connection: what it answered is not trusted, the messages in the
  window are classified as for a lost connection.

Flow control: a run writes a message only while fewer than ``window`` are unanswered, their
content is at most :data:`WINDOW_BYTES` octets and their replies at most
:data:`MAX_REPLIES` (so the server never blocks on replies nobody reads while the client
blocks writing: no deadlock, RFC 2920 §3.5). A message of more than one chunk
(:data:`CHUNK`) closes the window: it is written alone, chunk by chunk, and nothing goes
behind it until it is answered. Writes are the driver's, and block (threads) or wait for the
transport to drain (asyncio) when the server reads slowly: memory stays bounded by the
window, never by the number of messages queued.

Invariants:
    * Every message taken ends with exactly one ``Report`` (or is in ``run.open`` for
      :meth:`~smtpkit.engine.Transactions.abandoned` when the driver stops the run).
    * Content is written only after the run's first envelope was accepted on this link.
    * Nothing is written after a failed write (the stream may hold half a command); the
      replies already due are still read, then the link is dead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from smtpkit.engine._effects import Log, LogLevel, Report, Steps
from smtpkit.engine._flight import Flight, Submission, envelope_error, lookahead, result_of
from smtpkit.engine._link import Link
from smtpkit.engine._window_end import closed, lost, stale_rest
from smtpkit.engine._window_slot import Kind, Slot
from smtpkit.errors import (
    OperationTimeout,
    RemoteProtocolError,
    SMTPError,
    TransportError,
)
from smtpkit.protocol import Command

if TYPE_CHECKING:
    from smtpkit.engine._transactions import Transactions

__all__ = ["CHUNK", "MAX_REPLIES", "WINDOW_BYTES", "Window"]

J = TypeVar("J", bound=Submission)

#: Octets per BDAT chunk (``PreparedMessage.iter_content``'s default): a larger message is
#: sent in several chunks, alone in the window.
CHUNK = 1 << 20
#: Content octets written and not answered yet, at most (one message may exceed it alone).
WINDOW_BYTES = 1 << 20
#: Replies due at most. Each is well under 100 octets, so what the server must hold for a
#: client that is busy writing stays far below any socket buffer (RFC 2920 §3.5).
MAX_REPLIES = 512
_RSET = Command.rset()


@dataclass(eq=False)
class Window(Generic[J]):
    """The run of :class:`~smtpkit.engine.Transactions` when ``window`` > 1 (BDAT only)."""

    run: Transactions[J]
    size: int
    #: Written, not fully answered, oldest first.
    slots: deque[Slot[J]] = field(default_factory=deque)
    #: Taken but not written: the window had no room in octets or replies.
    held: Flight[J] | None = None
    #: The first message, its envelope accepted alone: its content goes first.
    opened: Flight[J] | None = None
    #: A refusal was read: RSET before the next MAIL written.
    reset_due: bool = False
    octets: int = 0
    replies_due: int = 0
    #: A write failed: nothing more is written on this link.
    broken: SMTPError | None = None

    @property
    def link(self) -> Link:
        return self.run.link

    # -- the run -------------------------------------------------------------------------

    def steps(self) -> Steps[None]:
        """Take, write and read until nothing is ready and nothing is unanswered."""
        run, link = self.run, self.link
        first = yield from run._take()
        if first is None:
            return
        yield from self._first_envelope(first)
        while True:
            if self.broken is None and link.alive:
                yield from self._fill()
            if not self.slots:
                break
            yield from self._read_oldest()
            # Whatever else has arrived is read too, so that the refill goes out in one
            # write (the server then answers it in one flush).
            while self.slots and (yield from self._read_oldest(wait=False)):
                pass
        if self.broken is not None:
            link.mark_dead()  # the stream may end in the middle of a command
            why = f"a write failed before this message was sent ({self.broken})"
        else:
            why = "the connection failed before this message was sent"
        yield from stale_rest(self, why)
        if link.alive and self.reset_due:
            yield from run._reset_now()

    def _first_envelope(self, flight: Flight[J]) -> Steps[None]:
        """MAIL and RCPT of the run's first message alone, as with ``window=1``.

        A link the server closed while idle fails here, before anything is committed: the
        message is stale and resent for free. Its content goes at the head of the window.
        """
        run, link = self.run, self.link
        stale_ok = run._stale_ok
        try:
            yield from link.write(flight.envelope())
            for _ in flight.envelope():
                flight.replies.append((yield from link.read_reply()))
                if not link.alive:
                    break  # 421: nothing more comes (RFC 5321 §3.8)
        except TransportError as error:
            yield from run._report(flight, run._before_accept(error))
            return
        run._stale_ok = True
        refusal = envelope_error(link, flight, stale_ok=stale_ok)
        if refusal is not None:
            yield from run._report(flight, refusal)
            # A MAIL accepted with every RCPT refused leaves a transaction open.
            self.reset_due = link.alive
            return
        self.opened = flight

    # -- writing -------------------------------------------------------------------------

    def _fill(self) -> Steps[None]:
        """Write messages while the window has room; never waits for a job.

        The messages of one fill go out in one write: the server reads them as one group
        and answers them in one flush. (Written one by one, each answer would be a small
        segment of its own, and a server with Nagle's algorithm on sends the next one only
        after the client acknowledged the last: one round trip each.)
        """
        staged: list[tuple[Flight[J], bytes]] = []
        while len(self.slots) < self.size and self.broken is None:
            if self.slots and self.slots[-1].closes:
                break
            envelope = self.opened is None
            flight = yield from self._next()
            if flight is None:
                break
            if self.slots and not self._fits(flight):
                self.held = flight
                break
            slot, head = self._begin(flight, envelope=envelope)
            if slot.closes:
                yield from self._send(staged)
                staged = []
                yield from self._chunks(slot, head)
                break
            [(content, _)] = lookahead(flight.prepared.iter_content(CHUNK))
            slot.due.append(Kind.LAST)
            self.replies_due += len(slot.due)
            staged.append((flight, head + self.link.conn.send_chunk(content, last=True)))
            if self.link.trace:
                yield from self._trace(slot)
        yield from self._send(staged)

    def _next(self) -> Steps[Flight[J] | None]:
        if self.opened is not None:
            flight, self.opened = self.opened, None
            return flight
        if self.held is not None:
            flight, self.held = self.held, None
            return flight
        return (yield from self.run._take())

    def _fits(self, flight: Flight[J]) -> bool:
        octets = flight.prepared.size
        return (
            octets <= CHUNK
            and self.octets + octets <= WINDOW_BYTES
            and self.replies_due + len(flight.rcpts) + 3 <= MAX_REPLIES
        )

    def _begin(self, flight: Flight[J], *, envelope: bool) -> tuple[Slot[J], bytes]:
        """A slot for ``flight`` and the bytes of its RSET (if needed) and envelope."""
        commands: list[Command] = []
        due: list[Kind] = []
        if envelope and (self.reset_due or self.slots):
            # An earlier BDAT is unanswered (or was refused): this MAIL starts fresh.
            commands.append(_RSET)
            due.append(Kind.RSET)
            self.reset_due = False
        if envelope:
            commands += flight.envelope()
            due += [Kind.MAIL] + [Kind.RCPT] * len(flight.rcpts)
        octets = flight.prepared.size
        slot = Slot(flight, due, octets, closes=octets > CHUNK)
        self.slots.append(slot)
        self.octets += octets
        return slot, self.link.encode(commands) if commands else b""

    def _send(self, staged: list[tuple[Flight[J], bytes]]) -> Steps[None]:
        """Write whole messages at once; from here a lost connection leaves them unknown."""
        if not staged:
            return
        for flight, _ in staged:
            flight.committed = True
        try:
            yield from self.link.send_bytes(b"".join([data for _, data in staged]), keep=True)
        except TransportError as error:
            self._broke(error)

    def _chunks(self, slot: Slot[J], head: bytes) -> Steps[None]:
        """A message of several chunks: one write per chunk (memory: one chunk)."""
        link, flight = self.link, slot.flight
        self.replies_due += len(slot.due)
        try:
            for chunk, last in lookahead(flight.prepared.iter_content(CHUNK)):
                piece = link.conn.send_chunk(chunk, last=last)
                slot.due.append(Kind.LAST if last else Kind.CHUNK)
                self.replies_due += 1
                if last:
                    flight.committed = True
                yield from link.send_bytes(head + piece, keep=True)
                head = b""
        except TransportError as error:
            self._broke(error)
        if link.trace:
            yield from self._trace(slot)

    def _broke(self, error: TransportError) -> None:
        """Half a command may have left: write nothing more, but read the replies due (a
        421 or a queue id may be waiting). A write that timed out means the server reads
        nothing: its replies would not come either."""
        self.broken = error
        if isinstance(error, OperationTimeout):
            self.link.mark_dead()

    def _trace(self, slot: Slot[J]) -> Steps[None]:
        """``Log(WIRE)`` lines for what was written for ``slot`` (when that logger is on)."""
        flight = slot.flight
        if slot.due[0] is Kind.RSET:
            yield Log(LogLevel.WIRE, "C: RSET")
        if Kind.MAIL in slot.due:
            for command in flight.envelope():
                yield Log(LogLevel.WIRE, f"C: {command.redacted}")
        yield Log(LogLevel.WIRE, f"C: <{flight.prepared.size} octets of message content in BDAT>")

    # -- reading -------------------------------------------------------------------------

    def _read_oldest(self, *, wait: bool = True) -> Steps[bool]:
        """Read every reply the oldest message is due, then report it.

        Without ``wait`` only replies already received are taken: ``False`` when one is
        missing (what was read is kept for the next call).
        """
        link = self.link
        slot = self.slots[0]
        final_timeout = link.settings.timeouts.final_reply
        if not link.alive:
            yield from lost(self, self.broken or self.run._stale("the connection is closed"))
            return True
        try:
            while slot.read < len(slot.due):
                kind = slot.due[slot.read]
                # Pipelined replies mostly arrive together: take one already here first.
                reply = link.poll_reply()
                if reply is None:
                    if not wait:
                        return False
                    chunk = kind is Kind.LAST or kind is Kind.CHUNK
                    reply = yield from link.read_reply(final_timeout if chunk else None)
                slot.read += 1
                if not link.alive:  # a 421: the server closes (RFC 5321 §3.8)
                    yield from closed(self, kind, reply)
                    return True
                slot.note(kind, reply, link)
        except TransportError as error:
            yield from lost(self, error)
            return True
        self._pop()
        yield from self._judge(slot)
        return True

    def _pop(self) -> None:
        slot = self.slots.popleft()
        self.octets -= slot.octets
        self.replies_due -= len(slot.due)

    def _judge(self, slot: Slot[J]) -> Steps[None]:
        """The outcome of a message whose replies all came."""
        run, link = self.run, self.link
        flight = slot.flight
        final = slot.final
        assert final is not None  # every reply came, the last chunk's too
        link.last_used = link.clock()
        refused = envelope_error(link, flight, stale_ok=run._stale_ok)
        if refused is not None and final.is_positive:
            # RFC 3030 §3 says 503: the content went somewhere, with an envelope nobody
            # knows. Nothing this server says can be trusted any more.
            link.mark_dead()
            why = f"the server answered {final} to content whose envelope it had refused"
            yield from run._report(flight, run._unknown(flight, why))
            yield from lost(self, RemoteProtocolError(why, transcript=link.transcript))
            return
        if refused is not None or slot.chunk_refusal is not None:
            refused = refused or slot.chunk_error(link)
            assert refused is not None
            # RFC 3030 §2: after a refused BDAT the state is indeterminate. A message
            # written behind this one had an RSET in front of its MAIL already.
            self.reset_due = not self.slots
            yield from run._report(flight, refused)
            return
        link.messages_sent += 1
        run.open.remove(flight)  # (_report, inlined on the path every message takes)
        yield Report(flight.job, result_of(flight, final))

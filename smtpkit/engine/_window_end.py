"""How a BDAT window ends early: the outcome of every message open when the link fails.

:class:`~smtpkit.engine._window.Window` calls these when a ``421`` closes the session or
the connection is lost; they give each message in the window, and each one taken but not
written, its one outcome (the rules are drawn in :mod:`smtpkit.engine._window`):

* a refusal the server gave (MAIL, every RCPT, a chunk) stands, whatever came after;
* a message whose ``BDAT LAST`` was written and not answered is unknown
  (``DeliveryUnknown``): the server may have queued it;
* anything else, written or not, is stale (``ConnectionStale``): resent on another link.

Invariants:
    * Every message open in the window, held back or opened is reported exactly once, and
      the window is empty afterwards (``slots``, ``held``, ``opened``).
    * After a ``421`` nothing behind the message it answered is trusted to have been read
      (RFC 5321 §3.8): those messages are stale, never unknown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from smtpkit.engine._effects import Steps
from smtpkit.engine._flight import Submission, envelope_error
from smtpkit.engine._window_slot import Kind
from smtpkit.errors import SMTPError
from smtpkit.replies import Phase, Reply

if TYPE_CHECKING:
    from smtpkit.engine._window import Window

__all__ = ["closed", "lost", "stale_rest"]

J = TypeVar("J", bound=Submission)


def closed(window: Window[J], kind: Kind, reply: Reply) -> Steps[None]:
    """The server answered ``kind`` of the oldest message with 421 and closes."""
    run, link = window.run, window.link
    slot = window.slots.popleft()
    flight = slot.flight
    outcome: SMTPError | None
    if kind is Kind.RSET:
        outcome = run._stale(f"the server closed the connection ({reply})")
    elif kind is Kind.MAIL or kind is Kind.RCPT:
        flight.replies.append(reply)
        outcome = envelope_error(link, flight, stale_ok=run._stale_ok)
        outcome = outcome or run._stale(f"the server closed the connection ({reply})")
    else:
        outcome = slot.definite(link, stale_ok=run._stale_ok)
        if outcome is None:
            phase = Phase.MESSAGE if kind is Kind.LAST else Phase.DATA
            outcome = link.error(reply, phase, command="BDAT")
    yield from run._report(flight, outcome)
    # RFC 5321 §3.8: the server reads nothing after its 421; none of the rest arrived.
    why = f"the server closed the connection ({reply}) before reading this message"
    for rest in window.slots:
        yield from run._report(rest.flight, run._stale(why))
    window.slots.clear()
    yield from stale_rest(window, why)


def lost(window: Window[J], error: SMTPError) -> Steps[None]:
    """The connection failed: classify every message open on it."""
    run, link = window.run, window.link
    why = str(error)
    for slot in window.slots:
        flight = slot.flight
        outcome = slot.definite(link, stale_ok=run._stale_ok)
        if outcome is None:
            outcome = run._unknown(flight, why) if flight.committed else run._before_accept(error)
        yield from run._report(flight, outcome)
    window.slots.clear()
    yield from stale_rest(window, why)


def stale_rest(window: Window[J], why: str) -> Steps[None]:
    """Messages taken and not on the wire: not accepted, safe to send again."""
    rest = [window.held, window.opened]
    window.held = window.opened = None
    for flight in rest:
        if flight is not None:
            yield from window.run._report(flight, window.run._stale(why))

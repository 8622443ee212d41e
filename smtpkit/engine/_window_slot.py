"""One message in the BDAT window: the replies it is due, and what they prove.

A :class:`Slot` is what :class:`~smtpkit.engine._window.Window` keeps for each message it
has written and not yet seen fully answered: the kinds of reply due, in order (``RSET``,
``MAIL``, ``RCPT``..., ``BDAT``..., ``BDAT LAST``), how many were read, and the verdicts
they carry.

Invariants:
    * MAIL and RCPT replies go to the flight's ``replies`` (as with ``window=1``), so
      :func:`~smtpkit.engine._flight.envelope_error` and ``result_of`` judge them.
    * :meth:`Slot.definite` names a refusal only when the server cannot have accepted the
      content whatever came after (RFC 3030 §3: BDAT without a transaction, or without a
      recipient, is refused and its octets read).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from smtpkit.engine._flight import Flight, Submission, envelope_error
from smtpkit.engine._link import Link
from smtpkit.errors import SMTPError
from smtpkit.replies import Phase, Reply

__all__ = ["Kind", "Slot"]

J = TypeVar("J", bound=Submission)


class Kind(enum.Enum):
    """What a reply due answers."""

    RSET = "RSET"
    MAIL = "MAIL"
    RCPT = "RCPT"
    CHUNK = "BDAT"  # a chunk before the last
    LAST = "BDAT LAST"


@dataclass(eq=False)
class Slot(Generic[J]):
    """A message written and not (fully) answered, with the replies it is due."""

    flight: Flight[J]
    due: list[Kind]
    octets: int
    read: int = 0
    #: Nothing may be written behind it until it is answered (several chunks).
    closes: bool = False
    #: The first refused chunk, and the phase it is reported in.
    chunk_refusal: tuple[Reply, Phase] | None = None
    final: Reply | None = None

    def note(self, kind: Kind, reply: Reply, link: Link) -> None:
        """Record one reply.

        Raises:
            RemoteProtocolError: RSET was refused (RFC 5321 §4.1.1.5: it must get 250);
                the server's state is unknown, the link is dead.
        """
        if kind is Kind.MAIL or kind is Kind.RCPT:
            self.flight.replies.append(reply)
        elif kind is Kind.RSET:
            if not reply.is_positive:
                raise link.unexpected(reply, "RSET")
        else:
            if kind is Kind.LAST:
                self.final = reply
            if not reply.is_positive and self.chunk_refusal is None:
                phase = Phase.MESSAGE if kind is Kind.LAST else Phase.DATA
                self.chunk_refusal = (reply, phase)

    def chunk_error(self, link: Link) -> SMTPError | None:
        """The error of the first refused chunk, if one was."""
        if self.chunk_refusal is None:
            return None
        reply, phase = self.chunk_refusal
        return link.error(reply, phase, command="BDAT")

    def definite(self, link: Link, *, stale_ok: bool) -> SMTPError | None:
        """A refusal that holds although not every reply came (the content cannot have
        been accepted: RFC 3030 §3), else ``None``."""
        flight = self.flight
        replies = flight.replies
        if not replies:
            return None
        rcpts = replies[1:]
        every_rcpt_refused = len(rcpts) == len(flight.rcpts) and not any(
            reply.is_positive for reply in rcpts
        )
        if not replies[0].is_positive or every_rcpt_refused:
            return envelope_error(link, flight, stale_ok=stale_ok)
        return self.chunk_error(link)

"""``Deadline``: one time limit for a whole step (a reply, a handshake), not for each read.

A socket timeout bounds one ``recv``. A server that sends a byte, or a continuation line,
just inside it each time keeps a reader waiting forever. The drivers therefore fix an
absolute deadline when a step starts and, before each read, give the stream only the time
that is left (``Stream.set_timeout`` stays the one seam; DESIGN rule 11)::

    deadline = Deadline(timeouts.command, clock)
    while the reply is incomplete:
        stream.set_timeout(deadline.remaining("the reply to EHLO"))  # raises at 0
        feed(stream.receive())

Invariants:
    * The clock is injected (monotonic seconds); nothing here sleeps or reads the wall
      clock, so the sans-IO engine's drivers and the tests can share it.
    * :meth:`Deadline.remaining` never returns zero or less: it raises
      :class:`~smtpkit.errors.OperationTimeout` instead, so no caller can pass a
      non-positive timeout (which a socket reads as "non-blocking").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from smtpkit.errors import OperationTimeout

__all__ = ["Deadline"]


class Deadline:
    """An absolute point on a monotonic clock by which a step must be done.

    >>> now = [10.0]
    >>> deadline = Deadline(2.0, clock=lambda: now[0])
    >>> now[0] = 11.5
    >>> deadline.remaining("the reply to EHLO")
    0.5

    Args:
        seconds: the time the whole step may take.
        clock: monotonic seconds; :func:`time.monotonic` by default.
    """

    __slots__ = ("_at", "_clock", "seconds")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._at = clock() + seconds

    def remaining(self, what: str) -> float:
        """Seconds left; ``what`` names the step in the error.

        Raises:
            OperationTimeout: the deadline has passed.
        """
        left = self._at - self._clock()
        if left <= 0:
            raise OperationTimeout(f"{what} did not complete within {self.seconds:g} s")
        return left

    def __repr__(self) -> str:
        return f"<Deadline {self.seconds:g} s, {self._at - self._clock():.3f} s left>"

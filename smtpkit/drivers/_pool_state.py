"""The bookkeeping of a connection pool, shared by both drivers: counts, reuse, login gate.

A :class:`PoolState` decides and records; it never opens, closes, waits or locks. The
threaded pool calls it under its lock and waits on a condition; the asyncio pool calls it
from its tasks and waits on futures. The decisions about one link (reuse, NOOP first, drop;
keep one given back) are the engine's :class:`~smtpkit.engine.ReusePolicy`.

Invariants:
    * ``count`` is every connection that exists (idle, in use, being opened, being closed):
      a driver frees a place (:meth:`freed`) only once the connection is gone, so a server
      that limits connections (Microsoft 365: 3 per mailbox) never sees one too many.
    * With a login gate (the submitter has credentials), until a login has succeeded only
      one connection opens at a time, and a refused login (``ends_logins``) is raised to
      every caller that was waiting to open one: one wrong password costs one AUTH.
    * A connection opened before :meth:`retire` (``close()``) is never kept again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final, Generic, Protocol, TypeVar

from smtpkit.drivers._common import PoolLimits, ends_logins
from smtpkit.engine import Link, Reuse, ReusePolicy
from smtpkit.errors import OperationTimeout, SMTPError

__all__ = ["OPEN", "WAIT", "PoolState", "Pooled"]


class Pooled(Protocol):
    """What the pool keeps: a connection with its engine link and the pool generation."""

    link: Link | None
    generation: int


C = TypeVar("C", bound=Pooled)

#: :meth:`PoolState.pick`'s answers besides an idle connection.
OPEN: Final = "open"  # open a new connection (its place is counted already)
WAIT: Final = "wait"  # wait until a connection is given back or a place frees


class PoolState(Generic[C]):
    """Counts and idle connections of one pool, and the decisions on them."""

    def __init__(
        self,
        limits: PoolLimits,
        policy: ReusePolicy,
        *,
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        login_gate: bool,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self._clock = clock
        self._wall_clock = wall_clock
        self._login_gate = login_gate
        self.idle: deque[C] = deque()  # given back on the right: the oldest on the left
        self.count = 0
        self.opening = 0
        self.generation = 0
        self._proven = False  # a connection logged in since the last refused login
        self.refusals = 0
        self._last_refusal: SMTPError | None = None

    def pick(self, seen: int) -> C | str:
        """An idle connection to check, :data:`OPEN` (its place taken) or :data:`WAIT`.

        Args:
            seen: :attr:`refusals` when the caller started to wait.

        Raises:
            SMTPError: a login was refused since ``seen``: the caller's would be too.
        """
        if self.idle:
            return self.idle.pop()  # the most recently used: the likeliest to be alive
        if self.refusals != seen and self._last_refusal is not None:
            raise self._last_refusal
        gated = self._login_gate and not self._proven and self.opening > 0
        if self.count < self.limits.max_connections and not gated:
            self.count += 1
            self.opening += 1
            return OPEN
        return WAIT

    def reuse(self, conn: C) -> Reuse:
        """What to do with idle ``conn`` before handing it out (the engine's policy)."""
        assert conn.link is not None
        return self.policy.on_acquire(conn.link, self._clock(), self._wall_clock())

    def opened(self) -> bool:
        """A connection opened and logged in; whether that opened the login gate (callers
        held back by it may open theirs now; no one else needs waking: no place freed)."""
        self.opening -= 1
        gate_opened = self._login_gate and not self._proven
        self._proven = True
        return gate_opened

    def open_failed(self, error: BaseException) -> bool:
        """Opening failed (its place is free again); whether it was a refused login."""
        self.count -= 1
        self.opening -= 1
        if isinstance(error, SMTPError) and ends_logins(error):
            self._proven = False
            self.refusals += 1
            self._last_refusal = error
            return True
        return False

    def give_back(self, conn: C, *, keep: bool = True) -> bool:
        """Keep ``conn`` for reuse if it may be; False: the caller closes it."""
        link = conn.link
        if (
            keep
            and link is not None
            and link.alive
            and conn.generation == self.generation
            and self.policy.keep(link, self._wall_clock())
        ):
            self.idle.append(conn)
            return True
        return False

    def freed(self) -> None:
        """A connection is gone: its place is free."""
        self.count -= 1

    def expired(self) -> list[C]:
        """Take the idle connections past ``idle_timeout`` out (the caller closes them)."""
        now, limit = self._clock(), self.policy.idle_timeout
        gone: list[C] = []
        while self.idle and (link := self.idle[0].link) is not None:
            if now - link.last_used <= limit:
                break
            gone.append(self.idle.popleft())
        return gone

    def retire(self) -> list[C]:
        """``close()``: every idle connection (the caller closes them); those in use and
        being opened are closed when given back."""
        self.generation += 1
        idle = list(self.idle)
        self.idle.clear()
        return idle

    def forget(self) -> None:
        """Drop every connection without a word (a forked child, another event loop)."""
        self.generation += 1
        self.idle.clear()
        self.count = 0
        self.opening = 0

    def timeout(self) -> OperationTimeout:
        """The error for a caller that waited ``acquire_timeout`` in vain."""
        limits = self.limits
        return OperationTimeout(
            f"no SMTP connection became free within {limits.acquire_timeout:g} s "
            f"(max_connections={limits.max_connections})"
        )

"""Pool and pacing policy as pure values: when to reuse, check or drop a link; when to start.

A driver's pool asks :class:`ReusePolicy` what to do with an idle link before handing it
out, and whether to keep a link it gets back; a batch asks :class:`Pacing` when the next
message may start. Both take the clock values from the driver and never wait themselves,
so the threaded and the asyncio driver share one policy and each does its own waiting.

Invariants:
    * A link idle longer than ``idle_timeout`` is dropped, not reused (servers close idle
      sessions themselves; reusing one would cost a failed write). One idle longer than
      ``health_check_after`` is checked with NOOP first.
    * A link that has sent ``max_messages_per_connection`` messages, or whose OAuth2 login
      expires within ``token_expiry_margin`` (Gmail ends OAuth2 sessions at token expiry),
      is closed instead of kept.
    * ``Pacing.admit`` never makes anyone wait: it says yes or no *now*; ``reserve`` says
      how long the caller must wait (between transactions) before starting.
    * A message is tried again only when its error says the server cannot have accepted it
      (:class:`Attempts`): a ``ConnectionStale`` once, at once; anything else only as the
      ``Retry`` policy allows (never ``DeliveryUnknown`` unless it opts in).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime

from smtpkit.engine._link import Link
from smtpkit.errors import ConfigurationError, ConnectionStale, SMTPError
from smtpkit.retry import Retry

__all__ = ["Attempts", "Pacing", "Reuse", "ReusePolicy"]


class Reuse(enum.Enum):
    """What to do with an idle link before handing it out."""

    USE = "use"  # hand it out as it is
    CHECK = "check"  # NOOP first (probe_link); use it if that succeeds
    DROP = "drop"  # close it and open another


@dataclass(frozen=True)
class ReusePolicy:
    """When a pooled link may be used again.

    Attributes:
        max_messages_per_connection: close a link after this many messages (``None``: no cap).
        idle_timeout: drop links idle this long instead of reusing them.
        health_check_after: NOOP before reusing a link idle this long.
        token_expiry_margin: drop a link whose OAuth2 token expires within this many seconds.
    """

    max_messages_per_connection: int | None = 100
    idle_timeout: float = 60.0
    health_check_after: float = 10.0
    token_expiry_margin: float = 60.0

    def on_acquire(self, link: Link, now: float, wall_now: datetime) -> Reuse:
        """What to do with idle ``link`` at clock ``now`` (UTC ``wall_now`` for tokens)."""
        if not link.alive or self._spent(link) or self._expiring(link, wall_now):
            return Reuse.DROP
        idle_for = now - link.last_used
        if idle_for > self.idle_timeout:
            return Reuse.DROP
        if idle_for > self.health_check_after:
            return Reuse.CHECK
        return Reuse.USE

    def keep(self, link: Link, wall_now: datetime) -> bool:
        """Whether a link given back may wait for reuse (else it is closed)."""
        return link.alive and not self._spent(link) and not self._expiring(link, wall_now)

    def left(self, link: Link) -> int | None:
        """How many more messages ``link`` may take (``None``: no cap)."""
        cap = self.max_messages_per_connection
        return None if cap is None else max(0, cap - link.messages_sent)

    def _spent(self, link: Link) -> bool:
        cap = self.max_messages_per_connection
        return cap is not None and link.messages_sent >= cap

    def _expiring(self, link: Link, wall_now: datetime) -> bool:
        return link.token_expires_within(self.token_expiry_margin, wall_now)


class Pacing:
    """Spaces message starts at most ``rate`` per second (``None``: no limit).

    A pure schedule: :meth:`admit` answers whether a message may start at ``now`` without
    waiting (the lookahead inside a transaction asks this); :meth:`reserve` books the next
    start and returns how long to wait for it (asked between transactions only).
    """

    __slots__ = ("_interval", "_next")

    def __init__(self, rate: float | None) -> None:
        if rate is not None and (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ConfigurationError(
                f"the message rate must be a positive number of messages per second, got {rate!r}"
            )
        self._interval = 0.0 if rate is None else 1.0 / rate
        self._next = -math.inf

    @property
    def limited(self) -> bool:
        """Whether there is a rate limit at all."""
        return self._interval > 0

    def admit(self, now: float) -> bool:
        """Start a message at ``now`` if the schedule allows it without waiting."""
        if now < self._next:
            return False
        self._next = max(now, self._next) + self._interval
        return True

    def reserve(self, now: float) -> float:
        """Book the next start; the seconds to wait before it (0 when it may start now)."""
        start = max(now, self._next)
        self._next = start + self._interval
        return start - now


@dataclass
class Attempts:
    """One message's tries: a free resend after ``ConnectionStale``, then ``retry``'s rules."""

    retry: Retry = field(default_factory=Retry.never)
    stale_retried: bool = False

    def next_try(self, error: SMTPError) -> float | None:
        """Seconds to wait before trying again after ``error``, or ``None`` if it is final."""
        if isinstance(error, ConnectionStale) and not self.stale_retried:
            # The connection died before the server accepted anything: resend at once.
            self.stale_retried = True
            return 0.0
        if self.retry.can_retry(error):
            self.retry = self.retry.increment(error)
            return self.retry.delay()
        return None

"""Retry policy as an immutable value (in the manner of urllib3's ``Retry``).

The policy decides *whether* a failed send may be tried again and *how long* to wait; the
driver (the Submitter) does the waiting with the policy's injectable ``sleep``.

Invariants:
    * Only failures where the server cannot have accepted the message are retried:
      connection failures before the content was sent, ``421``, and ``4xx`` replies to the
      greeting, EHLO, MAIL, RCPT, DATA, or the final reply (a ``4xx`` final reply means the
      server did *not* take the message, RFC 5321 §4.2.5).
    * :class:`~smtpkit.errors.DeliveryUnknown` (the connection failed after the final ``.``)
      is never retried unless ``retry_unknown=True``: resending may deliver twice.
    * Authentication failures are never retried: repeated logins trip provider lockouts
      (Gmail's ``454 4.7.0 Too many login attempts``).
    * ``increment()`` returns a new value; nothing here mutates.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from smtpkit.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    DeliveryUnknown,
    OperationTimeout,
    ReplyError,
    ServerDisconnected,
    SMTPError,
)
from smtpkit.replies import Phase

__all__ = ["Retry"]

#: Phases whose transient replies leave the message certainly not accepted.
RETRYABLE_PHASES = frozenset(
    {Phase.GREETING, Phase.EHLO, Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.MESSAGE}
)


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry transient failures.

    The wait before retry ``n`` (1-based) is ``min(max_backoff, backoff * multiplier**(n-1))``
    with up to ``jitter`` (a fraction) added at random, so many clients do not retry in step.

    Example::

        retry = Retry(attempts=3, backoff=1.0)
        Submitter("smtp.example.com", retry=retry)

    Attributes:
        attempts: total tries including the first (1 = no retry).
        backoff: seconds before the first retry.
        multiplier: growth factor per retry.
        max_backoff: cap on any single wait.
        jitter: random extra wait as a fraction of the wait (0.1 = up to 10%).
        retry_unknown: also resend after ``DeliveryUnknown`` (may deliver twice).
        sleep: how to wait; tests pass a fake.
        history: the errors that led to each retry so far.
    """

    attempts: int = 3
    backoff: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.1
    retry_unknown: bool = False
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    history: tuple[SMTPError, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError("Retry.attempts must be an integer >= 1")
        if self.attempts < 1:
            raise ConfigurationError("Retry.attempts must be >= 1 (1 means no retry)")
        for name in ("backoff", "multiplier", "max_backoff", "jitter"):
            value = getattr(self, name)
            # Types too: Retry(backoff="1") or nan must not fail later, inside a send.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"Retry.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"Retry.{name} must be a finite number >= 0")
        if not isinstance(self.retry_unknown, bool):
            raise ConfigurationError("Retry.retry_unknown must be True or False")
        if not callable(self.sleep):
            raise ConfigurationError("Retry.sleep must be a function taking seconds")

    @classmethod
    def never(cls) -> Retry:
        """A policy that tries once."""
        return cls(attempts=1)

    @property
    def retries_done(self) -> int:
        """How many retries have been spent."""
        return len(self.history)

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error`` leaves the message certainly unsent and may clear by itself."""
        if isinstance(error, DeliveryUnknown):
            return self.retry_unknown
        if isinstance(error, AuthenticationError):
            return False
        if isinstance(error, ReplyError):
            return error.is_transient and error.phase in RETRYABLE_PHASES
        return isinstance(error, ConnectError | ServerDisconnected | OperationTimeout)

    def can_retry(self, error: BaseException) -> bool:
        """Whether ``error`` is retryable and attempts remain."""
        return self.is_retryable(error) and self.retries_done + 1 < self.attempts

    def increment(self, error: SMTPError) -> Retry:
        """The policy after one more retry caused by ``error``."""
        return replace(self, history=(*self.history, error))

    def delay(self, rng: random.Random | None = None) -> float:
        """Seconds to wait before the next retry (pure but for the jitter draw)."""
        n = self.retries_done
        base = min(self.max_backoff, self.backoff * self.multiplier ** max(0, n - 1))
        if self.jitter <= 0 or base <= 0:
            return base
        draw = (rng or random).random()  # jitter, not cryptography
        return min(self.max_backoff, base * (1 + self.jitter * draw))

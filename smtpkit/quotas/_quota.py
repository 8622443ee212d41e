"""The account's sending quota, counted in a shared store before each message is sent.

A driver touches a quota in exactly two places per message::

    reservation = quota.reserve(recipients=len(envelope.recipients))   # before MAIL FROM
    ...send the message...
    reservation.settle(error)            # after its outcome: None when the server accepted

``reserve`` raises :class:`~smtpkit.errors.QuotaExceeded` (nothing is sent) when a limit
would be crossed, and :class:`~smtpkit.errors.QuotaStoreUnavailable` when the store cannot
be asked. ``settle`` keeps the reservation when the message was accepted or its fate is
unknown, gives it back when the server cannot have accepted it, and marks the whole account
exhausted when the reply was the provider's own quota reply.

Invariants:
    * A reservation is counted from ``reserve`` on, while the message is in flight, so
      concurrent workers never both take the last slot.
    * Keeping is the default: a reservation is given back only for an error that proves the
      server did not accept the message; an unknown outcome (``DeliveryUnknown``, a crash,
      a worker killed mid-send) stays counted until its window passes.
    * Nothing here waits: a quota answers at once, and the caller decides when to retry
      (``retry_after``). No quota call happens inside an open SMTP transaction.
    * A reservation whose answer was lost (the connection to the store dropped after the
      store may have counted it) is given back at the quota's next call: ``reserve``
      raised, so its message was not sent.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from smtpkit.errors import (
    ConfigurationError,
    MessageError,
    QuotaExceeded,
    QuotaStoreUnavailable,
)
from smtpkit.providers import DayWindow, Limits
from smtpkit.quotas._reservation import Reservation
from smtpkit.quotas._rules import (
    CountsLost,
    Exhausted,
    Granted,
    OverLimit,
    Request,
    Rule,
    Unit,
    WindowLimits,
    check_key,
    group,
    rules_from_limits,
)
from smtpkit.quotas._store import QuotaStore

__all__ = ["LimitUsage", "OnStoreError", "Quota", "QuotaUsage", "account_key"]

logger = logging.getLogger("smtpkit.quotas")

_WINDOW_WORDS = {86_400.0: "24 hours", 60.0: "minute", 1.0: "second"}
#: Unanswered reservations remembered for giving back; beyond this the oldest are dropped
#: (they then stay counted until their window passes, which errs on the safe side).
MAX_UNANSWERED = 10_000


class OnStoreError(enum.Enum):
    """What :meth:`Quota.reserve` does when the store cannot be asked."""

    #: Raise :class:`~smtpkit.errors.QuotaStoreUnavailable`: nothing is sent uncounted.
    REFUSE = "refuse"
    #: Send anyway, uncounted, and log a warning: mail keeps flowing, the quota may be
    #: crossed and the provider then refuses (and blocks) the account.
    SEND = "send"


def account_key(username: str, host: str) -> str:
    """The default quota key of an account: ``"smtp.gmail.com/me@gmail.com"``.

    Lower case: providers treat user names as addresses, which compare case-insensitively
    (if yours does not, two spellings merely share one count, which errs on the safe side).
    """
    return check_key(f"{host.strip().rstrip('.').lower()}/{username.strip().lower()}")


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """One limit's count now.

    Attributes:
        name: the :class:`~smtpkit.providers.Limits` field (``"messages_per_day"``).
        used: what the window counts, reservations in flight included.
        allowed: the limit.
        window: the window's length in seconds (rolling).
    """

    name: str
    used: int
    allowed: int
    window: float

    @property
    def left(self) -> int:
        """How many more fit now."""
        return max(self.allowed - self.used, 0)


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """What :meth:`Quota.usage` reports.

    Attributes:
        key: the account.
        at: the store's time for the account.
        limits: each counted limit, in the order of :class:`~smtpkit.providers.Limits`.
        exhausted_until: when the provider's "quota exceeded" mark ends, or ``None``.
        day_window: how the provider documents its daily window (``None``: not documented;
            counted rolling all the same).
    """

    key: str
    at: float
    limits: tuple[LimitUsage, ...]
    exhausted_until: float | None
    day_window: DayWindow | None


class Quota:
    """An account's sending quota, counted in a store that every worker shares.

    Args:
        store: where the counts live: :class:`~smtpkit.quotas.MemoryQuotaStore` (one
            process), :class:`~smtpkit.quotas.SQLiteQuotaStore` (processes of one
            machine) or :class:`~smtpkit.quotas.RedisQuotaStore` (a fleet).
        limits: the limits to count (``messages_per_day``, ``recipients_per_day``,
            ``messages_per_minute``, ``messages_per_second``); by default the preset's,
            filled in by the Submitter (:meth:`bind`).
        key: the account the counts belong to; by default :func:`account_key` of the
            Submitter's user name and host. Every worker of one account must use the same.
        on_store_error: :attr:`OnStoreError.REFUSE` (default) or ``"send"``.
        clock: seconds since the epoch (wall clock: workers on several machines compare
            their times through the store).

    Example::

        quota = Quota(
            RedisQuotaStore("redis://cache:6379/0"),
            providers.get("gmail").limits,
            key=account_key("me@gmail.com", "smtp.gmail.com"),
        )
        with quota.reserve(recipients=2):   # QuotaExceeded: nothing is sent
            submitter.send(message)         # kept if accepted, given back if refused

    A Submitter's ``quota=`` fills in ``limits`` and ``key`` where they are not given.
    """

    def __init__(
        self,
        store: QuotaStore,
        limits: Limits | None = None,
        key: str | None = None,
        *,
        on_store_error: OnStoreError | str = OnStoreError.REFUSE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(store, QuotaStore):
            raise ConfigurationError(
                f"a Quota needs a quota store, not {type(store).__name__}",
                hint="pass MemoryQuotaStore(), SQLiteQuotaStore(path) or RedisQuotaStore(url)",
            )
        if limits is not None and not isinstance(limits, Limits):
            raise ConfigurationError(
                f"limits must be smtpkit.providers.Limits, not {type(limits).__name__}",
                hint="e.g. Limits(messages_per_day=500)",
            )
        try:
            self._on_store_error = OnStoreError(on_store_error)
        except ValueError:
            raise ConfigurationError(
                f"on_store_error must be 'refuse' or 'send', not {on_store_error!r}"
            ) from None
        self._store = store
        self._limits = limits
        self._key = None if key is None else check_key(key)
        self._clock = clock
        self._rules = rules_from_limits(limits) if limits is not None else ()
        self._windows = group(self._rules)
        # Requests the store may have counted although reserve() raised (see the module).
        self._unanswered: list[Request] = []
        self._unanswered_lock = threading.Lock()

    # -- configuration --------------------------------------------------------------------

    @property
    def store(self) -> QuotaStore:
        """Where the counts live."""
        return self._store

    @property
    def key(self) -> str | None:
        """The account key (``None`` until given or bound)."""
        return self._key

    @property
    def limits(self) -> Limits | None:
        """The limits counted (``None`` until given or bound)."""
        return self._limits

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The counted limits, one rule each."""
        return self._rules

    @property
    def on_store_error(self) -> OnStoreError:
        """What happens when the store cannot be asked."""
        return self._on_store_error

    def bind(self, *, limits: Limits | None = None, key: str | None = None) -> Quota:
        """This quota with its unset limits and key filled in (what a Submitter does once).

        Values given to the constructor win; the result shares the store. Pure: no I/O.
        """
        new_limits = self._limits if self._limits is not None else limits
        new_key = self._key if self._key is not None else key
        if new_limits is self._limits and new_key == self._key:
            return self
        return Quota(
            self._store,
            new_limits,
            new_key,
            on_store_error=self._on_store_error,
            clock=self._clock,
        )

    def _bound_key(self) -> str:
        if self._key is None:
            raise ConfigurationError(
                "this quota has no account key yet",
                hint="pass Quota(store, key=...) or give the quota to a Submitter, "
                "which keys it by its user name and host",
            )
        return self._key

    # -- the two calls a driver makes -----------------------------------------------------

    def reserve(
        self, messages: int = 1, recipients: int = 1, *, now: float | None = None
    ) -> Reservation:
        """Count a message before its envelope is sent.

        Args:
            messages: messages this reservation counts (1 per message).
            recipients: the message's envelope recipients.
            now: the time to count at (default: the quota's clock).

        Returns:
            A :class:`Reservation`: settle it once the outcome is known.

        Raises:
            QuotaExceeded: a limit would be crossed, or the provider said the quota is used
                up; nothing may be sent before ``retry_after`` seconds.
            QuotaStoreUnavailable: the store could not be asked (unless
                ``on_store_error="send"``, which returns an uncounted reservation).
            MessageError: the message alone is larger than a limit: it can never be sent
                under this quota.
        """
        key = self._bound_key()
        if self._unanswered:
            self._give_back_unanswered(key)
        for name, count in (("messages", messages), ("recipients", recipients)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise MessageError(f"a reservation counts {name} as an integer >= 1, got {count!r}")
        for rule in self._rules:
            asked = messages if rule.unit is Unit.MESSAGES else recipients
            if asked > rule.allowed:
                raise MessageError(
                    f"this message counts {asked} {rule.unit.value}, more than {rule.name} "
                    f"allows ({rule.allowed}): it can never be sent under this quota",
                    hint="split its recipients over several messages, or pass the limits "
                    "your plan allows: Quota(store, limits=Limits(...))",
                )
        at = self._clock() if now is None else now
        request = Request(
            windows=self._windows,
            messages=messages,
            recipients=recipients,
            now=at,
            entry=uuid.uuid4().hex,
            count_when_lost=self._on_store_error is OnStoreError.SEND,
        )
        try:
            decision = self._store.reserve(key, request)
        except QuotaStoreUnavailable as error:
            if self._on_store_error is OnStoreError.REFUSE:
                with self._unanswered_lock:
                    self._unanswered.append(request)
                    del self._unanswered[:-MAX_UNANSWERED]
            return self._uncounted(error, request)
        if isinstance(decision, Granted):
            return Reservation(self, request, decision.at, recorded=True)
        if isinstance(decision, CountsLost):
            lost = QuotaStoreUnavailable(
                f"the quota store lost the counts of {key} (restarted without persistence or "
                "flushed): sending stays refused until every count it lost would have expired",
                hint=f"retry in {decision.retry_after:,.0f} s; keep the counts across restarts "
                "with Redis persistence (appendonly yes), see docs/quotas.md",
            )
            return self._uncounted(lost, request)
        raise self._exceeded(key, decision)

    def _give_back_unanswered(self, key: str) -> None:
        with self._unanswered_lock:
            pending = list(self._unanswered)
        for request in pending:
            try:
                self._store.release(key, request)
            except QuotaStoreUnavailable:
                return  # still down: the reservation about to be asked fails too
            with self._unanswered_lock:
                if request in self._unanswered:
                    self._unanswered.remove(request)

    def _uncounted(self, error: QuotaStoreUnavailable, request: Request) -> Reservation:
        if self._on_store_error is OnStoreError.REFUSE:
            raise error
        logger.warning("sending uncounted (on_store_error='send'): %s", error.message)
        return Reservation(self, request, request.now, recorded=False)

    def _exceeded(self, key: str, decision: OverLimit | Exhausted) -> QuotaExceeded:
        if isinstance(decision, Exhausted):
            return QuotaExceeded(
                f"{key} is out of sending quota: the provider refused a message for its quota; "
                f"retry in {decision.retry_after:,.0f} s",
                limit="exhausted",
                retry_after=decision.retry_after,
                key=key,
                hint="every worker of this account waits until then instead of each hitting "
                "the provider's wall",
            )
        name = next(
            r.name for r in self._rules if r.window == decision.window and r.unit is decision.unit
        )
        return QuotaExceeded(
            f"sending now would cross {name} for {key}: {decision.used:,} of "
            f"{decision.allowed:,} counted in the last {_WINDOW_WORDS.get(decision.window, '')} "
            f"(rolling); retry in {decision.retry_after:,.1f} s",
            limit=name,
            used=decision.used,
            allowed=decision.allowed,
            retry_after=decision.retry_after,
            key=key,
            hint="wait retry_after seconds (smtpkit's Celery task retries then by itself); "
            "if your plan allows more, pass Quota(store, limits=Limits(...))",
        )

    def exhaust(self, until: float, *, now: float | None = None) -> None:
        """Refuse every reservation of the account until ``until`` (seconds since the epoch).

        For the provider's own quota reply: see :func:`quota_reply_window`. A mark never
        shortens an earlier one.

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        at = self._clock() if now is None else now
        self._store.mark_exhausted(self._bound_key(), until, now=at)

    def usage(self, *, now: float | None = None) -> QuotaUsage:
        """The account's counts now, for reports (``smtpkit check``, dashboards).

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        key = self._bound_key()
        at = self._clock() if now is None else now
        counts = self._store.usage(key, self._windows, at)
        limits = tuple(
            LimitUsage(
                rule.name, counts.used.get((rule.window, rule.unit), 0), rule.allowed, rule.window
            )
            for rule in self._rules
        )
        day_window = self._limits.day_window if self._limits is not None else None
        return QuotaUsage(key, counts.at, limits, counts.exhausted_until, day_window)

    @property
    def windows(self) -> tuple[WindowLimits, ...]:
        """The rules grouped by window, as stores see them."""
        return self._windows

    def __repr__(self) -> str:
        rules = ", ".join(f"{r.name}={r.allowed}" for r in self._rules) or "no limits"
        return f"Quota({type(self._store).__name__}, key={self._key!r}, {rules})"

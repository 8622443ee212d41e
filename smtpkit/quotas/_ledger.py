"""One account's reservations as a log with per-window running totals (pure, no locking).

This is the algorithm of :class:`~smtpkit.quotas.MemoryQuotaStore`, and the Lua script of
:class:`~smtpkit.quotas.RedisQuotaStore` is a line-by-line port of it:

* the *log* holds every record of the last :data:`RETENTION` seconds, oldest first;
* each window ever asked about is a *view* of the log: running totals of messages and
  recipients plus a watermark ``cutoff`` (records at or before it have left the view);
* every request first moves the account's clock to ``max(now, clock)`` and advances every
  view to ``clock - window``, subtracting what left; then it checks and records.

So a reservation costs O(1) amortised (each record leaves each view once), however many
records a day holds, and a view first asked about later is built from the log, so workers
that count different windows of one account still agree.

Invariants:
    * ``clock`` never goes back: a caller whose clock is behind is counted at ``clock``.
    * For every view, totals == the sum over live log records recorded after ``cutoff``.
    * A record is dropped from the log only when every view has passed it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from smtpkit.quotas._rules import (
    DAY,
    Decision,
    Exhausted,
    Granted,
    OverLimit,
    Request,
    StoreUsage,
    Unit,
    WindowLimits,
    retry_after,
)

__all__ = ["RETENTION", "Ledger"]

#: How long a record is kept: the longest window a rule can have.
RETENTION = DAY


@dataclass(slots=True)
class _View:
    cutoff: float
    messages: int = 0
    recipients: int = 0

    def used(self, unit: Unit) -> int:
        return self.messages if unit is Unit.MESSAGES else self.recipients


@dataclass(slots=True)
class Ledger:
    """The records and views of one account."""

    clock: float = float("-inf")
    exhausted_until: float | None = None
    # (recorded at, entry) in time order; weights hold the live ones.
    times: list[float] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    weights: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    views: dict[float, _View] = field(default_factory=dict)
    head: int = 0  # index of the first record still in the log

    # -- the steps every request takes ----------------------------------------------------

    def _tick(self, now: float) -> float:
        self.clock = max(self.clock, now)
        return self.clock

    def _view(self, window: float) -> _View:
        view = self.views.get(window)
        if view is None:
            # A new view starts from the log: everything recorded in the last `window`.
            view = _View(cutoff=self.clock - window)
            for _, messages, recipients in self._live_after(view.cutoff):
                view.messages += messages
                view.recipients += recipients
            self.views[window] = view
        return view

    def _live_after(self, cutoff: float) -> Iterator[tuple[float, int, int]]:
        start = bisect.bisect_right(self.times, cutoff, lo=self.head)
        for index in range(start, len(self.entries)):
            weight = self.weights.get(self.entries[index])
            if weight is not None:
                yield weight

    def _advance(self) -> None:
        for window, view in self.views.items():
            cutoff = self.clock - window
            if cutoff <= view.cutoff:
                continue
            start = bisect.bisect_right(self.times, view.cutoff, lo=self.head)
            stop = bisect.bisect_right(self.times, cutoff, lo=start)
            for index in range(start, stop):
                weight = self.weights.get(self.entries[index])
                if weight is not None:
                    view.messages -= weight[1]
                    view.recipients -= weight[2]
            view.cutoff = cutoff
        # Drop what every view (and the retention) has passed.
        horizon = min([self.clock - RETENTION, *(v.cutoff for v in self.views.values())])
        stop = bisect.bisect_right(self.times, horizon, lo=self.head)
        for index in range(self.head, stop):
            self.weights.pop(self.entries[index], None)
        self.head = stop
        if self.head > 1024 and self.head * 2 > len(self.entries):
            del self.times[: self.head], self.entries[: self.head]
            self.head = 0

    # -- the store operations -------------------------------------------------------------

    def reserve(self, request: Request) -> Decision:
        """Record ``request`` if every window has room (see :class:`QuotaStore`)."""
        now = self._tick(request.now)
        views = [(limits, self._view(limits.seconds)) for limits in request.windows]
        self._advance()
        known = self.weights.get(request.entry)
        if known is not None:
            return Granted(known[0])
        if self.exhausted_until is not None and now < self.exhausted_until:
            return Exhausted(self.exhausted_until, self.exhausted_until - now)
        worst: OverLimit | None = None
        for limits, view in views:
            for unit, asked in (
                (Unit.MESSAGES, request.messages),
                (Unit.RECIPIENTS, request.recipients),
            ):
                allowed = limits.allowed(unit)
                used = view.used(unit)
                if allowed is None or used + asked <= allowed:
                    continue
                wait = retry_after(
                    self._oldest(view.cutoff, unit), used + asked - allowed, limits.seconds, now
                )
                if worst is None or wait > worst.retry_after:
                    worst = OverLimit(limits.seconds, unit, used, allowed, wait)
        if worst is not None:
            return worst
        self.times.append(now)
        self.entries.append(request.entry)
        self.weights[request.entry] = (now, request.messages, request.recipients)
        for view in self.views.values():
            view.messages += request.messages
            view.recipients += request.recipients
        return Granted(now)

    def _oldest(self, cutoff: float, unit: Unit) -> Iterator[tuple[float, int]]:
        for recorded, messages, recipients in self._live_after(cutoff):
            yield recorded, messages if unit is Unit.MESSAGES else recipients

    def release(self, entry: str) -> None:
        """Forget ``entry``; views that still count it stop counting it."""
        weight = self.weights.pop(entry, None)
        if weight is None:
            return
        recorded, messages, recipients = weight
        for view in self.views.values():
            if recorded > view.cutoff:
                view.messages -= messages
                view.recipients -= recipients

    def mark_exhausted(self, until: float) -> None:
        """Refuse until ``until``; never shortens an earlier mark."""
        if self.exhausted_until is None or until > self.exhausted_until:
            self.exhausted_until = until

    def usage(self, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        """The counts in each of ``windows``."""
        now = self._tick(now)
        views = [(limits.seconds, self._view(limits.seconds)) for limits in windows]
        self._advance()
        used = {
            (seconds, unit): view.used(unit)
            for seconds, view in views
            for unit in (Unit.MESSAGES, Unit.RECIPIENTS)
        }
        until = self.exhausted_until
        return StoreUsage(now, used, until if until is not None and until > now else None)

"""A quota store in this process's memory: threads share it, other processes do not.

Use it when one process sends for the account (a script, one web worker). For several
processes on one machine use :class:`~smtpkit.quotas.SQLiteQuotaStore`; for several
machines :class:`~smtpkit.quotas.RedisQuotaStore`.

Invariants:
    * One lock guards every account's ledger, so each operation is atomic across threads;
      operations are O(1) amortised (:mod:`smtpkit.quotas._ledger`), so the lock is held
      for microseconds.
    * The counts live as long as the object: a new process starts from zero.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from smtpkit.quotas._ledger import Ledger
from smtpkit.quotas._rules import Decision, Request, StoreUsage, WindowLimits

__all__ = ["MemoryQuotaStore"]


class MemoryQuotaStore:
    """Counts kept in a dict, guarded by one lock (thread-safe; one process only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[str, Ledger] = {}

    def _ledger(self, key: str) -> Ledger:
        ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = self._ledgers[key] = Ledger()
        return ledger

    def reserve(self, key: str, request: Request) -> Decision:
        with self._lock:
            return self._ledger(key).reserve(request)

    def release(self, key: str, request: Request) -> None:
        with self._lock:
            ledger = self._ledgers.get(key)
            if ledger is not None:
                ledger.release(request.entry)

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        del now  # kept for as long as the object lives
        with self._lock:
            self._ledger(key).mark_exhausted(until)

    def usage(self, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        with self._lock:
            return self._ledger(key).usage(windows, now)

    def close(self) -> None:
        with self._lock:
            self._ledgers.clear()

    def __repr__(self) -> str:
        return f"MemoryQuotaStore(accounts={len(self._ledgers)})"

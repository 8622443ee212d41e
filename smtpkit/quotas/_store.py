"""The interface every quota store implements, and the one translation of store failures.

A store keeps, per account key, the reservations still inside their windows and an
exhaustion mark. It answers four questions, each atomically for the account:

* :meth:`QuotaStore.reserve`: record this request if every window has room, else say which
  limit would be crossed and when enough room frees up;
* :meth:`QuotaStore.release`: forget a record (the message was never accepted);
* :meth:`QuotaStore.mark_exhausted`: refuse everything until a time (the provider said so);
* :meth:`QuotaStore.usage`: the counts, for reports.

Invariants:
    * No lost update: two concurrent reservations never both see the same free slot.
    * ``release`` and ``mark_exhausted`` are idempotent; releasing an unknown or expired
      record does nothing.
    * A store that cannot answer raises :class:`~smtpkit.errors.QuotaStoreUnavailable`,
      whose message never holds a password or a URL with credentials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from smtpkit.quotas._rules import Decision, Request, StoreUsage, WindowLimits

__all__ = ["QuotaStore"]


@runtime_checkable
class QuotaStore(Protocol):
    """Where a :class:`~smtpkit.quotas.Quota` keeps its counts (memory, SQLite, Redis)."""

    def reserve(self, key: str, request: Request) -> Decision:
        """Record ``request`` for ``key`` if it fits every window, atomically.

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        ...

    def release(self, key: str, request: Request) -> None:
        """Forget the record of ``request`` (its ``entry``); nothing happens if it is gone.

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        ...

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        """Refuse every reservation for ``key`` until ``until`` (seconds since the epoch).

        A later mark never shortens an earlier one. ``now`` (the caller's clock; the
        system clock by default) only sets how long the mark is kept.

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        ...

    def usage(self, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        """The counts of ``key`` in each of ``windows`` at ``now``.

        Raises:
            QuotaStoreUnavailable: the store could not be asked.
        """
        ...

    def close(self) -> None:
        """Release connections and files; the store is not used afterwards."""
        ...

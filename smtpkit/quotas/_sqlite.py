"""A quota store in an SQLite file: the processes and threads of one machine share it.

Each reservation is one write transaction (``BEGIN IMMEDIATE``): SQLite lets one writer at
a time take the file's reserved lock, so the count a transaction reads cannot change before
it writes (no lost update), across threads and processes alike. WAL mode lets readers run
while a writer works and makes a commit one append to the log.

Schema (created on first use; several stores may share one file)::

    smtpkit_quota_entry(account, entry, at, messages, recipients)   -- one row a reservation
    smtpkit_quota_view(account, window, cutoff, messages, recipients)  -- running totals
    smtpkit_quota_account(account, clock, exhausted_until)

The rows and views follow the algorithm of :mod:`smtpkit.quotas._ledger` (the memory
store's, and the Redis script's): a view holds a window's totals and the time up to which
records have left it, so a reservation reads and moves only what enters or leaves a window,
never the whole day: its cost does not grow with the number of messages counted.

Invariants:
    * Every operation is one transaction, and nothing of it runs outside that transaction
      (:mod:`smtpkit.quotas._sqlite_transaction` checks it after every statement): a
      process killed inside one leaves nothing behind (SQLite rolls it back); one killed
      after ``reserve`` leaves its reservation counted until its window passes: it leaks
      at most its own reservations.
    * A transaction that fails part way (busy, or rolled back by SQLite) is rolled back
      and the operation redone whole within ``timeout``; an operation redone after an
      uncertain COMMIT is still counted once (a reservation's ``entry`` is its key).
    * The account's clock never goes back: a caller whose clock is behind is counted at the
      store's clock.
    * Each process has its own connection, never carried across ``fork()``, and its
      threads take turns on it behind a lock: SQLite admits one writer at a time anyway,
      and a thread waiting on a lock wakes as soon as it is free, where one waiting on
      SQLite's busy handler sleeps in steps of up to 100 ms.
    * A locked or unreadable file raises :class:`~smtpkit.errors.QuotaStoreUnavailable`
      after ``timeout`` seconds.
    * It is a file: an in-memory (``:memory:``) or temporary (``""``) database is refused
      with :class:`~smtpkit.errors.ConfigurationError`, since each connection has its own,
      so processes would share nothing and a reconnect (``close()``, ``fork()``) would
      start again from zero.
    * Where SQLite cannot give WAL mode it keeps working in the mode SQLite reports
      (``journal_mode``), exact but slower, and logs a WARNING once (see
      :mod:`smtpkit.quotas._sqlite_transaction`).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from contextlib import closing
from pathlib import Path

from smtpkit.errors import ConfigurationError, QuotaStoreUnavailable
from smtpkit.quotas._ledger import RETENTION
from smtpkit.quotas._rules import (
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
from smtpkit.quotas._sqlite_transaction import Transaction, Transactions

__all__ = ["SQLiteQuotaStore"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS smtpkit_quota_entry (
        account TEXT NOT NULL,
        entry TEXT NOT NULL,
        at REAL NOT NULL,
        messages INTEGER NOT NULL,
        recipients INTEGER NOT NULL,
        PRIMARY KEY (account, entry)
    ) WITHOUT ROWID""",
    # Covers the window sums and the oldest-first scan for retry_after.
    """CREATE INDEX IF NOT EXISTS smtpkit_quota_entry_at
        ON smtpkit_quota_entry (account, at, messages, recipients)""",
    """CREATE TABLE IF NOT EXISTS smtpkit_quota_view (
        account TEXT NOT NULL,
        window REAL NOT NULL,
        cutoff REAL NOT NULL,
        messages INTEGER NOT NULL,
        recipients INTEGER NOT NULL,
        PRIMARY KEY (account, window)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS smtpkit_quota_account (
        account TEXT PRIMARY KEY,
        clock REAL NOT NULL,
        exhausted_until REAL
    ) WITHOUT ROWID""",
)


class SQLiteQuotaStore:
    """Counts in an SQLite database file, shared by the processes of one machine.

    Args:
        path: the database file (created if missing). It must be on a local disk: SQLite's
            locks are not reliable over network file systems.
        timeout: seconds to wait for another writer before giving up with
            :class:`~smtpkit.errors.QuotaStoreUnavailable`.

    Raises:
        ConfigurationError: ``":memory:"`` or ``""`` (a database no other process sees).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        if os.fspath(path) in ("", ":memory:"):
            raise ConfigurationError(
                f"SQLiteQuotaStore({os.fspath(path)!r}) would count in a database of each "
                "connection's own, shared by no other process and lost on reconnecting",
                hint="give a file path on a local disk (SQLiteQuotaStore('/var/lib/app/"
                "quota.db')); for one process, use MemoryQuotaStore()",
            )
        self._path = Path(path)
        self._timeout = timeout
        self._transactions = Transactions(self._path, timeout, _SCHEMA, self._unavailable)

    def _unavailable(self, reason: str) -> QuotaStoreUnavailable:
        return QuotaStoreUnavailable(
            f"the SQLite quota store {self._path} cannot be used: {reason}",
            store=f"sqlite {self._path}",
            hint="check that the file's directory exists and is writable on a local disk; "
            "a 'database is locked' error means another process held it longer than "
            f"timeout={self._timeout} s",
        )

    # -- the store operations -------------------------------------------------------------

    def reserve(self, key: str, request: Request) -> Decision:
        return self._transactions.run(lambda tx: _reserve(tx, key, request))

    def release(self, key: str, request: Request) -> None:
        self._transactions.run(lambda tx: _release(tx, key, request))

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        del now  # the file keeps the mark; nothing expires by itself
        self._transactions.run(lambda tx: _mark_exhausted(tx, key, until))

    def usage(self, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        return self._transactions.run(lambda tx: _usage(tx, key, windows, now))

    def close(self) -> None:
        self._transactions.close()

    @property
    def journal_mode(self) -> str | None:
        """The journal mode SQLite reported for the file (``"wal"``, or ``"delete"`` etc.
        where WAL is impossible); ``None`` before the first operation opened it."""
        return self._transactions.journal_mode

    def __repr__(self) -> str:
        return f"SQLiteQuotaStore({str(self._path)!r})"


# -- the operations, each run inside one transaction ----------------------------------------


def _reserve(tx: Transaction, key: str, request: Request) -> Decision:
    now, until = _tick(tx, key, request.now)
    views = _views(tx, key, [limits.seconds for limits in request.windows], now)
    known = tx.one(
        "SELECT at FROM smtpkit_quota_entry WHERE account = ? AND entry = ?",
        (key, request.entry),
    )
    if known is not None:
        return Granted(float(known[0]))
    if until is not None and now < until:
        return Exhausted(until, until - now)
    worst: OverLimit | None = None
    for limits in request.windows:
        cutoff, totals = views[limits.seconds]
        for unit, asked in (
            (Unit.MESSAGES, request.messages),
            (Unit.RECIPIENTS, request.recipients),
        ):
            allowed, used = limits.allowed(unit), totals[unit]
            if allowed is None or used + asked <= allowed:
                continue
            # Closed here, inside the transaction: a half-read cursor left to the garbage
            # collector keeps a read statement open past COMMIT and past the lock, on the
            # connection the next thread is writing with.
            with closing(_oldest(tx, key, cutoff, unit)) as oldest:
                wait = retry_after(oldest, used + asked - allowed, limits.seconds, now)
            if worst is None or wait > worst.retry_after:
                worst = OverLimit(limits.seconds, unit, used, allowed, wait)
    if worst is not None:
        return worst
    tx.execute(
        "INSERT INTO smtpkit_quota_entry (account, entry, at, messages, recipients) "
        "VALUES (?, ?, ?, ?, ?)",
        (key, request.entry, now, request.messages, request.recipients),
    )
    tx.execute(
        "UPDATE smtpkit_quota_view SET messages = messages + ?, "
        "recipients = recipients + ? WHERE account = ?",
        (request.messages, request.recipients, key),
    )
    return Granted(now)


def _release(tx: Transaction, key: str, request: Request) -> None:
    row = tx.one(
        "SELECT at, messages, recipients FROM smtpkit_quota_entry WHERE account = ? AND entry = ?",
        (key, request.entry),
    )
    if row is None:
        return
    tx.execute(
        "DELETE FROM smtpkit_quota_entry WHERE account = ? AND entry = ?", (key, request.entry)
    )
    # Only the views that still count it stop counting it.
    tx.execute(
        "UPDATE smtpkit_quota_view SET messages = messages - ?, "
        "recipients = recipients - ? WHERE account = ? AND cutoff < ?",
        (row[1], row[2], key, row[0]),
    )


def _mark_exhausted(tx: Transaction, key: str, until: float) -> None:
    tx.execute(
        "INSERT INTO smtpkit_quota_account (account, clock, exhausted_until) "
        "VALUES (?, ?, ?) ON CONFLICT (account) DO UPDATE SET exhausted_until = "
        "max(coalesce(exhausted_until, excluded.exhausted_until), excluded.exhausted_until)",
        # The mark does not move the account's clock (only counting does).
        (key, float("-inf"), until),
    )


def _usage(tx: Transaction, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
    now, until = _tick(tx, key, now)
    views = _views(tx, key, [limits.seconds for limits in windows], now)
    used = {
        (limits.seconds, unit): views[limits.seconds][1][unit]
        for limits in windows
        for unit in Unit
    }
    return StoreUsage(now, used, until if until is not None and until > now else None)


def _tick(tx: Transaction, key: str, now: float) -> tuple[float, float | None]:
    """Move the account's clock to ``max(now, clock)``; the clock and the exhaustion mark."""
    # Plain statements, no RETURNING: that needs SQLite 3.35, and Linux distributions
    # still ship Pythons linked to older ones (UPSERT needs 3.24).
    tx.execute(
        "INSERT INTO smtpkit_quota_account (account, clock) VALUES (?, ?) "
        "ON CONFLICT (account) DO UPDATE SET clock = max(clock, excluded.clock)",
        (key, now),
    )
    row = tx.one(
        "SELECT clock, exhausted_until FROM smtpkit_quota_account WHERE account = ?", (key,)
    )
    assert row is not None  # upserted just above, in this transaction
    until = row[1]
    return float(row[0]), None if until is None else float(until)


def _views(
    tx: Transaction, key: str, windows: Sequence[float], now: float
) -> dict[float, tuple[float, dict[Unit, int]]]:
    """Every view of ``key`` advanced to ``now`` (new ones built from the log), by window.

    Returns ``window -> (cutoff, totals)``; drops the records every view has passed.
    """
    views = {
        window: (cutoff, {Unit.MESSAGES: messages, Unit.RECIPIENTS: recipients})
        for window, cutoff, messages, recipients in tx.execute(
            "SELECT window, cutoff, messages, recipients FROM smtpkit_quota_view WHERE account = ?",
            (key,),
        ).fetchall()
    }
    for window in windows:
        if window not in views:
            cutoff = now - window
            messages, recipients = _sum(tx, key, cutoff, float("inf"))
            tx.execute(
                "INSERT INTO smtpkit_quota_view (account, window, cutoff, messages, recipients) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, window, cutoff, messages, recipients),
            )
            views[window] = (cutoff, {Unit.MESSAGES: messages, Unit.RECIPIENTS: recipients})
    for window, (old, before) in list(views.items()):
        cutoff = now - window
        if cutoff <= old:
            continue
        messages, recipients = _sum(tx, key, old, cutoff)
        totals = {
            Unit.MESSAGES: before[Unit.MESSAGES] - messages,
            Unit.RECIPIENTS: before[Unit.RECIPIENTS] - recipients,
        }
        tx.execute(
            "UPDATE smtpkit_quota_view SET cutoff = ?, messages = ?, recipients = ? "
            "WHERE account = ? AND window = ?",
            (cutoff, totals[Unit.MESSAGES], totals[Unit.RECIPIENTS], key, window),
        )
        views[window] = (cutoff, totals)
    horizon = min([now - RETENTION, *(cutoff for cutoff, _ in views.values())])
    tx.execute("DELETE FROM smtpkit_quota_entry WHERE account = ? AND at <= ?", (key, horizon))
    return views


def _sum(tx: Transaction, key: str, after: float, until: float) -> tuple[int, int]:
    """Messages and recipients recorded in ``(after, until]``."""
    row = tx.one(
        "SELECT coalesce(sum(messages), 0), coalesce(sum(recipients), 0) "
        "FROM smtpkit_quota_entry WHERE account = ? AND at > ? AND at <= ?",
        (key, after, until),
    )
    assert row is not None  # an aggregate always answers one row
    return int(row[0]), int(row[1])


def _oldest(
    tx: Transaction, key: str, cutoff: float, unit: Unit
) -> Generator[tuple[float, int], None, None]:
    """``(at, units)`` oldest first; close it before the transaction ends (it ends the read)."""
    column = "messages" if unit is Unit.MESSAGES else "recipients"
    cursor = tx.execute(
        f"SELECT at, {column} FROM smtpkit_quota_entry WHERE account = ? AND at > ? "  # noqa: S608
        "ORDER BY at",
        (key, cutoff),
    )
    try:
        yield from cursor
    finally:
        cursor.close()  # resets the statement now, under the lock, not whenever GC runs

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
    * Every operation is one transaction; a process killed inside one leaves nothing
      behind (SQLite rolls it back); one killed after ``reserve`` leaves its reservation
      counted until its window passes: it leaks at most its own reservations.
    * The account's clock never goes back: a caller whose clock is behind is counted at the
      store's clock.
    * Each process has its own connection (SQLite connections may not cross a fork), and
      its threads take turns on it behind a lock: SQLite admits one writer at a time
      anyway, and a thread waiting on a lock wakes as soon as it is free, where one waiting
      on SQLite's busy handler sleeps in steps of up to 100 ms.
    * A locked or unreadable file raises :class:`~smtpkit.errors.QuotaStoreUnavailable`
      after ``timeout`` seconds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Generator, Sequence
from contextlib import closing
from pathlib import Path

from smtpkit.errors import QuotaStoreUnavailable
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
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self._path = Path(path)
        self._timeout = timeout
        # Held for a whole transaction: this process's threads take turns (see above).
        self._lock = threading.Lock()
        self._held: tuple[int, sqlite3.Connection] | None = None

    # -- connections ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (called with the lock held)."""
        pid = os.getpid()
        if self._held is not None and self._held[0] == pid:
            return self._held[1]
        # A connection inherited through fork belongs to the parent: never touch it.
        try:
            connection = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as error:
            raise self._unavailable(error) from error
        try:
            # WAL: readers never block the writer. synchronous=NORMAL: a commit survives
            # the process being killed (it is in the OS's cache); only a crash of the whole
            # machine may forget the last moments' reservations, as Redis does with
            # appendfsync everysec. FULL would sync the WAL at every commit: twice the cost.
            _patiently(connection, "PRAGMA journal_mode=WAL", self._timeout)
            connection.execute("PRAGMA synchronous=NORMAL")
            _patiently(connection, "BEGIN IMMEDIATE", self._timeout)
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            connection.close()
            raise self._unavailable(error) from error
        self._held = (pid, connection)
        return connection

    def _unavailable(self, error: sqlite3.Error) -> QuotaStoreUnavailable:
        return QuotaStoreUnavailable(
            f"the SQLite quota store {self._path} cannot be used: {error}",
            store=f"sqlite {self._path}",
            hint="check that the file's directory exists and is writable on a local disk; "
            "a 'database is locked' error means another process held it longer than "
            f"timeout={self._timeout} s",
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- the store operations -------------------------------------------------------------

    def reserve(self, key: str, request: Request) -> Decision:
        with self._transaction() as db:
            now, until = _tick(db, key, request.now)
            views = _views(db, key, [limits.seconds for limits in request.windows], now)
            known = db.execute(
                "SELECT at FROM smtpkit_quota_entry WHERE account = ? AND entry = ?",
                (key, request.entry),
            ).fetchone()
            if known is not None:
                return Granted(known[0])
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
                    # Closed here, inside the transaction: a half-read cursor left to the
                    # garbage collector keeps a read statement open past COMMIT and past
                    # the lock, on the connection the next thread is writing with.
                    with closing(_oldest(db, key, cutoff, unit)) as oldest:
                        wait = retry_after(oldest, used + asked - allowed, limits.seconds, now)
                    if worst is None or wait > worst.retry_after:
                        worst = OverLimit(limits.seconds, unit, used, allowed, wait)
            if worst is not None:
                return worst
            db.execute(
                "INSERT INTO smtpkit_quota_entry (account, entry, at, messages, recipients) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, request.entry, now, request.messages, request.recipients),
            )
            db.execute(
                "UPDATE smtpkit_quota_view SET messages = messages + ?, "
                "recipients = recipients + ? WHERE account = ?",
                (request.messages, request.recipients, key),
            )
            return Granted(now)

    def release(self, key: str, request: Request) -> None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT at, messages, recipients FROM smtpkit_quota_entry "
                "WHERE account = ? AND entry = ?",
                (key, request.entry),
            ).fetchone()
            if row is not None:
                db.execute(
                    "DELETE FROM smtpkit_quota_entry WHERE account = ? AND entry = ?",
                    (key, request.entry),
                )
                # Only the views that still count it stop counting it.
                db.execute(
                    "UPDATE smtpkit_quota_view SET messages = messages - ?, "
                    "recipients = recipients - ? WHERE account = ? AND cutoff < ?",
                    (row[1], row[2], key, row[0]),
                )

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        del now  # the file keeps the mark; nothing expires by itself
        with self._transaction() as db:
            db.execute(
                "INSERT INTO smtpkit_quota_account (account, clock, exhausted_until) "
                "VALUES (?, ?, ?) ON CONFLICT (account) DO UPDATE SET exhausted_until = "
                "max(coalesce(exhausted_until, excluded.exhausted_until), "
                "excluded.exhausted_until)",
                # The mark does not move the account's clock (only counting does).
                (key, float("-inf"), until),
            )

    def usage(self, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        with self._transaction() as db:
            now, until = _tick(db, key, now)
            views = _views(db, key, [limits.seconds for limits in windows], now)
            used = {
                (limits.seconds, unit): views[limits.seconds][1][unit]
                for limits in windows
                for unit in Unit
            }
            return StoreUsage(now, used, until if until is not None and until > now else None)

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, None
        if held is not None and held[0] == os.getpid():
            held[1].close()

    def __repr__(self) -> str:
        return f"SQLiteQuotaStore({str(self._path)!r})"


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), errors translated once."""

    def __init__(self, store: SQLiteQuotaStore) -> None:
        self._store = store
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        if not store._lock.acquire(timeout=store._timeout):
            raise QuotaStoreUnavailable(
                f"the SQLite quota store {store._path} stayed busy in this process for "
                f"{store._timeout} s",
                store=f"sqlite {store._path}",
            )
        try:
            db = store._connection()
            # IMMEDIATE takes the write lock now, so what this transaction reads cannot
            # change before it writes (a DEFERRED one could fail to upgrade, or worse).
            _patiently(db, "BEGIN IMMEDIATE", store._timeout)
        except sqlite3.Error as error:
            store._lock.release()
            raise store._unavailable(error) from error
        except BaseException:
            store._lock.release()
            raise
        self._db = db
        return db

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        assert self._db is not None
        try:
            try:
                if error is None:
                    self._db.execute("COMMIT")
                    return
                self._db.execute("ROLLBACK")
            except sqlite3.Error as failure:
                if error is None:
                    raise self._store._unavailable(failure) from failure
            if isinstance(error, sqlite3.Error):
                raise self._store._unavailable(error) from error
        finally:
            self._store._lock.release()


def _patiently(db: sqlite3.Connection, statement: str, timeout: float) -> None:
    """Run ``statement``, retrying while SQLite says the file is busy, up to ``timeout``.

    SQLite's busy handler covers most waits, but not all: switching a new file to WAL, or
    reading the WAL index while another process recovers it after a crash, can answer
    "database is locked" at once.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            db.execute(statement)
            return
        except sqlite3.OperationalError as error:
            busy = "locked" in str(error) or "busy" in str(error)
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _tick(db: sqlite3.Connection, key: str, now: float) -> tuple[float, float | None]:
    """Move the account's clock to ``max(now, clock)``; the clock and the exhaustion mark."""
    # Plain statements, no RETURNING: that needs SQLite 3.35, and Linux distributions
    # still ship Pythons linked to older ones (UPSERT needs 3.24).
    db.execute(
        "INSERT INTO smtpkit_quota_account (account, clock) VALUES (?, ?) "
        "ON CONFLICT (account) DO UPDATE SET clock = max(clock, excluded.clock)",
        (key, now),
    )
    row = db.execute(
        "SELECT clock, exhausted_until FROM smtpkit_quota_account WHERE account = ?", (key,)
    ).fetchone()
    return float(row[0]), row[1]


def _views(
    db: sqlite3.Connection, key: str, windows: Sequence[float], now: float
) -> dict[float, tuple[float, dict[Unit, int]]]:
    """Every view of ``key`` advanced to ``now`` (new ones built from the log), by window.

    Returns ``window -> (cutoff, totals)``; drops the records every view has passed.
    """
    views = {
        window: (cutoff, {Unit.MESSAGES: messages, Unit.RECIPIENTS: recipients})
        for window, cutoff, messages, recipients in db.execute(
            "SELECT window, cutoff, messages, recipients FROM smtpkit_quota_view WHERE account = ?",
            (key,),
        )
    }
    for window in windows:
        if window not in views:
            cutoff = now - window
            messages, recipients = _sum(db, key, cutoff, float("inf"))
            db.execute(
                "INSERT INTO smtpkit_quota_view (account, window, cutoff, messages, recipients) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, window, cutoff, messages, recipients),
            )
            views[window] = (cutoff, {Unit.MESSAGES: messages, Unit.RECIPIENTS: recipients})
    for window, (old, before) in list(views.items()):
        cutoff = now - window
        if cutoff <= old:
            continue
        messages, recipients = _sum(db, key, old, cutoff)
        totals = {
            Unit.MESSAGES: before[Unit.MESSAGES] - messages,
            Unit.RECIPIENTS: before[Unit.RECIPIENTS] - recipients,
        }
        db.execute(
            "UPDATE smtpkit_quota_view SET cutoff = ?, messages = ?, recipients = ? "
            "WHERE account = ? AND window = ?",
            (cutoff, totals[Unit.MESSAGES], totals[Unit.RECIPIENTS], key, window),
        )
        views[window] = (cutoff, totals)
    horizon = min([now - RETENTION, *(cutoff for cutoff, _ in views.values())])
    db.execute("DELETE FROM smtpkit_quota_entry WHERE account = ? AND at <= ?", (key, horizon))
    return views


def _sum(db: sqlite3.Connection, key: str, after: float, until: float) -> tuple[int, int]:
    """Messages and recipients recorded in ``(after, until]``."""
    row = db.execute(
        "SELECT coalesce(sum(messages), 0), coalesce(sum(recipients), 0) "
        "FROM smtpkit_quota_entry WHERE account = ? AND at > ? AND at <= ?",
        (key, after, until),
    ).fetchone()
    return int(row[0]), int(row[1])


def _oldest(
    db: sqlite3.Connection, key: str, cutoff: float, unit: Unit
) -> Generator[tuple[float, int], None, None]:
    """``(at, units)`` oldest first; close it before the transaction ends (it ends the read)."""
    column = "messages" if unit is Unit.MESSAGES else "recipients"
    cursor = db.execute(
        f"SELECT at, {column} FROM smtpkit_quota_entry WHERE account = ? AND at > ? "  # noqa: S608
        "ORDER BY at",
        (key, cutoff),
    )
    try:
        yield from cursor
    finally:
        cursor.close()  # resets the statement now, under the lock, not whenever GC runs

"""SQLiteQuotaStore when SQLite fails part way through a transaction, and across fork().

SQLite documents three things a transaction's owner must handle:

* COMMIT may answer SQLITE_BUSY, and then "the transaction remains active" (lang_transaction);
* after SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM or SQLITE_INTERRUPT on a
  statement "the transaction might be rolled back automatically", and the only way to know
  is ``sqlite3_get_autocommit()`` (``Connection.in_transaction``);
* a connection must not be carried across fork() (howtocorrupt, section 2.6).

The faults below are injected with a ``sqlite3.Connection`` subclass (``factory=``) that
answers one statement the way SQLite documents, everything else being real SQLite on a
real file; the interrupt and the fork cases need no injection at all. Each test failed on
the store before its fix: a COMMIT refused with BUSY left the write lock held for good,
a transaction SQLite ended under the store let its writes commit one by one outside it
(and answered "cannot commit - no transaction is active"), and a store used before fork()
lost the counts a child made once the parent closed its connection.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smtpkit.errors import QuotaExceeded, QuotaStoreUnavailable
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, SQLiteQuotaStore

T0 = 1_700_000_000.0
KEY = "smtp.example.com/faults@example.com"
SQLITE_BUSY = 5
SQLITE_FULL = 13


def busy() -> sqlite3.OperationalError:
    """The error Python raises for SQLITE_BUSY."""
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = SQLITE_BUSY
    error.sqlite_errorname = "SQLITE_BUSY"
    return error


def full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = SQLITE_FULL
    error.sqlite_errorname = "SQLITE_FULL"
    return error


@dataclass
class Fault:
    """On the `nth` statement starting with `starts` (0: every one), do `action`."""

    starts: str
    action: str  # "busy-commit", "rolled-back", "vanish", "pause"
    times: int = 1
    error: Callable[[], sqlite3.OperationalError] = busy
    then: Callable[[], None] | None = None  # runs once the fault struck (another writer)
    seen: int = 0


@dataclass
class Plan:
    faults: list[Fault] = field(default_factory=list)
    # (statement, was a transaction open when it ran?), for every statement of the store.
    log: list[tuple[str, bool]] = field(default_factory=list)

    def outside(self) -> list[str]:
        """Statements that read or wrote the tables with no transaction open."""
        control = ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA")
        return [sql for sql, open_ in self.log if not open_ and not sql.startswith(control)]


class FaultyConnection(sqlite3.Connection):
    """A real connection that answers the planned statements as SQLite documents."""

    plan: Plan

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        text = " ".join(sql.split())
        self.plan.log.append((text, self.in_transaction))
        for fault in self.plan.faults:
            if fault.times == 0 or not text.startswith(fault.starts):
                continue
            fault.times -= 1
            fault.seen += 1
            if fault.action == "busy-commit":
                # SQLITE_BUSY from COMMIT: nothing is committed, the transaction stays open.
                raise fault.error()
            if fault.action == "rolled-back":
                # An error SQLite answers by rolling the whole transaction back.
                super().execute("ROLLBACK")
                if fault.then is not None:
                    fault.then()
                raise fault.error()
            if fault.action == "pause" and fault.then is not None:
                fault.then()  # another thread acts while this statement waits to run
                break
            if fault.action == "vanish":
                # The transaction ends, and the statement reports no error.
                cursor = super().execute(sql, parameters)
                rows = cursor.fetchall()
                super().execute("ROLLBACK")
                if fault.then is not None:
                    fault.then()
                return _Rows(self, rows)
        return super().execute(sql, parameters)


class _Rows(sqlite3.Cursor):
    """A cursor over rows already read (the statement ran before its transaction ended)."""

    def __init__(self, connection: sqlite3.Connection, rows: list[Any]) -> None:
        super().__init__(connection)
        self._rows = iter(rows)

    def __iter__(self) -> Iterator[Any]:
        return self._rows

    def __next__(self) -> Any:
        return next(self._rows)

    def fetchone(self) -> Any:
        return next(self._rows, None)

    def fetchall(self) -> list[Any]:
        return list(self._rows)


@pytest.fixture
def faulty(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Plan]:
    """The store's connections to `path` are FaultyConnections following one Plan."""
    path = tmp_path / "quota.db"
    plan = Plan()
    real = sqlite3.connect

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if Path(database) == path and kwargs.get("check_same_thread") is False:
            connection = real(database, *args, factory=FaultyConnection, **kwargs)
            assert isinstance(connection, FaultyConnection)
            connection.plan = plan
            return connection
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    return path, plan


def quota(path: Path, allowed: int = 5, *, timeout: float = 2.0) -> Quota:
    return Quota(
        SQLiteQuotaStore(path, timeout=timeout),
        Limits(messages_per_day=allowed),
        key=KEY,
        clock=lambda: T0,
    )


def counted(path: Path) -> int:
    """What a fresh store (another process, in effect) reads from the file."""
    store = SQLiteQuotaStore(path, timeout=2.0)
    try:
        q = Quota(store, Limits(messages_per_day=5), key=KEY, clock=lambda: T0)
        return q.usage().limits[0].used
    finally:
        store.close()


def entries(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM smtpkit_quota_entry").fetchone()[0])


# -- COMMIT answered SQLITE_BUSY ----------------------------------------------------------------


def test_a_commit_refused_busy_is_rolled_back_and_the_reservation_redone(
    faulty: tuple[Path, Plan], caplog: pytest.LogCaptureFixture
) -> None:
    path, plan = faulty
    q = quota(path)
    q.reserve().keep()  # schema and first count
    plan.faults.append(Fault("COMMIT", "busy-commit"))
    with caplog.at_level(logging.DEBUG, logger="smtpkit.quotas"):
        q.reserve().keep()  # the first COMMIT is refused; the whole reservation is redone
    assert plan.faults[0].seen == 1
    assert "redoing a transaction: database is locked (SQLITE_BUSY) at 'COMMIT'" in caplog.text
    q.reserve().keep()  # the connection is usable: no transaction was left open
    assert plan.outside() == []
    # Another process writes at once: the failed COMMIT left no write lock behind.
    other = quota(path, timeout=0.2)
    other.reserve().keep()
    assert counted(path) == 4
    assert entries(path) == 4


def test_a_commit_that_stays_busy_raises_and_leaves_no_transaction_open(
    faulty: tuple[Path, Plan],
) -> None:
    path, plan = faulty
    q = quota(path, timeout=0.3)
    q.reserve().keep()
    plan.faults.append(Fault("COMMIT", "busy-commit", times=10_000))
    started = time.monotonic()
    with pytest.raises(QuotaStoreUnavailable, match="locked") as caught:
        q.reserve()
    assert time.monotonic() - started < 2.0  # retried within the store's timeout, not forever
    assert "COMMIT" in caught.value.message
    assert plan.faults[0].seen >= 2  # it was retried
    plan.faults.clear()
    # Nothing of the refused reservation is counted, and no write lock was kept: another
    # process writes at once, and this one too.
    other = quota(path, timeout=0.2)
    other.reserve().keep()
    q.reserve().keep()
    assert counted(path) == 3


# -- SQLite rolls the transaction back after an error -------------------------------------------


def test_busy_on_a_statement_that_rolled_the_transaction_back_is_redone_whole(
    faulty: tuple[Path, Plan],
) -> None:
    path, plan = faulty
    q = quota(path)
    q.reserve().keep()
    plan.faults.append(Fault("INSERT INTO smtpkit_quota_entry", "rolled-back"))
    q.reserve().keep()
    assert plan.faults[0].seen == 1
    assert plan.outside() == []  # nothing ran after the rollback, outside a transaction
    assert counted(path) == 2
    assert entries(path) == 2


def test_a_full_disk_is_reported_at_once_with_nothing_counted(
    faulty: tuple[Path, Plan],
) -> None:
    path, plan = faulty
    q = quota(path, timeout=5.0)
    q.reserve().keep()
    plan.faults.append(Fault("INSERT INTO smtpkit_quota_entry", "rolled-back", error=full))
    started = time.monotonic()
    with pytest.raises(QuotaStoreUnavailable, match="full") as caught:
        q.reserve()
    assert time.monotonic() - started < 1.0  # not a wait-and-retry error
    assert "local disk" in (caught.value.hint or "")
    assert plan.outside() == []
    assert counted(path) == 1


def test_an_interrupted_write_is_rolled_back_by_sqlite_and_reported(tmp_path: Path) -> None:
    # No injection: SQLite itself rolls the transaction back when a write is interrupted.
    path = tmp_path / "quota.db"
    store = SQLiteQuotaStore(path, timeout=1.0)
    q = Quota(store, Limits(messages_per_day=5), key=KEY, clock=lambda: T0)
    q.reserve().keep()
    held = store._transactions._held  # the connection this process uses
    db = held[1] if held is not None else None
    assert isinstance(db, sqlite3.Connection)
    db.set_progress_handler(lambda: 1, 1)  # every statement is interrupted
    try:
        with pytest.raises(QuotaStoreUnavailable, match="interrupted"):
            q.reserve()
        assert not db.in_transaction
    finally:
        db.set_progress_handler(None, 1)
    q.reserve().keep()
    assert counted(path) == 2


# -- the transaction ends and no statement says so ----------------------------------------------


def test_a_transaction_that_ends_unnoticed_writes_nothing_outside_it(
    faulty: tuple[Path, Plan],
) -> None:
    # The view is read inside the transaction, then the transaction is gone (rolled back
    # with no error reported) and another process takes the last place. The old store
    # went on in autocommit: its INSERT and UPDATE committed one by one, on a count that
    # was no longer true (2 counted for 1 allowed), and its COMMIT then raised "cannot
    # commit - no transaction is active", the error the fleet test met under load.
    path, plan = faulty
    q = quota(path, allowed=1)
    q.usage()  # schema and views
    other = quota(path, allowed=1, timeout=0.5)
    took: list[bool] = []

    def another_process_takes_the_place() -> None:
        other.reserve().keep()
        took.append(True)

    plan.faults.append(
        Fault(
            "SELECT window, cutoff, messages, recipients FROM smtpkit_quota_view",
            "vanish",
            then=another_process_takes_the_place,
        )
    )
    with pytest.raises(QuotaExceeded):
        q.reserve()  # redone whole: the redone reservation sees the other's place
    assert took == [True]
    assert plan.outside() == []
    assert entries(path) == 1
    assert counted(path) == 1


# -- threads share the connection behind one lock -----------------------------------------------


def test_close_during_a_transaction_waits_for_it(faulty: tuple[Path, Plan]) -> None:
    path, plan = faulty
    store = SQLiteQuotaStore(path, timeout=2.0)
    q = Quota(store, Limits(messages_per_day=5), key=KEY, clock=lambda: T0)
    q.reserve().keep()
    inside, go_on = threading.Event(), threading.Event()

    def pause() -> None:
        inside.set()
        assert go_on.wait(5)

    plan.faults.append(Fault("INSERT INTO smtpkit_quota_entry", "pause", then=pause))
    errors: list[BaseException] = []

    def reserve() -> None:
        try:
            q.reserve().keep()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=reserve)
    thread.start()
    assert inside.wait(5)
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # close() waits for the transaction in progress
    go_on.set()
    thread.join(5)
    closer.join(5)
    assert errors == []
    assert counted(path) == 2


# -- fork() -------------------------------------------------------------------------------------

CTX = multiprocessing.get_context("fork") if hasattr(os, "fork") else None


def _child_counts(store: SQLiteQuotaStore, ready: Any, go: Any) -> None:
    q = Quota(store, Limits(messages_per_day=100), key=KEY, clock=lambda: T0)
    q.reserve().keep()
    ready.set()
    if not go.wait(10):
        os._exit(3)
    for _ in range(3):
        q.reserve().keep()
    store.close()
    os._exit(0)


@pytest.mark.skipif(CTX is None, reason="needs fork()")
def test_a_store_used_before_fork_keeps_the_counts_its_children_make(tmp_path: Path) -> None:
    # A Celery master (or any parent) that used the store, then forks workers that use it
    # too. SQLite keeps a process's file locks in memory: a child inherits the parent's
    # bookkeeping, believes it holds the shared lock it never took, and when the parent
    # closes its connection SQLite thinks it is the last one, checkpoints and deletes
    # the WAL under the child, whose later commits go to the deleted file: lost counts.
    assert CTX is not None
    path = tmp_path / "quota.db"
    store = SQLiteQuotaStore(path, timeout=2.0)
    Quota(store, Limits(messages_per_day=100), key=KEY, clock=lambda: T0).reserve().keep()
    ready, go = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_child_counts, args=(store, ready, go))
    child.start()
    try:
        assert ready.wait(10)
        store.close()  # the parent is done with it (or exits, or collects it)
        go.set()
        child.join(10)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert counted(path) == 5

"""One SQLite connection per process, shared by its threads, and how a transaction runs on it.

:class:`Transactions` runs each store operation as ``BEGIN IMMEDIATE`` ... ``COMMIT`` on
this process's connection, one thread at a time.

Invariants:
    * The connection is touched only by the thread holding the lock: opening it, every
      statement, ``COMMIT``/``ROLLBACK``, closing it.
    * No statement of an operation runs outside its transaction. SQLite may roll a
      transaction back by itself after ``SQLITE_BUSY``, ``SQLITE_FULL``, ``SQLITE_IOERR``,
      ``SQLITE_NOMEM`` or ``SQLITE_INTERRUPT``, and the only way to know is
      ``sqlite3_get_autocommit()`` (sqlite.org/c3ref/get_autocommit.html), which is
      ``Connection.in_transaction``: it is checked after ``BEGIN`` and after every
      statement, so a statement never runs (and commits) on its own after the
      transaction is gone: a reservation's read, check and write are one transaction or
      nothing.
    * A failure at any point ends the transaction: ``ROLLBACK`` if it is still open (a
      ``COMMIT`` answered ``SQLITE_BUSY`` leaves it open, sqlite.org/lang_transaction.html);
      a connection whose ``ROLLBACK`` fails is closed (which rolls back) and replaced.
    * Busy, locked, or a transaction that ended under the operation: the operation is
      redone whole, from ``BEGIN``, until the store's ``timeout``; nothing of a failed
      attempt was committed. Any other error raises
      :class:`~smtpkit.errors.QuotaStoreUnavailable` at once.
    * No connection crosses ``fork()`` (sqlite.org/howtocorrupt.html, section 2.6): SQLite
      keeps a process's file locks in memory, and a child that inherits that bookkeeping
      believes it holds locks it never took; when the parent then closes its connection,
      SQLite deletes the WAL under the child and the child's counts are lost. Before a
      fork each store waits for its transaction in progress and closes its connection;
      the child starts with a new lock and opens its own.
    * The journal mode is the one SQLite reports, not the one asked for: ``PRAGMA
      journal_mode=WAL`` answers with the mode it kept when WAL is impossible (no shared
      memory for WAL's index: a VFS or file system without it; sqlite.org/wal.html,
      section 8) instead of failing. Counts stay exact in a rollback journal (each
      operation is one ``BEGIN IMMEDIATE`` transaction); only concurrency drops, so the
      store goes on, logs one WARNING per store naming the mode, and commits with
      ``synchronous=FULL`` there, since NORMAL is safe from corruption in WAL mode only
      (sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from smtpkit.errors import QuotaStoreUnavailable

__all__ = ["Transaction", "Transactions"]

T = TypeVar("T")
logger = logging.getLogger("smtpkit.quotas")

# Result codes (sqlite.org/rescode.html), compared on the primary code (low 8 bits).
_RETRYABLE = frozenset({5, 6, 15})  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL
_FIRST_PAUSE = 0.001
_MAX_PAUSE = 0.05


class _Retry(Exception):
    """This attempt failed in a way another attempt may not: busy, or the transaction lost."""


class Transaction:
    """What an operation sees: statements that run only inside its transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.step = "BEGIN IMMEDIATE"  # the statement running, for error messages

    def execute(self, sql: str, parameters: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run ``sql``; raise if the transaction is gone afterwards (nothing runs outside)."""
        self.step = " ".join(sql.split()[:4])
        cursor = self._db.execute(sql, parameters)
        if not self._db.in_transaction:
            cursor.close()
            raise _Retry(f"the transaction ended at {self.step!r} (SQLite rolled it back)")
        return cursor

    def one(self, sql: str, parameters: Sequence[object] = ()) -> Any:
        """The first row of ``sql`` (a tuple, as sqlite3 gives it) or None, its statement
        closed before returning."""
        cursor = self.execute(sql, parameters)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()


class Transactions:
    """This process's connection to ``path`` and the lock its threads take turns on."""

    def __init__(
        self,
        path: Path,
        timeout: float,
        schema: Sequence[str],
        unavailable: Callable[[str], QuotaStoreUnavailable],
    ) -> None:
        self._path = path
        self._timeout = timeout
        self._schema = tuple(schema)
        self._unavailable = unavailable
        self._lock = threading.Lock()
        self._held: tuple[int, sqlite3.Connection] | None = None
        self._checked = False  # the schema exists (checked once per connection)
        self.journal_mode: str | None = None  # as SQLite reported it for the last connection
        self._warned = False
        self._forking = False
        _LIVE.add(self)

    def run(self, operation: Callable[[Transaction], T]) -> T:
        """``operation`` in one transaction, redone whole while SQLite is busy (see above).

        Raises:
            QuotaStoreUnavailable: the store stayed busy for ``timeout`` seconds, or failed.
        """
        deadline = time.monotonic() + self._timeout
        if not self._lock.acquire(timeout=self._timeout):
            raise self._unavailable(
                f"stayed busy in this process for {self._timeout} s (its other threads "
                "held the connection)"
            )
        pause, shortened = _FIRST_PAUSE, False
        try:
            left = deadline - time.monotonic()
            if left < self._timeout - _MAX_PAUSE:  # the other threads took some of it
                shortened = self._wait_at_most(left)
            while True:
                try:
                    return self._attempt(operation)
                except _Retry as failure:
                    reason = str(failure)
                logger.debug("SQLite quota store %s: redoing a transaction: %s", self._path, reason)
                left = deadline - time.monotonic()
                if left <= pause:
                    raise self._unavailable(f"{reason}, still after {self._timeout} s")
                time.sleep(pause)
                pause = min(pause * 2, _MAX_PAUSE)
                # SQLite's own busy wait must end by the deadline too.
                shortened = self._wait_at_most(left - pause) or shortened
        finally:
            if shortened:
                self._wait_at_most(self._timeout)
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            held, self._held = self._held, None
            if held is not None:
                _let_go(held)

    # -- one attempt (the lock is held) ------------------------------------------------------

    def _attempt(self, operation: Callable[[Transaction], T]) -> T:
        """One ``BEGIN IMMEDIATE`` ... ``COMMIT``; on any failure, no transaction stays open.

        Raises:
            _Retry: busy, locked, or the transaction was lost: the caller may try again.
            QuotaStoreUnavailable: any other SQLite error.
        """
        try:
            db = self._connection()
        except sqlite3.Error as error:
            if _retryable(error):
                raise _Retry(f"{_describe(error)} while opening it") from error
            raise self._unavailable(_describe(error)) from error
        transaction = Transaction(db)
        try:
            db.execute("BEGIN IMMEDIATE")
            if not db.in_transaction:
                raise _Retry("the transaction ended at 'BEGIN IMMEDIATE'")
            if not self._checked:
                for statement in self._schema:  # created on first use; stores share files
                    transaction.execute(statement)
            result = operation(transaction)
            transaction.step = "COMMIT"
            if not db.in_transaction:
                raise _Retry("the transaction ended before 'COMMIT' (SQLite rolled it back)")
            db.execute("COMMIT")
        except sqlite3.Error as error:
            self._end(db)
            if _retryable(error):
                raise _Retry(f"{_describe(error)} at {transaction.step!r}") from error
            raise self._unavailable(f"{_describe(error)} at {transaction.step!r}") from error
        except BaseException:
            self._end(db)
            raise
        self._checked = True
        return result

    def _connection(self) -> sqlite3.Connection:
        """This process's connection, opened (WAL) if it has none yet."""
        pid = os.getpid()
        if self._held is not None:
            if self._held[0] == pid:
                return self._held[1]
            # Inherited without the fork hook (os.fork from C): the parent's, never touched.
            _let_go(self._held)
            self._held = None
        db = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            # WAL: readers never block the writer. synchronous=NORMAL: a commit survives
            # the process being killed (it is in the OS's cache); only a crash of the whole
            # machine may forget the last moments' reservations, as Redis does with
            # appendfsync everysec. FULL would sync the WAL at every commit: twice the cost.
            row = db.execute("PRAGMA journal_mode=WAL").fetchone()
            mode = str(row[0]).lower() if row else "unknown"
            # In a rollback journal NORMAL may corrupt the file on a power loss: FULL.
            db.execute(f"PRAGMA synchronous={'NORMAL' if mode == 'wal' else 'FULL'}")
        except BaseException:
            db.close()
            raise
        self._held, self._checked = (pid, db), False
        self._journal(mode)
        return db

    def _journal(self, mode: str) -> None:
        """Record the journal mode SQLite kept; say once per store when it is not WAL."""
        self.journal_mode = mode
        if mode == "wal" or self._warned:
            return
        self._warned = True
        logger.warning(
            "SQLite quota store %s: SQLite kept journal_mode=%s when asked for WAL (this "
            "file's VFS or file system offers no shared memory for WAL's index). Counts "
            "stay exact (one BEGIN IMMEDIATE transaction each), but every reservation now "
            "waits for the others, readers included: put the file on a local disk",
            self._path,
            mode,
        )

    def _end(self, db: sqlite3.Connection) -> None:
        """After a failure: no transaction stays open, and a doubtful connection goes."""
        try:
            if db.in_transaction:
                db.execute("ROLLBACK")
            return
        except sqlite3.Error:
            pass
        # ROLLBACK failed: closing rolls back whatever is open; the next attempt reconnects.
        if self._held is not None and self._held[1] is db:
            self._held = None
        with contextlib.suppress(sqlite3.Error):
            db.close()

    def _wait_at_most(self, seconds: float) -> bool:
        if self._held is None:
            return False
        try:
            self._held[1].execute(f"PRAGMA busy_timeout = {max(int(seconds * 1000), 0)}")
        except sqlite3.Error:
            return False
        return True

    # -- fork ------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        # Wait for a transaction in progress, then close: the child inherits no connection.
        self._forking = self._lock.acquire(timeout=self._timeout)
        if self._forking and self._held is not None and self._held[0] == os.getpid():
            held, self._held = self._held, None
            _let_go(held)

    def _after_fork_in_parent(self) -> None:
        if self._forking:
            self._forking = False
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._forking = False
        self._lock = threading.Lock()  # the parent's threads are not here to release it
        if self._held is not None:
            _let_go(self._held)
            self._held = None


def _retryable(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _RETRYABLE
    text = str(error)
    return "locked" in text or "busy" in text


def _describe(error: sqlite3.Error) -> str:
    name = getattr(error, "sqlite_errorname", None)
    return f"{error} ({name})" if isinstance(name, str) else str(error)


# Connections a child inherited (the parent could not close them in time): never closed
# here, since closing the parent's connection in the child would release or delete what
# the parent still uses.
_ORPHANS: list[sqlite3.Connection] = []


def _let_go(held: tuple[int, sqlite3.Connection]) -> None:
    pid, db = held
    if pid == os.getpid():
        db.close()
    else:
        _ORPHANS.append(db)


_LIVE: weakref.WeakSet[Transactions] = weakref.WeakSet()


def _each_before_fork() -> None:
    for transactions in list(_LIVE):
        transactions._before_fork()


def _each_after_fork_in_parent() -> None:
    for transactions in list(_LIVE):
        transactions._after_fork_in_parent()


def _each_after_fork_in_child() -> None:
    for transactions in list(_LIVE):
        transactions._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_each_before_fork,
        after_in_parent=_each_after_fork_in_parent,
        after_in_child=_each_after_fork_in_child,
    )

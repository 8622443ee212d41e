"""SQLiteQuotaStore and the journal mode SQLite actually gives it, and paths it refuses.

``PRAGMA journal_mode=WAL`` does not fail when WAL is impossible: SQLite answers with the
mode it kept (sqlite.org/pragma.html#pragma_journal_mode). That happens for an in-memory or
temporary database, and for a file opened through a VFS with no shared memory for WAL's
index (sqlite.org/wal.html, section 8: ``unix-dotfile``, ``unix-none``, VFSes of file
systems without it). The store then keeps working - each reservation is one
``BEGIN IMMEDIATE`` transaction, exact in rollback-journal mode too - but says so once, at
WARNING, exposes the mode (``journal_mode``, ``smtpkit check``'s quota step), and commits
with ``synchronous=FULL`` (NORMAL is safe from corruption only in WAL mode).

The no-shared-memory case is real SQLite: the store's connections to the file are opened
through SQLite's own ``unix-dotfile`` VFS (``file:...?vfs=unix-dotfile``), which has no
shared memory, so SQLite keeps ``journal_mode=delete`` as it would on such a file system.

An in-memory database (``:memory:``, ``sqlite::memory:``, SQLAlchemy's ``sqlite://``) is
refused with ConfigurationError: each connection has its own, so processes share nothing
and a reconnect (after ``close()`` or ``fork()``) silently starts from zero.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from smtpkit import ConfigurationError, Submitter
from smtpkit.cli import main
from smtpkit.doctor._quota import account_quota, quota_finding
from smtpkit.doctor._report import Status
from smtpkit.errors import QuotaExceeded, QuotaStoreUnavailable
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, SQLiteQuotaStore
from smtpkit.quotas._url import store_from_url

pytestmark = pytest.mark.timeout(60)
T0 = 1_700_000_000.0
KEY = "smtp.example.com/journal@example.com"
CTX = multiprocessing.get_context("fork") if hasattr(os, "fork") else None


def quota(store: SQLiteQuotaStore, allowed: int = 100) -> Quota:
    return Quota(store, Limits(messages_per_day=allowed), key=KEY, clock=lambda: T0)


@pytest.fixture
def no_shared_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[sqlite3.Connection]:
    """The store's connections to ``tmp_path / "quota.db"`` go through SQLite's unix-dotfile
    VFS (no shared memory: WAL impossible); returns the connections opened so far."""
    path = tmp_path / "quota.db"
    real = sqlite3.connect
    opened: list[sqlite3.Connection] = []

    def connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if Path(database) == path and kwargs.get("check_same_thread") is False:
            db = real(f"{path.as_uri()}?vfs=unix-dotfile", *args, uri=True, **kwargs)
            opened.append(db)
            return db
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    return opened


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "smtpkit.quotas" and record.levelno >= logging.WARNING
    ]


# -- WAL, as on a local disk ----------------------------------------------------------------


def test_a_file_on_a_local_disk_runs_in_wal_mode_and_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SQLiteQuotaStore(tmp_path / "quota.db")
    assert store.journal_mode is None  # no I/O before the first operation
    quota(store).reserve().keep()
    assert store.journal_mode == "wal"
    assert warnings_of(caplog) == []
    store.close()


def test_a_file_held_exclusively_in_delete_mode_is_busy_then_gets_wal(tmp_path: Path) -> None:
    # Another program holds the file in journal_mode=DELETE with locking_mode=EXCLUSIVE
    # (it keeps its shared lock after a read): SQLite cannot switch to WAL and answers
    # "database is locked" rather than a mode, so this is the busy case - retried until
    # the timeout, then QuotaStoreUnavailable - never a silent rollback journal.
    path = tmp_path / "quota.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=DELETE")
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("CREATE TABLE mine (x)")
    other.execute("SELECT * FROM mine").fetchall()
    store = SQLiteQuotaStore(path, timeout=0.3)
    try:
        with pytest.raises(QuotaStoreUnavailable, match="locked"):
            quota(store).reserve()
        assert store.journal_mode is None
        other.close()
        quota(store).reserve().keep()
        assert store.journal_mode == "wal"
    finally:
        other.close()
        store.close()


# -- no shared memory: rollback journal, still exact ----------------------------------------


def test_without_shared_memory_it_warns_once_names_the_mode_and_keeps_counting(
    tmp_path: Path,
    no_shared_memory: list[sqlite3.Connection],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="smtpkit.quotas")
    store = SQLiteQuotaStore(tmp_path / "quota.db", timeout=2.0)
    counted = quota(store, allowed=3)
    for _ in range(3):
        counted.reserve().keep()
    with pytest.raises(QuotaExceeded):
        counted.reserve()
    store.close()  # a new connection is checked again, and not warned about twice
    assert quota(store, allowed=3).usage().limits[0].used == 3

    assert len(no_shared_memory) == 2  # really through the dotfile VFS, twice
    assert store.journal_mode == "delete"
    [warning] = warnings_of(caplog)
    assert "journal_mode=delete" in warning
    assert str(tmp_path / "quota.db") in warning
    assert "WAL" in warning
    assert "shared memory" in warning  # why
    assert "exact" in warning  # what it means for the counts


def test_without_wal_commits_are_synchronous_full(
    tmp_path: Path, no_shared_memory: list[sqlite3.Connection]
) -> None:
    # sqlite.org/pragma.html#pragma_synchronous: NORMAL is safe from corruption in WAL
    # mode only; with a rollback journal a power loss at the wrong time may corrupt.
    store = SQLiteQuotaStore(tmp_path / "quota.db", timeout=2.0)
    quota(store).reserve().keep()
    [db] = no_shared_memory
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    store.close()


def test_with_wal_commits_stay_synchronous_normal(tmp_path: Path) -> None:
    path = tmp_path / "quota.db"
    real = sqlite3.connect
    opened: list[sqlite3.Connection] = []

    def spy(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = real(database, *args, **kwargs)
        opened.append(db)
        return db

    store = SQLiteQuotaStore(path)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite3, "connect", spy)
        quota(store).reserve().keep()
    [db] = opened
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    store.close()


def _reserve_until_refused(path: Path, tries: int, granted: Any) -> None:
    counted = quota(SQLiteQuotaStore(path, timeout=10.0), allowed=50)
    mine = 0
    for _ in range(tries):
        try:
            counted.reserve().keep()
        except QuotaExceeded:
            continue
        mine += 1
    granted.put(mine)
    granted.close()
    granted.join_thread()  # flushed before _exit, which skips the queue's own flush
    os._exit(0)


@pytest.mark.skipif(CTX is None, reason="needs fork()")
def test_without_wal_three_processes_get_exactly_the_quota(
    tmp_path: Path, no_shared_memory: list[sqlite3.Connection]
) -> None:
    # Rollback journal + dotfile locks, three real processes racing for 50 places: every
    # reservation is still one BEGIN IMMEDIATE transaction, so none is granted twice.
    assert CTX is not None
    granted = CTX.Queue()
    workers = [
        CTX.Process(target=_reserve_until_refused, args=(tmp_path / "quota.db", 30, granted))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    try:
        counts = [granted.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(10)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert sum(counts) == 50
    assert quota(SQLiteQuotaStore(tmp_path / "quota.db")).usage().limits[0].used == 50


def test_smtpkit_check_shows_the_journal_mode_and_warns_without_wal(
    tmp_path: Path, no_shared_memory: list[sqlite3.Connection]
) -> None:
    options = {"host": "smtp.gmail.com", "provider": "gmail"}
    without = SQLiteQuotaStore(tmp_path / "quota.db", timeout=2.0)
    with_wal = SQLiteQuotaStore(tmp_path / "other.db", timeout=2.0)

    warned = quota_finding(account_quota(options, without))  # type: ignore[arg-type]
    fine = quota_finding(account_quota(options, with_wal))  # type: ignore[arg-type]
    without.close()
    with_wal.close()

    assert warned.status is Status.WARN
    assert warned.details["journal_mode"] == "delete"
    assert "journal_mode=delete" in warned.observed
    assert warned.advice is not None
    assert "local disk" in warned.advice
    assert fine.status is Status.OK
    assert fine.details["journal_mode"] == "wal"


# -- in-memory databases: refused -----------------------------------------------------------


@pytest.mark.parametrize("path", [":memory:", ""])
def test_an_in_memory_or_temporary_database_is_refused(path: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SQLiteQuotaStore(path)
    assert "MemoryQuotaStore" in (caught.value.hint or "")
    assert "file" in (caught.value.hint or "")


@pytest.mark.parametrize("url", ["sqlite::memory:", "sqlite:///:memory:", "sqlite://"])
def test_an_in_memory_store_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        store_from_url(url)
    with pytest.raises(ConfigurationError):
        Submitter.from_url(f"smtps://me%40gmail.com:pw@smtp.gmail.com?quota={url}")
    assert not Path("/:memory:").exists()


def test_smtpkit_quota_notes_the_journal_mode(
    tmp_path: Path,
    no_shared_memory: list[sqlite3.Connection],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SMTPKIT_QUOTA_STORE", raising=False)
    store = f"sqlite:///{tmp_path}/quota.db"

    assert main(["quota", "me@gmail.com", "--store", store]) == 0
    text = capsys.readouterr().out
    assert main(["quota", "me@gmail.com", "--store", store, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)

    assert "  note: the SQLite file runs in journal_mode=delete, not WAL" in text
    assert document["journal_mode"] == "delete"
    assert len(no_shared_memory) == 2

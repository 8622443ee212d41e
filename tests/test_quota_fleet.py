"""Quotas across OS processes and threads, on SQLite and on a real redis-server.

* 4 processes x 8 threads share 500 messages a day: exactly 500 are granted, every other
  attempt gets QuotaExceeded.
* A worker SIGKILLed while a message is in flight leaks only its own reservation.
* 10,000 reservations from 4 processes x 32 threads over sliding windows: zero
  over-grants, checked afterwards over every window position.
* Redis killed and restarted mid-run: with persistence the fleet still stops at exactly
  500; without it, workers notice the lost counts and send nothing more.

Processes are forked (Linux); each builds its own store, as a real worker does.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smtpkit.errors import QuotaExceeded, QuotaStoreUnavailable
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, QuotaStore, SQLiteQuotaStore
from tests.quota_redis import RedisServer, unavailable_reason

T0 = 1_700_000_000.0
KEY = "smtp.example.com/fleet@example.com"

if not hasattr(os, "fork"):
    pytest.skip("these tests fork worker processes", allow_module_level=True)
CTX = multiprocessing.get_context("fork")


@dataclass(frozen=True)
class Backend:
    kind: str  # "sqlite" or "redis"
    address: str
    prefix: str = field(default_factory=lambda: f"fleet-{uuid.uuid4().hex[:8]}:")

    def store(self) -> QuotaStore:
        if self.kind == "sqlite":
            return SQLiteQuotaStore(self.address, timeout=20.0)
        from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

        return RedisQuotaStore(self.address, prefix=self.prefix, timeout=2.0)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path / "quota.db"))
    server: RedisServer = request.getfixturevalue("redis_server")
    return Backend("redis", server.url)


# -- the worker process -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What each worker process does: `threads` threads, each up to `attempts` reservations."""

    backend: Backend
    limits: Limits
    threads: int
    attempts: list[int]  # per process: total attempts of its threads
    speed: float = 0.0  # simulated seconds per real second (0: the clock stands still)
    # When set, the fleet's one clock moves this many simulated seconds at each reading
    # instead: the windows slide with the work done, however slowly a loaded machine runs.
    per_reading: float = 0.0
    release_share: float = 0.0  # this share of grants fails before acceptance: released
    pause: float = 0.0  # seconds between a thread's attempts
    stop_after_refusals: int = 0  # a thread stops after this many QuotaExceeded in a row
    retry_unavailable: bool = False  # QuotaStoreUnavailable: pause and try again
    stop_when_lost: bool = False  # ... unless the store says it lost its counts
    deadline: float = 20.0


@dataclass
class Tally:
    granted: int = 0
    released: int = 0
    exceeded: int = 0
    refused_by: dict[str, int] = field(default_factory=dict)
    unavailable: int = 0
    lost: int = 0
    kept: list[tuple[float, int]] = field(default_factory=list)  # (counted at, recipients)
    errors: list[str] = field(default_factory=list)
    unavailable_messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Counters:
    """Shared across the fleet: messages kept, and reservation calls still in flight."""

    kept: Any = field(default_factory=lambda: CTX.Value("i", 0))
    inflight: Any = field(default_factory=lambda: CTX.Value("i", 0))

    def add(self, value: Any, delta: int) -> None:
        with value.get_lock():
            value.value += delta


def _thread(
    job: Job,
    quota: Quota,
    attempts: int,
    seed: int,
    counters: Counters | None,
    tally: Tally,
    lock: threading.Lock,
    go: Any,
) -> None:
    rng = random.Random(seed)
    refusals = 0
    deadline = time.monotonic() + job.deadline
    go.wait(10)
    done = 0
    while done < attempts and time.monotonic() < deadline:
        # In flight from before the call until its grant is counted: once this reads 0
        # after a kill, every grant the old server gave is in `kept`.
        if counters is not None:
            counters.add(counters.inflight, 1)
        try:
            try:
                reservation = quota.reserve(
                    recipients=rng.randint(1, 3) if job.speed or job.per_reading else 1
                )
            except QuotaExceeded as error:
                done += 1
                refusals += 1
                with lock:
                    tally.exceeded += 1
                    tally.refused_by[error.limit] = tally.refused_by.get(error.limit, 0) + 1
                if job.stop_after_refusals and refusals >= job.stop_after_refusals:
                    return
            except QuotaStoreUnavailable as error:
                with lock:
                    tally.unavailable += 1
                    tally.lost += "lost the counts" in error.message
                    tally.unavailable_messages.append(f"{error.message} <- {error.__cause__!r}")
                if not job.retry_unavailable or (job.stop_when_lost and "lost" in error.message):
                    return
            except Exception as error:
                with lock:
                    tally.errors.append(repr(error))
                return
            else:
                done += 1
                refusals = 0
                if rng.random() < job.release_share:
                    reservation.release()
                    with lock:
                        tally.released += 1
                else:
                    reservation.keep()
                    with lock:
                        tally.granted += 1
                        tally.kept.append((reservation.at, reservation.recipients))
                    if counters is not None:
                        counters.add(counters.kept, 1)
        finally:
            if counters is not None:
                counters.add(counters.inflight, -1)
        if job.pause:
            time.sleep(job.pause)


def _process(
    job: Job,
    index: int,
    start: float,
    readings: Any,
    go: Any,
    results: Any,
    counters: Counters | None,
) -> None:
    store = job.backend.store()

    def clock() -> float:
        # Every process runs one shared simulated clock (or a frozen one).
        if job.per_reading:
            with readings.get_lock():
                readings.value += 1
                return T0 + readings.value * job.per_reading
        return T0 + (time.time() - start) * job.speed

    quota = Quota(store, job.limits, key=KEY, clock=clock)
    tally, lock = Tally(), threading.Lock()
    share, extra = divmod(job.attempts[index], job.threads)
    threads = [
        threading.Thread(
            target=_thread,
            args=(job, quota, share + (n < extra), index * 1000 + n, counters, tally, lock, go),
        )
        for n in range(job.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(tally)


def run_fleet(
    job: Job, processes: int = 4, *, during: Any = None, counters: Counters | None = None
) -> Tally:
    """Run `processes` workers to the end; `during(counters)` runs in the parent meanwhile."""
    results, go, readings = CTX.Queue(), CTX.Event(), CTX.Value("q", 0)
    workers = [
        CTX.Process(target=_process, args=(job, i, time.time(), readings, go, results, counters))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    go.set()
    try:
        if during is not None:
            during(counters)
        tallies = [results.get(timeout=job.deadline + 30) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    total = Tally()
    for tally in tallies:
        total.granted += tally.granted
        total.released += tally.released
        total.exceeded += tally.exceeded
        for limit, count in tally.refused_by.items():
            total.refused_by[limit] = total.refused_by.get(limit, 0) + count
        total.unavailable += tally.unavailable
        total.lost += tally.lost
        total.kept += tally.kept
        total.errors += tally.errors
        total.unavailable_messages += tally.unavailable_messages
    return total


def used(backend: Backend, limits: Limits, now: float = T0) -> list[int]:
    return [u.used for u in Quota(backend.store(), limits, key=KEY).usage(now=now).limits]


# -- the tests ----------------------------------------------------------------------------------


def test_a_fleet_takes_exactly_the_quota(backend: Backend) -> None:
    limits = Limits(messages_per_day=500)
    # A generous deadline: on a loaded machine 800 attempts may take many seconds; the
    # counts asserted below are the same however long they take.
    job = Job(backend, limits, threads=8, attempts=[200] * 4, deadline=60.0)
    total = run_fleet(job)
    assert total.errors == []
    assert total.unavailable_messages == []
    assert total.granted == 500
    assert total.exceeded == 800 - 500
    assert used(backend, limits) == [500]


def _hold_a_reservation(backend: Backend, ready: Any) -> None:
    quota = Quota(backend.store(), Limits(messages_per_day=10), key=KEY, clock=lambda: T0)
    quota.reserve().keep()
    quota.reserve().keep()  # two sent
    quota.reserve()  # one in flight when the worker dies
    ready.set()
    time.sleep(60)


def test_a_killed_worker_leaks_only_its_own_reservation(backend: Backend) -> None:
    ready = CTX.Event()
    worker = CTX.Process(target=_hold_a_reservation, args=(backend, ready))
    worker.start()
    try:
        assert ready.wait(20)
    finally:
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(timeout=10)
    assert worker.exitcode == -signal.SIGKILL
    quota = Quota(backend.store(), Limits(messages_per_day=10), key=KEY, clock=lambda: T0)
    granted = 0
    for _ in range(20):
        try:
            quota.reserve().keep()
        except QuotaExceeded:
            break
        granted += 1
    # 3 counted for the dead worker: its 2 sent and the 1 in flight (it never said).
    assert granted == 10 - 3
    assert used(backend, Limits(messages_per_day=10)) == [10]


def _die_inside_a_transaction(path: str, ready: Any) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO smtpkit_quota_entry (account, entry, at, messages, recipients) "
        "VALUES (?, 'ghost', ?, 1, 1)",
        (KEY, T0),
    )
    ready.set()
    time.sleep(60)


def test_a_worker_killed_inside_a_sqlite_transaction_leaves_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "quota.db")
    quota = Quota(
        SQLiteQuotaStore(path, timeout=10), Limits(messages_per_day=3), key=KEY, clock=lambda: T0
    )
    quota.reserve().keep()  # creates the schema
    ready = CTX.Event()
    worker = CTX.Process(target=_die_inside_a_transaction, args=(path, ready))
    worker.start()
    try:
        assert ready.wait(20)
    finally:
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(timeout=10)
    started = time.monotonic()
    quota.reserve().keep()  # the dead writer's lock is gone at once
    quota.reserve().keep()
    # The store waits up to 10 s for a live writer: well under that means no lock was left.
    assert time.monotonic() - started < 5
    with pytest.raises(QuotaExceeded):
        quota.reserve()  # its uncommitted row was rolled back: 3 counted, not 4


def _over_grants(kept: list[tuple[float, int]], window: float, allowed: int, by: str) -> int:
    """How many kept records end a window holding more than `allowed` (rolling)."""
    records = sorted(kept)
    over, start, total = 0, 0, 0
    for end, (at, recipients) in enumerate(records):
        total += 1 if by == "messages" else recipients
        while records[start][0] <= at - window:
            total -= 1 if by == "messages" else records[start][1]
            start += 1
        over += total > allowed
        assert end >= start
    return over


def test_ten_thousand_reservations_never_over_grant(backend: Backend) -> None:
    # The clock moves 48 ms at each of the ~10,000 readings (about 8 simulated minutes):
    # about 20 attempts a simulated second for 3 places, 1,200 a minute for 40, and the
    # day's 300 recipients run out part way, however fast or slow the machine is (a clock
    # tied to real time left the minute window unfilled on a loaded machine).
    limits = Limits(messages_per_second=3, messages_per_minute=40, recipients_per_day=300)
    job = Job(
        backend,
        limits,
        threads=32,
        attempts=[2500] * 4,
        per_reading=0.048,
        release_share=0.25,
        deadline=60.0,
    )
    total = run_fleet(job)
    assert total.errors == []
    assert total.unavailable_messages == []
    assert total.granted + total.released + total.exceeded == 10_000  # every one decided
    # Each limit was the one that refused at some point: all three windows were full.
    assert set(total.refused_by) == {
        "messages_per_second",
        "messages_per_minute",
        "recipients_per_day",
    }
    assert _over_grants(total.kept, 1.0, 3, "messages") == 0
    assert _over_grants(total.kept, 60.0, 40, "messages") == 0
    assert _over_grants(total.kept, 86_400.0, 300, "recipients") == 0
    # Nothing lost, nothing leaked: the store counts exactly what the workers kept.
    last = max(at for at, _ in total.kept)
    usage = Quota(backend.store(), limits, key=KEY).usage(now=last)
    day = next(u.used for u in usage.limits if u.name == "recipients_per_day")
    assert day == sum(recipients for _, recipients in total.kept)


# -- Redis restarted mid-run --------------------------------------------------------------------


def _restart_when(server: RedisServer, seen: list[int]) -> Any:
    def during(counters: Counters) -> None:
        deadline = time.monotonic() + 20
        while counters.kept.value < 100 and time.monotonic() < deadline:
            time.sleep(0.001)
        server.kill()
        time.sleep(0.3)  # in-flight calls fail; nothing is granted while it is down
        # A thread may have been granted just before the kill and not yet have counted it
        # (descheduled, under load): wait until no call is in flight, so every grant of
        # the old server is counted; calls made after the kill cannot be granted.
        deadline = time.monotonic() + 20
        while counters.inflight.value > 0 and time.monotonic() < deadline:
            time.sleep(0.0005)
        seen.append(counters.kept.value)
        server.start()

    return during


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_redis_restarted_mid_run_with_persistence_stops_at_exactly_the_quota(
    tmp_path: Path,
) -> None:
    with RedisServer(tmp_path, persistent=True) as server:
        backend = Backend("redis", server.url)
        limits = Limits(messages_per_day=500)
        job = Job(
            backend,
            limits,
            threads=8,
            attempts=[10_000] * 4,
            # 32 threads x 50/s at most: >= 0.3 s from 100 to 500 kept, so the kill
            # lands mid-run even when the parent waits for a CPU (2 cores, under load).
            pause=0.02,
            stop_after_refusals=3,
            retry_unavailable=True,
            deadline=20.0,
        )
        at_kill: list[int] = []
        total = run_fleet(job, during=_restart_when(server, at_kill), counters=Counters())
        assert total.errors == []
        assert 100 <= at_kill[0] < 500  # the restart came mid-run
        assert total.unavailable > 0  # the workers met the outage and waited it out
        assert total.lost == 0  # appendonly kept every count
        assert total.granted == 500
        assert used(backend, limits) == [500]


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
def test_redis_restarted_without_persistence_sends_nothing_more(tmp_path: Path) -> None:
    with RedisServer(tmp_path, persistent=False) as server:
        backend = Backend("redis", server.url)
        limits = Limits(messages_per_day=500)
        job = Job(
            backend,
            limits,
            threads=8,
            attempts=[10_000] * 4,
            # 32 threads x 50/s at most: >= 0.3 s from 100 to 500 kept, so the kill
            # lands mid-run even when the parent waits for a CPU (2 cores, under load).
            pause=0.02,
            stop_after_refusals=3,
            retry_unavailable=True,
            stop_when_lost=True,
            deadline=10.0,
        )
        at_kill: list[int] = []
        total = run_fleet(job, during=_restart_when(server, at_kill), counters=Counters())
        assert total.errors == []
        assert 100 <= at_kill[0] < 500
        # The counts are gone; the workers that knew them notice and refuse, rather than
        # start a fresh 500 on top of what was already sent.
        assert total.lost == 32  # every thread was told, and stopped
        assert total.granted == at_kill[0]

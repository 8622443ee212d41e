"""A fleet sending through Submitters that share one quota, end to end.

2 OS processes x 4 threads, each process with its own ``smtpkit.Submitter`` (as each
Celery worker process has), send to one LocalServer through a quota of 20 messages a day
kept in SQLite, and in a real ``redis-server`` when one is installed: exactly 20 messages
reach the server, every other attempt ends with ``QuotaExceeded`` without being sent.

Processes are forked (Linux); each builds its own store and Submitter, as a worker does.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from smtpkit import QuotaExceeded, Security, Submitter
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, QuotaStore, SQLiteQuotaStore
from smtpkit.testing import LocalServer
from tests.quota_redis import RedisServer, unavailable_reason

pytestmark = pytest.mark.timeout(120)

if not hasattr(os, "fork"):
    pytest.skip("these tests fork worker processes", allow_module_level=True)
CTX = multiprocessing.get_context("fork")

KEY = "127.0.0.1/fleet@example.test"
QUOTA = 20
PROCESSES, THREADS, ATTEMPTS = 2, 4, 5
ACQUIRE = 15.0  # 40 attempts for 20 places


@dataclass(frozen=True)
class Backend:
    kind: str  # "sqlite" or "redis"
    address: str
    prefix: str = ""

    def store(self) -> QuotaStore:
        if self.kind == "sqlite":
            return SQLiteQuotaStore(self.address, timeout=20.0)
        from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

        return RedisQuotaStore(self.address, prefix=self.prefix, timeout=5.0)


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
    return Backend("redis", server.url, prefix=f"send-{uuid.uuid4().hex[:8]}:")


def _message(worker: int, number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = "fleet@example.test", "bob@example.test"
    msg["Subject"] = f"fleet {worker}-{number}"
    msg.set_content("Hello.\n")
    return msg


def _worker(backend: Backend, host: str, port: int, worker: int, go: Any, out: Any) -> None:
    """One worker process: its own store and Submitter, THREADS threads sending."""
    counts = {"sent": 0, "exceeded": 0, "other": 0}
    lock = threading.Lock()
    quota = Quota(backend.store(), Limits(messages_per_day=QUOTA), key=KEY)
    submitter = Submitter(
        host, port, security=Security.NONE, quota=quota, max_connections=THREADS, timeout=10
    )

    def thread(number: int) -> None:
        go.wait(30)
        for attempt in range(ATTEMPTS):
            try:
                submitter.send(_message(worker, number * ATTEMPTS + attempt))
                kind = "sent"
            except QuotaExceeded:
                kind = "exceeded"
            except Exception as error:
                kind = "other"
                print(f"worker {worker}: {error!r}", flush=True)
            with lock:
                counts[kind] += 1

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    submitter.close()
    out.put(counts)


def test_a_fleet_of_submitters_sharing_a_quota_sends_exactly_the_quota(
    backend: Backend,
) -> None:
    with LocalServer(security=Security.NONE) as server:
        go = CTX.Event()
        out = CTX.Queue()
        workers = [
            CTX.Process(target=_worker, args=(backend, server.host, server.port, n, go, out))
            for n in range(PROCESSES)
        ]
        for process in workers:
            process.start()
        go.set()
        tallies = [out.get(timeout=90) for _ in workers]
        for process in workers:
            process.join(30)
            assert process.exitcode == 0
        received = server.wait_for(QUOTA, timeout=10)

        assert sum(t["sent"] for t in tallies) == QUOTA
        assert sum(t["exceeded"] for t in tallies) == PROCESSES * THREADS * ATTEMPTS - QUOTA
        assert sum(t["other"] for t in tallies) == 0
        assert len(received) == len(server.messages) == QUOTA  # nothing over the quota
        usage = Quota(backend.store(), Limits(messages_per_day=QUOTA), key=KEY).usage()
        assert usage.limits[0].used == QUOTA

"""What a quota reservation costs, per store, on loopback: time and Redis round trips.

Each store is timed reserving one message at a time from one thread (``reserve`` then
``keep``, the driver's path for an accepted message), median of ``--rounds``; then a fleet
of 4 processes x 8 threads shares one quota (the rate of decisions, granted or refused).
For Redis the round trips are counted twice, independently: on the client (responses read
per reservation) and on the server (``INFO commandstats``: EVALSHA calls per reservation).
The Redis server is a private ``redis-server`` on 127.0.0.1 (``--save '' --appendonly
no``) that this script starts and stops; SQLite uses a file in a temporary directory.

    python -m benchmarks.run_quota                   # 5,000 reservations x 5 rounds
    python -m benchmarks.run_quota --count 2000 --rounds 3

Writes ``benchmarks/results/quota.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import HOST, REPO, free_port
from smtpkit.errors import QuotaExceeded
from smtpkit.providers import Limits
from smtpkit.quotas import MemoryQuotaStore, Quota, QuotaStore, SQLiteQuotaStore

#: Limits no run reaches: the cost measured is the reservation's, not a refusal's. Four
#: rules over three windows, like Microsoft 365's preset plus a per-second rate.
OPEN_LIMITS = Limits(
    messages_per_day=10**9,
    recipients_per_day=10**9,
    messages_per_minute=10**9,
    messages_per_second=10**9,
)
KEY = "smtp.example.com/bench@example.com"
SMTP_RTT_MS = 20.0  # the round trip the target speaks of


class RedisServer:
    """A throw-away redis-server on 127.0.0.1 (no persistence)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="smtpkit-bench-redis-"))
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis  # noqa: PLC0415

        self.client = redis.Redis(host=HOST, port=self.port, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def counting_responses() -> list[int]:
    """Count every reply redis-py reads (one per round trip), process-wide."""
    from redis.connection import AbstractConnection  # noqa: PLC0415

    counter = [0]
    original = AbstractConnection.read_response

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return original(self, *args, **kwargs)

    AbstractConnection.read_response = read_response  # type: ignore[method-assign]
    return counter


def time_reservations(quota: Quota, count: int, start: float) -> float:
    """Seconds for `count` reservations (each kept), at distinct times."""
    began = time.perf_counter()
    for index in range(count):
        quota.reserve(now=start + index * 1e-3).keep()
    return time.perf_counter() - began


def single_thread(
    make: Callable[[], QuotaStore],
    count: int,
    rounds: int,
    redis: tuple[RedisServer, list[int]] | None = None,
) -> dict[str, Any]:
    """Median time per reservation; with `redis`, also what went over the wire."""
    samples, responses, evalsha, evals = [], 0, 0, 0
    for round_index in range(rounds):
        quota = Quota(make(), OPEN_LIMITS, key=f"{KEY}-{round_index}")
        quota.reserve(now=1.0).keep()  # connect, create the schema, load the script
        if redis is not None:
            redis[0].client.config_resetstat()
            read_before = redis[1][0]
        samples.append(time_reservations(quota, count, 2.0) / count)
        if redis is not None:
            responses += redis[1][0] - read_before
            stats = redis[0].client.info("commandstats")
            evalsha += stats.get("cmdstat_evalsha", {}).get("calls", 0)
            evals += stats.get("cmdstat_eval", {}).get("calls", 0)
        quota.store.close()
    row: dict[str, Any] = {
        "us_per_reservation": statistics.median(samples) * 1e6,
        "samples_us": [s * 1e6 for s in samples],
    }
    if redis is not None:
        row.update(
            responses_per_reservation=responses / (count * rounds),
            evalsha_per_reservation=evalsha / (count * rounds),
            eval_per_reservation=evals / (count * rounds),
        )
    return row


def _fleet_process(kind: str, address: str, attempts: int, go: Any, out: Any) -> None:
    store: QuotaStore
    if kind == "sqlite":
        store = SQLiteQuotaStore(address)
    else:
        from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

        store = RedisQuotaStore(address)
    quota = Quota(store, Limits(messages_per_day=attempts * 4 // 2), key=KEY, clock=lambda: 1_000.0)
    decided = [0]
    lock = threading.Lock()

    def run() -> None:
        go.wait()
        for _ in range(attempts // 8):
            with contextlib.suppress(QuotaExceeded):
                quota.reserve().keep()
            with lock:
                decided[0] += 1

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(decided[0])


def fleet(kind: str, address: str, attempts: int) -> dict[str, Any]:
    """4 processes x 8 threads; half the attempts fit the quota, half are refused."""
    context = multiprocessing.get_context("fork")
    go, out = context.Event(), context.Queue()
    workers = [
        context.Process(target=_fleet_process, args=(kind, address, attempts, go, out))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # every worker built its store and waits
    began = time.perf_counter()
    go.set()
    decided = sum(out.get(timeout=300) for _ in workers)
    seconds = time.perf_counter() - began
    for worker in workers:
        worker.join(timeout=30)
    return {
        "processes": 4,
        "threads": 8,
        "decisions": decided,
        "decisions_per_second": decided / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="reservations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--fleet", type=int, default=2000, help="attempts per process in the fleet run (0: skip it)"
    )
    options = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: bash scripts/ensure-test-services.sh")
        return 1
    responses = counting_responses()
    server = RedisServer()
    workdir = Path(tempfile.mkdtemp(prefix="smtpkit-bench-sqlite-"))
    rows: list[dict[str, Any]] = []
    try:
        from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

        # The loopback round trip itself, for scale.
        began = time.perf_counter()
        for _ in range(options.count):
            server.client.ping()
        ping_us = (time.perf_counter() - began) / options.count * 1e6

        memory = MemoryQuotaStore()
        rows.append(
            {
                "store": "MemoryQuotaStore",
                **single_thread(lambda: memory, options.count, options.rounds),
            }
        )
        sqlite_path = workdir / "quota.db"
        rows.append(
            {
                "store": "SQLiteQuotaStore",
                **single_thread(
                    lambda: SQLiteQuotaStore(sqlite_path), options.count, options.rounds
                ),
            }
        )

        redis_row = single_thread(
            lambda: RedisQuotaStore(server.url),
            options.count,
            options.rounds,
            redis=(server, responses),
        )
        script = server.client.info("commandstats").get("cmdstat_evalsha", {})
        redis_row.update(script_us_per_call=script.get("usec_per_call"), ping_us=ping_us)
        rows.append({"store": "RedisQuotaStore", **redis_row})
        for row in rows:
            row["share_of_20ms_rtt"] = row["us_per_reservation"] / (SMTP_RTT_MS * 1000)

        fleets = []
        if options.fleet:
            fleets.append(
                {
                    "store": "SQLiteQuotaStore",
                    **fleet("sqlite", str(workdir / "fleet.db"), options.fleet),
                }
            )
            fleets.append(
                {
                    "store": "RedisQuotaStore",
                    **fleet("redis", server.url.replace("/0", "/1"), options.fleet),
                }
            )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    import redis  # noqa: PLC0415

    version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    report = {
        "benchmark": "quota",
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m benchmarks.run_quota " + " ".join(sys.argv[1:]),
        "count": options.count,
        "rounds": options.rounds,
        "redis_server": next((v for v in version if v.startswith("v=")), "?"),
        "redis_py": redis.__version__,
        "python": sys.version.split()[0],
        "rows": rows,
        "fleet": fleets,
    }
    out = REPO / "benchmarks" / "results" / "quota.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'store':18} {'us/reservation':>15} {'of a 20 ms RTT':>15}")
    for row in rows:
        print(
            f"{row['store']:18} {row['us_per_reservation']:15.1f} {row['share_of_20ms_rtt']:15.2%}"
        )
    redis_row = rows[-1]
    print(
        f"Redis: {redis_row['responses_per_reservation']:.3f} responses read and "
        f"{redis_row['evalsha_per_reservation']:.3f} EVALSHA and "
        f"{redis_row['eval_per_reservation']:.3f} EVAL per reservation; script "
        f"{redis_row['script_us_per_call']} us "
        f"on the server; PING {redis_row['ping_us']:.1f} us"
    )
    for row in fleets:
        print(
            f"fleet {row['store']}: {row['decisions_per_second']:,.0f} decisions/s "
            f"({row['processes']} processes x {row['threads']} threads)"
        )
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

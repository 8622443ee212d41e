"""What a Redis quota costs in the send path: throughput at a 20 ms round trip, with and
without ``quota=``, in the same run, interleaved.

``Submitter.send_many`` (and ``AsyncSubmitter.send_many``) sends 1 KB messages over one
pipelined connection (and over ``--connections`` for the many-connection row) to Postfix's
``smtp-sink`` through the delay proxy (``--delay-ms`` each way: 10 ms is a 20 ms round
trip). Each round runs every variant once, in turn, so a slow moment of the shared machine
hits them alike; the table gives each variant's median rate and the quota's ratio to no
quota. The quota is a ``RedisQuotaStore`` on a private ``redis-server`` on 127.0.0.1 with
limits no run reaches (a refusal is not what is measured), and the Redis replies read per
message (client side) and ``EVALSHA`` calls per message (server side) are counted: the
target is one round trip to Redis per message.

    python -m benchmarks.run_quota_send                # about 2 minutes
    python -m benchmarks.run_quota_send --rounds 3 --count 100

Writes ``benchmarks/results/quota_send.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import smtpkit
from benchmarks.common import SENDER, build_message, recipient_list
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.run_quota import RedisServer, counting_responses
from benchmarks.run_throughput import RESULTS
from benchmarks.sink import Sink
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, RedisQuotaStore

#: Limits no run reaches: the cost measured is a granted reservation's.
OPEN_LIMITS = Limits(messages_per_day=10**9, recipients_per_day=10**9, messages_per_minute=10**9)

Variant = Callable[[str, int, int, int, "Quota | None"], float]


def _item(message_bytes: int) -> smtpkit.Outgoing:
    rcpts = recipient_list(1)
    return smtpkit.Outgoing(build_message(message_bytes, rcpts), sender=SENDER, recipients=rcpts)


def sync_rate(host: str, port: int, count: int, connections: int, quota: Quota | None) -> float:
    """Messages per second for one ``Submitter.send_many`` of ``count`` messages."""
    item = _item(1024)
    submitter = smtpkit.Submitter(
        host,
        port,
        security=smtpkit.Security.NONE,
        timeout=30,
        max_connections=connections,
        max_messages_per_connection=None,
        quota=quota if quota is not None else False,
    )
    with submitter:
        submitter.send_many([item] * connections, concurrency=connections)  # connect first
        began = time.perf_counter()
        outcomes = submitter.send_many([item] * count, concurrency=connections)
        seconds = time.perf_counter() - began
    failed = [o for o in outcomes if not isinstance(o, smtpkit.SendResult)]
    if failed:
        raise RuntimeError(f"{len(failed)} messages failed: {failed[0]!r}")
    return count / seconds


def async_rate(host: str, port: int, count: int, connections: int, quota: Quota | None) -> float:
    """Messages per second for one ``AsyncSubmitter.send_many`` of ``count`` messages."""
    item = _item(1024)

    async def run() -> float:
        async with smtpkit.AsyncSubmitter(
            host,
            port,
            security=smtpkit.Security.NONE,
            timeout=30,
            max_connections=connections,
            max_messages_per_connection=None,
            quota=quota if quota is not None else False,
        ) as submitter:
            await submitter.send_many([item] * connections, concurrency=connections)
            began = time.perf_counter()
            outcomes = await submitter.send_many([item] * count, concurrency=connections)
            seconds = time.perf_counter() - began
        failed = [o for o in outcomes if not isinstance(o, smtpkit.SendResult)]
        if failed:
            raise RuntimeError(f"{len(failed)} messages failed: {failed[0]!r}")
        return count / seconds

    return asyncio.run(run())


DRIVERS: dict[str, Variant] = {"Submitter": sync_rate, "AsyncSubmitter": async_rate}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=10.0, help="each way (10: 20 ms RTT)")
    parser.add_argument("--count", type=int, default=150, help="messages per sample")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8, help="the many-connection row")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rtt = measure_rtt(args.delay_ms / 1000) * 1000
    print(f"# measured round trip through the proxy: {rtt:.2f} ms", file=sys.stderr)
    responses = counting_responses()
    rows: dict[str, list[float]] = {}
    wire: dict[str, dict[str, float]] = {}
    redis = RedisServer()
    try:
        with Sink(backlog=512) as sink, ProxyProcess(sink.port, args.delay_ms / 1000) as proxy:
            for round_no in range(args.rounds):
                for driver, rate in DRIVERS.items():
                    for connections in (1, args.connections):
                        for with_quota in (False, True):
                            kind = "redis quota" if with_quota else "no quota"
                            label = f"{driver} x{connections} {kind}"
                            quota = None
                            if with_quota:
                                key = f"bench/{uuid.uuid4().hex}"
                                quota = Quota(RedisQuotaStore(redis.url), OPEN_LIMITS, key=key)
                                quota.reserve().keep()  # connect and load the script first
                                redis.client.config_resetstat()
                                before = responses[0]
                            value = rate(proxy.host, proxy.port, args.count, connections, quota)
                            rows.setdefault(label, []).append(value)
                            if quota is not None:
                                stats = redis.client.info("commandstats")
                                sent = args.count + connections
                                wire[label] = {
                                    "replies_per_message": (responses[0] - before) / sent,
                                    "evalsha_per_message": stats.get("cmdstat_evalsha", {}).get(
                                        "calls", 0
                                    )
                                    / sent,
                                }
                                quota.store.close()
                            print(
                                f"  [{round_no + 1}/{args.rounds}] {label:40} {value:8.1f} msg/s",
                                file=sys.stderr,
                            )
    finally:
        redis.stop()
    table = [
        "| driver | connections | no quota (msg/s) | Redis quota (msg/s) | ratio "
        "| Redis replies / EVALSHA per message |",
        "|---|---|---|---|---|---|",
    ]
    document: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rtt_ms": rtt,
        "count": args.count,
        "rounds": args.rounds,
        "rows": [],
    }
    for driver in DRIVERS:
        for connections in (1, args.connections):
            plain = statistics.median(rows[f"{driver} x{connections} no quota"])
            label = f"{driver} x{connections} redis quota"
            quota_rate = statistics.median(rows[label])
            ratio = quota_rate / plain
            seen = wire[label]
            table.append(
                f"| {driver} | {connections} | {plain:.1f} | {quota_rate:.1f} | {ratio:.3f} | "
                f"{seen['replies_per_message']:.3f} / {seen['evalsha_per_message']:.3f} |"
            )
            document["rows"].append(
                {
                    "driver": driver,
                    "connections": connections,
                    "no_quota": rows[f"{driver} x{connections} no quota"],
                    "redis_quota": rows[label],
                    "ratio_of_medians": ratio,
                    **seen,
                }
            )
    print("\n".join(table))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quota_send.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()

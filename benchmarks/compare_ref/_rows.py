"""The scenarios (rows of the throughput table) and the interleaved rounds that measure them.

Invariants: in every round each row runs old and new back to back, who goes first
alternating by round and by row, so the machine's load moves both alike; a round counts
for a row only when both sides ran in it, so old and new samples stay paired by round.
Every run is bounded by its message count and ``--seconds``, every child by a timeout, and
no round starts after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field

from benchmarks.common import Result
from benchmarks.compare_ref._sides import Side, parse_result, spawn
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.sink import Sink

__all__ = ["Row", "build_rows", "run_rows", "worker_args"]


@dataclass
class Row:
    """One scenario of the throughput table, with each side's samples in round order."""

    delay_ms: float
    recipients: int
    connections: int
    input: str
    samples: dict[str, list[Result]] = field(default_factory=lambda: {"old": [], "new": []})
    failures: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.input} {self.delay_ms:g}ms {self.recipients}rcpt x{self.connections}"

    def paired(self) -> list[tuple[Result, Result]]:
        """(old, new) of each round in which both sides ran."""
        return list(zip(self.samples["old"], self.samples["new"], strict=True))

    def rate_ratios(self) -> list[float]:
        return [new.rate / old.rate for old, new in self.paired() if old.rate]

    def cpu_ratios(self) -> list[float]:
        return [
            new.cpu_us_per_message / old.cpu_us_per_message
            for old, new in self.paired()
            if old.cpu_us_per_message
        ]

    def median_rate(self, label: str) -> float:
        return statistics.median(sample.rate for sample in self.samples[label])

    def median_cpu(self, label: str) -> float:
        return statistics.median(sample.cpu_us_per_message for sample in self.samples[label])


def build_rows(
    delays: list[float], recipients: list[int], connections: list[int], inputs: list[str]
) -> list[Row]:
    """The table's order: by delay, input, recipients, then connections (1 first)."""
    rows = []
    for delay in delays:
        for kind in inputs:
            for rcpts in recipients:
                pools = sorted({1, *connections}) if delay > 0 else [1]
                rows += [Row(delay, rcpts, conns, kind) for conns in pools]
    return rows


def worker_args(
    row: Row,
    host: str,
    port: int,
    args: argparse.Namespace,
    *,
    count: int | None = None,
    seconds: float | None = None,
) -> list[str]:
    """The worker's options for one run of ``row`` (``count``, ``seconds``: overrides)."""
    if count is None:
        many = row.connections > 1
        count = args.count_many if many else (args.count_delayed if row.delay_ms else args.count)
    return [
        *("--host", host, "--port", str(port), "--count", str(count)),
        *("--recipients", str(row.recipients), "--message-bytes", str(args.message_bytes)),
        *("--seconds", str(seconds or args.seconds), "--connections", str(row.connections)),
        *("--kind", row.input, "--warmup", str(args.warmup)),
    ]


def run_rows(
    rows: list[Row], sides: dict[str, Side], args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, int]]:
    """Run every row's rounds, interleaved; return measured RTTs and rounds run per delay."""
    rtts: dict[str, float] = {}
    stop_at = time.monotonic() + args.max_seconds
    rounds_run: dict[str, int] = {}
    with Sink(backlog=512) as sink:
        for delay in sorted({row.delay_ms for row in rows}):
            proxy = None
            host, port = sink.host, sink.port
            if delay > 0:
                rtts[f"{delay:g}"] = measure_rtt(delay / 1000) * 1000
                print(f"# round trip at {delay:g} ms each way: {rtts[f'{delay:g}']:.2f} ms")
                proxy = ProxyProcess(sink.port, delay / 1000, max_seconds=args.max_seconds + 120)
                proxy.start()
                host, port = proxy.host, proxy.port
            try:
                scenario = [row for row in rows if row.delay_ms == delay]
                rounds = args.rounds if delay > 0 else args.rounds_loopback
                for round_no in range(rounds):
                    if time.monotonic() > stop_at:
                        print(f"# --max-seconds reached: stop before round {round_no + 1}")
                        break
                    for index, row in enumerate(scenario):
                        _run_pair(row, sides, host, port, (round_no, rounds), index, args)
                    rounds_run[f"{delay:g}"] = round_no + 1
            finally:
                if proxy is not None:
                    proxy.stop()
    return rtts, rounds_run


def _run_pair(
    row: Row,
    sides: dict[str, Side],
    host: str,
    port: int,
    progress: tuple[int, int],
    index: int,
    args: argparse.Namespace,
) -> None:
    """Old and new back to back; who goes first alternates by round and by row."""
    round_no, rounds = progress
    order = ("old", "new") if (round_no + index) % 2 == 0 else ("new", "old")
    results: dict[str, Result] = {}
    for label in order:
        try:
            done = spawn(
                sides[label], worker_args(row, host, port, args), timeout=args.seconds * 3 + 60
            )
            results[label] = parse_result(done)
        except RuntimeError as error:
            row.failures.append(f"round {round_no + 1}: {error}")
            print(f"  FAILED {row.key}: {error}", file=sys.stderr)
            return  # keep the rounds paired: a round counts only when both sides ran
    for label in ("old", "new"):
        row.samples[label].append(results[label])
    old, new = results["old"], results["new"]
    print(
        f"  [{round_no + 1}/{rounds}] {row.key:24} old {old.rate:8.1f} msg/s "
        f"{old.cpu_us_per_message:6.0f} us | new {new.rate:8.1f} msg/s "
        f"{new.cpu_us_per_message:6.0f} us | x{new.rate / old.rate:.3f}",
        file=sys.stderr,
    )

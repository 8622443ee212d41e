"""Throughput: msg/s and CPU per message for smtpkit and its peers against one smtp-sink.

Every client runs in the same invocation against the same sink, so compare the ratios, not
the absolute numbers (the machine is shared and noisy). Scenarios: plain loopback and a
simulated round trip (``--delays-ms``, each way), 1 and 5 recipients, 1 KB messages, one
connection; at a non-zero delay also 16 connections (aiosmtplib, Nodemailer, and smtpkit's
``send_many`` when it exists). Each run stops at ``--count`` messages or ``--seconds``,
whichever comes first.

    python -m benchmarks.run_throughput            # about 1-2 minutes
    python -m benchmarks.run_throughput --quick    # smoke run, about 20 s

Prints a Markdown table and writes ``benchmarks/results/throughput.json`` (and ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib

import smtpkit
from benchmarks import clients
from benchmarks.common import REPO, Result, Skipped
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.sink import Sink

RESULTS = REPO / "benchmarks" / "results"
#: Clients compared over one connection, and those that also get a many-connection row.
SINGLE = ("smtplib", "aiosmtplib", "nodemailer", "smtpkit")
MULTI = ("aiosmtplib", "nodemailer", "smtpkit")


@dataclass
class Row:
    delay_ms: float
    recipients: int
    client: str
    connections: int
    samples: list[Result] = field(default_factory=list)
    skipped: str | None = None

    @property
    def best(self) -> Result | None:
        """The median sample by rate (the lower middle for an even number of repeats)."""
        if not self.samples:
            return None
        ordered = sorted(self.samples, key=lambda r: r.rate)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def label(self) -> str:
        return f"{self.client} x{self.connections}" if self.connections > 1 else self.client


def versions() -> dict[str, str]:
    node_pkg = REPO / "benchmarks" / "node" / "node_modules" / "nodemailer" / "package.json"
    nodemailer = json.loads(node_pkg.read_text())["version"] if node_pkg.exists() else "missing"
    return {
        "python": platform.python_version(),
        "smtpkit": smtpkit.__version__,
        "aiosmtplib": aiosmtplib.__version__,
        "nodemailer": nodemailer,
    }


def build_rows(
    delays: list[float], recipients: list[int], names: list[str], connections: int
) -> list[Row]:
    rows = []
    for delay in delays:
        for rcpts in recipients:
            rows += [Row(delay, rcpts, name, 1) for name in SINGLE if name in names]
            if delay > 0 and connections > 1:
                rows += [Row(delay, rcpts, name, connections) for name in MULTI if name in names]
    return rows


def run_rows(rows: list[Row], args: argparse.Namespace) -> dict[str, float]:
    """Run every row ``--repeat`` times (rounds interleaved); return measured RTTs (ms)."""
    rtts: dict[str, float] = {}
    with Sink(backlog=512) as sink:
        for delay in sorted({row.delay_ms for row in rows}):
            if delay > 0:
                rtts[f"{delay:g}"] = measure_rtt(delay / 1000) * 1000
                print(
                    f"# measured round trip at {delay:g} ms each way: {rtts[f'{delay:g}']:.2f} ms"
                )
            proxy = ProxyProcess(sink.port, delay / 1000) if delay > 0 else None
            host, port = sink.host, sink.port
            if proxy is not None:
                proxy.start()
                host, port = proxy.host, proxy.port
            try:
                repeat = args.repeat if delay > 0 else args.repeat_loopback
                for round_no in range(repeat):
                    for row in (r for r in rows if r.delay_ms == delay):
                        if row.skipped:
                            continue
                        run_one(row, host, port, args, round_no, repeat)
            finally:
                if proxy is not None:
                    proxy.stop()
    return rtts


def run_one(
    row: Row, host: str, port: int, args: argparse.Namespace, round_no: int, repeat: int
) -> None:
    many = row.connections > 1
    count = args.count_many if many else (args.count_delayed if row.delay_ms else args.count)
    try:
        result = clients.get(row.client)(
            host,
            port,
            count=count,
            recipients=row.recipients,
            message_bytes=args.message_bytes,
            duration_cap=args.seconds,
            connections=row.connections,
        )
    except Skipped as reason:
        row.skipped = str(reason)
        print(f"  skip {row.label}: {reason}", file=sys.stderr)
        return
    row.samples.append(result)
    print(
        f"  [{round_no + 1}/{repeat}] delay {row.delay_ms:g} ms, {row.recipients} rcpt, "
        f"{row.label:14} {result.messages:5d} msgs {result.rate:9.1f} msg/s "
        f"{result.cpu_us_per_message:8.0f} us CPU/msg",
        file=sys.stderr,
    )


def baseline(rows: list[Row], row: Row) -> Result | None:
    for other in rows:
        if (
            other.client == "smtplib"
            and other.delay_ms == row.delay_ms
            and other.recipients == row.recipients
        ):
            return other.best
    return None


def to_markdown(rows: list[Row], rtts: dict[str, float]) -> str:
    lines = [
        "| round trip | rcpts | client | msgs | msg/s | x smtplib | CPU us/msg |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        rtt = f"{rtts.get(f'{row.delay_ms:g}', 0):.1f} ms" if row.delay_ms else "loopback"
        best = row.best
        if best is None:
            lines.append(
                f"| {rtt} | {row.recipients} | {row.label} | - | - | - | "
                f"skipped: {row.skipped or 'no data'} |"
            )
            continue
        base = baseline(rows, row)
        ratio = f"{best.rate / base.rate:.2f}" if base and base.rate else "-"
        lines.append(
            f"| {rtt} | {row.recipients} | {row.label} | {best.messages} | {best.rate:.1f} | "
            f"{ratio} | {best.cpu_us_per_message:.0f} |"
        )
    return "\n".join(lines)


def to_json(rows: list[Row], rtts: dict[str, float], args: argparse.Namespace) -> dict[str, Any]:
    out_rows = []
    for row in rows:
        best, base = row.best, baseline(rows, row)
        out_rows.append(
            {
                "delay_ms": row.delay_ms,
                "rtt_ms": rtts.get(f"{row.delay_ms:g}", 0.0),
                "recipients": row.recipients,
                "client": row.client,
                "label": row.label,
                "connections": row.connections,
                "skipped": row.skipped,
                "result": best.as_dict() if best else None,
                "ratio_to_smtplib": best.rate / base.rate if best and base and base.rate else None,
                "samples": [sample.as_dict() for sample in row.samples],
            }
        )
    return {
        "benchmark": "throughput",
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.run_throughput", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": versions(),
        "settings": {
            "message_bytes": args.message_bytes,
            "count": args.count,
            "count_delayed": args.count_delayed,
            "count_many": args.count_many,
            "seconds_cap": args.seconds,
            "repeat": args.repeat,
            "repeat_loopback": args.repeat_loopback,
        },
        "measured_rtt_ms": rtts,
        "rows": out_rows,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--delays-ms", default="0,10", help="delay each way, comma-separated")
    parser.add_argument("--recipients", default="1,5", help="recipients, comma-separated")
    parser.add_argument("--clients", default=",".join(SINGLE), help="clients, comma-separated")
    parser.add_argument("--connections", type=int, default=16, help="for the pooled rows")
    parser.add_argument("--count", type=int, default=2000, help="messages per loopback run")
    parser.add_argument("--count-delayed", type=int, default=300, help="per delayed run")
    parser.add_argument("--count-many", type=int, default=3000, help="per pooled run")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall-clock cap per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per delayed row (median)")
    parser.add_argument(
        "--repeat-loopback", type=int, default=3, help="runs per loopback row (median)"
    )
    parser.add_argument("--message-bytes", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.count_delayed, args.count_many = 300, 30, 100
        args.seconds, args.repeat, args.repeat_loopback = min(args.seconds, 1.5), 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = [name.strip() for name in args.clients.split(",") if name.strip()]
    unknown = sorted(set(names) - set(clients.CLIENTS))
    if unknown:
        raise SystemExit(f"unknown clients: {unknown}; known: {sorted(clients.CLIENTS)}")
    delays = [float(d) for d in args.delays_ms.split(",")]
    rows = build_rows(delays, [int(r) for r in args.recipients.split(",")], names, args.connections)
    rtts = run_rows(rows, args)
    table = to_markdown(rows, rtts)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_json(rows, rtts, args), indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()

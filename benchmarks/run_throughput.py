"""Throughput: msg/s and CPU per message for smtpkit and its peers against one smtp-sink.

Every client runs in the same invocation against the same sink, so compare the ratios, not
the absolute numbers (the machine is shared and noisy). Scenarios: plain loopback and a
simulated round trip (``--delays-ms``, each way), 1 and 5 recipients, 1 KB messages, one
connection; at a non-zero delay also 16 and 64 connections (aiosmtplib, Nodemailer and
smtpkit's ``send_many``). Every scenario runs with each input (``--inputs``): ``email``, an
``EmailMessage`` as users build it (the headline), and ``bytes``, the same message
pre-flattened with an explicit envelope. Each run stops at ``--count`` messages or
``--seconds``, whichever comes first.

    python -m benchmarks.run_throughput            # about 4 minutes
    python -m benchmarks.run_throughput --quick    # smoke run, about 40 s
    # the loopback CPU comparison alone (about 30 s):
    python -m benchmarks.run_throughput --delays-ms 0 --recipients 1 --clients smtplib,smtpkit

Prints a Markdown table and writes ``benchmarks/results/throughput.json`` (and ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib

import smtpkit
from benchmarks import clients
from benchmarks.common import INPUTS, REPO, Result, Skipped
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.sink import Sink

RESULTS = REPO / "benchmarks" / "results"
#: Clients compared over one connection, and those that also get a many-connection row.
SINGLE = ("smtplib", "aiosmtplib", "nodemailer", "smtpkit", "smtpkit-async")
MULTI = ("aiosmtplib", "nodemailer", "smtpkit", "smtpkit-async")


@dataclass
class Row:
    delay_ms: float
    recipients: int
    client: str
    connections: int
    input: str = "bytes"
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
    delays: list[float],
    recipients: list[int],
    names: list[str],
    connections: list[int],
    inputs: list[str],
) -> list[Row]:
    rows = []
    for delay in delays:
        for kind in inputs:
            for rcpts in recipients:
                rows += [Row(delay, rcpts, name, 1, kind) for name in SINGLE if name in names]
                for many in (c for c in connections if c > 1 and delay > 0):
                    rows += [Row(delay, rcpts, name, many, kind) for name in MULTI if name in names]
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
            kind=row.input,
        )
    except Skipped as reason:
        row.skipped = str(reason)
        print(f"  skip {row.label}: {reason}", file=sys.stderr)
        return
    row.samples.append(result)
    print(
        f"  [{round_no + 1}/{repeat}] delay {row.delay_ms:g} ms, {row.recipients} rcpt, "
        f"{row.input:5} {row.label:14} {result.messages:5d} msgs {result.rate:9.1f} msg/s "
        f"{result.cpu_us_per_message:8.0f} us CPU/msg",
        file=sys.stderr,
    )


def peer(rows: list[Row], row: Row, client: str, *, same_connections: bool = False) -> Row | None:
    """The row of ``client`` in the same scenario (delay, recipients, input)."""
    for other in rows:
        if (
            other.client == client
            and other.delay_ms == row.delay_ms
            and other.recipients == row.recipients
            and other.input == row.input
            and (not same_connections or other.connections == row.connections)
        ):
            return other
    return None


def baseline(rows: list[Row], row: Row) -> Result | None:
    base = peer(rows, row, "smtplib")
    return base.best if base else None


def cpu_median(row: Row) -> float:
    """The median CPU per message over the row's samples."""
    return statistics.median(sample.cpu_us_per_message for sample in row.samples)


def cpu_ratio(row: Row, base: Row | None) -> float | None:
    """Median over rounds of this row's CPU per message / the base row's in the same round.

    Rounds are interleaved, so a round's two samples share the machine's state; the ratio
    of each pair is steadier than a ratio of two medians on a noisy machine.
    """
    if base is None or not row.samples or len(row.samples) != len(base.samples):
        return None
    pairs = [
        mine.cpu_us_per_message / theirs.cpu_us_per_message
        for mine, theirs in zip(row.samples, base.samples, strict=True)
        if theirs.cpu_us_per_message
    ]
    return statistics.median(pairs) if pairs else None


def rate_ratio(row: Row, other: Row | None) -> float | None:
    best = row.best
    theirs = other.best if other else None
    return best.rate / theirs.rate if best and theirs and theirs.rate else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def to_markdown(rows: list[Row], rtts: dict[str, float]) -> str:
    lines = [
        "| input | round trip | rcpts | client | msgs | msg/s | x smtplib | x aiosmtplib "
        "| CPU us/msg | CPU x smtplib | CPU x aiosmtplib |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rtt = f"{rtts.get(f'{row.delay_ms:g}', 0):.1f} ms" if row.delay_ms else "loopback"
        best = row.best
        if best is None:
            lines.append(
                f"| {row.input} | {rtt} | {row.recipients} | {row.label} | - | - | - | - | "
                f"skipped: {row.skipped or 'no data'} | - | - |"
            )
            continue
        smtplib_row = peer(rows, row, "smtplib")
        aiosmtplib_row = peer(rows, row, "aiosmtplib", same_connections=True)
        lines.append(
            f"| {row.input} | {rtt} | {row.recipients} | {row.label} | {best.messages} | "
            f"{best.rate:.1f} | {_fmt(rate_ratio(row, smtplib_row))} | "
            f"{_fmt(rate_ratio(row, aiosmtplib_row))} | {cpu_median(row):.0f} | "
            f"{_fmt(cpu_ratio(row, smtplib_row))} | {_fmt(cpu_ratio(row, aiosmtplib_row))} |"
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
                "input": row.input,
                "skipped": row.skipped,
                "result": best.as_dict() if best else None,
                "ratio_to_smtplib": best.rate / base.rate if best and base and base.rate else None,
                "ratio_to_aiosmtplib": rate_ratio(
                    row, peer(rows, row, "aiosmtplib", same_connections=True)
                ),
                "cpu_us_per_message_median": cpu_median(row) if row.samples else None,
                "cpu_ratio_to_smtplib": cpu_ratio(row, peer(rows, row, "smtplib")),
                "cpu_ratio_to_aiosmtplib": cpu_ratio(
                    row, peer(rows, row, "aiosmtplib", same_connections=True)
                ),
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
    parser.add_argument(
        "--connections", default="16,64", help="pooled rows' connections, comma-separated"
    )
    parser.add_argument(
        "--inputs", default=",".join(INPUTS), help="email (EmailMessage), bytes; comma-separated"
    )
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
    inputs = [kind.strip() for kind in args.inputs.split(",") if kind.strip()]
    if set(inputs) - set(INPUTS):
        raise SystemExit(f"unknown inputs: {sorted(set(inputs) - set(INPUTS))}; known: {INPUTS}")
    rows = build_rows(
        delays,
        [int(r) for r in args.recipients.split(",")],
        names,
        [int(c) for c in args.connections.split(",") if c.strip()],
        inputs,
    )
    rtts = run_rows(rows, args)
    table = to_markdown(rows, rtts)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_json(rows, rtts, args), indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()

"""The comparison as a Markdown table and as JSON (the command, both commits, every sample).

Each row shows both sides' median msg/s and CPU per message, and the median over rounds of
the per-round ratio new/old (steadier on a noisy machine than a ratio of two medians, since
a round's two runs share the machine's state), with the smallest and largest round's ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
from typing import Any

from benchmarks.compare_ref._rows import Row
from benchmarks.compare_ref._sides import Side

__all__ = ["instructions_markdown", "to_json", "to_markdown"]

SETTINGS = (
    "message_bytes",
    "count",
    "count_delayed",
    "count_many",
    "seconds",
    "rounds",
    "rounds_loopback",
    "warmup",
    "tolerance",
    "instructions_small",
    "instructions_large",
)


def _round_trip(row: Row, rtts: dict[str, float]) -> str:
    return f"{rtts.get(f'{row.delay_ms:g}', 0):.1f} ms" if row.delay_ms else "loopback"


def _input(row: Row) -> str:
    return "EmailMessage" if row.input == "email" else "bytes"


def to_markdown(rows: list[Row], rtts: dict[str, float], tolerance: float) -> str:
    lines = [
        "| input | round trip | rcpts | conns | old msg/s | new msg/s | new/old msg/s "
        "(min-max) | old CPU us/msg | new CPU us/msg | new/old CPU | within "
        f"{tolerance:.0%} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        head = f"| {_input(row)} | {_round_trip(row, rtts)} | {row.recipients} | {row.connections}"
        rates, cpus = row.rate_ratios(), row.cpu_ratios()
        if not rates:
            lines.append(f"{head} | - | - | - | - | - | - | no data ({len(row.failures)} failed) |")
            continue
        rate = statistics.median(rates)
        verdict = "yes" if rate >= 1 - tolerance else "**no**"
        lines.append(
            f"{head} | {row.median_rate('old'):.1f} | {row.median_rate('new'):.1f} | "
            f"**{rate:.3f}** ({min(rates):.2f}-{max(rates):.2f}) | "
            f"{row.median_cpu('old'):.0f} | {row.median_cpu('new'):.0f} | "
            f"**{statistics.median(cpus):.3f}** | {verdict} |"
        )
    return "\n".join(lines)


def instructions_markdown(rows: list[Row], found: dict[str, dict[str, float]]) -> str:
    lines = [
        "| input | round trip | rcpts | old instructions/msg | new instructions/msg | new/old |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in (r for r in rows if r.key in found):
        old, new = found[row.key]["old"], found[row.key]["new"]
        lines.append(
            f"| {_input(row)} | loopback | {row.recipients} | {old:,.0f} | {new:,.0f} | "
            f"**{new / old:.3f}** |"
        )
    return "\n".join(lines)


def to_json(
    rows: list[Row],
    sides: dict[str, Side],
    measured: tuple[dict[str, float], dict[str, int], dict[str, dict[str, float]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    rtts, rounds_run, instructions = measured
    out_rows = []
    for row in rows:
        rates, cpus = row.rate_ratios(), row.cpu_ratios()
        out_rows.append(
            {
                "delay_ms": row.delay_ms,
                "rtt_ms": rtts.get(f"{row.delay_ms:g}", 0.0),
                "recipients": row.recipients,
                "connections": row.connections,
                "input": row.input,
                "rate_ratio_median": statistics.median(rates) if rates else None,
                "rate_ratios": rates,
                "cpu_ratio_median": statistics.median(cpus) if cpus else None,
                "cpu_ratios": cpus,
                "instructions_per_message": instructions.get(row.key),
                "failures": row.failures,
                "samples": {
                    label: [sample.as_dict() for sample in samples]
                    for label, samples in row.samples.items()
                },
            }
        )
    return {
        "benchmark": "compare_ref",
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.compare_ref", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "sides": {label: {"ref": s.ref, "commit": s.commit} for label, s in sides.items()},
        "settings": {key: getattr(args, key) for key in SETTINGS},
        "rounds_run": rounds_run,
        "measured_rtt_ms": rtts,
        "rows": out_rows,
    }

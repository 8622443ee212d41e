"""Bar chart of ``benchmarks/results/throughput.json``: msg/s per client, one panel per scenario.

python -m benchmarks.plot                      # writes docs/img/throughput.png
python -m benchmarks.plot --input other.json --output /tmp/chart.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from benchmarks.common import REPO

COLOURS = {"smtpkit": "#2b6cb0", "smtplib": "#718096", "aiosmtplib": "#dd6b20"}
NODE_COLOUR = "#38a169"


def panels(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        where = f"{row['rtt_ms']:.0f} ms round trip" if row["delay_ms"] else "loopback"
        rcpt = "recipient" if row["recipients"] == 1 else "recipients"
        kind = "EmailMessage" if row.get("input", "bytes") == "email" else "bytes"
        grouped.setdefault(f"{kind}: {where}, {row['recipients']} {rcpt}", []).append(row)
    return grouped


def plot(data: dict[str, Any], output: Path) -> None:
    groups = panels(data["rows"])
    columns = (len(groups) + 1) // 2 if len(groups) > 4 else len(groups)
    lines = (len(groups) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 4.4 * lines), squeeze=False)
    for axis in axes.flat[len(groups) :]:
        axis.set_visible(False)
    for axis, (title, rows) in zip(axes.flat, groups.items(), strict=False):
        labels = [row["label"] for row in rows]
        rates = [row["result"]["rate"] if row["result"] else 0.0 for row in rows]
        colours = [COLOURS.get(row["client"], NODE_COLOUR) for row in rows]
        bars = axis.bar(range(len(rows)), rates, color=colours)
        for bar, row, rate in zip(bars, rows, rates, strict=True):
            text = f"{rate:.0f}" if row["result"] else "n/a"
            axis.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, rate),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        axis.set_xticks(range(len(rows)), labels, rotation=35, ha="right", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.set_ylabel("messages per second")
        axis.margins(y=0.12)
    versions = ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())
    figure.suptitle(
        f"1 KB messages to smtp-sink, {data['generated']} ({versions})", fontsize=9, y=0.995
    )
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=REPO / "benchmarks/results/throughput.json")
    parser.add_argument("--output", type=Path, default=REPO / "docs/img/throughput.png")
    args = parser.parse_args(argv)
    plot(json.loads(args.input.read_text()), args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

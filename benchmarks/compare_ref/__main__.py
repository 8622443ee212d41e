"""``python -m benchmarks.compare_ref``: Submitter of two git refs, the throughput table's rows.

Exports ``smtpkit/`` of ``--ref`` (the old side) and ``--new`` (``HEAD`` by default, or
``worktree`` for the working tree as it is) into a temporary directory that is removed at
the end, then measures each scenario of the throughput table for both against one
``smtp-sink``: plain loopback, and a simulated round trip through
``benchmarks.delay_proxy`` (``--delays-ms``, each way) with 1, 16 and 64 pooled connections;
1 and 5 recipients; ``EmailMessage`` input (the headline) and bytes. Each run is the
harness's own smtpkit client (``Submitter.send_many``, public API only) in a child process.

    python -m benchmarks.compare_ref --ref 3c034b0                  # about 20 minutes
    python -m benchmarks.compare_ref --ref 3c034b0 --quick          # about 2 minutes
    # user-space instructions per message on loopback only (callgrind, about 12 minutes):
    python -m benchmarks.compare_ref --ref 3c034b0 --rounds 0 --rounds-loopback 0 --instructions

Prints Markdown tables and writes ``benchmarks/results/compare_ref.json`` (and ``.md``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from benchmarks.common import INPUTS, REPO
from benchmarks.compare_ref._cpu import count_instructions, profile_rows
from benchmarks.compare_ref._report import instructions_markdown, to_json, to_markdown
from benchmarks.compare_ref._rows import build_rows, run_rows
from benchmarks.compare_ref._sides import export

RESULTS = REPO / "benchmarks" / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare_ref")
    parser.add_argument("--ref", default="3c034b0", help="the old side: a git ref")
    parser.add_argument("--new", default="HEAD", help="the new side: a git ref, or 'worktree'")
    parser.add_argument("--quick", action="store_true", help="small counts: about 2 minutes")
    parser.add_argument("--delays-ms", default="0,10", help="delay each way, comma-separated")
    parser.add_argument("--recipients", default="1,5", help="recipients, comma-separated")
    parser.add_argument("--connections", default="16,64", help="pooled rows (with a delay)")
    parser.add_argument("--inputs", default=",".join(INPUTS), help="email, bytes")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the delayed rows")
    parser.add_argument("--rounds-loopback", type=int, default=9, help="rounds on loopback")
    parser.add_argument("--count", type=int, default=2000, help="messages per loopback run")
    parser.add_argument("--count-delayed", type=int, default=300, help="per delayed run")
    parser.add_argument("--count-many", type=int, default=3000, help="per pooled run")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall-clock cap per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed messages per run")
    parser.add_argument("--message-bytes", type=int, default=1024)
    parser.add_argument("--tolerance", type=float, default=0.10, help="'within' threshold")
    parser.add_argument("--max-seconds", type=float, default=2400, help="no round after this")
    parser.add_argument(
        "--instructions", action="store_true", help="then count instructions (callgrind)"
    )
    parser.add_argument("--instructions-small", type=int, default=50, help="callgrind: fewer")
    parser.add_argument("--instructions-large", type=int, default=550, help="callgrind: more")
    parser.add_argument("--profile", action="store_true", help="then cProfile loopback rows")
    parser.add_argument("--profile-top", type=int, default=25, help="functions per profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare_ref.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.count_delayed, args.count_many = 500, 40, 300
        args.seconds, args.rounds = min(args.seconds, 1.5), min(args.rounds, 2)
        args.rounds_loopback = min(args.rounds_loopback, 3)
    if not (0 <= args.rounds <= 50 and 0 <= args.rounds_loopback <= 50) or args.seconds <= 0:
        raise SystemExit("--rounds and --rounds-loopback take 0 to 50, --seconds a positive number")
    if not 0 < args.instructions_small < args.instructions_large:
        raise SystemExit("--instructions-small must be positive and below --instructions-large")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    inputs = [kind.strip() for kind in args.inputs.split(",") if kind.strip()]
    if set(inputs) - set(INPUTS):
        raise SystemExit(f"unknown inputs: {sorted(set(inputs) - set(INPUTS))}; known: {INPUTS}")
    rows = build_rows(
        [float(d) for d in args.delays_ms.split(",")],
        [int(r) for r in args.recipients.split(",")],
        [int(c) for c in args.connections.split(",") if c.strip()],
        inputs,
    )
    root = Path(tempfile.mkdtemp(prefix="smtpkit-compare-"))
    instructions: dict[str, dict[str, float]] = {}
    try:
        sides = {"old": export("old", args.ref, root), "new": export("new", args.new, root)}
        for side in sides.values():
            print(f"# {side.label}: {side.ref} = {side.commit}")
        rtts, rounds_run = run_rows(rows, sides, args)
        if args.instructions:
            instructions = count_instructions(rows, sides, args)
        if args.profile:
            profile_rows(rows, sides, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    tables = []
    if any(row.samples["old"] or row.failures for row in rows):
        tables.append(to_markdown(rows, rtts, args.tolerance))
    if instructions:
        tables.append(instructions_markdown(rows, instructions))
    table = "\n\n".join(tables)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    measured = (rtts, rounds_run, instructions)
    args.out.write_text(json.dumps(to_json(rows, sides, measured, args), indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()

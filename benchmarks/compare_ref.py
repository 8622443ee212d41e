"""Submitter against an earlier commit: the throughput table's rows, both sides in one run.

Exports ``smtpkit/`` of two git refs (``--ref``, the old side; ``--new``, by default
``HEAD``, or ``worktree`` for the working tree as it is) into a temporary directory with
``git archive`` (read-only: the repository's working tree, index and branches are not
touched; the directory is removed at the end), then measures each scenario of the
throughput table for both sides against one ``smtp-sink``: plain loopback, and a simulated
round trip through ``benchmarks.delay_proxy`` (``--delays-ms``, each way) with 1 and more
pooled connections; 1 and 5 recipients; ``EmailMessage`` input (the headline) and bytes.

Every measurement is one child process (``benchmarks.compare_ref_worker``) whose
``PYTHONPATH`` starts with that side's exported tree, running the harness's own smtpkit
client (``Submitter.send_many``, public API only). Rounds are interleaved: in each round
every scenario runs old and new back to back, the order alternating, so the machine's
noise hits both; the ratios new/old are taken per round and their median reported.

Bounds: each run stops at its message count or ``--seconds``; each child is killed after a
timeout; no round starts after ``--max-seconds``.

    python -m benchmarks.compare_ref --ref 3c034b0                # about 10 minutes
    python -m benchmarks.compare_ref --ref 3c034b0 --quick        # about 2 minutes

Prints a Markdown table and writes ``benchmarks/results/compare_ref.json`` (and ``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import INPUTS, REPO, Result
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.sink import Sink

RESULTS = REPO / "benchmarks" / "results"
#: The worker exits with this code when it imported smtpkit from the wrong tree.
WRONG_TREE = 3


@dataclass(frozen=True)
class Side:
    """One version of smtpkit: a label, the commit (or ``worktree``) and its source tree."""

    label: str
    ref: str
    commit: str
    tree: Path


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
        return list(zip(self.samples["old"], self.samples["new"], strict=False))

    def rate_ratios(self) -> list[float]:
        return [new.rate / old.rate for old, new in self.paired() if old.rate]

    def cpu_ratios(self) -> list[float]:
        return [
            new.cpu_us_per_message / old.cpu_us_per_message
            for old, new in self.paired()
            if old.cpu_us_per_message
        ]


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


def resolve(ref: str) -> str:
    """The full commit hash of ``ref`` (a ``ConfigurationError``-style exit if unknown)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"unknown git ref {ref!r}: give a commit, tag or branch of {REPO}")
    return done.stdout.strip()


def export(label: str, ref: str, root: Path) -> Side:
    """``smtpkit/`` of ``ref`` under ``root/label`` (``worktree``: the working tree's)."""
    tree = root / label
    tree.mkdir()
    if ref == "worktree":
        shutil.copytree(REPO / "smtpkit", tree / "smtpkit", ignore=_pycache)
        return Side(label, ref, "worktree", tree)
    commit = resolve(ref)
    # git archive reads objects only: nothing in the repository changes.
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "smtpkit"],
        stdout=subprocess.PIPE,
    )
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait(60) != 0 or untar.returncode != 0:
        raise SystemExit(f"could not export smtpkit/ of {ref} ({commit[:10]})")
    return Side(label, ref, commit, tree)


def _pycache(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__"}


def run_side(
    side: Side, row: Row, host: str, port: int, args: argparse.Namespace, profile: Path | None
) -> Result:
    """One measurement of ``side`` in a child process; raises ``RuntimeError`` on failure."""
    many = row.connections > 1
    count = args.count_many if many else (args.count_delayed if row.delay_ms else args.count)
    command = [
        sys.executable,
        "-m",
        "benchmarks.compare_ref_worker",
        "--expect-tree",
        str(side.tree),
        "--host",
        host,
        "--port",
        str(port),
        "--count",
        str(count),
        "--recipients",
        str(row.recipients),
        "--message-bytes",
        str(args.message_bytes),
        "--seconds",
        str(args.seconds),
        "--connections",
        str(row.connections),
        "--kind",
        row.input,
        "--warmup",
        str(args.warmup),
    ]
    if profile is not None:
        command += ["--profile", str(profile)]
    # The exported tree first, then the harness; cwd is the tree so that ``-m`` (which puts
    # the cwd first on sys.path) cannot pick up the repository's own smtpkit/.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(side.tree), str(REPO)])}
    env.pop("PYTHONSTARTUP", None)
    timeout = args.seconds * 3 + 60
    try:
        done = subprocess.run(
            command,
            cwd=side.tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{side.label}: no result within {timeout:g} s") from None
    if done.returncode == WRONG_TREE:
        raise SystemExit(f"{side.label}: {done.stderr.strip()}")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{side.label}: exit {done.returncode}: {' | '.join(tail)}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(data["messages"], data["seconds"], data["cpu_seconds"])


def run_rows(
    rows: list[Row], sides: dict[str, Side], args: argparse.Namespace
) -> tuple[dict[str, float], int]:
    """Run every row ``--rounds`` times, interleaved; return measured RTTs and rounds run."""
    rtts: dict[str, float] = {}
    stop_at = time.monotonic() + args.max_seconds
    rounds_run = 0
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
                for round_no in range(args.rounds):
                    if time.monotonic() > stop_at:
                        print(f"# --max-seconds reached: stop before round {round_no + 1}")
                        break
                    for index, row in enumerate(scenario):
                        run_pair(row, sides, host, port, args, round_no, index)
                    rounds_run = max(rounds_run, round_no + 1)
            finally:
                if proxy is not None:
                    proxy.stop()
    return rtts, rounds_run


def run_pair(
    row: Row,
    sides: dict[str, Side],
    host: str,
    port: int,
    args: argparse.Namespace,
    round_no: int,
    index: int,
) -> None:
    """Old and new back to back; who goes first alternates by round and by row."""
    order = ("old", "new") if (round_no + index) % 2 == 0 else ("new", "old")
    results: dict[str, Result] = {}
    for label in order:
        try:
            results[label] = run_side(sides[label], row, host, port, args, None)
        except RuntimeError as error:
            row.failures.append(f"round {round_no + 1}: {error}")
            print(f"  FAILED {row.key}: {error}", file=sys.stderr)
            return  # keep the rounds paired: a round counts only when both sides ran
    for label in ("old", "new"):
        row.samples[label].append(results[label])
    old, new = results["old"], results["new"]
    print(
        f"  [{round_no + 1}/{args.rounds}] {row.key:24} old {old.rate:8.1f} msg/s "
        f"{old.cpu_us_per_message:6.0f} us | new {new.rate:8.1f} msg/s "
        f"{new.cpu_us_per_message:6.0f} us | x{new.rate / old.rate:.3f}",
        file=sys.stderr,
    )


def median_rate(samples: list[Result]) -> float:
    return statistics.median(sample.rate for sample in samples)


def median_cpu(samples: list[Result]) -> float:
    return statistics.median(sample.cpu_us_per_message for sample in samples)


def verdict(row: Row, tolerance: float) -> str:
    ratios = row.rate_ratios()
    if not ratios:
        return "no data"
    return "yes" if statistics.median(ratios) >= 1 - tolerance else "**no**"


def to_markdown(rows: list[Row], rtts: dict[str, float], tolerance: float) -> str:
    lines = [
        "| input | round trip | rcpts | conns | old msg/s | new msg/s | new/old msg/s "
        "(min-max) | old CPU us/msg | new CPU us/msg | new/old CPU | within "
        f"{tolerance:.0%} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        rtt = f"{rtts.get(f'{row.delay_ms:g}', 0):.1f} ms" if row.delay_ms else "loopback"
        name = "EmailMessage" if row.input == "email" else "bytes"
        rates, cpus = row.rate_ratios(), row.cpu_ratios()
        if not rates:
            lines.append(
                f"| {name} | {rtt} | {row.recipients} | {row.connections} | - | - | - | - | - "
                f"| - | no data ({len(row.failures)} failed) |"
            )
            continue
        old, new = row.samples["old"], row.samples["new"]
        lines.append(
            f"| {name} | {rtt} | {row.recipients} | {row.connections} | "
            f"{median_rate(old):.1f} | {median_rate(new):.1f} | "
            f"**{statistics.median(rates):.3f}** ({min(rates):.2f}-{max(rates):.2f}) | "
            f"{median_cpu(old):.0f} | {median_cpu(new):.0f} | "
            f"**{statistics.median(cpus):.3f}** | {verdict(row, tolerance)} |"
        )
    return "\n".join(lines)


def to_json(
    rows: list[Row],
    sides: dict[str, Side],
    rtts: dict[str, float],
    rounds_run: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
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
        "settings": {
            key: getattr(args, key)
            for key in (
                "message_bytes",
                "count",
                "count_delayed",
                "count_many",
                "seconds",
                "rounds",
                "warmup",
                "tolerance",
            )
        },
        "rounds_run": rounds_run,
        "measured_rtt_ms": rtts,
        "rows": out_rows,
    }


def profile_rows(
    rows: list[Row], sides: dict[str, Side], args: argparse.Namespace, root: Path
) -> None:
    """One profiled run per side of each loopback row (cProfile of the calling thread)."""
    with Sink(backlog=512) as sink:
        for row in (r for r in rows if r.delay_ms == 0):
            for label in ("old", "new"):
                stats_file = root / f"{label}.prof"
                run_side(sides[label], row, sink.host, sink.port, args, stats_file)
                print(f"\n## profile: {row.key}, {label} ({sides[label].commit[:10]})")
                stats = pstats.Stats(str(stats_file), stream=sys.stdout)
                stats.strip_dirs().sort_stats("tottime").print_stats(args.profile_top)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ref", default="3c034b0", help="the old side: a git ref")
    parser.add_argument(
        "--new", default="HEAD", help="the new side: a git ref, or 'worktree' (as it is)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: about 2 minutes")
    parser.add_argument("--delays-ms", default="0,10", help="delay each way, comma-separated")
    parser.add_argument("--recipients", default="1,5", help="recipients, comma-separated")
    parser.add_argument("--connections", default="16,64", help="pooled rows (with a delay)")
    parser.add_argument("--inputs", default=",".join(INPUTS), help="email, bytes")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--count", type=int, default=2000, help="messages per loopback run")
    parser.add_argument("--count-delayed", type=int, default=300, help="per delayed run")
    parser.add_argument("--count-many", type=int, default=3000, help="per pooled run")
    parser.add_argument("--seconds", type=float, default=5.0, help="wall-clock cap per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed messages per run")
    parser.add_argument("--message-bytes", type=int, default=1024)
    parser.add_argument("--tolerance", type=float, default=0.10, help="'within' threshold")
    parser.add_argument("--max-seconds", type=float, default=1800, help="no round after this")
    parser.add_argument(
        "--profile", action="store_true", help="then profile each loopback row on both sides"
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions per profile")
    parser.add_argument("--out", type=Path, default=RESULTS / "compare_ref.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.count, args.count_delayed, args.count_many = 500, 40, 300
        args.seconds, args.rounds = min(args.seconds, 1.5), min(args.rounds, 2)
    if not 1 <= args.rounds <= 50 or args.seconds <= 0:
        raise SystemExit("--rounds takes 1 to 50 and --seconds a positive number")
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
    try:
        sides = {"old": export("old", args.ref, root), "new": export("new", args.new, root)}
        for side in sides.values():
            print(f"# {side.label}: {side.ref} = {side.commit}")
        rtts, rounds_run = run_rows(rows, sides, args)
        if args.profile:
            profile_rows(rows, sides, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    table = to_markdown(rows, rtts, args.tolerance)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_json(rows, sides, rtts, rounds_run, args), indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"\nwrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()

"""CPU evidence that the machine's load cannot move: instructions per message, and profiles.

``count_instructions`` runs each loopback row under callgrind, twice per side: at a small
and a large message count. Callgrind counts the user-space instructions of the client
process, every thread (not the kernel's work inside system calls, nor the server's), and
(large - small) / (messages of large - messages of small) is what one more message costs:
interpreter start-up, imports, the warm-up and connecting cancel out. ``PYTHONHASHSEED=0``
fixes the hash seed so a run repeats. Each run is count-bound (a long ``--seconds``) and
killed after a timeout.

``profile_rows`` runs each loopback row once per side under cProfile (every thread of the
client) and prints the functions that took the most time, to say where a difference goes.
"""

from __future__ import annotations

import argparse
import pstats
import re
import sys
from pathlib import Path

from benchmarks.compare_ref._rows import Row, worker_args
from benchmarks.compare_ref._sides import Side, parse_result, spawn
from benchmarks.sink import Sink

__all__ = ["count_instructions", "profile_rows"]

CALLGRIND = ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")
#: A callgrind run of the slowest row (old EmailMessage, 5 recipients) takes about 2 minutes.
CALLGRIND_TIMEOUT = 1200.0


def count_instructions(
    rows: list[Row], sides: dict[str, Side], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Row key -> side label -> user-space instructions per message (loopback rows only)."""
    counts = (args.instructions_small, args.instructions_large)
    found: dict[str, dict[str, float]] = {}
    with Sink(backlog=512) as sink:
        for row in (r for r in rows if r.delay_ms == 0):
            found[row.key] = {}
            for label in ("old", "new"):
                points = []
                for count in counts:
                    done = spawn(
                        sides[label],
                        worker_args(row, sink.host, sink.port, args, count=count, seconds=900),
                        timeout=CALLGRIND_TIMEOUT,
                        prefix=CALLGRIND,
                        env={"PYTHONHASHSEED": "0"},
                    )
                    collected = re.findall(r"Collected : (\d+)", done.stderr)
                    if not collected:
                        raise RuntimeError(f"{label}: callgrind printed no total")
                    points.append((parse_result(done).messages, int(collected[-1])))
                (small_messages, small), (large_messages, large) = points
                found[row.key][label] = (large - small) / (large_messages - small_messages)
            old, new = found[row.key]["old"], found[row.key]["new"]
            print(
                f"  instructions {row.key:24} old {old:10.0f} | new {new:10.0f} | x{new / old:.3f}",
                file=sys.stderr,
            )
    return found


def profile_rows(
    rows: list[Row], sides: dict[str, Side], args: argparse.Namespace, root: Path
) -> None:
    """One cProfile run per side of each loopback row; prints the top functions by own time."""
    with Sink(backlog=512) as sink:
        for row in (r for r in rows if r.delay_ms == 0):
            for label in ("old", "new"):
                stats_file = root / f"{label}.prof"
                options = worker_args(row, sink.host, sink.port, args)
                spawn(
                    sides[label],
                    [*options, "--profile", str(stats_file)],
                    timeout=args.seconds * 3 + 60,
                )
                print(f"\n## profile: {row.key}, {label} ({sides[label].commit[:10]})")
                stats = pstats.Stats(str(stats_file), stream=sys.stdout)
                stats.strip_dirs().sort_stats("tottime").print_stats(args.profile_top)

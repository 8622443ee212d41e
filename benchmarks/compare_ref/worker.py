"""One timed ``Submitter`` run for ``compare_ref``, in a process of its own.

``benchmarks.compare_ref`` starts this module once per (side, scenario, round) with
``PYTHONPATH`` pointing first at an exported source tree, so ``import smtpkit`` loads that
tree's package; the run itself is the throughput harness's own smtpkit client
(``benchmarks.clients.smtpkit_client.run``: ``Submitter.send_many`` through the public API
only, so the same code drives any commit). Invariants:

* The process refuses to measure anything but the tree it was given: it exits with
  ``WRONG_TREE`` (3) when ``smtpkit`` was imported from elsewhere (the editable install of
  the working tree, say).
* A short untimed warm-up run on one connection comes first, so lazy imports and first
  calls are not charged to the timed run (each side pays them once, outside the clock).
* It prints exactly one JSON line on stdout: the run's messages, seconds and CPU seconds
  (``time.process_time()`` of this process: every thread of the client, nothing of the
  server or the proxy), and where ``smtpkit`` came from.

    python -m benchmarks.compare_ref.worker --expect-tree /tmp/x/old --port 2525 ...
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import smtpkit
from benchmarks.clients import get
from benchmarks.common import HOST
from benchmarks.compare_ref._sides import WRONG_TREE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--expect-tree", type=Path, required=True, help="smtpkit's source tree")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--recipients", type=int, required=True)
    parser.add_argument("--message-bytes", type=int, default=1024)
    parser.add_argument("--seconds", type=float, required=True, help="wall-clock cap")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--kind", choices=("email", "bytes"), required=True)
    parser.add_argument("--warmup", type=int, default=10, help="untimed messages first")
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of the timed run (every thread)"
    )
    return parser.parse_args(argv)


def _profile_threads() -> list[cProfile.Profile]:
    """Profile this thread and every thread started from now on (``send_many``'s workers).

    cProfile sees one thread; the send runs in worker threads, so each thread's ``run``
    gets a profiler of its own and the caller merges them after the run. The clock is the
    thread's CPU time: waiting in ``recv`` costs nothing, as it costs no CPU.
    """
    profiles = [cProfile.Profile(time.thread_time)]
    original: Callable[[threading.Thread], None] = threading.Thread.run

    def run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()
        try:
            original(thread)
        finally:
            profile.disable()

    threading.Thread.run = run  # type: ignore[method-assign,assignment]
    profiles[0].enable()
    return profiles


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    origin = Path(smtpkit.__file__).resolve()
    tree = args.expect_tree.resolve()
    if not origin.is_relative_to(tree):
        print(f"smtpkit was imported from {origin}, not from {tree}", file=sys.stderr)
        return WRONG_TREE
    run = get("smtpkit")
    if args.warmup > 0:
        run(
            args.host,
            args.port,
            count=args.warmup,
            recipients=args.recipients,
            message_bytes=args.message_bytes,
            duration_cap=max(args.seconds, 1.0),
            connections=1,
            kind=args.kind,
        )
    profiles = _profile_threads() if args.profile else []
    result = run(
        args.host,
        args.port,
        count=args.count,
        recipients=args.recipients,
        message_bytes=args.message_bytes,
        duration_cap=args.seconds,
        connections=args.connections,
        kind=args.kind,
    )
    if profiles:
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(str(args.profile))
    print(json.dumps({**result.as_dict(), "smtpkit_file": str(origin)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

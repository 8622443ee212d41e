"""User-space instructions per message, counted by callgrind: a CPU figure load cannot move.

CPU time on this shared 2-core machine moves by 30% between rounds of the same run (other
processes share the caches and the cores), so a ratio near a target can land on either
side of it. Instructions retired in the client's own process do not depend on that: each
client of ``run_throughput`` sends ``--small`` and then ``--large`` messages through one
connection to the same ``smtp-sink`` (which runs outside valgrind), and the difference of
the two totals divided by the difference of the counts is the cost of one message, with
start-up, imports and connection set-up cancelled out.

What it does not count: the kernel's side of each system call (a client that makes more
round trips spends more there: smtplib makes 4 writes and 4 reads per message, smtpkit 1 and
1, see the module ``run_throughput`` for time), and the cost of a cache miss. Use it next to
the time figures, not instead of them.

    python -m benchmarks.run_instructions                       # about 10 minutes
    python -m benchmarks.run_instructions --clients smtpkit,smtplib --inputs email

Needs ``valgrind``. ``PYTHONHASHSEED=0`` makes the counts repeatable to about 0.1%.
Writes ``benchmarks/results/instructions.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import clients
from benchmarks.common import INPUTS, REPO
from benchmarks.sink import Sink

RESULTS = REPO / "benchmarks" / "results"
_COLLECTED = re.compile(r"Collected : (\d+)")


def _child(argv: list[str]) -> None:
    """Inside valgrind: send ``count`` messages with one client through one connection."""
    client, kind, count = argv[0], argv[1], int(argv[2])
    with Sink(backlog=512) as sink:
        clients.get(client)(
            sink.host,
            sink.port,
            count=count,
            recipients=1,
            message_bytes=1024,
            duration_cap=3600,
            kind=kind,
        )


def count(client: str, kind: str, messages: int) -> int:
    """Instructions callgrind collected for a whole run of ``messages`` messages."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "benchmarks.run_instructions",
            "--child",
            client,
            kind,
            str(messages),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{client} {kind}: valgrind failed\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--child"]:
        _child(args_in[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="smtplib,smtpkit,aiosmtplib,smtpkit-async")
    parser.add_argument("--inputs", default=",".join(INPUTS))
    parser.add_argument("--small", type=int, default=300, help="messages in the short run")
    parser.add_argument("--large", type=int, default=1300, help="messages in the long run")
    parser.add_argument("--out", type=Path, default=RESULTS / "instructions.json")
    args = parser.parse_args(args_in)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    names = [n.strip() for n in args.clients.split(",") if n.strip()]
    kinds = [k.strip() for k in args.inputs.split(",") if k.strip()]
    per_message: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    for kind in kinds:
        for name in names:
            small, large = count(name, kind, args.small), count(name, kind, args.large)
            per_message[kind][name] = (large - small) // (args.large - args.small)
            print(f"{kind:5} {name:14} {per_message[kind][name]:>10,} instructions/message")
    lines = ["| input | client | instructions per message | x smtplib | x aiosmtplib |"]
    lines.append("|---|---|---:|---:|---:|")
    for kind, row in per_message.items():
        for name, value in row.items():
            base, peer = row.get("smtplib"), row.get("aiosmtplib")
            to_base = f"{value / base:.2f}" if base else "-"
            to_peer = f"{value / peer:.2f}" if peer else "-"
            lines.append(f"| {kind} | {name} | {value:,} | {to_base} | {to_peer} |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "instructions",
                "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks.run_instructions", *args_in]),
                "settings": {"small": args.small, "large": args.large, "message_bytes": 1024},
                "instructions_per_message": per_message,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

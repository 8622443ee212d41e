"""CPU to turn one message into wire octets, without the network: smtpkit against smtplib.

smtpkit's ``prepare_message`` (envelope from the headers, Message-ID and Date added, Bcc
removed, serialised) against what smtplib's ``send_message`` does before it talks to the
server (``copy.copy``, the envelope from the headers, ``BytesGenerator.flatten``), for the
1 KB ``EmailMessage`` of the throughput benchmark, and ``prepare_message`` of the same
message as bytes. Rounds are interleaved; the table keeps each row's best round (the least
disturbed by other processes on a shared machine) and the ratio to smtplib in that round.

    python -m benchmarks.run_prepare              # about 20 s
    python -m benchmarks.run_prepare --profile    # also cProfile smtpkit's EmailMessage path

Writes ``benchmarks/results/prepare.json``.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import datetime as dt
import io
import json
import pstats
import sys
import time
from collections.abc import Callable
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import smtpkit
from benchmarks.common import REPO, SENDER, build_email_message, build_message, recipient_list
from smtpkit.message import prepare_message

RESULTS = REPO / "benchmarks" / "results"


def smtplib_share(message: EmailMessage) -> bytes:
    """What ``smtplib.SMTP.send_message`` does before any I/O (Python 3.11's code)."""
    if message.get_all("Resent-Date") is not None:  # pragma: no cover - not in this message
        raise ValueError("the benchmark message has no Resent-Date")
    sender = message["Sender"] if "Sender" in message else message["From"]
    sender = getaddresses([sender])[0][1]
    fields = [f for f in (message["To"], message["Bcc"], message["Cc"]) if f is not None]
    recipients = [address for _, address in getaddresses(fields)]
    msg_copy = copy.copy(message)
    del msg_copy["Bcc"]
    del msg_copy["Resent-Bcc"]
    "".join([sender, *recipients]).encode("ascii")
    with io.BytesIO() as buffer:
        BytesGenerator(buffer).flatten(msg_copy, linesep="\r\n")
        return buffer.getvalue()


def measure(action: Callable[[], object], count: int) -> float:
    """CPU microseconds per call (process time, so other processes are not counted)."""
    started = time.process_time()
    for _ in range(count):
        action()
    return (time.process_time() - started) / count * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "prepare.json")
    args = parser.parse_args(argv)

    rcpts = recipient_list(1)
    message = build_email_message(1024, rcpts)
    raw = build_message(1024, rcpts)
    rows: dict[str, Callable[[], object]] = {
        "smtplib send_message, before I/O (EmailMessage)": lambda: smtplib_share(message),
        "smtpkit prepare_message (EmailMessage)": lambda: prepare_message(message),
        "smtpkit prepare_message (bytes + envelope)": lambda: prepare_message(
            raw, sender=SENDER, recipients=rcpts
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, action in rows.items():
            samples[name].append(measure(action, args.count))
    base = samples[next(iter(rows))]
    lines = [
        "| what | CPU us per message (best round) | x smtplib (that round) |",
        "|---|---:|---:|",
    ]
    for name, values in samples.items():
        best = min(range(len(values)), key=values.__getitem__)
        lines.append(f"| {name} | {values[best]:.1f} | {values[best] / base[best]:.2f} |")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "prepare",
                "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks.run_prepare", *sys.argv[1:]]),
                "versions": {"python": sys.version.split()[0], "smtpkit": smtpkit.__version__},
                "samples_us": samples,
            },
            indent=2,
        )
        + "\n"
    )
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [prepare_message(message) for _ in range(args.count)])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()

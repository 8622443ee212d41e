"""Memory: peak RSS growth while sending one message with a 50 MB attachment.

Each client runs in a fresh Python process. The child builds the ``EmailMessage`` first
(random bytes as ``application/octet-stream``, base64: about 68 MB on the wire), drops its
own reference to the raw bytes, collects garbage, then resets the kernel's peak-RSS mark
(``echo 5 > /proc/self/clear_refs``) and sends through plain loopback to smtp-sink, which
accepts messages of any size. Growth = peak RSS during the send - RSS just before it, read
two ways: the kernel's VmHWM (exact) and a thread sampling VmRSS every 2 ms (a check).

    python -m benchmarks.run_memory              # 50 MB, every client
    python -m benchmarks.run_memory --mb 10 --clients smtplib,smtpkit

Writes ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import resource
import smtplib
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from benchmarks.common import HOST, REPO, SENDER
from benchmarks.sink import Sink

CLIENTS = ("smtplib", "aiosmtplib", "smtpkit")
MB = 1024 * 1024


def status_kb(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class Sampler(threading.Thread):
    """Reads VmRSS every ``interval`` seconds and keeps the maximum, until stopped."""

    def __init__(self, interval: float = 0.002) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kb = status_kb("VmRSS")
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak_kb = max(self.peak_kb, status_kb("VmRSS"))

    def stop(self) -> int:
        self._stop_event.set()
        self.join(5)
        self.peak_kb = max(self.peak_kb, status_kb("VmRSS"))
        return self.peak_kb


def build(megabytes: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = "rcpt0@example.test"
    message["Subject"] = f"{megabytes} MB attachment"
    message.set_content("See the attachment.\n")
    data = os.urandom(megabytes * MB)
    message.add_attachment(
        data, maintype="application", subtype="octet-stream", filename="blob.bin"
    )
    return message


def send(client: str, message: EmailMessage, port: int) -> None:
    if client == "smtplib":
        with smtplib.SMTP(HOST, port, timeout=120) as connection:
            connection.send_message(message)
    elif client == "aiosmtplib":
        import aiosmtplib  # noqa: PLC0415 - import only in the child that measures it

        asyncio.run(
            aiosmtplib.send(message, hostname=HOST, port=port, start_tls=False, timeout=120)
        )
    elif client == "smtpkit":
        import smtpkit  # noqa: PLC0415 - import only in the child that measures it

        with smtpkit.Submitter(HOST, port, security=smtpkit.Security.NONE, timeout=120) as sub:
            sub.send(message)
    else:
        raise ValueError(client)


def child(client: str, port: int, megabytes: int) -> dict[str, Any]:
    """Runs in the fresh process: build, settle, measure one send."""
    if client == "aiosmtplib":
        import aiosmtplib  # noqa: F401, PLC0415 - load modules before the baseline
    elif client == "smtpkit":
        import smtpkit  # noqa: F401, PLC0415
    message = build(megabytes)
    gc.collect()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    exact = reset_peak()
    baseline = status_kb("VmRSS")
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()
    send(client, message, port)
    seconds = time.perf_counter() - started
    sampled_peak = sampler.stop()
    hwm = status_kb("VmHWM")
    return {
        "client": client,
        "attachment_mb": megabytes,
        "seconds": seconds,
        "rss_before_mb": baseline / 1024,
        "growth_mb": (hwm - baseline) / 1024 if exact else None,
        "sampled_growth_mb": (sampled_peak - baseline) / 1024,
        "ru_maxrss_before_mb": maxrss_before / 1024,
        "ru_maxrss_after_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=50, help="attachment size in MiB")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/memory.json")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.port, args.mb)))
        return

    rows = []
    with Sink() as sink:
        for client in args.clients.split(","):
            command = [sys.executable, "-m", "benchmarks.run_memory", "--child", client]
            completed = subprocess.run(
                [*command, "--port", str(sink.port), "--mb", str(args.mb)],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if completed.returncode != 0:
                print(f"{client} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(completed.stdout.strip().splitlines()[-1]))

    print("| client | peak RSS growth MB (VmHWM) | sampled MB | x attachment | send s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        growth = row["growth_mb"] if row["growth_mb"] is not None else row["sampled_growth_mb"]
        print(
            f"| {row['client']} | {growth:.1f} | {row['sampled_growth_mb']:.1f} | "
            f"{growth / args.mb:.2f} | {row['seconds']:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "memory",
                "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks.run_memory", *sys.argv[1:]]),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

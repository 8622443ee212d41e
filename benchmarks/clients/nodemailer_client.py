"""Nodemailer (Node.js) pooled transport, run as ``node benchmarks/node/send.js``.

``pool: true, maxConnections: N, maxMessages: Infinity``. Bytes input: the raw message with
an explicit envelope. Message input: Nodemailer's own equivalent of an ``EmailMessage``,
``{from, to, subject, text}``, which it turns into MIME for every message. CPU time is the
Node process's own (``process.cpuUsage()``), measured over the same span as the wall-clock
time, so Node's start-up is not counted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from benchmarks.common import (
    SENDER,
    Result,
    Skipped,
    build_email_message,
    build_message,
    recipient_list,
)

__all__ = ["NODE_DIR", "run"]

NODE_DIR = Path(__file__).resolve().parent.parent / "node"


def run(
    host: str,
    port: int,
    *,
    count: int,
    recipients: int,
    message_bytes: int,
    duration_cap: float,
    connections: int = 1,
    kind: str = "bytes",
) -> Result:
    node = shutil.which("node")
    if node is None:
        raise Skipped("node is not installed")
    if not (NODE_DIR / "node_modules" / "nodemailer").is_dir():
        raise Skipped("nodemailer is not installed: run benchmarks/setup.sh")
    rcpts = recipient_list(recipients)
    options = {
        "host": host,
        "port": port,
        "count": count,
        "sender": SENDER,
        "recipients": rcpts,
        "durationCap": duration_cap,
        "connections": connections,
    }
    if kind == "email":
        email = build_email_message(message_bytes, rcpts)
        options["structured"] = {
            "from": email["From"],
            "to": email["To"],
            "subject": email["Subject"],
            "text": email.get_content(),
        }
    completed = subprocess.run(
        [node, str(NODE_DIR / "send.js"), json.dumps(options)],
        input=build_message(message_bytes, rcpts),
        capture_output=True,
        cwd=NODE_DIR,
        timeout=duration_cap + 60,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"send.js failed ({completed.returncode}): {completed.stderr.decode()[-2000:]}"
        )
    data = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return Result(int(data["messages"]), float(data["seconds"]), float(data["cpu_seconds"]))

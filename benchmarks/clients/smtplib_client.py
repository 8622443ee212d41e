"""smtplib (standard library): one connection, reused, one call per message.

``send_message(msg)`` for an ``EmailMessage`` (envelope from the headers; it flattens the
message each time), ``sendmail(sender, recipients, data)`` for bytes. smtplib does not
pipeline: MAIL, each RCPT, DATA and the content each wait for a reply.
"""

from __future__ import annotations

import smtplib
import time

from benchmarks.common import (
    SENDER,
    Result,
    Skipped,
    build_email_message,
    build_message,
    recipient_list,
)

__all__ = ["run"]


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
    if connections != 1:
        raise Skipped("smtplib has no pool; one connection only")
    rcpts = recipient_list(recipients)
    message = build_message(message_bytes, rcpts)
    email = build_email_message(message_bytes, rcpts) if kind == "email" else None
    sent = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + duration_cap
    client = smtplib.SMTP(host, port, timeout=30)
    try:
        client.ehlo()
        while sent < count and time.perf_counter() < deadline:
            if email is not None:
                client.send_message(email)
            else:
                client.sendmail(SENDER, rcpts, message)
            sent += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        client.quit()
    finally:
        client.close()
    return Result(sent, seconds, cpu)

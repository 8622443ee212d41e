"""smtpkit: ``Submitter.send_many`` over 1 or N pooled, pipelined connections.

With one connection this is the steady-stream case: the end of each message travels with
the next message's envelope (RFC 2920 §3.1). Messages are given as an ``EmailMessage``
(envelope from the headers; Message-ID and Date added) or as bytes with an explicit envelope.
"""

from __future__ import annotations

import time

import smtpkit
from benchmarks.common import SENDER, Result, build_email_message, build_message, recipient_list

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
    rcpts = recipient_list(recipients)
    if kind == "email":
        item = smtpkit.Outgoing(build_email_message(message_bytes, rcpts))
    else:
        item = smtpkit.Outgoing(
            build_message(message_bytes, rcpts), sender=SENDER, recipients=rcpts
        )
    submitter = smtpkit.Submitter(
        host,
        port,
        security=smtpkit.Security.NONE,
        timeout=30,
        max_connections=connections,
        max_messages_per_connection=None,
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + duration_cap
    sent = 0
    with submitter:
        # Batches keep the run bounded by time as well as by count.
        while sent < count and time.perf_counter() < deadline:
            batch = min(count - sent, 1000)
            outcomes = submitter.send_many([item] * batch, concurrency=connections)
            failures = [o for o in outcomes if not isinstance(o, smtpkit.SendResult)]
            if failures:
                raise RuntimeError(f"{len(failures)} messages failed: {failures[0]!r}")
            sent += batch
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Result(sent, seconds, cpu)

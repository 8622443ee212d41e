"""smtpkit async: ``AsyncSubmitter.send_many`` over 1 or N pooled, pipelined connections.

The same workload as ``smtpkit_client`` (one ``Outgoing`` repeated, batches of at most 1000,
EmailMessage or bytes input) on the asyncio driver, inside one ``asyncio.run``. CPU and
wall clock stop at the last outcome of the last batch (closing the pool is not timed, as
for the aiosmtplib client, whose QUIT is not timed either).
"""

from __future__ import annotations

import asyncio
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
    return asyncio.run(
        _run(host, port, count, recipients, message_bytes, duration_cap, connections, kind)
    )


async def _run(
    host: str,
    port: int,
    count: int,
    recipients: int,
    message_bytes: int,
    duration_cap: float,
    connections: int,
    kind: str,
) -> Result:
    rcpts = recipient_list(recipients)
    if kind == "email":
        item = smtpkit.Outgoing(build_email_message(message_bytes, rcpts))
    else:
        item = smtpkit.Outgoing(
            build_message(message_bytes, rcpts), sender=SENDER, recipients=rcpts
        )
    submitter = smtpkit.AsyncSubmitter(
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
    async with submitter:
        # Batches keep the run bounded by time as well as by count.
        while sent < count and time.perf_counter() < deadline:
            batch = min(count - sent, 1000)
            outcomes = await submitter.send_many([item] * batch, concurrency=connections)
            failures = [o for o in outcomes if not isinstance(o, smtpkit.SendResult)]
            if failures:
                raise RuntimeError(f"{len(failures)} messages failed: {failures[0]!r}")
            sent += batch
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Result(sent, seconds, cpu)

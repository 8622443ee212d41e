"""aiosmtplib: one asyncio task per connection, each sending messages one after another.

With N connections, N tasks share one message budget and one deadline. ``send_message(msg)``
for an ``EmailMessage`` (envelope from the headers), ``sendmail(...)`` for bytes.
"""

from __future__ import annotations

import asyncio
import time

import aiosmtplib

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
    message = build_message(message_bytes, rcpts)
    email = build_email_message(message_bytes, rcpts) if kind == "email" else None
    budget = count
    sent = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + duration_cap
    finished = (started, cpu_started)  # clocks at the last final reply (QUIT is not timed)

    async def worker() -> None:
        nonlocal budget, sent, finished
        client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=30)
        await client.connect()
        try:
            while budget > 0 and time.perf_counter() < deadline:
                budget -= 1
                if email is not None:
                    await client.send_message(email)
                else:
                    await client.sendmail(SENDER, rcpts, message)
                sent += 1
                finished = (time.perf_counter(), time.process_time())
        finally:
            await client.quit()

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    done, pending = await asyncio.wait(tasks, timeout=duration_cap + 30)
    for task in pending:
        task.cancel()
    for task in done:
        task.result()  # re-raise a worker's failure
    return Result(sent, finished[0] - started, finished[1] - cpu_started)

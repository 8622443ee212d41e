"""Many tasks on one AsyncSubmitter over real loopback sockets: 1,000 concurrent ``send()``
calls share 8 connections; every call ends delivered or with a typed error, and no task is
left pending."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from smtpkit import AsyncSubmitter, Security, SendResult, SMTPError
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(120)

ServerFactory = Callable[..., LocalServer]
CALLS = 1000
CONNECTIONS = 8


def message(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = "alice@example.test", "bob@example.test"
    msg["Subject"] = f"load {number}"
    msg.set_content("x")
    return msg


def test_a_thousand_concurrent_sends_share_eight_connections(local_server: ServerFactory) -> None:
    rng = random.Random(7)  # a fixed sequence: some transient refusals, the same every run

    def faults(phase: str) -> str | None:
        return "451 4.3.0 Try again later" if phase == "rcpt" and rng.random() < 0.02 else None

    server = local_server(security=Security.NONE, faults=faults)
    widest: list[int] = []

    async def main() -> tuple[list[SendResult | BaseException], int]:
        submitter = AsyncSubmitter(
            server.host,
            server.port,
            security=Security.NONE,
            timeout=30,
            max_connections=CONNECTIONS,
        )

        async def watch() -> None:
            while True:
                widest.append(submitter._pool.size)
                await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        async with submitter:
            tasks = [asyncio.ensure_future(submitter.send(message(n))) for n in range(CALLS)]
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        return outcomes, len(pending)

    outcomes, pending = asyncio.run(main())
    assert pending == 0
    assert len(outcomes) == CALLS
    sent = [o for o in outcomes if isinstance(o, SendResult)]
    failed = [o for o in outcomes if not isinstance(o, SendResult)]
    assert all(isinstance(o, SMTPError) for o in failed), {type(o) for o in failed}
    assert all(o.is_transient for o in failed if isinstance(o, SMTPError))
    assert 0 < len(failed) < 60  # about 2 % refused, the rest delivered
    assert max(widest) <= CONNECTIONS
    received = server.wait_for(len(sent), timeout=10)
    assert len(received) == len(sent)
    assert sorted(m.subject or "" for m in received) == sorted(
        f"load {n}" for n, o in enumerate(outcomes) if isinstance(o, SendResult)
    )

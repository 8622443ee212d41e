"""Thousands of concurrent ``send()`` calls from tasks on one AsyncSubmitter.

One AsyncSubmitter with ``max_connections=16``, one task per message, all started at once,
against a LocalServer in a child process (so that its memory and CPU are not the
client's) that refuses about 1 % of recipients with a transient ``451``. Every call ends
delivered or with a typed error, the server has exactly the messages reported sent, no
task is left pending, never more than 16 connections are open, and the client's memory
(``tracemalloc``, client process only) stays within a few kilobytes per call in flight and
returns to where it started once the calls are done.

It makes 10,000 calls (about 30 s on a loaded 2-core machine, most of it tracemalloc's
cost); ``SMTPKIT_TEST_CONCURRENT_SENDS=N`` runs another number.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
import tracemalloc
from dataclasses import dataclass, field

import pytest
from server_process import ServerProcess

from smtpkit import AsyncSubmitter, Security, SendResult, SMTPError
from smtpkit.drivers._async_pool import AsyncPool

pytestmark = pytest.mark.timeout(600)

DEFAULT_CALLS = 10_000
CALLS = int(os.environ.get("SMTPKIT_TEST_CONCURRENT_SENDS", DEFAULT_CALLS))
CONNECTIONS = 16
#: Bytes of client memory per call in flight, at most: a task, its coroutine frames, a
#: pool waiter, its outcome. Unbounded buffering (every message's wire form kept, a list
#: of outcomes per connection...) would be far more.
PER_CALL = 16 * 1024
#: Bytes smtpkit and asyncio code may hold once every call is done and the results are
#: dropped, with the submitter idle (its 16 kept connections) and once it is closed
#: (module-level caches filled on first use). Nothing may grow with the number of calls.
HELD = 1024 * 1024
RETAINED = 128 * 1024


def raw_message(number: int) -> bytes:
    return (
        f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: load {number}\r\n"
        f"Message-ID: <load-{number}@example.test>\r\n\r\nHello number {number}.\r\n"
    ).encode()


@dataclass
class Run:
    """What one run measured; outcomes reduced to plain values so they hold no frames."""

    sent: set[str] = field(default_factory=set)
    failed: list[tuple[str, bool]] = field(default_factory=list)  # (class, transient)
    widest: int = 0
    pending: int = -1
    peak: int = 0  # bytes above the baseline, at the worst moment
    held: int = 0  # bytes smtpkit/asyncio hold with the submitter idle, calls done
    retained: int = 0  # the same once the submitter is closed and gone


def traced_in_ours(before: tracemalloc.Snapshot) -> int:
    """Bytes allocated since ``before`` by smtpkit's and asyncio's code, still alive."""
    gc.collect()
    return sum(
        stat.size_diff
        for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
        if _ours(stat.traceback[0].filename)
    )


async def concurrent_sends(port: int, messages: list[bytes], run: Run) -> None:
    submitter = AsyncSubmitter(
        "127.0.0.1", port, security=Security.NONE, timeout=30, max_connections=CONNECTIONS
    )

    async def watch(pool: AsyncPool) -> None:
        while True:  # cancelled below
            run.widest = max(run.widest, pool.size)
            await asyncio.sleep(0.01)

    gc.collect()
    before = tracemalloc.take_snapshot()
    baseline = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    watcher = asyncio.ensure_future(watch(submitter._pool))
    sends = [
        asyncio.ensure_future(
            submitter.send(raw, sender="alice@example.test", recipients=["bob@example.test"])
        )
        for raw in messages
    ]
    outcomes = await asyncio.gather(*sends, return_exceptions=True)
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    run.peak = tracemalloc.get_traced_memory()[1] - baseline
    run.pending = len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])
    for number, outcome in enumerate(outcomes):
        if isinstance(outcome, SendResult):
            run.sent.add(f"<load-{number}@example.test>")
        else:
            transient = isinstance(outcome, SMTPError) and outcome.is_transient
            run.failed.append((type(outcome).__name__, transient))
    del sends, outcomes, outcome  # the errors' tracebacks hold frames
    run.held = traced_in_ours(before)  # 16 idle connections, nothing per message
    await submitter.aclose()
    del submitter, watch
    run.retained = traced_in_ours(before)


def test_concurrent_sends_from_tasks_share_sixteen_connections() -> None:
    messages = [raw_message(n) for n in range(CALLS)]  # the caller's, built before measuring
    run = Run()
    tracemalloc.start()
    try:
        with ServerProcess(rcpt_failure_rate=0.01, seed=3) as server:
            started = time.monotonic()
            asyncio.run(concurrent_sends(server.port, messages, run))
            elapsed = time.monotonic() - started
    finally:
        tracemalloc.stop()

    print(
        f"\n{CALLS} concurrent sends in {elapsed:.1f} s ({CALLS / elapsed:.0f}/s), "
        f"peak {run.peak / 1e6:.1f} MB ({run.peak / CALLS / 1024:.1f} KiB per call), "
        f"held idle {run.held / 1e3:.0f} kB, retained {run.retained / 1e3:.0f} kB, "
        f"{len(run.failed)} refused"
    )
    assert run.pending == 0
    assert all(transient for _, transient in run.failed), run.failed
    assert 0 < len(run.failed) < CALLS * 0.05  # about 1 % refused, the rest delivered
    assert run.widest == CONNECTIONS  # all of them used, never more
    assert server.server_errors == 0
    assert sorted(server.received) == sorted(run.sent)  # exactly the ones reported sent, once
    assert run.peak < PER_CALL * CALLS, run.peak / CALLS
    assert run.held < HELD, run.held
    assert run.retained < RETAINED, run.retained


def _ours(filename: str) -> bool:
    """Code whose memory the test holds to account: smtpkit's and asyncio's."""
    parts = filename.replace("\\", "/").split("/")
    return "smtpkit" in parts or "asyncio" in parts


def test_tasks_waiting_for_a_connection_are_woken_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every new connection used to wake every waiting task ("gated tasks may open theirs
    # now") even with no login gate: each went back to the end of the queue, and the
    # queue was scanned once per wake-up, so 10,000 tasks took 30 times as long as 2,000.
    calls = 600
    waits = 0
    real_wait = AsyncPool._wait

    async def counted(self: AsyncPool, *args: object) -> None:
        nonlocal waits
        waits += 1
        await real_wait(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(AsyncPool, "_wait", counted)
    messages = [raw_message(n) for n in range(calls)]
    with ServerProcess() as server:

        async def main() -> list[SendResult | BaseException]:
            async with AsyncSubmitter(
                "127.0.0.1", server.port, security=Security.NONE, max_connections=CONNECTIONS
            ) as submitter:
                sends = (
                    submitter.send(raw, sender="alice@example.test", recipients=["b@example.test"])
                    for raw in messages
                )
                return await asyncio.gather(*sends, return_exceptions=True)

        outcomes = asyncio.run(main())

    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(server.received) == calls
    # A task waits about once: until a connection is given back to it.
    assert waits <= 2 * calls, f"{waits} waits for {calls} sends"

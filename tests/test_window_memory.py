"""Flow control of the BDAT window: memory stays bounded with 10,000 messages queued, and a
server that stops reading holds the client back instead of letting it buffer.

The server is ``tests/bdat_sink.py`` in a process of its own, so ``tracemalloc`` counts
the client only (both drivers: the asyncio one runs its loop in a thread of this process).
The messages come from a generator, each 16 KB and distinct: holding them (or their
octets in a write buffer) would take 160 MB; the window holds at most ``window`` of them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from drivers_kit import DriverFactory, driver

from smtpkit import Outgoing, Security, SendResult

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(120)

SINK = Path(__file__).with_name("bdat_sink.py")
COUNT = 10_000
SIZE = 16_384
STALL_AFTER = 3_000
STALL_SECONDS = 0.6
#: What the client may hold at its peak: the outcomes (10,000 SendResults) and the
#: window, with room to spare; holding the messages would need ten times more.
PEAK_LIMIT = 40 * 1024 * 1024


@pytest.fixture
def sink() -> Iterator[int]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(SINK),
            "--stall-after",
            str(STALL_AFTER),
            "--stall-seconds",
            str(STALL_SECONDS),
            "--lifetime",
            "110",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening "), line
        yield int(line.split()[1])
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def messages() -> Iterator[Outgoing]:
    """Distinct 16 KB messages, made one at a time as the submitter asks for them."""
    line = b"x" * 62 + b"\r\n"
    body = line * (SIZE // len(line))
    for number in range(COUNT):
        head = (
            f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {number}\r\n"
            f"Message-ID: <mem-{number}@example.test>\r\n\r\n"
        ).encode()
        yield Outgoing(head + body + b"%d\r\n" % number, "a@example.test", ["b@example.test"])


def test_memory_stays_bounded_with_10000_queued_messages_and_a_stalling_server(
    driver: DriverFactory, sink: int
) -> None:
    client = driver.client("127.0.0.1", sink, security=Security.NONE, window=16, timeout=10.0)
    client.open()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.monotonic()
        outcomes = client.send_many(messages(), concurrency=1)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    client.close()
    assert len(outcomes) == COUNT
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes[:3]
    assert outcomes[-1].message_id == f"<mem-{COUNT - 1}@example.test>"  # type: ignore[union-attr]
    grown = peak - baseline
    print(f"\n{driver.name}: {COUNT} messages in {elapsed:.1f} s, peak +{grown / 2**20:.1f} MiB")
    # The server read nothing for STALL_SECONDS: the client waited (its writes blocked or
    # awaited the transport's drain) instead of piling the octets up in memory.
    assert elapsed >= STALL_SECONDS
    assert grown < PEAK_LIMIT, f"peak grew by {grown / 2**20:.1f} MiB"

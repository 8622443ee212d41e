"""AsyncSubmitter against misbehaving servers on loopback: dripping replies (one deadline per
reply, not per read) and cancellation mid-transaction (the connection is never reused)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from smtpkit import (
    AsyncSubmitter,
    DeliveryUnknown,
    OperationTimeout,
    Security,
    SendResult,
    Timeouts,
)
from tests.hostile_server import HostileServer, Peer

pytestmark = pytest.mark.timeout(60)

#: The timeout under test, seconds: short, so the suite stays fast.
LIMIT = 0.6
#: How late the timeout may fire: scheduling on a loaded machine, plus closing.
MARGIN = 1.0
#: How often a dripping server sends the next piece: well inside LIMIT.
EVERY = 0.1
GENEROUS = 10.0
EHLO = b"250-hostile.test\r\n250 PIPELINING\r\n"


def message(number: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", f"m{number}"
    msg["Message-ID"] = f"<cancel-{number}@example.test>"
    msg.set_content("body")
    return msg


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Peer], None]], HostileServer]]:
    servers: list[HostileServer] = []

    def start(handler: Callable[[Peer], None]) -> HostileServer:
        server = HostileServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
    for server in servers:
        assert server.errors == []


def submitter_for(server: HostileServer, timeouts: Timeouts) -> AsyncSubmitter:
    return AsyncSubmitter(server.host, server.port, security=Security.NONE, timeout=timeouts)


def greet(peer: Peer) -> None:
    peer.send(b"220 hostile.test ESMTP\r\n")
    peer.read_line()  # EHLO
    peer.send(EHLO)


def envelope(peer: Peer) -> None:
    for _ in range(3):  # MAIL, RCPT, DATA: one pipelined flight
        peer.read_line()
    peer.send(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 Go ahead\r\n")


def test_a_dripping_ehlo_reply_times_out_when_the_reply_is_due(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.drip(lambda i: b"250-still here %d\r\n" % i, every=EVERY, limit=LIMIT + 4)

    server = serve(handler)
    timeouts = Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS)

    async def main() -> None:
        async with submitter_for(server, timeouts) as submitter:
            await submitter.send(message())

    started = time.monotonic()
    with pytest.raises(OperationTimeout) as caught:
        asyncio.run(main())
    elapsed = time.monotonic() - started
    assert LIMIT <= elapsed < LIMIT + MARGIN, elapsed
    assert "EHLO" in str(caught.value)


def test_a_dripping_final_reply_is_unknown_within_the_final_reply_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    def handler(peer: Peer) -> None:
        greet(peer)
        envelope(peer)
        peer.read_content()
        peer.drip(lambda i: b"250" + (b"-" if i == 0 else b"x"), every=EVERY, limit=LIMIT + 4)

    server = serve(handler)
    timeouts = Timeouts(connect=GENEROUS, command=GENEROUS, final_reply=LIMIT)

    async def main() -> None:
        async with submitter_for(server, timeouts) as submitter:
            await submitter.send(message())

    started = time.monotonic()
    with pytest.raises(DeliveryUnknown) as caught:
        asyncio.run(main())
    assert time.monotonic() - started < LIMIT + MARGIN
    assert caught.value.message_id == "<cancel-0@example.test>"


def _cancel_when(
    server_event: threading.Event, submitter: AsyncSubmitter
) -> Callable[[], asyncio.Future[SendResult]]:
    async def send_and_cancel() -> asyncio.Future[SendResult]:
        task = asyncio.ensure_future(submitter.send(message()))
        for _ in range(500):  # at most 5 s: until the server has seen the step
            if server_event.is_set():
                break
            await asyncio.sleep(0.01)
        assert server_event.is_set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task

    return send_and_cancel  # type: ignore[return-value]


def test_cancelled_after_the_final_dot_is_unknown_and_the_connection_is_not_reused(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    content_read = threading.Event()
    hung_up = threading.Event()
    connections: list[int] = []

    def handler(peer: Peer) -> None:
        connections.append(1)
        greet(peer)
        envelope(peer)
        if len(connections) == 1:
            peer.read_content()
            content_read.set()
            try:
                peer.read_line()  # the client goes away instead of waiting
            finally:
                hung_up.set()
            return
        peer.read_content()
        peer.send(b"250 2.0.0 queued\r\n")
        peer.read_line()  # QUIT
        peer.send(b"221 Bye\r\n")

    server = serve(handler)
    timeouts = Timeouts(connect=GENEROUS, command=GENEROUS, final_reply=GENEROUS)
    submitter = submitter_for(server, timeouts)

    async def main() -> tuple[asyncio.Future[SendResult], int, SendResult]:
        task = await _cancel_when(content_read, submitter)()
        size_after_cancel = submitter._pool.size
        async with submitter:
            again = await submitter.send(message(1))
        return task, size_after_cancel, again

    caplog.set_level(logging.WARNING, logger="smtpkit")
    task, size, again = asyncio.run(main())
    assert task.cancelled()
    assert size == 0  # aborted, not given back to the pool mid-transaction
    assert hung_up.wait(5)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("<cancel-0@example.test>" in w and "may have been delivered" in w for w in warnings)
    assert again.accepted == ("b@example.test",)
    assert len(connections) == 2  # the next send used a new connection


def test_cancelled_before_the_content_sends_no_content(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    envelope_read = threading.Event()
    rest: list[bytes] = []

    def handler(peer: Peer) -> None:
        greet(peer)
        for _ in range(3):
            peer.read_line()
        envelope_read.set()  # and never answer: the client is cancelled meanwhile
        try:
            while True:
                rest.append(peer.read_raw())
        finally:
            pass

    server = serve(handler)
    timeouts = Timeouts(connect=GENEROUS, command=GENEROUS, final_reply=GENEROUS)
    submitter = submitter_for(server, timeouts)

    async def main() -> asyncio.Future[SendResult]:
        task = await _cancel_when(envelope_read, submitter)()
        assert submitter._pool.size == 0
        await submitter.aclose()
        return task

    caplog.set_level(logging.WARNING, logger="smtpkit")
    task = asyncio.run(main())
    assert task.cancelled()
    for _ in range(100):  # the server sees the connection end (bounded: 1 s)
        if server.peers and not any(t.is_alive() for t in server._threads):
            break
        time.sleep(0.01)
    assert b"".join(rest) == b""  # no content, no QUIT: the connection was aborted
    assert not [r for r in caplog.records if "may have been delivered" in r.getMessage()]

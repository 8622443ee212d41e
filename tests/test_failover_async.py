"""smtpkit.AsyncFailover against real LocalServers: the same rules as Failover, with await.

Each test runs its coroutine with ``asyncio.run`` (no async test plugin needed)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Iterator
from email.message import EmailMessage
from typing import TypeVar

import pytest

import smtpkit
from smtpkit import (
    AsyncFailover,
    AsyncSubmitter,
    BatchInterrupted,
    DeliveryUnknown,
    FailoverResult,
    Security,
    SendResult,
    Submitter,
)
from smtpkit.errors import ConfigurationError, RecipientRejected, ServiceUnavailable, SMTPError
from smtpkit.failover import handled_by
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def down_port() -> Iterator[int]:
    """A loopback port with nothing listening (bound, never listening): refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def via(server: LocalServer) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def down(port: int) -> AsyncSubmitter:
    return AsyncSubmitter("127.0.0.1", port, security=Security.NONE, timeout=TIMEOUT)


def label(server: LocalServer) -> str:
    return f"{server.host}:{server.port}"


def message(n: int = 0, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", to, f"n{n}"
    msg["Message-ID"] = f"<async-failover-{n}@example.test>"
    msg.set_content("hello")
    return msg


def ids(server: LocalServer) -> list[str]:
    return [str(received.message["Message-ID"]) for received in server.messages]


T = TypeVar("T")


async def then_close(failover: AsyncFailover, sending: Awaitable[T]) -> T:
    """Await ``sending``, then close the failover's kept connections on this loop, so that
    no AsyncSubmitter is collected unclosed (its ResourceWarning) after the test."""
    try:
        return await sending
    finally:
        await failover.aclose()


def test_it_is_exported_lazily_and_takes_only_async_submitters() -> None:
    assert smtpkit.AsyncFailover is AsyncFailover
    assert smtpkit.failover.AsyncFailover is AsyncFailover  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="use Failover"):
        AsyncFailover([Submitter("smtp.example.test")])  # type: ignore[list-item]
    assert repr(AsyncFailover([AsyncSubmitter("smtp.example.test")])) == (
        "AsyncFailover(['smtp.example.test:587'], strategy=failover)"
    )


def test_a_down_server_then_a_throttling_one_pass_the_message_on(
    local_server: ServerFactory, down_port: int
) -> None:
    busy, good = local_server(), local_server()
    busy.reply("mail", "421 4.7.0 Try again later", times=None)

    async def main() -> FailoverResult:
        async with AsyncFailover([down(down_port), via(busy), via(good)]) as failover:
            return await failover.send(message())

    result = asyncio.run(main())
    assert result.servers_tried == (f"127.0.0.1:{down_port}", label(busy), label(good))
    assert busy.messages == []
    assert ids(good) == ["<async-failover-0@example.test>"]


def test_a_drop_after_the_content_stays_unknown_and_arrives_once(
    local_server: ServerFactory,
) -> None:
    dropper = local_server(faults=lambda phase: LocalServer.DROP if phase == "message" else None)
    spare = local_server()
    failover = AsyncFailover([via(dropper), via(spare)])
    with pytest.raises(DeliveryUnknown) as caught:
        asyncio.run(then_close(failover, failover.send(message())))
    assert handled_by(caught.value) == label(dropper)
    assert ids(dropper) == ["<async-failover-0@example.test>"]
    assert spare.messages == []


def test_a_permanent_refusal_stays_and_the_last_server_failure_is_raised(
    local_server: ServerFactory, down_port: int
) -> None:
    strict, busy = local_server(), local_server()
    strict.reply("rcpt", "550 5.1.1 User unknown", times=None)
    busy.reply("mail", "451 4.3.0 Try again later", times=None)
    first = AsyncFailover([via(strict), via(busy)])
    with pytest.raises(RecipientRejected):
        asyncio.run(then_close(first, first.send(message())))
    assert busy.messages == []
    second = AsyncFailover([down(down_port), via(busy)])
    with pytest.raises(ServiceUnavailable) as caught:
        asyncio.run(then_close(second, second.send(message(1))))
    assert caught.value.servers_tried == (f"127.0.0.1:{down_port}", label(busy))  # type: ignore[attr-defined]


def test_cooldown_skips_then_recovers(local_server: ServerFactory) -> None:
    failing = [True]
    primary = local_server(
        faults=lambda phase: "451 4.3.0 Later" if phase == "mail" and failing[0] else None
    )
    backup = local_server()
    clock = Clock()
    failover = AsyncFailover([via(primary), via(backup)], cooldown=10.0, clock=clock)

    async def main() -> list[str | None]:
        used = [handled_by(await failover.send(message(0)))]
        failing[0] = False
        used.append(handled_by(await failover.send(message(1))))  # still cooling down
        clock.now = 10.0
        used.append(handled_by(await failover.send(message(2))))
        await failover.aclose()
        return used

    assert asyncio.run(main()) == [label(backup), label(backup), label(primary)]


def test_round_robin_send_many_spreads_evenly_from_an_async_iterable(
    local_server: ServerFactory,
) -> None:
    servers = [local_server(security=Security.NONE) for _ in range(3)]
    failover = AsyncFailover([via(server) for server in servers], strategy="round_robin")
    reported: list[int] = []

    async def source() -> AsyncIterator[EmailMessage]:
        for n in range(9):
            yield message(n)

    async def record(index: int, outcome: SendResult | SMTPError) -> None:
        await asyncio.sleep(0)
        reported.append(index)

    async def main() -> list[SendResult | SMTPError]:
        async with failover:
            return await failover.send_many(source(), concurrency=8, on_result=record)

    outcomes = asyncio.run(main())
    assert [o.message_id for o in outcomes] == [  # type: ignore[union-attr]
        f"<async-failover-{n}@example.test>" for n in range(9)
    ]
    assert [len(server.messages) for server in servers] == [3, 3, 3]
    assert sorted(reported) == list(range(9))


def test_send_many_moves_off_a_down_server_and_interrupts_like_submitter(
    local_server: ServerFactory, down_port: int
) -> None:
    good = local_server()
    failover = AsyncFailover([down(down_port), via(good)])
    outcomes = asyncio.run(then_close(failover, failover.send_many([message(n) for n in range(4)])))
    assert [handled_by(outcome) for outcome in outcomes] == [label(good)] * 4

    def stop(index: int, outcome: SendResult | SMTPError) -> None:
        raise RuntimeError("stop")

    batch = failover.send_many([message(n) for n in range(4, 8)], on_result=stop)
    with pytest.raises(BatchInterrupted) as caught:
        asyncio.run(then_close(failover, batch))
    sent = [o for o in caught.value.outcomes if o is not None]
    assert len(caught.value.outcomes) == 4
    assert sorted(o.message_id for o in sent) == sorted(ids(good)[4:])  # type: ignore[union-attr]

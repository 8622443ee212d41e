"""Failover moves a message refused by a Submitter's quota to the next server: nothing was
sent. Real LocalServers on loopback, Failover and AsyncFailover."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import (
    AsyncFailover,
    AsyncSubmitter,
    Failover,
    QuotaExceeded,
    QuotaStoreUnavailable,
    SendResult,
    Submitter,
)
from smtpkit.failover import is_server_failure
from smtpkit.providers import Limits
from smtpkit.quotas import MemoryQuotaStore, Quota, SQLiteQuotaStore
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.timeout(60)


def message(number: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", f"m{number}"
    msg.set_content("Hello.\n")
    return msg


def options(server: LocalServer) -> dict[str, object]:
    return {
        "security": server.security,
        "tls_context": server.client_tls_context(),
        "timeout": TIMEOUT,
    }


def one_a_day() -> Quota:
    return Quota(MemoryQuotaStore(), Limits(messages_per_day=1), key="primary")


def test_quota_refusals_are_server_failures() -> None:
    assert is_server_failure(QuotaExceeded("over", limit="messages_per_day", retry_after=9.0))
    assert is_server_failure(QuotaStoreUnavailable("down"))


def test_failover_moves_a_message_over_quota_to_the_next_server(
    local_server: ServerFactory,
) -> None:
    primary, backup = local_server(), local_server()
    first = Submitter(primary.host, primary.port, quota=one_a_day(), **options(primary))  # type: ignore[arg-type]
    second = Submitter(backup.host, backup.port, **options(backup))  # type: ignore[arg-type]

    with Failover([first, second], cooldown=0) as mail:
        results = [mail.send(message(n)) for n in range(3)]
        many = mail.send_many([message(n) for n in range(3, 5)])

    assert [r.server for r in results] == [
        f"{primary.host}:{primary.port}",
        f"{backup.host}:{backup.port}",
        f"{backup.host}:{backup.port}",
    ]
    assert all(isinstance(r, SendResult) for r in many)
    assert len(primary.messages) == 1  # never more than its quota
    assert primary.connections == 1  # the refusals never connected
    assert len(backup.messages) == 4


def test_async_failover_moves_a_message_when_the_store_cannot_be_asked(
    local_server: ServerFactory, tmp_path: Path
) -> None:
    primary, backup = local_server(), local_server()
    blocked = tmp_path / "store"
    blocked.mkdir()  # not a database: the store cannot be asked
    quota = Quota(SQLiteQuotaStore(blocked, timeout=0.2), Limits(messages_per_day=5), key="k")

    async def run() -> list[str | None]:
        first = AsyncSubmitter(primary.host, primary.port, quota=quota, **options(primary))  # type: ignore[arg-type]
        second = AsyncSubmitter(backup.host, backup.port, **options(backup))  # type: ignore[arg-type]
        async with AsyncFailover([first, second], cooldown=0) as mail:
            sent = [await mail.send(message(n)) for n in range(2)]
        await first.aclose()
        await second.aclose()
        return [result.server for result in sent]

    servers = asyncio.run(run())

    assert servers == [f"{backup.host}:{backup.port}"] * 2
    assert primary.connections == 0
    assert len(backup.messages) == 2

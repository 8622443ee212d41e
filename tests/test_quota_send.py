"""Quotas in the send path, for both drivers, over real sockets to a LocalServer.

Each test runs with ``smtpkit.Submitter`` and ``smtpkit.AsyncSubmitter`` (the ``driver``
fixture) and checks the server's side: what it received, and whether a connection was
made at all. The stores are real (memory, SQLite); the fleet tests are in
``tests/test_quota_send_fleet.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from drivers_kit import DriverFactory, driver, mail

from smtpkit import (
    ConfigurationError,
    DeliveryUnknown,
    MessageError,
    QuotaExceeded,
    QuotaStoreUnavailable,
    RecipientRejected,
    ReplyError,
    SendResult,
)
from smtpkit.auth import PasswordAuth
from smtpkit.drivers._batch_state import BatchState
from smtpkit.providers import Limits
from smtpkit.quotas import MemoryQuotaStore, Quota, QuotaStore, SQLiteQuotaStore
from smtpkit.testing import LocalServer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., LocalServer]
KEY = "127.0.0.1/alice@example.test"


def daily(messages: int | None = None, recipients: int | None = None) -> Limits:
    return Limits(messages_per_day=messages, recipients_per_day=recipients)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> QuotaStore:
    if request.param == "memory":
        return MemoryQuotaStore()
    return SQLiteQuotaStore(tmp_path / "quota.db")


def used(quota: Quota) -> int:
    return quota.usage().limits[0].used


# -- a quota of N sends exactly N ---------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_quota_of_n_sends_exactly_n_then_refuses_with_nothing_sent(
    driver: DriverFactory, local_server: ServerFactory, store: QuotaStore, concurrency: int
) -> None:
    server = local_server()
    quota = Quota(store, daily(messages=4), key=KEY)
    client = driver.for_server(server, quota=quota)

    outcomes = client.send_many([mail(n) for n in range(7)], concurrency=concurrency)

    sent = [o for o in outcomes if isinstance(o, SendResult)]
    refused = [o for o in outcomes if isinstance(o, QuotaExceeded)]
    assert len(sent) == 4
    assert len(refused) == 3  # each message left is reported, none skipped
    assert all(o.limit == "messages_per_day" and o.retry_after > 60 for o in refused)
    assert refused[0].used == 4
    assert refused[0].allowed == 4
    assert len(server.messages) == 4
    assert used(quota) == 4
    connections = server.connections

    with pytest.raises(QuotaExceeded) as caught:
        client.send(mail(99))

    assert caught.value.key == KEY
    assert caught.value.is_transient
    assert server.connections == connections  # refused before a connection was taken
    assert len(server.messages) == 4


def test_a_quota_refusal_ends_the_batch_but_reports_every_message_in_order(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    quota = Quota(MemoryQuotaStore(), daily(messages=2), key=KEY)
    client = driver.for_server(server, quota=quota)
    seen: list[int] = []

    outcomes = client.send_many(
        [mail(n) for n in range(6)], concurrency=1, on_result=lambda i, _: seen.append(i)
    )

    assert [type(o).__name__ for o in outcomes] == ["SendResult"] * 2 + ["QuotaExceeded"] * 4
    assert sorted(seen) == list(range(6))
    assert sorted(m.subject or "" for m in server.messages) == ["drv 0", "drv 1"]


def test_recipients_are_counted_from_the_envelope(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    quota = Quota(MemoryQuotaStore(), daily(recipients=5), key=KEY)
    client = driver.for_server(server, quota=quota)
    three = mail(1, to="a@example.test, b@example.test, c@example.test")

    client.send(three)
    with pytest.raises(QuotaExceeded) as caught:
        client.send(three)  # 3 + 3 > 5
    client.send(mail(2), recipients=["a@example.test", "b@example.test"])  # 3 + 2 = 5

    assert caught.value.limit == "recipients_per_day"
    assert caught.value.used == 3
    assert caught.value.allowed == 5
    assert quota.usage().limits[0].used == 5
    assert len(server.messages) == 2


def test_a_message_larger_than_a_limit_alone_is_a_message_error(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    quota = Quota(MemoryQuotaStore(), daily(recipients=2), key=KEY)
    client = driver.for_server(server, quota=quota)
    three = mail(1, to="a@example.test, b@example.test, c@example.test")

    outcomes = client.send_many([three, mail(2)], concurrency=1)

    assert isinstance(outcomes[0], MessageError)  # no wait would help
    assert isinstance(outcomes[1], SendResult)  # it ends that message, not the batch
    assert server.connections == 1


# -- settling: give back, keep, and the provider's last word ------------------------------


def test_a_refused_message_gives_its_place_back(
    driver: DriverFactory, local_server: ServerFactory, store: QuotaStore
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown")
    quota = Quota(store, daily(messages=2), key=KEY)
    client = driver.for_server(server, quota=quota)

    with pytest.raises(RecipientRejected):
        client.send(mail(1))
    assert used(quota) == 0  # given back: the server did not accept it

    outcomes = client.send_many([mail(n) for n in range(2, 5)], concurrency=1)

    assert [type(o).__name__ for o in outcomes] == ["SendResult", "SendResult", "QuotaExceeded"]
    assert used(quota) == 2


def test_a_message_of_unknown_fate_keeps_its_place(
    driver: DriverFactory, local_server: ServerFactory, store: QuotaStore
) -> None:
    server = local_server()
    server.disconnect("message")  # the content arrived; the reply never does
    quota = Quota(store, daily(messages=2), key=KEY)
    client = driver.for_server(server, quota=quota)

    with pytest.raises(DeliveryUnknown):
        client.send(mail(1))

    assert used(quota) == 1  # it may have been delivered: it stays counted
    client.send(mail(2))
    with pytest.raises(QuotaExceeded):
        client.send(mail(3))


def test_a_provider_quota_reply_stops_every_submitter_of_the_account(
    driver: DriverFactory, local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server()
    server.reply("message", "550 5.4.5 Daily user sending quota exceeded.")
    store = SQLiteQuotaStore(tmp_path / "shared.db")
    first = driver.for_server(server, provider="gmail", quota=Quota(store))
    # Another worker of the same account: its own Submitter and connection to the store.
    second = driver.for_server(
        server, provider="gmail", quota=Quota(SQLiteQuotaStore(tmp_path / "shared.db"))
    )

    with pytest.raises(ReplyError) as caught:
        first.send(mail(1))
    assert caught.value.reply.code == 550
    connections = server.connections

    with pytest.raises(QuotaExceeded) as refused:
        second.send(mail(2))

    assert refused.value.limit == "exhausted"
    assert refused.value.retry_after > 23 * 3600  # Gmail's reply: the whole 24 hours
    assert server.connections == connections  # the second never connected
    assert server.messages == []
    assert first.submitter.quota is not None
    assert first.submitter.quota.usage().exhausted_until is not None
    assert first.submitter.quota.usage().limits[0].used == 0  # the refused one given back


def test_a_store_that_cannot_be_asked_refuses_and_sends_nothing(
    driver: DriverFactory, local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server()
    blocked = tmp_path / "not-a-database"
    blocked.mkdir()  # SQLite cannot open a directory as its file
    quota = Quota(SQLiteQuotaStore(blocked, timeout=0.2), daily(messages=5), key=KEY)
    client = driver.for_server(server, quota=quota)

    outcomes = client.send_many([mail(n) for n in range(3)], concurrency=1)

    assert all(isinstance(o, QuotaStoreUnavailable) for o in outcomes)
    assert server.connections == 0


def test_on_store_error_send_sends_uncounted(
    driver: DriverFactory, local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server()
    blocked = tmp_path / "not-a-database"
    blocked.mkdir()
    quota = Quota(
        SQLiteQuotaStore(blocked, timeout=0.2), daily(messages=5), key=KEY, on_store_error="send"
    )
    client = driver.for_server(server, quota=quota)

    result = client.send(mail(1))

    assert isinstance(result, SendResult)
    assert len(server.messages) == 1


# -- short windows are waited for, like the rate limit ------------------------------------


def test_a_place_that_frees_up_soon_is_waited_for(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    quota = Quota(MemoryQuotaStore(), Limits(messages_per_second=2), key=KEY)
    client = driver.for_server(server, quota=quota)

    outcomes = client.send_many([mail(n) for n in range(5)], concurrency=2)

    assert all(isinstance(o, SendResult) for o in outcomes)
    stamps = sorted(quota.store._ledgers[KEY].times)  # type: ignore[attr-defined]
    assert len(stamps) == 5
    # Never more than 2 in any second: the 3rd waited for the 1st to leave its window.
    assert all(later - earlier >= 1.0 for earlier, later in zip(stamps, stamps[2:], strict=False))


# -- the option -----------------------------------------------------------------------------


def test_the_default_quota_counts_a_presets_daily_limits(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    client = driver.for_server(server, provider="gmail")
    quota = client.submitter.quota

    assert quota is not None
    assert isinstance(quota.store, MemoryQuotaStore)
    assert [rule.name for rule in quota.rules] == ["messages_per_day"]
    assert quota.key == "127.0.0.1/"
    client.send(mail(1))
    assert quota.usage().limits[0].used == 1
    assert driver.for_server(server, provider="gmail", quota=False).submitter.quota is None
    assert driver.for_server(server).submitter.quota is None  # no preset: no limits known


def test_a_given_quota_gets_the_preset_limits_and_the_account(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(credentials={"Alice@Example.test": "pw"})
    mine = Quota(MemoryQuotaStore(), key="my-key")
    client = driver.for_server(
        server, provider="microsoft365", quota=Quota(MemoryQuotaStore()), rate_limit=None
    )
    quota = client.submitter.quota
    assert quota is not None
    assert {rule.name: rule.allowed for rule in quota.rules} == {
        "recipients_per_day": 10_000,
        "messages_per_minute": 30,
    }
    assert quota.key == "127.0.0.1/"
    authed = driver.for_server(
        server, provider="gmail", quota=mine, auth=PasswordAuth("Alice@Example.test", "pw")
    )
    assert authed.submitter.quota is not None
    assert authed.submitter.quota.key == "my-key"
    other = driver.for_server(
        server, provider="gmail", quota=Quota(MemoryQuotaStore()), auth=PasswordAuth("A@b.c", "p")
    )
    assert other.submitter.quota is not None
    assert other.submitter.quota.key == "127.0.0.1/a@b.c"


def test_a_wrong_quota_is_a_configuration_error(driver: DriverFactory) -> None:
    with pytest.raises(ConfigurationError, match=r"quota must be a smtpkit\.quotas\.Quota"):
        driver.client("127.0.0.1", 2525, quota="redis://localhost")
    with pytest.raises(ConfigurationError, match="counts no limit") as caught:
        driver.client("127.0.0.1", 2525, quota=Quota(MemoryQuotaStore()))
    assert "Limits(" in (caught.value.hint or "")


# -- where the store is called --------------------------------------------------------------


class RecordingStore:
    """A memory store that records the thread of every call (a store that does I/O for
    the drivers: not a MemoryQuotaStore instance)."""

    def __init__(self) -> None:
        self.inner = MemoryQuotaStore()
        self.threads: list[str] = []

    def _seen(self) -> None:
        self.threads.append(threading.current_thread().name)

    def reserve(self, key: str, request: Any) -> Any:
        self._seen()
        return self.inner.reserve(key, request)

    def release(self, key: str, request: Any) -> None:
        self._seen()
        self.inner.release(key, request)

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        self._seen()
        self.inner.mark_exhausted(key, until, now=now)

    def usage(self, key: str, windows: Any, now: float) -> Any:
        return self.inner.usage(key, windows, now)

    def close(self) -> None:
        self.inner.close()


def test_the_async_driver_never_calls_a_store_on_the_event_loop_and_keeps_pipelining(
    driver: DriverFactory, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    original = BatchState.used

    def spy(self: BatchState, link: Any, count: int) -> bool:
        runs.append(count)
        return original(self, link, count)

    monkeypatch.setattr(BatchState, "used", spy)
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.test")
    store = RecordingStore()
    quota = Quota(store, daily(messages=5), key=KEY)
    client = driver.for_server(server, quota=quota)
    batch = [mail(n) for n in range(5)]
    batch[2] = mail(2, to="nobody@example.test")  # refused: its place is given back

    outcomes = client.send_many(batch, concurrency=1)

    assert [type(o).__name__ for o in outcomes].count("SendResult") == 4
    assert isinstance(outcomes[2], RecipientRejected)
    assert store.threads.count("drivers-kit-loop") == 0  # the asyncio client's loop thread
    assert len(store.threads) == 6  # five places asked for, one given back
    assert used(quota) == 4
    assert max(runs) == 5  # one run took every message: the lookahead found each place ready
    # Nothing asked ahead stays held: the next call gets exactly the one place left.
    last = client.send_many([mail(9), mail(10)], concurrency=1)
    assert [type(o).__name__ for o in last] == ["SendResult", "QuotaExceeded"]


class _SlowSecondAsk(SQLiteQuotaStore):
    """A real SQLite store whose second reservation is slow (as a store under load is), so
    an ask made ahead for a later message could reach the store first."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls = 0
        self._count = threading.Lock()

    def reserve(self, key: str, request: Any) -> Any:
        with self._count:
            self.calls += 1
            slow = self.calls == 2
        if slow:
            threading.Event().wait(0.3)
        return super().reserve(key, request)


def test_places_asked_ahead_are_granted_in_message_order(
    driver: DriverFactory, local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server()
    store = _SlowSecondAsk(tmp_path / "quota.db")
    quota = Quota(store, daily(messages=2), key=KEY)
    client = driver.for_server(server, quota=quota, max_connections=4)

    outcomes = client.send_many([mail(n) for n in range(1, 5)], concurrency=1)

    # A later message never takes the place an earlier one asked for first: the quota's
    # last places go to the first messages, and the rest are refused in order.
    assert [type(o).__name__ for o in outcomes] == [
        "SendResult",
        "SendResult",
        "QuotaExceeded",
        "QuotaExceeded",
    ]
    assert len(server.messages) == 2

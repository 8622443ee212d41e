"""Every quota store behaves the same: limits, windows, release, marks, clock, failures.

The same tests run on MemoryQuotaStore, SQLiteQuotaStore (a file in tmp_path) and
RedisQuotaStore (a private redis-server on 127.0.0.1, skipped with the reason when it
cannot run), and a seeded random walk compares all three with a brute-force model.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from smtpkit.errors import (
    ConfigurationError,
    ConnectError,
    DeliveryUnknown,
    MessageError,
    MessageRejected,
    QuotaExceeded,
    QuotaStoreUnavailable,
    RecipientRejected,
)
from smtpkit.providers import Limits
from smtpkit.quotas import (
    MemoryQuotaStore,
    OnStoreError,
    Quota,
    QuotaStore,
    ReservationState,
    SQLiteQuotaStore,
    account_key,
)
from smtpkit.quotas._rules import Exhausted, Granted, OverLimit, Request, Unit, WindowLimits
from smtpkit.replies import Phase, Reply
from tests.quota_redis import RedisServer, unavailable_reason

T0 = 1_700_000_000.0
DAY = 86_400.0
StoreFactory = Callable[[], QuotaStore]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory of stores that share one backing (one dict, one file, one Redis prefix)."""
    if request.param == "memory":
        shared = MemoryQuotaStore()
        return lambda: shared
    if request.param == "sqlite":
        path = tmp_path / "quota.db"
        return lambda: SQLiteQuotaStore(path)
    from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    return lambda: RedisQuotaStore(server.url, prefix=prefix)


def quota(store: QuotaStore, clock: list[float] | None = None, **limits: int) -> Quota:
    now = clock if clock is not None else [T0]
    return Quota(
        store, Limits(**limits), key="smtp.example.com/me@example.com", clock=lambda: now[0]
    )


def refused(q: Quota, **kwargs: object) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        q.reserve(**kwargs)  # type: ignore[arg-type]
    return caught.value


# -- limits and windows -----------------------------------------------------------------------


def test_grants_up_to_the_limit_then_refuses_with_retry_after(stores: StoreFactory) -> None:
    q = quota(stores(), messages_per_day=3)
    for offset in (0, 10, 20):
        q.reserve(now=T0 + offset).keep()
    error = refused(q, now=T0 + 30)
    assert (error.limit, error.used, error.allowed) == ("messages_per_day", 3, 3)
    assert error.retry_after == DAY - 30  # the oldest leaves 24 h after it was counted
    assert error.key == "smtp.example.com/me@example.com"
    assert error.is_transient
    assert refused(q, now=T0 + DAY - 0.5).retry_after == 0.5
    # A record leaves the rolling window exactly `window` seconds after it was counted.
    assert q.reserve(now=T0 + DAY).at == T0 + DAY
    assert refused(q, now=T0 + DAY + 1).retry_after == 9.0  # the one at +10 leaves next


def test_recipients_per_day_counts_recipients(stores: StoreFactory) -> None:
    q = quota(stores(), recipients_per_day=10)
    q.reserve(recipients=4, now=T0)
    q.reserve(recipients=4, now=T0 + 5)
    error = refused(q, recipients=3, now=T0 + 6)
    assert (error.limit, error.used, error.allowed) == ("recipients_per_day", 8, 10)
    assert error.retry_after == DAY - 6  # freeing 1 recipient takes the first record
    q.reserve(recipients=2, now=T0 + 7)
    assert [u.used for u in q.usage(now=T0 + 7).limits] == [10]


def test_short_windows_and_the_longest_wait_wins(stores: StoreFactory) -> None:
    q = quota(stores(), messages_per_day=4, messages_per_minute=2, messages_per_second=1)
    q.reserve(now=T0)
    assert refused(q, now=T0 + 0.25).limit == "messages_per_second"
    assert refused(q, now=T0 + 0.25).retry_after == 0.75
    q.reserve(now=T0 + 1)
    minute = refused(q, now=T0 + 2)
    assert (minute.limit, minute.retry_after) == ("messages_per_minute", 58.0)
    q.reserve(now=T0 + 60)
    q.reserve(now=T0 + 120)
    # Now the day (4 of 4) and the second are both full: the day's wait is the longer.
    day = refused(q, now=T0 + 120.5)
    assert (day.limit, day.used, day.allowed, day.retry_after) == (
        "messages_per_day",
        4,
        4,
        DAY - 120.5,
    )


def test_release_gives_the_place_back_and_keep_does_not(stores: StoreFactory) -> None:
    q = quota(stores(), messages_per_day=2)
    kept = q.reserve(now=T0)
    failed = q.reserve(now=T0 + 1)
    refused(q, now=T0 + 2)
    assert failed.release() is True
    assert failed.state is ReservationState.RELEASED
    assert failed.release() is True  # twice: nothing more happens
    again = q.reserve(now=T0 + 3)
    kept.keep()
    kept.release()  # too late: a kept reservation stays counted
    assert kept.state is ReservationState.KEPT
    refused(q, now=T0 + 4)
    assert again.state is ReservationState.OPEN
    assert [u.used for u in q.usage(now=T0 + 4).limits] == [2]


def test_in_flight_reservations_count(stores: StoreFactory) -> None:
    # The point of reserving first: two workers never both take the last place.
    q = quota(stores(), messages_per_day=1)
    open_one = q.reserve(now=T0)
    refused(q, now=T0)
    assert open_one.state is ReservationState.OPEN


def test_a_store_is_shared_by_every_quota_on_it(stores: StoreFactory) -> None:
    first, second = quota(stores(), messages_per_day=2), quota(stores(), messages_per_day=2)
    first.reserve(now=T0)
    second.reserve(now=T0)
    refused(first, now=T0 + 1)
    other = Quota(stores(), Limits(messages_per_day=2), key="smtp.example.com/other@example.com")
    other.reserve(now=T0 + 1)  # another account has its own count


def test_a_window_first_counted_later_sees_earlier_messages(stores: StoreFactory) -> None:
    # Workers configured with different limits for one account still agree on its count.
    daily = quota(stores(), messages_per_day=100)
    for offset in (0, 50, 70):
        daily.reserve(now=T0 + offset)
    per_minute = quota(stores(), messages_per_minute=2)
    error = refused(per_minute, now=T0 + 80)
    assert (error.used, error.retry_after) == (2, 30.0)  # +50 and +70 are in the last minute
    daily.reserve(now=T0 + 110)  # +50 has left the minute; the day still counts all
    assert [u.used for u in per_minute.usage(now=T0 + 111).limits] == [2]
    assert [u.used for u in daily.usage(now=T0 + 111).limits] == [4]


def test_the_clock_never_goes_back(stores: StoreFactory) -> None:
    q = quota(stores(), messages_per_minute=1)
    assert q.reserve(now=T0 + 100).at == T0 + 100
    # A worker whose clock is 30 s behind is counted at the store's time, not its own.
    error = refused(q, now=T0 + 70)
    assert error.retry_after == 60.0
    assert q.reserve(now=T0 + 160).at == T0 + 160


def test_the_same_entry_is_recorded_once(stores: StoreFactory) -> None:
    store = stores()
    windows = (WindowLimits(DAY, messages=5),)
    request = Request(windows, messages=1, recipients=1, now=T0, entry="abc")
    assert store.reserve("k", request) == Granted(T0)
    retried = Request(windows, messages=1, recipients=1, now=T0 + 1, entry="abc")
    assert store.reserve("k", retried) == Granted(T0)
    assert store.usage("k", windows, T0 + 2).used[(DAY, Unit.MESSAGES)] == 1


def test_exhausted_marks_refuse_every_worker_until_then(stores: StoreFactory) -> None:
    q, other = quota(stores(), messages_per_day=100), quota(stores(), messages_per_day=100)
    q.reserve(now=T0)
    q.exhaust(T0 + 3600, now=T0 + 1)
    error = refused(other, now=T0 + 10)
    assert (error.limit, error.retry_after, error.allowed) == ("exhausted", 3590.0, 0)
    q.exhaust(T0 + 60, now=T0 + 11)  # a later, shorter mark never shortens it
    assert refused(other, now=T0 + 100).retry_after == 3500.0
    assert q.usage(now=T0 + 100).exhausted_until == T0 + 3600
    other.reserve(now=T0 + 3600)
    assert q.usage(now=T0 + 3601).exhausted_until is None


def test_a_quota_without_limits_still_obeys_marks(stores: StoreFactory) -> None:
    q = Quota(stores(), None, key="k")
    q.reserve(now=T0)
    q.exhaust(T0 + 10, now=T0)
    assert refused(q, now=T0 + 5).limit == "exhausted"
    assert q.usage(now=T0 + 5).limits == ()


def test_store_decisions_directly(stores: StoreFactory) -> None:
    store = stores()
    windows = (WindowLimits(60.0, messages=1, recipients=3),)
    assert isinstance(store.reserve("k", Request(windows, 1, 2, T0, "a")), Granted)
    assert store.reserve("k", Request(windows, 1, 1, T0 + 1, "b")) == OverLimit(
        60.0, Unit.MESSAGES, 1, 1, 59.0
    )
    store.mark_exhausted("k", T0 + 5, now=T0 + 1)
    assert store.reserve("k", Request(windows, 1, 1, T0 + 2, "c")) == Exhausted(T0 + 5, 3.0)
    store.close()


# -- the driver's second call: settle ---------------------------------------------------------


GMAIL_QUOTA = MessageRejected(
    Reply(550, ("5.4.5 Daily user sending quota exceeded. x - gsmtp",)), Phase.MESSAGE
)


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (None, ReservationState.KEPT),
        (DeliveryUnknown("lost after the final dot"), ReservationState.KEPT),
        (RuntimeError("a bug"), ReservationState.KEPT),
        (ConnectError("refused"), ReservationState.RELEASED),
        (
            RecipientRejected(Reply(550, ("5.1.1 no such user",)), Phase.RCPT),
            ReservationState.RELEASED,
        ),
        (GMAIL_QUOTA, ReservationState.RELEASED),
    ],
    ids=["accepted", "unknown", "bug", "connect", "recipients", "gmail-quota"],
)
def test_settle(stores: StoreFactory, error: BaseException | None, state: ReservationState) -> None:
    clock = [T0]
    q = quota(stores(), clock, messages_per_day=5)
    reservation = q.reserve()
    reservation.settle(error)
    assert reservation.state is state
    used = q.usage().limits[0].used
    assert used == (1 if state is ReservationState.KEPT else 0)
    if error is GMAIL_QUOTA:
        # The provider has the last word: every worker stops for the window it implies.
        assert q.usage().exhausted_until == T0 + DAY
        clock[0] = T0 + 100
        assert refused(q).retry_after == DAY - 100


def test_a_reservation_is_a_context_manager(stores: StoreFactory) -> None:
    q = quota(stores(), messages_per_day=5)
    with q.reserve(now=T0) as kept:
        pass
    with pytest.raises(ConnectError), q.reserve(now=T0) as given_back:
        raise ConnectError("refused")
    assert (kept.state, given_back.state) == (ReservationState.KEPT, ReservationState.RELEASED)
    assert q.usage(now=T0).limits[0].used == 1


# -- bad input ----------------------------------------------------------------------------------


def test_a_message_larger_than_a_limit_can_never_be_sent() -> None:
    q = quota(MemoryQuotaStore(), recipients_per_day=100)
    with pytest.raises(MessageError, match="recipients_per_day") as caught:
        q.reserve(recipients=101)
    assert caught.value.hint
    assert "split" in caught.value.hint
    for bad in (0, -1, True, 1.5):
        with pytest.raises(MessageError):
            q.reserve(recipients=bad)  # type: ignore[arg-type]


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="quota store"):
        Quota(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="on_store_error"):
        Quota(MemoryQuotaStore(), on_store_error="maybe")
    with pytest.raises(ConfigurationError, match="Limits"):
        Quota(MemoryQuotaStore(), {"messages_per_day": 5})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="no account key"):
        Quota(MemoryQuotaStore()).reserve()
    for key in ("", " ", "a\r\nb", "x" * 513):
        with pytest.raises(ConfigurationError):
            Quota(MemoryQuotaStore(), key=key)


def test_bind_fills_what_the_user_left_unset() -> None:
    gmail = Limits(messages_per_day=500)
    unbound = Quota(MemoryQuotaStore())
    bound = unbound.bind(limits=gmail, key=account_key("Me@Gmail.com", "smtp.gmail.com."))
    assert bound.key == "smtp.gmail.com/me@gmail.com"
    assert [r.name for r in bound.rules] == ["messages_per_day"]
    assert bound.store is unbound.store
    mine = Quota(MemoryQuotaStore(), Limits(messages_per_day=50), key="mine")
    assert mine.bind(limits=gmail, key="other") is mine  # what the user gave wins
    assert Quota(MemoryQuotaStore(), on_store_error="send").on_store_error is OnStoreError.SEND


# -- the store cannot be asked --------------------------------------------------------------------


def test_an_unusable_sqlite_store_refuses_by_default(tmp_path: Path) -> None:
    store = SQLiteQuotaStore(tmp_path / "missing" / "quota.db")
    q = Quota(store, Limits(messages_per_day=5), key="k")
    with pytest.raises(QuotaStoreUnavailable) as caught:
        q.reserve()
    assert caught.value.is_transient
    assert caught.value.store == f"sqlite {tmp_path / 'missing' / 'quota.db'}"


def test_send_anyway_is_an_opt_in(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SQLiteQuotaStore(tmp_path / "missing" / "quota.db")
    q = Quota(store, Limits(messages_per_day=5), key="k", on_store_error="send")
    with caplog.at_level(logging.WARNING, logger="smtpkit.quotas"):
        reservation = q.reserve()
    assert reservation.recorded is False
    assert "sending uncounted" in caplog.text
    assert reservation.release() is True  # nothing to give back, and it never raises


def test_release_never_raises_when_the_store_is_locked(tmp_path: Path) -> None:
    import sqlite3  # noqa: PLC0415

    store = SQLiteQuotaStore(tmp_path / "quota.db", timeout=0.1)
    q = Quota(store, Limits(messages_per_day=5), key="k")
    reservation = q.reserve(now=T0)
    holder = sqlite3.connect(tmp_path / "quota.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process sits on the write lock
    try:
        assert reservation.release() is False  # logged; the place stays counted
        with pytest.raises(QuotaStoreUnavailable, match="locked"):
            q.reserve(now=T0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert reservation.state is ReservationState.RELEASED
    assert q.usage(now=T0).limits[0].used == 1


# -- a random walk against a brute-force model ----------------------------------------------------


@dataclass
class Model:
    """The specification, by brute force: sums over every record, no running totals."""

    windows: tuple[WindowLimits, ...]
    clock: float = float("-inf")
    until: float | None = None
    records: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def reserve(self, request: Request) -> object:
        now = self.clock = max(self.clock, request.now)
        if request.entry in self.records:
            return Granted(self.records[request.entry][0])
        if self.until is not None and now < self.until:
            return Exhausted(self.until, self.until - now)
        worst: OverLimit | None = None
        for limits in self.windows:
            live = sorted(v for v in self.records.values() if v[0] > now - limits.seconds)
            for unit, asked, index in (
                (Unit.MESSAGES, request.messages, 1),
                (Unit.RECIPIENTS, request.recipients, 2),
            ):
                allowed = limits.allowed(unit)
                used = sum(v[index] for v in live)
                if allowed is None or used + asked <= allowed:
                    continue
                need, freed, at = used + asked - allowed, 0, now
                for record in live:
                    freed += record[index]
                    at = record[0] + limits.seconds
                    if freed >= need:
                        break
                wait = max(at - now, 0.0)
                if worst is None or wait > worst.retry_after:
                    worst = OverLimit(limits.seconds, unit, used, allowed, wait)
        if worst is not None:
            return worst
        self.records[request.entry] = (now, request.messages, request.recipients)
        return Granted(now)


def test_every_store_matches_the_model(stores: StoreFactory) -> None:
    rng = random.Random(20260514)
    windows = (
        WindowLimits(DAY, messages=12, recipients=30),
        WindowLimits(60.0, messages=4),
        WindowLimits(1.0, messages=2),
    )
    store, model = stores(), Model(windows)
    now, granted, grants = T0, [], 0
    for step in range(400):
        action = rng.random()
        now += rng.choice([0.0, 0.1, 0.5, 1.0, 7.0, 30.0, 61.0, 900.0, 5000.0])
        if action < 0.05:
            now -= rng.choice([0.5, 20.0])  # a worker whose clock is behind
        if action < 0.80:
            request = Request(windows, 1, rng.randint(1, 5), now, f"e{step}")
            decision = store.reserve("acct", request)
            assert decision == model.reserve(request), step
            if isinstance(decision, Granted):
                granted.append(request)
                grants += 1
        elif action < 0.95 and granted:
            request = granted.pop(rng.randrange(len(granted)))
            store.release("acct", request)
            model.records.pop(request.entry, None)
        else:
            until = now + rng.choice([5.0, 90.0])
            store.mark_exhausted("acct", until, now=now)
            model.until = max(model.until or until, until)
    assert grants > 60  # the walk reached every branch, not just refusals


class AnswerLost(MemoryQuotaStore):
    """Counts the reservation, then loses the answer (a connection dropped at the wrong time)."""

    def __init__(self) -> None:
        super().__init__()
        self.lose_next = False

    def reserve(self, key: str, request: Request) -> Granted | OverLimit | Exhausted:  # type: ignore[override]
        decision = super().reserve(key, request)
        if self.lose_next:
            self.lose_next = False
            raise QuotaStoreUnavailable("connection lost after the script ran")
        return decision  # type: ignore[return-value]


def test_a_reservation_whose_answer_was_lost_is_given_back() -> None:
    store = AnswerLost()
    q = Quota(store, Limits(messages_per_day=2), key="k")
    store.lose_next = True
    with pytest.raises(QuotaStoreUnavailable):
        q.reserve(now=T0)  # the store counted it; the caller was told to send nothing
    assert q.usage(now=T0).limits[0].used == 1
    # The next call gives it back first, so both places are there for real messages.
    q.reserve(now=T0 + 1).keep()
    q.reserve(now=T0 + 2).keep()
    assert refused(q, now=T0 + 3).used == 2


def test_a_sqlite_refusal_leaves_no_read_open_on_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A refusal reads the oldest records only as far as retry_after needs. If that
    # half-read cursor outlives the transaction (it is collected when its frame ends,
    # which under load is after the lock went to another thread), the connection keeps
    # a read of an old snapshot open: once another process commits, this process's next
    # BEGIN IMMEDIATE fails with "database is locked" (SQLITE_BUSY_SNAPSHOT), which no
    # waiting cures. Keeping the iterator alive here stands in for that late collection.
    from smtpkit.quotas import _sqlite  # noqa: PLC0415

    held: list[object] = []
    real = _sqlite.retry_after

    def holding(oldest: Iterator[tuple[float, int]], *args: float) -> float:
        held.append(oldest)
        return real(oldest, *args)

    monkeypatch.setattr(_sqlite, "retry_after", holding)
    path = tmp_path / "quota.db"
    quota = Quota(
        SQLiteQuotaStore(path, timeout=0.5),
        Limits(messages_per_day=2),
        key="a/b",
        clock=lambda: 0.0,
    )
    quota.reserve().keep()
    quota.reserve().keep()
    with pytest.raises(QuotaExceeded):
        quota.reserve()  # reads 1 of the 2 records: the cursor is left half-read
    assert len(held) == 1
    other = Quota(SQLiteQuotaStore(path, timeout=0.5), Limits(messages_per_day=5), key="c/d")
    other.reserve(now=0.0).keep()  # another writer commits
    with pytest.raises(QuotaExceeded):
        quota.reserve()  # answered (not QuotaStoreUnavailable)
    assert [u.used for u in quota.usage().limits] == [2]

"""The connection pool: limits, reuse, health checks and closing, on the FakeTransport."""

from __future__ import annotations

import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from smtpkit import (
    ConfigurationError,
    ConnectError,
    OperationTimeout,
    Security,
    SendResult,
    SMTPError,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint, Timeouts
from smtpkit.drivers import PoolLimits
from smtpkit.drivers._pool_state import PoolState
from smtpkit.drivers._sync_io import SyncConnection, SyncDriver
from smtpkit.drivers._sync_pool import SyncPool
from smtpkit.engine import LinkSettings, ReusePolicy
from smtpkit.testing import FakeStream, FakeTransport

pytestmark = pytest.mark.timeout(30)

HOST = "smtp.example.test"
USER = "alice@example.test"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowStream:
    """A fake stream whose sends take a moment, so threads really overlap."""

    def __init__(self, inner: FakeStream, owner: CountingTransport) -> None:
        self._inner = inner
        self._owner = owner
        self._closed = False

    @property
    def is_encrypted(self) -> bool:
        return self._inner.is_encrypted

    def send(self, data: bytes) -> None:
        time.sleep(self._owner.delay)
        self._inner.send(data)

    def receive(self, max_bytes: int = 65536) -> bytes:
        return self._inner.receive(max_bytes)

    def set_timeout(self, seconds: float) -> None:
        self._inner.set_timeout(seconds)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._inner.start_tls(context, server_hostname)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.closed()
        self._inner.close()


class CountingTransport:
    """Counts connections open at the same time (opened and not yet closed by the client)."""

    def __init__(self, fake: FakeTransport, delay: float = 0.0) -> None:
        self.fake = fake
        self.delay = delay
        self.open = 0
        self.most_open = 0
        self._lock = threading.Lock()

    def connect(self, endpoint: Endpoint) -> SlowStream:
        with self._lock:
            self.open += 1
            self.most_open = max(self.most_open, self.open)
        return SlowStream(self.fake.connect(endpoint), self)

    def closed(self) -> None:
        with self._lock:
            self.open -= 1


def message(index: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = f"r{index}@example.test"
    msg["Subject"] = f"pool {index}"
    msg["Message-ID"] = f"<p{index}@example.test>"
    msg.set_content("pooled\n")
    return msg


def submitter(transport: object, **options: object) -> Submitter:
    return Submitter(
        HOST,
        transport=transport,  # type: ignore[arg-type]
        auth=PasswordAuth(USER, "pw"),
        **options,  # type: ignore[arg-type]
    )


def client_lines(fake: FakeTransport) -> list[str]:
    return [line for line in fake.transcript if line.startswith("C: ")]


# -- limits ----------------------------------------------------------------------------------


def test_max_connections_holds_under_eight_threads() -> None:
    fake = FakeTransport()
    counting = CountingTransport(fake, delay=0.002)
    sender = submitter(counting, max_connections=3)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def send_five(worker: int) -> None:
        start.wait(timeout=5)
        try:
            for n in range(5):
                sender.send(message(worker * 10 + n))
        except BaseException as error:
            errors.append(error)

    with sender:
        threads = [threading.Thread(target=send_five, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert errors == []
    assert len(fake.messages) == 40
    assert counting.most_open <= 3
    assert counting.most_open >= 2  # the threads did overlap
    # Kept connections are reused: never more than the cap in all, one login each.
    assert fake.connections <= 3
    assert len(fake.auth_attempts) == fake.connections
    assert counting.open == 0
    assert fake.protocol_errors == []


def test_send_many_threads_never_exceed_max_connections() -> None:
    fake = FakeTransport()
    counting = CountingTransport(fake, delay=0.001)
    sender = submitter(counting, max_connections=2)
    # Eight threads share the pool of two (concurrency above max_connections is refused).
    batches: list[list[SendResult | SMTPError]] = []
    threads = [
        threading.Thread(
            target=lambda n=n: batches.append(
                sender.send_many([message(n * 10 + i) for i in range(4)], concurrency=2)
            )
        )
        for n in range(8)
    ]
    with sender:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    outcomes = [outcome for batch in batches for outcome in batch]
    assert len(outcomes) == 32
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert counting.most_open <= 2
    assert len(fake.auth_attempts) == fake.connections <= 2
    assert counting.open == 0


def test_max_messages_per_connection_replaces_the_connection() -> None:
    fake = FakeTransport()
    sender = submitter(fake, max_messages_per_connection=2)
    with sender:
        for i in range(5):
            sender.send(message(i))
    assert fake.connections == 3
    assert [m.connection for m in fake.messages] == [1, 1, 2, 2, 3]
    assert len(fake.auth_attempts) == 3
    assert all(stream.closed for stream in fake.streams)


def test_max_messages_per_connection_applies_within_send_many() -> None:
    fake = FakeTransport()
    sender = submitter(fake, max_messages_per_connection=3)
    outcomes = sender.send_many([message(i) for i in range(10)], concurrency=1)
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert fake.connections == 4
    per_connection = [sum(1 for m in fake.messages if m.connection == n) for n in range(1, 5)]
    assert per_connection == [3, 3, 3, 1]


# -- reuse, idle timeout, health checks ------------------------------------------------------


def test_idle_timeout_closes_instead_of_reusing() -> None:
    fake = FakeTransport()
    clock = Clock()
    sender = submitter(fake, clock=clock, idle_timeout=30.0)
    with sender:
        sender.send(message(0))
        clock.now += 31
        sender.send(message(1))
    assert fake.connections == 2
    assert [m.connection for m in fake.messages] == [1, 2]
    assert "NOOP" not in " ".join(client_lines(fake))
    # The expired session was closed politely.
    assert fake.streams[0].closed
    assert "C: QUIT" in fake.streams[0].transcript


def test_reuse_within_health_check_window_sends_no_noop() -> None:
    fake = FakeTransport()
    clock = Clock()
    sender = submitter(fake, clock=clock)
    with sender:
        sender.send(message(0))
        clock.now += 5  # below health_check_after (10 s)
        sender.send(message(1))
    assert fake.connections == 1
    assert "C: NOOP" not in client_lines(fake)


def test_health_check_noop_after_idle_then_reuse() -> None:
    fake = FakeTransport()
    clock = Clock()
    sender = submitter(fake, clock=clock)
    with sender:
        sender.send(message(0))
        clock.now += 15  # past health_check_after (10 s), before idle_timeout (60 s)
        sender.send(message(1))
    assert fake.connections == 1
    lines = client_lines(fake)
    noop = lines.index("C: NOOP")
    mails = [i for i, line in enumerate(lines) if line.startswith("C: MAIL")]
    assert mails[0] < noop < mails[1]
    assert fake.protocol_errors == []


def test_dead_idle_connection_found_by_health_check_is_replaced() -> None:
    fake = FakeTransport()
    clock = Clock()
    sender = submitter(fake, clock=clock)
    with sender:
        sender.send(message(0))
        clock.now += 15
        fake.disconnect("noop")  # the server had closed it: NOOP gets no answer
        result = sender.send(message(1))
    assert result.message_id == "<p1@example.test>"
    assert fake.connections == 2
    assert [m.connection for m in fake.messages] == [1, 2]
    assert len(fake.auth_attempts) == 2


# -- the pool itself -------------------------------------------------------------------------


def make_pool(transport: FakeTransport, limits: PoolLimits) -> SyncPool:
    """The Submitter's threaded pool on its own: the sync driver over ``transport``."""
    timeouts = Timeouts()
    settings = LinkSettings(
        host=HOST,
        port=587,
        security=Security.STARTTLS,
        timeouts=timeouts,
        local_hostname="client.example.test",
    )
    endpoint = Endpoint(HOST, 587, Security.STARTTLS, None, timeouts.connect)
    driver = SyncDriver(transport, settings, endpoint, None, time.monotonic)
    policy = ReusePolicy(
        max_messages_per_connection=limits.max_messages_per_connection,
        idle_timeout=limits.idle_timeout,
        health_check_after=limits.health_check_after,
    )
    state: PoolState[SyncConnection] = PoolState(
        limits, policy, clock=time.monotonic, wall_clock=lambda: datetime.now(UTC), login_gate=False
    )
    return SyncPool(state, driver)


def alive(conn: SyncConnection) -> bool:
    return conn.link is not None and conn.link.alive


def test_acquire_times_out_when_every_session_is_busy() -> None:
    fake = FakeTransport()
    pool = make_pool(fake, PoolLimits(max_connections=1, acquire_timeout=0.05))
    held = pool.acquire()
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match="max_connections=1"):
        pool.acquire()
    assert 0.04 <= time.monotonic() - started < 2.0
    assert pool.size == 1
    pool.release(held)
    assert pool.acquire() is held  # freed: handed out again without a new connection
    assert fake.connections == 1


def test_waiting_thread_gets_the_released_session() -> None:
    fake = FakeTransport()
    pool = make_pool(fake, PoolLimits(max_connections=1, acquire_timeout=5.0))
    held = pool.acquire()
    got: list[SyncConnection] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    time.sleep(0.05)
    assert got == []
    pool.release(held)
    waiter.join(timeout=5)
    assert got == [held]
    assert fake.connections == 1


def test_failed_open_frees_its_place() -> None:
    fake = FakeTransport()
    fake.refuse_connect(1)
    pool = make_pool(fake, PoolLimits(max_connections=1, acquire_timeout=1))
    with pytest.raises(ConnectError):
        pool.acquire()
    assert pool.size == 0
    conn = pool.acquire()
    assert alive(conn)
    assert pool.size == 1


def test_close_quits_idle_sessions_and_later_releases() -> None:
    fake = FakeTransport()
    pool = make_pool(fake, PoolLimits(max_connections=2))
    first, second = pool.acquire(), pool.acquire()
    pool.release(first)
    assert pool.idle == 1
    pool.close()
    assert not alive(first)
    assert "C: QUIT" in fake.streams[0].transcript
    assert pool.size == 1
    pool.release(second)  # in use during close: closed when given back
    assert not alive(second)
    assert pool.size == 0
    assert all(stream.closed for stream in fake.streams)


def test_submitter_open_and_close_quit_the_kept_connection() -> None:
    fake = FakeTransport()
    sender = submitter(fake).open()
    assert fake.connections == 1
    sender.send(message(0))
    sender.close()
    assert fake.connections == 1
    assert fake.streams[0].closed
    assert client_lines(fake)[-1] == "C: QUIT"


def test_release_closes_expired_sessions() -> None:
    fake = FakeTransport()
    pool = make_pool(fake, PoolLimits())
    conn = pool.acquire()
    assert conn.link is not None
    # Its OAuth2 login expires within the margin (60 s): not kept for reuse.
    conn.link.auth_expires_at = datetime.now(UTC) + timedelta(seconds=30)
    pool.release(conn)
    assert not alive(conn)
    assert pool.size == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_connections": 0},
        {"max_connections": True},
        {"max_messages_per_connection": 0},
        {"idle_timeout": 0},
        {"health_check_after": -1},
        {"acquire_timeout": 0},
    ],
)
def test_pool_limits_validation(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PoolLimits(**options)  # type: ignore[arg-type]

"""send_many: order, callbacks, rate and connection limits, local failures, and a soak.

The soak drives hundreds of messages through a FakeTransport that injects realistic faults
(421/451 replies, hang-ups and timeouts at every phase) from a seeded RNG, and checks that no
message is lost or delivered twice behind the caller's back.
"""

from __future__ import annotations

import math
import random
import ssl
import threading
import time
from collections import Counter
from email.message import EmailMessage

import pytest

from smtpkit import (
    DeliveryUnknown,
    MessageError,
    MessageTooLarge,
    RecipientRejected,
    SenderRejected,
    SendResult,
    SMTPError,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.drivers import Outgoing
from smtpkit.drivers._sync_batch import SharedPacing
from smtpkit.retry import Retry
from smtpkit.testing import FakeCapabilities, FakeStream, FakeTransport, LocalServer

pytestmark = pytest.mark.timeout(60)

HOST = "smtp.example.test"
USER = "alice@example.test"
PASSWORD = "pw"


def message(index: int, to: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    if to != "":
        msg["To"] = to or f"r{index % 7}@example.test"
    msg["Subject"] = f"bulk {index}"
    msg["Message-ID"] = mid(index)
    msg.set_content(f"Message number {index}.\n.a dotted line\n")
    return msg


def mid(index: int) -> str:
    return f"<bulk{index}@example.test>"


def ids(messages: list[object]) -> list[str]:
    return [str(m.message["Message-ID"]) for m in messages]  # type: ignore[attr-defined]


def fake_submitter(fake: object, **options: object) -> Submitter:
    return Submitter(
        HOST,
        transport=fake,  # type: ignore[arg-type]
        auth=PasswordAuth(USER, PASSWORD),
        **options,  # type: ignore[arg-type]
    )


def local_submitter(server: LocalServer, **options: object) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        auth=PasswordAuth(USER, PASSWORD),
        tls_context=server.client_tls_context(),
        timeout=5.0,
        **options,  # type: ignore[arg-type]
    )


# -- over real sockets -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> object:
    with LocalServer(credentials={USER: PASSWORD}, require_auth=True) as running:
        yield running


@pytest.mark.parametrize("concurrency", [1, 4])
def test_two_hundred_messages_in_order_each_delivered_once(
    server: LocalServer, concurrency: int
) -> None:
    server.clear()
    sender = local_submitter(server, max_connections=4)
    count = 200
    reported: list[int] = []
    lock = threading.Lock()

    def on_result(index: int, outcome: SendResult | SMTPError) -> None:
        with lock:
            reported.append(index)
        assert outcome.message_id == mid(index)  # type: ignore[union-attr]

    outcomes = sender.send_many(
        [message(i) for i in range(count)], concurrency=concurrency, on_result=on_result
    )
    assert [o.message_id for o in outcomes] == [mid(i) for i in range(count)]  # type: ignore[union-attr]
    assert all(isinstance(o, SendResult) for o in outcomes)
    received = server.wait_for(count)
    time.sleep(0.05)
    received = server.messages
    assert Counter(ids(received)) == Counter(mid(i) for i in range(count))
    assert sorted(reported) == list(range(count))
    # One login per connection; max_messages_per_connection (100) also holds in send_many.
    if concurrency == 1:
        assert len(server.auth_attempts) == 2
    else:
        assert len(server.auth_attempts) <= concurrency + 1
    if concurrency == 1:
        assert ids(received) == [mid(i) for i in range(count)]


def test_real_server_failures_are_matched_to_their_messages(server: LocalServer) -> None:
    server.clear()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.test", times=None)
    sender = local_submitter(server)
    messages = [message(i) for i in range(12)]
    messages[3] = message(3, "nobody@example.test")
    messages[7] = message(7, "nobody@example.test, r7@example.test")
    outcomes = sender.send_many(messages, concurrency=4)
    assert isinstance(outcomes[3], RecipientRejected)
    partial = outcomes[7]
    assert isinstance(partial, SendResult)
    assert list(partial.rejected) == ["nobody@example.test"]
    delivered = [mid(i) for i in range(12) if i != 3]
    server.wait_for(11)
    assert sorted(ids(server.messages)) == sorted(delivered)


def test_real_server_without_pipelining(local_server: object) -> None:
    plain = local_server(credentials={USER: PASSWORD}, pipelining=False)  # type: ignore[operator]
    sender = local_submitter(plain)
    outcomes = sender.send_many([message(i) for i in range(20)], concurrency=2)
    assert all(isinstance(o, SendResult) for o in outcomes)
    plain.wait_for(20)
    assert sorted(ids(plain.messages)) == sorted(mid(i) for i in range(20))


def test_real_server_dropping_after_data(local_server: object) -> None:
    dropping = local_server(credentials={USER: PASSWORD})  # type: ignore[operator]
    dropping.disconnect("message", times=1)
    sender = local_submitter(dropping, retry=Retry(attempts=3, backoff=0))
    outcomes = sender.send_many([message(i) for i in range(6)], concurrency=1)
    unknown = [i for i, o in enumerate(outcomes) if isinstance(o, DeliveryUnknown)]
    assert unknown == [0]
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 0)
    dropping.wait_for(5)
    time.sleep(0.05)
    # The unknown one reached the server (its reply got lost) and was never resent.
    assert ids(dropping.dropped) == [mid(0)]
    assert Counter(ids(dropping.messages)) == Counter(mid(i) for i in range(1, 6))


# -- on the fake -----------------------------------------------------------------------------


def test_empty_input_returns_an_empty_list() -> None:
    fake = FakeTransport()
    assert fake_submitter(fake).send_many([]) == []
    assert fake_submitter(fake).send_many(iter(())) == []
    assert fake.connections == 0


def test_on_result_once_per_message_with_its_index() -> None:
    fake = FakeTransport()
    fake.reply("mail", "550 5.7.1 Sender rejected")
    calls: list[tuple[int, object]] = []
    outcomes = fake_submitter(fake).send_many(
        [message(i) for i in range(9)],
        concurrency=3,
        on_result=lambda index, outcome: calls.append((index, outcome)),
    )
    assert sorted(index for index, _ in calls) == list(range(9))
    for index, outcome in calls:
        assert outcome is outcomes[index]
    assert sum(isinstance(o, SenderRejected) for o in outcomes) == 1


def test_local_failure_gets_its_outcome_without_disturbing_the_others() -> None:
    fake = FakeTransport()
    messages = [message(i) for i in range(5)]
    messages[2] = message(2, to="")  # no recipients at all
    outcomes = fake_submitter(fake).send_many(messages, concurrency=1)
    assert isinstance(outcomes[2], MessageError)
    assert [isinstance(o, SendResult) for o in outcomes] == [True, True, False, True, True]
    assert ids(fake.messages) == [mid(0), mid(1), mid(3), mid(4)]
    assert fake.connections == 1
    assert fake.protocol_errors == []


def test_too_large_for_size_gets_message_too_large_on_the_same_connection() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(size=4000))
    messages = [message(i) for i in range(4)]
    big = message(1)
    big.set_content("x" * 70 + "\n" + ("y" * 70 + "\n") * 100)
    messages[1] = big
    outcomes = fake_submitter(fake).send_many(messages, concurrency=1)
    assert isinstance(outcomes[1], MessageTooLarge)
    assert ids(fake.messages) == [mid(0), mid(2), mid(3)]
    assert fake.connections == 1
    # Refused before anything was sent: the server never saw its MAIL.
    assert sum(line.startswith("C: MAIL") for line in fake.transcript) == 3


def test_outgoing_with_bytes_and_explicit_envelope() -> None:
    fake = FakeTransport()
    items = [
        Outgoing(message(0).as_bytes(), sender="bounces@example.test", recipients=["x@ex.test"]),
        Outgoing(message(1), recipients=("y@ex.test", "z@ex.test")),
        message(2),
    ]
    outcomes = fake_submitter(fake).send_many(items, concurrency=1)
    assert all(isinstance(o, SendResult) for o in outcomes)
    first, second, third = fake.messages
    assert (first.sender, first.recipients) == ("bounces@example.test", ("x@ex.test",))
    assert (second.sender, second.recipients) == (USER, ("y@ex.test", "z@ex.test"))
    assert third.recipients == ("r2@example.test",)


def test_outgoing_bytes_without_envelope_is_a_local_error() -> None:
    fake = FakeTransport()
    outcomes = fake_submitter(fake).send_many([Outgoing(b"Subject: x\r\n\r\nhi\r\n"), message(1)])
    assert isinstance(outcomes[0], MessageError)
    assert isinstance(outcomes[1], SendResult)


@pytest.mark.parametrize(("count", "cap", "concurrency"), [(10, 3, 1), (7, 3, 1), (12, 3, 2)])
def test_max_per_connection_opens_a_new_connection(count: int, cap: int, concurrency: int) -> None:
    fake = FakeTransport()
    outcomes = fake_submitter(fake).send_many(
        [message(i) for i in range(count)], concurrency=concurrency, max_per_connection=cap
    )
    assert all(isinstance(o, SendResult) for o in outcomes)
    per_connection = Counter(m.connection for m in fake.messages)
    assert max(per_connection.values()) <= cap
    if concurrency == 1:
        assert fake.connections == math.ceil(count / cap)
    assert len(fake.auth_attempts) == fake.connections


def test_max_per_second_in_real_time() -> None:
    fake = FakeTransport()
    started = time.monotonic()
    outcomes = fake_submitter(fake).send_many(
        [message(i) for i in range(5)], concurrency=2, max_per_second=20
    )
    elapsed = time.monotonic() - started
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert elapsed >= 0.2 - 0.01
    assert elapsed < 3.0


def test_rate_limiter_spaces_starts_across_threads() -> None:
    now = [0.0]
    lock = threading.Lock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:
            sleeps.append(seconds)

    def start(pacing: SharedPacing) -> None:
        # What a worker does before it takes a connection: book a start, wait for it.
        wait = pacing.reserve(now[0])
        if wait > 0:
            sleep(wait)

    limiter = SharedPacing(4.0)
    threads = [threading.Thread(target=start, args=(limiter,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    # Six starts at 4/s with a frozen clock: waits of 0.25, 0.5, ... 1.25 s.
    assert sorted(sleeps) == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.25])
    start(SharedPacing(None))
    assert len(sleeps) == 5


# -- the soak --------------------------------------------------------------------------------


class ChaosStream:
    """A fake stream that scripts a random fault just before the server reads a flight."""

    def __init__(self, inner: FakeStream, chaos: ChaosTransport) -> None:
        self._inner = inner
        self._chaos = chaos

    @property
    def is_encrypted(self) -> bool:
        return self._inner.is_encrypted

    def send(self, data: bytes) -> None:
        self._chaos.inject(data)
        self._inner.send(data)

    def receive(self, max_bytes: int = 65536) -> bytes:
        return self._inner.receive(max_bytes)

    def set_timeout(self, seconds: float) -> None:
        self._inner.set_timeout(seconds)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._inner.start_tls(context, server_hostname)

    def close(self) -> None:
        self._inner.close()


#: Faults a real submission server produces at each phase: busy replies, a closing 421,
#: hang-ups, silence, and the odd permanent refusal.
FAULTS: dict[str, list[tuple[str, str | None]]] = {
    "mail": [
        ("reply", "451 4.3.0 Temporary failure"),
        ("reply", "421 4.7.0 Too many messages, closing"),
        ("disconnect", None),
        ("timeout", None),
    ],
    "rcpt": [
        ("reply", "452 4.2.2 Mailbox full, try later"),
        ("reply", "421 4.4.5 Server busy"),
        ("disconnect", None),
    ],
    "data": [("reply", "451 4.3.0 Try again"), ("disconnect", None)],
    "message": [
        ("reply", "451 4.3.0 Queue unavailable"),
        ("reply", "421 4.3.2 Shutting down"),
        ("reply", "554 5.6.0 Content rejected"),
        ("disconnect", None),
        ("timeout", None),
    ],
}
MARKERS = ((b"MAIL FROM:", "mail"), (b"RCPT TO:", "rcpt"), (b"DATA\r\n", "data"))


class ChaosTransport:
    """Wraps a FakeTransport and scripts faults at random (seeded) on the way."""

    def __init__(self, fake: FakeTransport, seed: int, rate: float) -> None:
        self.fake = fake
        self.rate = rate
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def connect(self, endpoint: Endpoint) -> ChaosStream:
        with self._lock:
            roll = self._rng.random()
            if roll < self.rate / 2:
                self.fake.reply("greeting", "421 4.3.2 Too many connections, try later")
                self.injected["greeting"] += 1
            elif roll < self.rate * 3 / 4:
                self.fake.refuse_connect(1)
                self.injected["connect"] += 1
        return ChaosStream(self.fake.connect(endpoint), self)

    def inject(self, data: bytes) -> None:
        phases = [phase for marker, phase in MARKERS if marker in data]
        if data.endswith(b"\r\n.\r\n") or b"\r\n.\r\nMAIL" in data or b" LAST\r\n" in data:
            phases.append("message")
        with self._lock:
            for phase in phases:
                if self._rng.random() >= self.rate:
                    continue
                action, reply = self._rng.choice(FAULTS[phase])
                self.injected[f"{phase}:{reply or action}"] += 1
                if action == "reply":
                    assert reply is not None
                    self.fake.reply(phase, reply)
                elif action == "disconnect":
                    self.fake.disconnect(phase)
                else:
                    self.fake.timeout(phase)


@pytest.mark.parametrize(
    ("seed", "concurrency", "caps"),
    [
        (20240601, 1, FakeCapabilities()),
        (7, 4, FakeCapabilities()),
        (99, 3, FakeCapabilities(chunking=True)),
        (1234, 2, FakeCapabilities(pipelining=False)),
    ],
    ids=["pipelined-1", "pipelined-4", "bdat-3", "no-pipelining-2"],
)
def test_fault_injection_soak(seed: int, concurrency: int, caps: FakeCapabilities) -> None:
    count = 300
    fake = FakeTransport(capabilities=caps)
    chaos = ChaosTransport(fake, seed, rate=0.06)
    sleeps: list[float] = []
    sender = fake_submitter(
        chaos,
        retry=Retry(attempts=5, backoff=0, sleep=sleeps.append),
        max_connections=4,
        window=1,  # the BDAT window has its own fault run (tests/test_window_faults.py)
    )
    started = time.monotonic()
    outcomes = sender.send_many([message(i) for i in range(count)], concurrency=concurrency)
    elapsed = time.monotonic() - started

    assert len(outcomes) == count
    delivered = Counter(ids(fake.messages))
    dropped = Counter(ids(fake.dropped))
    kinds: Counter[str] = Counter()
    for index, outcome in enumerate(outcomes):
        key = mid(index)
        kinds[type(outcome).__name__] += 1
        if isinstance(outcome, SendResult):
            assert outcome.message_id == key
            assert delivered[key] == 1, f"{key} delivered {delivered[key]} times"
            assert dropped[key] == 0
        elif isinstance(outcome, DeliveryUnknown):
            assert outcome.message_id == key
            assert delivered[key] + dropped[key] <= 1
        else:
            assert isinstance(outcome, SMTPError)
            assert delivered[key] == 0, f"{key} failed with {outcome!r} yet was delivered"
            assert dropped[key] == 0
    # No silent loss and no hidden duplicate: the server queued exactly the successes.
    assert sum(delivered.values()) == kinds["SendResult"]
    assert all(n == 1 for n in delivered.values())
    assert fake.protocol_errors == []
    # The faults did happen, and most messages still went through thanks to retries.
    assert sum(chaos.injected.values()) >= 20, chaos.injected
    assert kinds["SendResult"] >= count * 0.8, kinds
    assert fake.connections > 3
    assert sleeps == [] or set(sleeps) == {0}
    assert elapsed < 15

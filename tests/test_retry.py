"""The Retry policy: a pure value, and how the Submitter follows it on the FakeTransport."""

from __future__ import annotations

import random
from email.message import EmailMessage

import pytest

from smtpkit import (
    AuthenticationError,
    ConfigurationError,
    DeliveryUnknown,
    MessageRejected,
    Phase,
    RecipientRejected,
    Reply,
    SenderRejected,
    SendResult,
    ServerDisconnected,
    ServiceUnavailable,
    SMTPError,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.errors import ConnectError, OperationTimeout, error_for_reply
from smtpkit.retry import Retry
from smtpkit.testing import FakeTransport

pytestmark = pytest.mark.timeout(30)

HOST = "smtp.example.test"
USER = "alice@example.test"


class Sleeps:
    """A recording ``sleep``: the test's clock never moves, the waits are kept."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def message(index: int = 1) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = "bob@example.test"
    msg["Subject"] = f"retry {index}"
    msg["Message-ID"] = f"<r{index}@example.test>"
    msg.set_content("retry me\n")
    return msg


def submitter(fake: FakeTransport, retry: Retry | None, **options: object) -> Submitter:
    return Submitter(
        HOST,
        transport=fake,
        auth=PasswordAuth(USER, "pw"),
        retry=retry,
        **options,  # type: ignore[arg-type]
    )


def policy(sleeps: Sleeps, **options: object) -> Retry:
    values: dict[str, object] = {"attempts": 3, "backoff": 0.01, "jitter": 0.0}
    values.update(options)
    return Retry(sleep=sleeps, **values)  # type: ignore[arg-type]


# -- the Submitter follows the policy ------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "reply"),
    [
        ("greeting", "421 4.3.2 Service not available, try later"),
        ("mail", "451 4.3.0 Temporary failure"),
        ("rcpt", "452 4.2.2 Mailbox full, try later"),
        ("data", "451 4.3.0 Try DATA later"),
        ("message", "451 4.3.0 Queue temporarily unavailable"),
    ],
)
def test_transient_failure_then_success(phase: str, reply: str) -> None:
    fake = FakeTransport()
    fake.reply(phase, reply)
    sleeps = Sleeps()
    result = submitter(fake, policy(sleeps)).send(message())
    assert isinstance(result, SendResult)
    assert len(fake.messages) == 1
    assert sleeps.calls == [0.01]


def test_attempts_exhausted_returns_the_last_error_and_sleeps_grow() -> None:
    fake = FakeTransport()
    fake.reply("mail", "451 4.3.0 first", times=1)
    fake.reply("mail", "451 4.3.0 second", times=1)
    fake.reply("mail", "451 4.3.0 third", times=1)
    fake.reply("mail", "451 4.3.0 never used", times=1)
    sleeps = Sleeps()
    with pytest.raises(ServiceUnavailable) as caught:
        submitter(fake, policy(sleeps, multiplier=3.0)).send(message())
    assert "third" in str(caught.value)
    assert sleeps.calls == pytest.approx([0.01, 0.03])
    assert fake.messages == []
    assert not fake.scripts[-1].used


@pytest.mark.parametrize(
    ("phase", "reply", "error"),
    [
        ("mail", "550 5.7.1 Sender rejected", SenderRejected),
        ("rcpt", "550 5.1.1 No such user", RecipientRejected),
        ("message", "554 5.6.0 Content rejected", MessageRejected),
    ],
)
def test_permanent_failures_are_never_retried(
    phase: str, reply: str, error: type[Exception]
) -> None:
    fake = FakeTransport()
    fake.reply(phase, reply, times=None)
    sleeps = Sleeps()
    with pytest.raises(Exception) as caught:
        submitter(fake, policy(sleeps)).send(message())
    assert isinstance(caught.value, error)
    assert not caught.value.is_transient  # type: ignore[attr-defined]
    assert fake.scripts[0].used == 1
    assert sleeps.calls == []


@pytest.mark.parametrize(
    ("password", "reply"),
    [
        ("wrong", None),
        ("right", "454 4.7.0 Too many login attempts, please try again later."),
        ("right", "454 4.7.0 Temporary authentication failure"),
    ],
)
def test_authentication_failures_are_never_retried(password: str, reply: str | None) -> None:
    # Repeated logins trip provider lockouts, so no login failure is retried.
    fake = FakeTransport(credentials={USER: "right"})
    if reply is not None:
        fake.reply("auth", reply, times=None)
    sleeps = Sleeps()
    sender = Submitter(
        HOST, transport=fake, auth=PasswordAuth(USER, password), retry=policy(sleeps)
    )
    with pytest.raises(SMTPError) as caught:
        sender.send(message())
    if reply is None:
        assert isinstance(caught.value, AuthenticationError)
    assert len(fake.auth_attempts) == 1
    assert fake.connections == 1
    assert sleeps.calls == []


def test_delivery_unknown_is_not_retried_by_default() -> None:
    fake = FakeTransport()
    fake.disconnect("message")
    sleeps = Sleeps()
    with pytest.raises(DeliveryUnknown):
        submitter(fake, policy(sleeps)).send(message())
    assert len(fake.dropped) == 1
    assert fake.messages == []
    assert fake.connections == 1
    assert sleeps.calls == []


def test_delivery_unknown_is_retried_with_retry_unknown() -> None:
    fake = FakeTransport()
    fake.disconnect("message")
    sleeps = Sleeps()
    result = submitter(fake, policy(sleeps, retry_unknown=True)).send(message())
    assert isinstance(result, SendResult)
    # Opting in may deliver twice: the dropped copy and the resent one.
    assert len(fake.dropped) == 1
    assert len(fake.messages) == 1
    assert sleeps.calls == [0.01]


def test_connect_failure_is_retried() -> None:
    fake = FakeTransport()
    fake.refuse_connect(2)
    sleeps = Sleeps()
    result = submitter(fake, policy(sleeps)).send(message())
    assert isinstance(result, SendResult)
    assert fake.connections == 3
    assert sleeps.calls == [0.01, 0.02]


def test_no_policy_means_one_try() -> None:
    fake = FakeTransport()
    fake.reply("mail", "451 4.3.0 Temporary failure")
    with pytest.raises(ServiceUnavailable):
        submitter(fake, None).send(message())
    assert fake.messages == []


def test_send_many_retries_each_message_on_its_own_budget() -> None:
    fake = FakeTransport()
    fake.reply("mail", "250 2.1.0 OK")
    fake.reply("mail", "451 4.3.0 busy", times=2)
    sleeps = Sleeps()
    outcomes = submitter(fake, policy(sleeps)).send_many(
        [message(i) for i in range(3)], concurrency=1
    )
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert sorted(str(m.message["Message-ID"]) for m in fake.messages) == [
        "<r0@example.test>",
        "<r1@example.test>",
        "<r2@example.test>",
    ]
    assert len(sleeps.calls) == 2


# -- the value -----------------------------------------------------------------------------


def test_delays_follow_backoff_times_multiplier_with_bounded_jitter() -> None:
    retry = Retry(attempts=10, backoff=0.5, multiplier=2.0, max_backoff=5.0, jitter=0.25)
    rng = random.Random(1234)
    error = ServerDisconnected("gone")
    delays = []
    for _ in range(8):
        retry = retry.increment(error)
        delays.append(retry.delay(rng))
    bases = [min(5.0, 0.5 * 2.0**n) for n in range(8)]
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= min(5.0, base * 1.25)
    assert delays[-1] == 5.0  # the cap holds even with jitter
    # Pure but for the draw: the same seed gives the same delays.
    again = Retry(attempts=10, backoff=0.5, multiplier=2.0, max_backoff=5.0, jitter=0.25)
    rng = random.Random(1234)
    replay = []
    for _ in range(8):
        again = again.increment(error)
        replay.append(again.delay(rng))
    assert replay == delays


def test_delay_without_jitter_is_exact() -> None:
    retry = Retry(backoff=1.5, multiplier=3.0, jitter=0.0)
    assert retry.delay() == 1.5
    error = ServerDisconnected("gone")
    assert [retry.increment(error).delay(), retry.increment(error).increment(error).delay()] == [
        1.5,
        4.5,
    ]


def test_increment_returns_a_new_value() -> None:
    original = Retry(attempts=3)
    error = ServerDisconnected("gone")
    after = original.increment(error)
    assert original.retries_done == 0
    assert original.history == ()
    assert after.retries_done == 1
    assert after.history == (error,)
    assert after is not original
    assert original.can_retry(error)
    assert after.can_retry(error)
    assert not after.increment(error).can_retry(error)


@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"attempts": 1.5},
        {"attempts": True},
        {"backoff": -0.1},
        {"multiplier": -1},
        {"max_backoff": -1},
        {"jitter": -0.5},
    ],
)
def test_invalid_values_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Retry(**options)  # type: ignore[arg-type]


def test_never_tries_once() -> None:
    assert not Retry.never().can_retry(ServerDisconnected("gone"))


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ServerDisconnected("gone"), True),
        (ConnectError("refused"), True),
        (OperationTimeout("slow"), True),
        (DeliveryUnknown("maybe"), False),
        (error_for_reply(Reply(451, ("4.3.0 busy",)), Phase.MAIL), True),
        (error_for_reply(Reply(421, ("4.3.2 closing",)), Phase.GREETING), True),
        (error_for_reply(Reply(451, ("4.3.0 busy",)), Phase.MESSAGE), True),
        (error_for_reply(Reply(550, ("5.1.1 no",)), Phase.RCPT), False),
        (error_for_reply(Reply(454, ("4.7.0 Too many login attempts",)), Phase.AUTH), False),
        (error_for_reply(Reply(451, ("4.3.0 busy",)), Phase.QUIT), False),
    ],
)
def test_is_retryable(error: Exception, retryable: bool) -> None:
    assert Retry().is_retryable(error) is retryable


def test_a_backoff_is_waited_without_holding_a_connection() -> None:
    # While a message waits out its backoff, its connection goes back to the pool (idle),
    # instead of sitting checked out with the next envelope on the wire.
    fake = FakeTransport()
    fake.reply(Phase.MAIL, "451 4.3.0 Try again later", times=1)
    idle_during_sleep: list[int] = []

    def sleep(seconds: float) -> None:
        idle_during_sleep.append(submitter._pool.idle)  # the connection is back in the pool

    submitter = Submitter(
        HOST, transport=fake, max_connections=1, retry=Retry(attempts=2, backoff=5, sleep=sleep)
    )
    with submitter:
        outcomes = submitter.send_many([message(1), message(2)])
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert idle_during_sleep == [1]
    assert fake.connections == 1  # the same connection was used again after the wait

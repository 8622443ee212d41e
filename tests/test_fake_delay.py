"""``fake.delay(phase, seconds)``: a slow reply, simulated against the client's timeout."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest

from smtpkit import Submitter, Timeouts
from smtpkit.config import Endpoint, Security
from smtpkit.errors import ConfigurationError, DeliveryUnknown, OperationTimeout
from smtpkit.replies import Phase
from smtpkit.testing import FakeTransport

ENDPOINT = Endpoint(host="smtp.example.com", port=587, security=Security.STARTTLS)


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "me@example.com", "you@example.com", "Hello"
    msg.set_content("Hi there.")
    return msg


def test_a_final_reply_slower_than_the_timeout_leaves_the_outcome_unknown() -> None:
    fake = FakeTransport()
    step = fake.delay(Phase.MESSAGE, 5)
    started = time.monotonic()
    with pytest.raises(DeliveryUnknown):
        Submitter("smtp.example.com", transport=fake, timeout=1).send(message())
    assert time.monotonic() - started < 1  # simulated: nothing slept
    assert step.used == 1
    assert fake.waited == 1.0  # the client waited its 1 s, then gave up
    # The server accepted the content before its slow reply: it may well deliver it.
    assert len(fake.messages) == 1
    assert any("gave up" in line for line in fake.transcript)


def test_a_client_that_waits_long_enough_gets_the_reply() -> None:
    fake = FakeTransport()
    fake.delay("message", 5)
    submitter = Submitter("smtp.example.com", transport=fake, timeout=Timeouts(final_reply=10))
    result = submitter.send(message())
    assert result.accepted == ("you@example.com",)
    assert str(fake.messages[0].queue_id) in str(result.reply)
    fake.assert_sent(to="you@example.com", count=1)
    assert fake.waited == 5.0
    assert any("came after 5 s" in line for line in fake.transcript)


def test_a_slow_reply_to_mail_beyond_the_command_timeout_delivers_nothing() -> None:
    fake = FakeTransport()
    fake.delay(Phase.MAIL, 30)
    submitter = Submitter(
        "smtp.example.com", transport=fake, timeout=Timeouts(command=5, final_reply=600)
    )
    with pytest.raises(OperationTimeout) as caught:
        submitter.send(message())
    assert not isinstance(caught.value, DeliveryUnknown)
    assert fake.messages == []
    assert fake.dropped == []
    assert "30 s" in str(caught.value)
    assert fake.waited == 5.0


def test_the_same_delay_within_the_command_timeout_is_harmless() -> None:
    fake = FakeTransport()
    fake.delay("mail", 2)
    Submitter("smtp.example.com", transport=fake, timeout=Timeouts(command=5)).send(message())
    assert len(fake.messages) == 1
    assert fake.waited == 2.0


def test_a_delayed_scripted_reply_is_still_the_scripted_one() -> None:
    fake = FakeTransport()
    fake.reply("rcpt", "550 5.1.1 User unknown")
    fake.delay("rcpt", 3)
    stream = fake.connect(ENDPOINT)
    stream.set_timeout(10)
    stream.receive()  # greeting
    stream.send(b"EHLO me.example\r\n")
    stream.receive()
    stream.send(b"MAIL FROM:<me@example.com>\r\nRCPT TO:<nobody@example.com>\r\n")
    assert stream.receive() == b"250 2.1.0 OK\r\n"  # stops where the held reply begins
    assert stream.receive() == b"550 5.1.1 User unknown\r\n"
    assert fake.waited == 3.0


def test_a_client_that_keeps_waiting_gets_the_reply_in_the_end() -> None:
    fake = FakeTransport()
    fake.delay(Phase.GREETING, 5)
    stream = fake.connect(ENDPOINT)
    stream.set_timeout(2)
    with pytest.raises(OperationTimeout):
        stream.receive()
    with pytest.raises(OperationTimeout):
        stream.receive()  # 4 s waited in all
    assert stream.receive().startswith(b"220 ")  # the last second
    assert fake.waited == 5.0


def test_times_and_recipient_limit_the_delay() -> None:
    fake = FakeTransport()
    step = fake.delay("rcpt", 9, recipient="slow@example.com", times=None)
    stream = fake.connect(ENDPOINT)
    stream.set_timeout(1)
    stream.receive()
    stream.send(b"EHLO me.example\r\n")
    stream.receive()
    stream.send(b"MAIL FROM:<me@example.com>\r\nRCPT TO:<fast@example.com>\r\n")
    assert stream.receive() == b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
    stream.send(b"RCPT TO:<slow@example.com>\r\n")
    with pytest.raises(OperationTimeout):
        stream.receive()
    assert step.used == 1
    assert not step.exhausted


def test_clear_forgets_the_waiting() -> None:
    fake = FakeTransport()
    fake.delay("greeting", 1)
    stream = fake.connect(ENDPOINT)
    stream.set_timeout(3)
    stream.receive()
    assert fake.waited == 1.0
    fake.clear()
    assert fake.waited == 0.0


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), True, "5"])
def test_delay_needs_a_positive_finite_number(seconds: object) -> None:
    with pytest.raises(ConfigurationError, match="seconds"):
        FakeTransport().delay("mail", seconds)  # type: ignore[arg-type]


def test_delay_repr() -> None:
    step = FakeTransport().delay("message", 2.5)
    assert repr(step) == "<Scripted message: delay 2.5 s (0/1 used)>"

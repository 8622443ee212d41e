"""A provider preset's recipients-per-message limit is checked before anything is sent."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from smtpkit import MessageError, Submitter
from smtpkit.auth import AppPasswordAuth
from smtpkit.testing import gmail_fake


def message(recipients: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "me@gmail.com"
    msg["To"] = ", ".join(f"user{n}@example.test" for n in range(recipients))
    msg["Subject"] = "many"
    msg.set_content("hello")
    return msg


def gmail(fake: object) -> Submitter:
    return Submitter.for_provider(
        "gmail",
        auth=AppPasswordAuth("me@gmail.com", "abcdefghijklmnop"),
        transport=fake,  # type: ignore[arg-type]
    )


def test_over_the_limit_nothing_is_sent() -> None:
    fake = gmail_fake({"me@gmail.com": "abcdefghijklmnop"})
    with pytest.raises(MessageError, match=r"101 recipients; Gmail accepts at most 100") as e:
        gmail(fake).send(message(101))
    assert "batches" in (e.value.hint or "")
    assert fake.messages == []
    assert not any("MAIL FROM" in line for line in fake.transcript)


def test_at_the_limit_it_is_sent() -> None:
    fake = gmail_fake({"me@gmail.com": "abcdefghijklmnop"})
    result = gmail(fake).send(message(100))
    assert len(result.accepted) == 100


def test_without_a_preset_there_is_no_such_limit() -> None:
    fake = gmail_fake({"me@gmail.com": "abcdefghijklmnop"})
    submitter = Submitter(
        "smtp.gmail.com", auth=AppPasswordAuth("me@gmail.com", "abcdefghijklmnop"), transport=fake
    )
    assert len(submitter.send(message(101)).accepted) == 101

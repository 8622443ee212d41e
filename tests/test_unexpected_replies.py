"""A positive reply where the protocol requires another is a protocol error, not a crash."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from smtpkit import Phase, RemoteProtocolError, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.testing import FakeTransport


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.test", "b@x.test", "s"
    msg.set_content("b")
    return msg


@pytest.mark.parametrize(
    ("phase", "reply"),
    [(Phase.STARTTLS, "250 2.0.0 OK"), (Phase.AUTH, "250 2.7.0 fine")],
)
def test_a_wrong_positive_reply_is_a_remote_protocol_error(phase: Phase, reply: str) -> None:
    fake = FakeTransport()
    fake.reply(phase, reply, times=None)
    submitter = Submitter("mail.example.test", transport=fake, auth=PasswordAuth("u", "p"))
    with pytest.raises(RemoteProtocolError, match="which the protocol does not allow"):
        submitter.send(message())
    assert fake.messages == []

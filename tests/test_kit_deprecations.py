"""The test kit's old names keep working for one release, each with a DeprecationWarning.

Every old spelling warns with a message naming the new one and still does what it did. This
suite turns those warnings into errors (pyproject's ``filterwarnings``), so no test here or
elsewhere leans on an old name by accident.
"""

from __future__ import annotations

import smtplib
import warnings
from email.message import EmailMessage

import pytest

import smtpkit.testing
from smtpkit import Submitter
from smtpkit.config import Security
from smtpkit.errors import ConfigurationError
from smtpkit.testing import FakeTransport, LocalServer, ReceivedMessage
from tests.conftest import TIMEOUT, ServerFactory

CLIENT = "client.example.test"


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "old"
    msg.set_content("body")
    return msg


def send(server: LocalServer, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(server.host, server.port, CLIENT, timeout=TIMEOUT) as client:
        return client.sendmail("a@example.test", recipients, b"Subject: s\r\n\r\nbody\r\n")


def test_this_suite_turns_the_old_names_into_errors() -> None:
    fake = FakeTransport()
    with pytest.raises(DeprecationWarning, match=r"FakeTransport\.outbox is deprecated"):
        _ = fake.outbox


def test_fake_outbox_is_messages() -> None:
    fake = FakeTransport()
    Submitter("smtp.example.com", transport=fake).send(message())
    with pytest.warns(DeprecationWarning, match=r"use FakeTransport\.messages"):
        assert fake.outbox == fake.messages


def test_sent_message_is_received_message() -> None:
    with pytest.warns(DeprecationWarning, match=r"smtpkit\.testing\.SentMessage is deprecated"):
        old = smtpkit.testing.SentMessage
    assert old is ReceivedMessage
    with pytest.warns(DeprecationWarning, match="SentMessage"):
        from smtpkit.testing import SentMessage  # noqa: PLC0415
    assert SentMessage is ReceivedMessage


def test_mail_from_and_rcpt_tos_are_sender_and_recipients() -> None:
    fake = FakeTransport()
    Submitter("smtp.example.com", transport=fake).send(message())
    [received] = fake.messages
    with pytest.warns(DeprecationWarning, match=r"use ReceivedMessage\.sender"):
        assert received.mail_from == received.sender == "a@example.test"
    with pytest.warns(DeprecationWarning, match=r"use ReceivedMessage\.recipients"):
        assert received.rcpt_tos == received.recipients == ("b@example.test",)


def test_errors_is_server_errors(local_server: ServerFactory) -> None:
    def explode(received: ReceivedMessage) -> None:
        raise RuntimeError("callback bug")

    server = local_server(security=Security.NONE, on_message=explode)
    send(server, ["b@example.test"])
    with pytest.warns(DeprecationWarning, match=r"use LocalServer\.server_errors"):
        assert [str(e) for e in server.errors] == ["callback bug"]


def test_reject_recipient_is_reply_rcpt_every_time(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE)
    with pytest.warns(DeprecationWarning, match=r"reject_recipient is deprecated"):
        server.reject_recipient("gone@example.test")
    with pytest.warns(DeprecationWarning, match="reject_recipient"):
        server.reject_recipient("full@example.test", "452 4.2.2 Mailbox full")
    for _ in range(2):  # every time, as before
        refused = send(server, ["gone@example.test", "full@example.test", "ok@example.test"])
        assert refused == {
            "gone@example.test": (550, b"5.1.1 User unknown"),
            "full@example.test": (452, b"4.2.2 Mailbox full"),
        }


def test_fail_next_is_reply_n_times_and_still_takes_failures_only(
    local_server: ServerFactory,
) -> None:
    server = local_server(security=Security.NONE)
    with pytest.warns(DeprecationWarning, match=r"fail_next is deprecated"):
        server.fail_next("mail", "451 4.3.0 Try later", 2)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPSenderRefused):
            send(server, ["b@example.test"])
    send(server, ["b@example.test"])
    assert len(server.messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for reply, times in [("250 fine", 1), ("550 no", 0), ("oops", 1)]:
            with pytest.raises(ConfigurationError):
                server.fail_next("mail", reply, times)

"""The cheaper paths of message preparation give what the stock code gives.

Each test compares a shortcut with the code it replaces: the Date of the current second
with ``format_datetime``, the Message-ID with ``make_msgid``'s form, the content type read
from the scan with ``get_content_maintype()``, the copy-free serialisation with the copy's,
and the header-class facts the folder keeps with what it would find per value.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.text import MIMEText
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest

from smtpkit.message import prepare_message
from smtpkit.message._fold import _NOT_A_HEADER, _header_kind, folder_for
from smtpkit.message._msgid import make_msgid
from smtpkit.message._object import current_date, outgoing_copy, outgoing_headers
from smtpkit.message._scan import content_maintype, scan_headers
from smtpkit.message._wire import serialise, serialise_simple

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_the_current_date_is_format_datetime_of_now() -> None:
    for _ in range(3):  # bounded: a second boundary can fall between the two clocks
        before = int(time.time())
        text = current_date()
        after = int(time.time())
        if before == after:
            assert text == format_datetime(datetime.fromtimestamp(before, UTC))
            assert current_date() is text or int(time.time()) != before
            return
    pytest.fail("three second boundaries in a row")


def test_the_current_date_parses_back_to_now() -> None:
    parsed = parsedate_to_datetime(current_date())
    assert abs(parsed.timestamp() - time.time()) < 2


def test_message_ids_have_the_stock_form() -> None:
    ids = {make_msgid(domain="example.com") for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        match = re.fullmatch(r"<(\d+)\.(\d+)\.(\d+)@example\.com>", value)
        assert match is not None, value
        assert int(match.group(2)) == os.getpid()
        assert abs(int(match.group(1)) / 100 - time.time()) < 5
    assert make_msgid("tag", domain="d.example").endswith(".tag@d.example>")
    with pytest.raises(ValueError, match="domain"):
        make_msgid()


def _messages() -> list[Message]:
    out: list[Message] = []
    for content_type in (
        None,
        "text/plain",
        "TEXT/HTML; charset=utf-8",
        "multipart/mixed; boundary=x",
        "message/rfc822",
        "text",
        "a/b/c",
        "  Text/Plain  ;x=1",
    ):
        for pol in (policy.default, policy.compat32):
            message = EmailMessage(policy=pol) if pol is policy.default else Message()
            message["From"] = "a@example.com"
            if content_type is not None:
                message["Content-Type"] = content_type
            message.set_payload("hi\n")
            out.append(message)
    digest_part = Message()
    digest_part.set_default_type("message/rfc822")
    digest_part.set_payload("x")
    out.append(digest_part)
    header_value = Message()
    header_value["Content-Type"] = Header("text/plain")
    out.append(header_value)
    out.append(MIMEText("hello"))
    return out


@pytest.mark.parametrize("message", _messages(), ids=lambda m: str(m.get("content-type")))
def test_the_scan_reads_the_content_type_as_the_message_does(message: Message) -> None:
    assert content_maintype(scan_headers(message)) == message.get_content_maintype()


class _OwnType(EmailMessage):
    def get_content_maintype(self) -> str:
        return "multipart"


def test_a_class_that_reads_its_type_its_own_way_is_asked() -> None:
    message = _OwnType()
    message["From"] = "a@example.com"
    assert content_maintype(scan_headers(message)) == "multipart"


def _cases() -> list[tuple[str, Message]]:
    plain = EmailMessage()
    plain["From"] = "Alice <alice@example.com>"
    plain["To"] = "bob@example.org, (comment) carol@example.org"
    plain["Bcc"] = "hidden@example.net"
    plain["Subject"] = "hello " * 30  # folded
    plain.set_content("body\n" * 5)
    old = Message()
    old["From"] = "a@example.com"
    old["To"] = "b@example.com"
    old["Message-ID"] = ""
    old.set_payload("x\r\ny\n")
    parsed = message_from_bytes(
        b"From: a@example.com\r\nTo: b@example.com\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n"
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nhi\r\n",
        policy=policy.default,
    )
    return [("plain", plain), ("compat32", old), ("parsed", parsed)]


@pytest.mark.parametrize(("name", "message"), _cases(), ids=[n for n, _ in _cases()])
def test_the_copy_free_octets_are_the_copys(name: str, message: Message) -> None:
    scan = scan_headers(message)
    before = list(message._headers)  # type: ignore[attr-defined]
    new_id = "<1.2.3@example.com>"
    date = format_datetime(NOW)
    top = outgoing_copy(message, list(scan.sent), message_id=new_id, date=date)
    headers = outgoing_headers(message, list(scan.sent), message_id=new_id, date=date)
    quick = serialise_simple(
        message, headers, utf8=False, seven_bit=False, maintype=content_maintype(scan)
    )
    assert quick is not None
    assert quick.tobytes() == serialise(top, utf8=False, seven_bit=False).tobytes()
    assert message._headers == before  # type: ignore[attr-defined]
    assert b"hidden@" not in quick.tobytes()


def test_prepare_does_not_touch_the_message_and_adds_id_and_date() -> None:
    message = _cases()[0][1]
    before = list(message._headers)  # type: ignore[attr-defined]
    content = prepare_message(message, now=NOW).content
    assert message._headers == before  # type: ignore[attr-defined]
    assert b"\r\nDate: Fri, 02 Jan 2026 03:04:05 +0000\r\n" in content
    assert re.search(rb"\r\nMessage-ID: <\d+\.\d+\.\d+@example\.com>\r\n", content)


class _LoudHeader(str):
    name = "X-Loud"


def test_the_folder_keeps_per_class_facts_only_for_registry_headers() -> None:
    message = EmailMessage()
    message["Subject"] = "hi"
    message["To"] = "a@example.com"
    subject, to = (value for _, value in message._headers)  # type: ignore[attr-defined]
    assert _header_kind(type(subject)) is True
    assert _header_kind(type(to)) is False  # an address header's str() is re-rendered
    assert _header_kind(_LoudHeader) is _NOT_A_HEADER
    assert _header_kind(str) is _NOT_A_HEADER
    folder = folder_for(policy.SMTP)
    # A str subclass that names itself is not plain text: the stock folder decides.
    assert folder.quick_text("X-Loud", _LoudHeader("x")) is None
    assert folder.quick_text("Subject", subject) == "Subject: hi\r\n"
    assert folder.quick_text("To", to) == "To: a@example.com\r\n"


def test_a_header_class_that_folds_itself_is_left_to_the_stock_code() -> None:
    message = EmailMessage()
    message["Subject"] = "hi"
    value: Any = message._headers[0][1]  # type: ignore[attr-defined]
    own = type("OwnFoldHeader", (type(value),), {"fold": lambda self, **kw: "X: y\r\n"})
    assert _header_kind(own) is _NOT_A_HEADER

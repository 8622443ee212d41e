"""A corpus of messages whose wire octets are pinned in ``tests/data/wire_corpus/``.

Every case is built deterministically: a fixed ``now``, a counter instead of
``make_msgid``'s randomness, and the ``random`` module seeded before each prepare (the
generator draws MIME boundaries from it). ``test_message_wire_identity.py`` prepares each
case and compares octets and facts with the files, which were written by the serialiser
that deep-copied the message and ran the stock generator (before preparation stopped
copying), so any change of wire octets shows up. ``python tests/wire_corpus.py --write``
rewrites the files: only do that for an intended change of octets, and say why.
"""

from __future__ import annotations

import email
import json
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any
from unittest import mock

import smtpkit.message._msgid
from smtpkit.message import PreparedMessage, prepare_message

DATA = Path(__file__).parent / "data" / "wire_corpus"
NOW = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SEED = 20260304


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], Message | bytes]
    options: dict[str, Any] = field(default_factory=dict)


def _email(
    body: str | None = "Hello.\n", pol: Any = policy.default, **headers: str
) -> EmailMessage:
    msg = EmailMessage(policy=pol)
    for name, value in {"From": "alice@example.com", "To": "bob@example.org", **headers}.items():
        msg[name.replace("_", "-")] = value
    if body is not None:
        msg.set_content(body)
    return msg


def _payload(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def simple() -> Message:
    return _email("Hello Bob,\nsee you tomorrow.\n", Subject="Lunch")


def with_ids() -> Message:
    return _email(
        "x\n",
        Subject="ids",
        Message_ID="<given.1@example.com>",
        Date="Tue, 03 Mar 2026 10:00:00 -0500",
    )


def empty_message_id() -> Message:
    msg = Message()
    msg["From"], msg["To"], msg["Message-ID"] = "a@example.com", "b@example.org", ""
    msg["Message-ID"] = "<second@example.com>"
    msg.set_payload("body\n")
    return msg


def bcc() -> Message:
    return _email(
        "secret list\n",
        Subject="Bcc",
        Cc="Carol <carol@example.net>",
        Bcc="dave@example.net, Eve <eve@example.net>",
    )


def resent() -> Message:
    msg = _email("forwarded\n", Subject="Resent")
    old = msg._headers  # type: ignore[attr-defined]
    msg._headers = []  # type: ignore[attr-defined]
    msg["Resent-From"] = "frank@example.com"
    msg["Resent-To"] = "grace@example.org"
    msg["Resent-Bcc"] = "heidi@example.org"
    msg["Resent-Date"] = "Mon, 02 Mar 2026 09:00:00 +0000"
    msg._headers += old  # type: ignore[attr-defined]
    return msg


def non_ascii_text() -> Message:
    return _email(
        "Grüße aus Köln — ☃\n" * 3,
        From="Jörg Müller <joerg@example.com>",
        To='Zoë <zoe@example.org>, "O\'Brien, Seán" <sean@example.org>',
        Subject="Grüße 🌍 und ein sehr langer Betreff, der gefaltet werden muss, weil er lang ist",
    )


def non_ascii_domain() -> Message:
    return _email("idn\n", To="Bücher <info@bücher.example>", Subject="IDN")


def non_ascii_local_part() -> Message:
    return _email("eai\n", To="用户@例子.广告", Subject="EAI")


def alternative() -> Message:
    msg = _email("plain version\n", Subject="Alternative")
    msg.add_alternative("<p>html <b>version</b></p>\n", subtype="html")
    return msg


def attachments() -> Message:
    msg = _email("see attached\n", Subject="Files")
    msg.add_attachment(_payload(3000), maintype="application", subtype="pdf", filename="a.pdf")
    msg.add_attachment("a,b\n1,2\n", subtype="csv", filename="data.csv")
    msg.add_attachment(
        _payload(300, 2), maintype="image", subtype="png", filename="Bild ä.png", cid="<img1>"
    )
    return msg


def large_attachment() -> Message:
    msg = _email("big\n", Subject="Large")
    msg.add_attachment(_payload(70_000, 3), maintype="application", subtype="octet-stream")
    return msg


def eight_bit() -> Message:
    msg = _email(None, Subject="8bit")
    msg.set_content("héllo wörld ünïcödé\n" * 4, cte="8bit")
    return msg


def long_headers() -> Message:
    to = ", ".join(f"Recipient Number {i} <r{i}@example.org>" for i in range(25))
    return _email(
        "long\n",
        To=to,
        Subject=" ".join(["word"] * 80),
        References=" ".join(f"<ref{i}.{'x' * 20}@example.com>" for i in range(12)),
        X_Long="y" * 200,
        X_Unicode_Long="ä" * 120,
    )


RAW_PARSED = (
    "Return-Path: <alice@example.com>\r\n"
    "Received: from a by b; Mon, 2 Mar 2026 08:00:00 +0000\r\n"
    "Received: from c by d; Mon, 2 Mar 2026 07:00:00 +0000\r\n"
    "From: =?utf-8?q?Al=C3=AFce?= <alice@example.com>\r\n"
    "To: bob@example.org,\r\n"
    "  carol@example.net\r\n"
    "Bcc: hidden@example.net\r\n"
    "Subject: a folded\r\n"
    "\tsubject with =?iso-8859-1?q?=E9?= words\r\n"
    "X-Raw-UTF8: Grüße\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="b1"\r\n'
    "\r\n"
    "preamble\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Körper\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
).encode() + b"caf\xe9\r\n--b1--\r\nepilogue\r\n"


def parsed_default() -> Message:
    return email.message_from_bytes(RAW_PARSED, policy=policy.default)


def parsed_compat32() -> Message:
    return email.message_from_bytes(RAW_PARSED, policy=policy.compat32)


def parsed_smtp() -> Message:
    return email.message_from_bytes(RAW_PARSED.replace(b"\r\n", b"\n"), policy=policy.SMTP)


def compat32_mime() -> Message:
    outer = MIMEMultipart()
    outer["From"] = "Alice <alice@example.com>"
    outer["To"] = "bob@example.org"
    outer["Subject"] = Header("Grüße per MIMEMultipart", "utf-8")
    outer.preamble = "This is a MIME message."
    outer.epilogue = "the end"
    outer.attach(MIMEText("plain ünicode body\n", "plain", "utf-8"))
    outer.attach(MIMEText("<p>html</p>\n", "html"))
    outer.attach(MIMEApplication(_payload(500, 4), Name="blob.bin"))
    return outer


def django_like() -> Message:
    msg = MIMEText("Hello from a Django-style message.\n", "plain", "utf-8")
    msg["Subject"] = "Django"
    msg["From"] = "webmaster@example.com"
    msg["To"] = "user@example.org"
    msg["Date"] = "Wed, 04 Mar 2026 05:06:07 -0000"
    msg["Message-ID"] = "<django.1@example.com>"
    return msg


def forwarded() -> Message:
    inner = _email("original text\n", Subject="Original", Message_ID="<orig@example.com>")
    msg = _email("see below\n", Subject="Fwd: Original")
    msg.add_attachment(inner)
    return msg


def policy_variants() -> Message:
    pol = policy.default.clone(max_line_length=120)
    return _email(
        "custom policy\n",
        pol=pol,
        Subject="A subject long enough to be folded at 78 but not at 120 columns, see it",
    )


def smtputf8_policy() -> Message:
    return _email(
        "utf8 policy\n", pol=policy.SMTPUTF8, Subject="Ünïcode 🌍", To="Zoë <z@example.org>"
    )


def no_body() -> Message:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.org", "headers only"
    return msg


def duplicates() -> Message:
    msg = _email("dup\n", Subject="dup", Comments="one")
    msg["Comments"] = "two"
    msg["Keywords"] = "a, b"
    return msg


def line_endings() -> Message:
    msg = Message()
    msg["From"], msg["To"] = "a@example.com", "b@example.org"
    msg.set_payload("one\rtwo\nthree\r\nfour\n\nend")
    return msg


def given_boundary() -> Message:
    msg = _email("part\n", Subject="boundary")
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream")
    msg.set_boundary("given-boundary-1")
    return msg


def eight_bit_compat32() -> Message:
    return email.message_from_bytes(
        b"From: a@example.com\r\nTo: b@example.org\r\nSubject: latin\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 cr\xe8me\r\n",
        policy=policy.compat32,
    )


def timezone_date() -> Message:
    return _email("tz\n", Subject="tz")


def raw_bytes() -> bytes:
    return RAW_PARSED


CASES = [
    Case("simple", simple),
    Case("simple_local_hostname", simple, {"local_hostname": "mx.example.net"}),
    Case("simple_7bit_only", simple, {"eight_bit_allowed": False}),
    Case("with_ids", with_ids),
    Case("empty_message_id", empty_message_id),
    Case("bcc", bcc),
    Case("resent", resent),
    Case("non_ascii_text", non_ascii_text),
    Case("non_ascii_text_no_utf8", non_ascii_text, {"utf8_allowed": False}),
    Case("non_ascii_domain", non_ascii_domain),
    Case("non_ascii_domain_no_utf8", non_ascii_domain, {"utf8_allowed": False}),
    Case("non_ascii_local_part", non_ascii_local_part),
    Case("alternative", alternative),
    Case("attachments", attachments),
    Case("attachments_7bit_only", attachments, {"eight_bit_allowed": False}),
    Case("large_attachment", large_attachment),
    Case("eight_bit", eight_bit),
    Case("eight_bit_7bit_only", eight_bit, {"eight_bit_allowed": False}),
    Case("long_headers", long_headers),
    Case("parsed_default", parsed_default),
    Case("parsed_default_7bit_only", parsed_default, {"eight_bit_allowed": False}),
    Case("parsed_compat32", parsed_compat32),
    Case("parsed_smtp", parsed_smtp),
    Case("compat32_mime", compat32_mime),
    Case("compat32_mime_7bit_only", compat32_mime, {"eight_bit_allowed": False}),
    Case("django_like", django_like),
    Case("forwarded", forwarded),
    Case("policy_variants", policy_variants),
    Case("smtputf8_policy", smtputf8_policy),
    Case("no_body", no_body),
    Case("duplicates", duplicates),
    Case("line_endings", line_endings),
    Case("given_boundary", given_boundary),
    Case("eight_bit_compat32", eight_bit_compat32),
    Case("eight_bit_compat32_7bit_only", eight_bit_compat32, {"eight_bit_allowed": False}),
    Case(
        "timezone_date",
        timezone_date,
        {"now": NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))},
    ),
    Case("explicit_envelope", simple, {"sender": "", "recipients": ["x@example.net"]}),
    Case("raw_bytes", raw_bytes, {"sender": "a@example.com", "recipients": ["b@example.org"]}),
]


@contextmanager
def deterministic() -> Iterator[None]:
    """Fixed Message-IDs (a counter, keeping the domain) and seeded MIME boundaries."""
    counter = iter(range(1, 1000))

    def fake_msgid(idstring: str | None = None, domain: str | None = None) -> str:
        return f"<corpus.{next(counter)}@{domain}>"

    state = random.getstate()
    random.seed(SEED)
    try:
        with mock.patch.object(smtpkit.message._msgid, "make_msgid", fake_msgid):
            yield
    finally:
        random.setstate(state)


def prepare_case(case: Case) -> PreparedMessage:
    message = case.build()
    options = {"now": NOW, **case.options}
    with deterministic():
        return prepare_message(message, **options)


def facts(prepared: PreparedMessage) -> dict[str, Any]:
    return {
        "sender": prepared.envelope.sender,
        "recipients": list(prepared.envelope.recipients),
        "message_id": prepared.message_id,
        "body_type": prepared.body_type.value,
        "needs_smtputf8": prepared.needs_smtputf8,
        "size": prepared.size,
    }


def write() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    expected = {}
    for case in CASES:
        prepared = prepare_case(case)
        (DATA / f"{case.name}.eml").write_bytes(prepared.content)
        expected[case.name] = facts(prepared)
    (DATA / "facts.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/wire_corpus.py --write")
    write()

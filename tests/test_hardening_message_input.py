"""What new users tripped on, in message input: 8-bit raw headers, long lines, quoted locals.

* Raw bytes whose headers hold UTF-8 (RFC 6532) went out without ``SMTPUTF8``: now the
  parameter is used when the server offers it, and the message is refused otherwise.
* A raw line over 998 octets (RFC 5322 §2.1.1) is refused with a hint; a message object's
  part with such a line is re-encoded (quoted-printable or base64), on a copy.
* A quoted local part with a space (RFC 5321 §4.1.2 Quoted-string) is a valid address.
"""

from __future__ import annotations

import base64
import email
from email import policy
from email.message import EmailMessage, Message
from typing import TYPE_CHECKING
from unittest import mock

import pytest

from smtpkit import MessageError, Security, Submitter
from smtpkit.message import Envelope, prepare_message
from smtpkit.message import _lines as lines
from smtpkit.protocol import validate_address

if TYPE_CHECKING:
    from conftest import ServerFactory

TIMEOUT = 5.0
SENDER = "alice@example.test"
RCPT = ["bob@example.test"]


def submitter_for(server: object) -> Submitter:
    return Submitter(
        server.host,  # type: ignore[attr-defined]
        server.port,  # type: ignore[attr-defined]
        security=Security.NONE,
        timeout=TIMEOUT,
    )


# -- raw bytes with UTF-8 headers -----------------------------------------------------------

RAW_UTF8 = "From: Jörg <alice@example.test>\r\nSubject: Grüße\r\n\r\nbody\r\n".encode()


def test_raw_utf8_headers_go_out_with_smtputf8(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE, smtputf8=True)
    submitter_for(server).send(RAW_UTF8, sender=SENDER, recipients=RCPT)
    [received] = server.wait_for(1)
    assert received.smtputf8
    assert "SMTPUTF8" in received.mail_options
    assert received.raw == RAW_UTF8


def test_raw_utf8_headers_are_refused_without_smtputf8(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE, smtputf8=False)
    with pytest.raises(MessageError, match="SMTPUTF8") as caught:
        submitter_for(server).send(RAW_UTF8, sender=SENDER, recipients=RCPT)
    assert "RFC 2047" in (caught.value.hint or "")
    assert server.messages == []


def test_raw_utf8_headers_need_smtputf8_in_the_prepared_facts() -> None:
    prepared = prepare_message(RAW_UTF8, sender=SENDER, recipients=RCPT)
    assert prepared.needs_smtputf8
    plain = prepare_message(b"Subject: hi\r\n\r\nK\xc3\xb6rper\r\n", sender=SENDER, recipients=RCPT)
    assert not plain.needs_smtputf8  # 8-bit body only: 8BITMIME, not SMTPUTF8


def test_raw_headers_in_another_charset_are_refused() -> None:
    with pytest.raises(MessageError, match="not UTF-8") as caught:
        prepare_message(b"Subject: caf\xe9\r\n\r\nx\r\n", sender=SENDER, recipients=RCPT)
    assert "RFC 6532" in (caught.value.hint or "")


# -- 998 octets a line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"Subject: x\r\n\r\n" + b"a" * 999 + b"\r\n", 3),
        (b"Subject: x\n\n" + b"b" * 2000, 3),  # bare LF endings, no final break
        (b"X-Long: " + b"c" * 991 + b"\r\n\r\nbody\r\n", 1),
        (b"Subject: x\r\n\r\nok\rnext\r" + b"d" * 1500 + b"\r\n", 5),  # bare CRs end lines
    ],
)
def test_a_raw_line_over_998_octets_is_refused(raw: bytes, line: int) -> None:
    with pytest.raises(MessageError, match=f"line {line} ") as caught:
        prepare_message(raw, sender=SENDER, recipients=RCPT)
    assert "998" in str(caught.value)
    assert "RFC 5322" in str(caught.value)
    assert "quoted-printable" in (caught.value.hint or "")


def test_a_raw_line_of_998_octets_is_accepted() -> None:
    raw = b"Subject: x\r\n\r\n" + b"a" * 998 + b"\r\n" + b"b" * 998
    assert prepare_message(raw, sender=SENDER, recipients=RCPT).content == raw


def test_a_long_raw_line_is_not_sent(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE)
    with pytest.raises(MessageError, match="998"):
        submitter_for(server).send(
            b"Subject: x\r\n\r\n" + b"z" * 5000 + b"\r\n", sender=SENDER, recipients=RCPT
        )
    assert server.messages == []


@pytest.mark.parametrize("window", [1, 2, 3, 7, 1000, 1 << 20])
def test_long_lines_are_found_across_scan_windows(window: int) -> None:
    cases: list[tuple[bytes, tuple[int, int] | None]] = [
        (b"a" * 998 + b"\r\n" + b"b" * 998, None),
        (b"a" * 998 + b"\r" + b"b" * 998 + b"\n" + b"c" * 998, None),
        (b"x\r\n" + b"a" * 999, (3, 999)),
        (b"a" * 500 + b"\r\n" + b"b" * 400 + b"c" * 600 + b"\n", (502, 1000)),
        (b"\r\n" * 600 + b"q" * 1200, (1200, 1200)),
    ]
    with mock.patch.object(lines, "WINDOW", window):
        for data, expected in cases:
            assert lines.first_long_line(data) == expected, data[:20]
            assert lines.first_long_line(data.decode()) == expected
    assert lines.line_number(b"a\r\nb\rc\nd", 7) == 4


# -- an EmailMessage with long lines is re-encoded -------------------------------------------------

LONG_HTML = "<p>" + "word " * 700 + "</p>"  # 3507 characters on one line


def long_line_message() -> Message:
    raw = (
        "From: alice@example.test\nTo: bob@example.test\nSubject: report\n"
        "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nshort\n"
        "--b\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n"
        f"{LONG_HTML}\n--b--\n"
    )
    return email.message_from_string(raw, policy=policy.default)


def longest(content: bytes) -> int:
    return max(len(line) for line in content.split(b"\r\n"))


def test_a_long_html_line_is_sent_quoted_printable(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE)
    message = long_line_message()
    submitter_for(server).send(message)
    [received] = server.wait_for(1)
    assert longest(received.raw) <= 998
    html = received.message.get_body(("html",))
    assert html is not None
    assert html["Content-Transfer-Encoding"] == "quoted-printable"
    assert html.get_content() == LONG_HTML == message.get_payload()[1].get_content()
    # The caller's message still says 7bit: the change was made on a copy.
    assert message.get_payload()[1]["Content-Transfer-Encoding"] == "7bit"


@pytest.mark.parametrize("builder", ["single", "compat32"])
def test_a_long_text_line_is_re_encoded(builder: str) -> None:
    text = "x" * 1500 + "\nshort line\n"
    if builder == "single":
        message: Message = EmailMessage()
        message["From"], message["To"] = SENDER, RCPT[0]
        message.set_content(text, cte="7bit")
    else:
        message = Message()
        message["From"], message["To"] = SENDER, RCPT[0]
        message.set_payload(text)
    prepared = prepare_message(message)
    assert longest(prepared.content) <= 998
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    # The same text; its line breaks are CRLF on the wire, as they would be unencoded.
    assert parsed.get_payload(decode=True) == text.replace("\n", "\r\n").encode()


def test_a_long_base64_line_is_re_encoded() -> None:
    message = EmailMessage()
    message["From"], message["To"] = SENDER, RCPT[0]
    message.set_content("see attached")
    data = bytes(range(256)) * 20
    message.add_attachment(data, maintype="application", subtype="octet-stream")
    attachment = message.get_payload()[1]
    attachment.set_payload(base64.b64encode(data).decode())  # one line of 6828 characters
    prepared = prepare_message(message)
    assert longest(prepared.content) <= 998
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    sent = next(parsed.iter_attachments())
    assert sent["Content-Transfer-Encoding"] == "base64"
    assert sent.get_content() == data


def test_a_header_that_cannot_be_folded_is_refused() -> None:
    message = Message()  # compat32 cannot fold a word longer than a line
    message["From"], message["To"] = SENDER, RCPT[0]
    message["X-Token"] = "t" * 1200
    message.set_payload("x")
    with pytest.raises(MessageError, match="X-Token") as caught:
        prepare_message(message)
    assert "998" in str(caught.value)
    assert "policy.default" in (caught.value.hint or "")


def test_a_long_preamble_line_is_refused() -> None:
    message = EmailMessage()
    message["From"], message["To"] = SENDER, RCPT[0]
    message.set_content("a")
    message.add_alternative("<p>a</p>", subtype="html")
    message.preamble = "p" * 1200
    with pytest.raises(MessageError, match="998"):
        prepare_message(message)


# -- quoted local parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ['"john smith"@example.org', '"a\\"b c"@example.org', '" "@example.org', '"x@y z"@example.org'],
)
def test_quoted_local_parts_with_spaces_are_valid(address: str) -> None:
    assert validate_address(address) == address
    assert Envelope(address, (address,)).recipients == (address,)


@pytest.mark.parametrize(
    "address",
    [
        "john smith@example.org",  # a space outside quotes
        '"john smith@example.org',  # unbalanced quote
        '"a"b c"@example.org',  # a bare quote inside
        '"a b"@exa mple.org',  # a space in the domain
        '"a <b>"@example.org',  # angle brackets stay refused, even quoted
        '"a b"x@example.org',  # text after the quoted string
    ],
)
def test_spaces_outside_a_quoted_local_part_are_still_refused(address: str) -> None:
    with pytest.raises(MessageError):
        validate_address(address)


def test_a_quoted_local_part_is_delivered(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE)
    message = EmailMessage()
    message["From"] = '"Alice Smith" <"alice smith"@example.test>'
    message["To"] = '"bob jones"@example.test, carol@example.test'
    message.set_content("hi")
    result = submitter_for(server).send(message)
    assert set(result.accepted) == {'"bob jones"@example.test', "carol@example.test"}
    [received] = server.wait_for(1)
    assert received.sender == '"alice smith"@example.test'
    assert received.recipients == ('"bob jones"@example.test', "carol@example.test")


def test_a_quoted_local_part_keeps_its_quotes_when_the_domain_is_punycoded() -> None:
    message = EmailMessage()
    message["From"] = "alice@example.test"
    message["To"] = '"bob jones"@bücher.example'
    message.set_content("hi")
    prepared = prepare_message(message, utf8_allowed=False)
    assert prepared.envelope.recipients == ('"bob jones"@xn--bcher-kva.example',)
    assert b'To: "bob jones"@xn--bcher-kva.example\r\n' in prepared.content

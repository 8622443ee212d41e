"""Tests for smtpkit.message: envelopes, Bcc removal, CRLF, 8BITMIME and SMTPUTF8 facts."""

from __future__ import annotations

import copy
import email
import os
import pickle
import re
import socket
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.header import Header
from email.message import EmailMessage, Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit.errors import MessageError
from smtpkit.message import (
    BodyType,
    Envelope,
    PreparedMessage,
    extract_addresses,
    normalize_line_endings,
    prepare_message,
)

BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(body: str = "hello\n", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


def head_of(content: bytes) -> bytes:
    return content.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def header_names(content: bytes) -> list[str]:
    return [k.lower() for k in email.message_from_bytes(content, policy=policy.default)]


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_msgid(domain=None) would call socket.getfqdn(): a slow DNS lookup."""

    def refuse(*args: object) -> str:
        raise AssertionError("getfqdn called")

    monkeypatch.setattr(socket, "getfqdn", refuse)


# -- envelope from headers ----------------------------------------------------------------


def test_from_to_cc_bcc_make_the_envelope() -> None:
    msg = make(
        From="Alice <alice@example.com>",
        To="Bob <bob@example.org>, carol@example.org",
        Cc='"Dan, D." <dan@example.net>',
        Bcc="eve@example.com",
    )
    prepared = prepare_message(msg, now=NOW)
    assert prepared.envelope == Envelope(
        "alice@example.com",
        ("bob@example.org", "carol@example.org", "dan@example.net", "eve@example.com"),
    )
    assert b"eve@example.com" not in prepared.content
    assert "bcc" not in header_names(prepared.content)


def test_sender_header_wins_over_from() -> None:
    msg = make(From="a@example.com, b@example.com", Sender="sec@example.com", To="x@example.org")
    assert prepare_message(msg, now=NOW).envelope.sender == "sec@example.com"


def test_several_from_addresses_need_a_sender() -> None:
    msg = make(From="a@example.com, b@example.com", To="x@example.org")
    with pytest.raises(MessageError, match="2 addresses") as info:
        prepare_message(msg, now=NOW)
    assert info.value.hint is not None
    assert "Sender" in info.value.hint
    assert prepare_message(msg, sender="a@example.com", now=NOW).envelope.sender == (
        "a@example.com"
    )


def test_explicit_envelope_overrides_headers_and_bcc_still_stripped() -> None:
    msg = make(From="a@example.com", To="x@example.org", Bcc="hidden@example.org")
    prepared = prepare_message(msg, sender="", recipients=["only@example.net"], now=NOW)
    assert prepared.envelope == Envelope("", ("only@example.net",))
    assert b"hidden@example.org" not in prepared.content


def test_explicit_sender_skips_unparsable_from() -> None:
    msg = make(From="a@example.com, b@example.com", To="x@example.org")
    prepared = prepare_message(msg, sender="bounce@example.com", now=NOW)
    assert prepared.envelope.sender == "bounce@example.com"


def test_groups_and_empty_groups() -> None:
    msg = make(
        From="a@example.com",
        To="undisclosed-recipients:;",
        Cc="Team: t1@example.org, T Two <t2@example.org>;",
        Bcc="b@example.org",
    )
    prepared = prepare_message(msg, now=NOW)
    assert prepared.envelope.recipients == ("t1@example.org", "t2@example.org", "b@example.org")
    assert b"undisclosed-recipients:;" in prepared.content


def test_no_recipients_is_an_error_with_a_hint() -> None:
    msg = make(From="a@example.com", To="undisclosed-recipients:;")
    with pytest.raises(MessageError, match="no recipients") as info:
        prepare_message(msg, now=NOW)
    assert info.value.hint is not None
    with pytest.raises(MessageError, match="no recipients"):
        prepare_message(make(From="a@example.com"), recipients=[], now=NOW)


def test_no_from_is_an_error() -> None:
    with pytest.raises(MessageError, match="who the message is from"):
        prepare_message(make(To="x@example.org"), now=NOW)


def test_unparsable_address_is_an_error() -> None:
    with pytest.raises(MessageError, match="cannot find an address"):
        prepare_message(make(From="a@example.com", To="x@example.org, nobody"), now=NOW)
    with pytest.raises(MessageError, match="cannot find an address"):
        prepare_message(make(From="Alice", To="x@example.org"), now=NOW)


def test_recipients_are_deduplicated_domain_case_insensitively() -> None:
    msg = make(
        From="a@example.com",
        To="x@example.org, X <x@EXAMPLE.org>",
        Cc="y@example.org, X@example.org",
        Bcc="x@example.org",
    )
    prepared = prepare_message(msg, now=NOW)
    # RFC 5321 §2.4: local parts are case-sensitive, domains are not.
    assert prepared.envelope.recipients == ("x@example.org", "y@example.org", "X@example.org")


def test_resent_topmost_block_is_used_and_resent_bcc_stripped() -> None:
    raw = (
        b"Resent-Date: Fri, 02 Jan 2026 10:00:00 +0000\r\n"
        b"Resent-From: newest@example.com\r\n"
        b"Resent-To: r2@example.org\r\n"
        b"Resent-Bcc: secret2@example.org\r\n"
        b"Received: from x by y; Thu, 01 Jan 2026 10:00:00 +0000\r\n"
        b"Resent-Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
        b"Resent-From: older@example.com\r\n"
        b"Resent-To: r1@example.org\r\n"
        b"From: author@example.com\r\n"
        b"To: original@example.org\r\n"
        b"Bcc: obcc@example.org\r\n"
        b"Subject: hi\r\n"
        b"Message-ID: <m1@example.com>\r\n"
        b"Date: Wed, 31 Dec 2025 10:00:00 +0000\r\n"
        b"\r\n"
        b"body\r\n"
    )
    msg = email.message_from_bytes(raw, policy=policy.default)
    prepared = prepare_message(msg)
    # Resent-Bcc recipients get the message but are not named in it
    assert prepared.envelope == Envelope(
        "newest@example.com", ("r2@example.org", "secret2@example.org")
    )
    assert b"secret2" not in prepared.content
    assert b"obcc" not in prepared.content
    assert prepared.message_id == "<m1@example.com>"
    names = header_names(prepared.content)
    # the blocks keep their order
    assert names[:7] == [
        "resent-date",
        "resent-from",
        "resent-to",
        "received",
        "resent-date",
        "resent-from",
        "resent-to",
    ]


def test_resent_sender_and_adjacent_blocks() -> None:
    msg = EmailMessage()
    msg["Resent-From"] = "a@example.com, b@example.com"
    msg["Resent-Sender"] = "ops@example.com"
    msg["Resent-Cc"] = "cc@example.org"
    msg["Resent-From"] = "old@example.com"  # a repeated field starts the next block
    msg["Resent-To"] = "old-rcpt@example.org"
    msg["From"] = "author@example.com"
    msg["To"] = "orig@example.org"
    msg.set_content("x")
    prepared = prepare_message(msg, now=NOW)
    assert prepared.envelope == Envelope("ops@example.com", ("cc@example.org",))


# -- the caller's message is never changed ------------------------------------------------


def test_original_message_is_unchanged() -> None:
    msg = make(From="a@example.com", To="x@example.org", Bcc="b@example.org", Subject="s")
    msg.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    before_items = list(msg.items())
    before_parts = [list(part.items()) for part in msg.walk()]
    snapshot = copy.deepcopy(msg)
    prepared = prepare_message(msg, now=NOW)
    assert list(msg.items()) == before_items
    assert [list(part.items()) for part in msg.walk()] == before_parts
    assert msg["Bcc"] == "b@example.org"
    assert "Message-ID" not in msg
    assert "Date" not in msg
    assert msg.get_boundary() == snapshot.get_boundary()
    assert b"Message-ID" in prepared.content


def test_message_id_and_date_added_when_missing() -> None:
    msg = make(From="Alice <alice@example.com>", To="x@example.org")
    prepared = prepare_message(msg, now=NOW)
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert prepared.message_id is not None
    assert re.fullmatch(r"<[^<>@\s]+@example\.com>", prepared.message_id)
    assert parsed["Message-ID"] == prepared.message_id
    assert parsed["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    assert parsed["Date"].datetime == NOW


def test_existing_message_id_and_date_are_kept() -> None:
    msg = make(
        From="a@example.com",
        To="x@example.org",
        Message_ID="<keep@example.com>",
        Date="Mon, 01 Dec 2025 00:00:00 +0100",
    )
    prepared = prepare_message(msg, now=NOW)
    assert prepared.message_id == "<keep@example.com>"
    assert prepared.content.count(b"Message-ID:") == 1
    assert b"Date: Mon, 01 Dec 2025 00:00:00 +0100\r\n" in prepared.content


def test_message_id_domain_falls_back_to_local_hostname_then_localhost() -> None:
    msg = make(To="x@example.org")
    mid = prepare_message(msg, sender="", local_hostname="host.example.net", now=NOW).message_id
    assert mid is not None
    assert mid.endswith("@host.example.net>")
    mid = prepare_message(msg, sender="", now=NOW).message_id
    assert mid is not None
    assert mid.endswith("@localhost>")


def test_message_id_domain_is_ascii_for_idn_sender() -> None:
    msg = make(From="a@bücher.example", To="x@example.org")
    mid = prepare_message(msg, now=NOW).message_id
    assert mid is not None
    assert mid.endswith("@xn--bcher-kva.example>")


def test_date_uses_current_time_by_default_and_refuses_naive_now() -> None:
    msg = make(From="a@example.com", To="x@example.org")
    prepared = prepare_message(msg)
    date = email.message_from_bytes(prepared.content, policy=policy.default)["Date"].datetime
    assert abs(date - datetime.now(UTC)) < timedelta(minutes=1)
    tz = timezone(timedelta(hours=2))
    prepared = prepare_message(msg, now=datetime(2026, 1, 1, 12, tzinfo=tz))
    assert b"Date: Thu, 01 Jan 2026 12:00:00 +0200\r\n" in prepared.content
    with pytest.raises(MessageError, match="timezone-aware"):
        prepare_message(msg, now=datetime(2026, 1, 1))


# -- wire form ----------------------------------------------------------------------------


def test_crlf_everywhere() -> None:
    msg = make("line one\nline two\r\nline three\n", From="a@example.com", To="x@example.org")
    msg.add_attachment("text\nattachment\n", filename="t.txt")
    prepared = prepare_message(msg, now=NOW)
    assert BARE_NEWLINE.search(prepared.content) is None
    assert prepared.content.count(b"\r\n") > 10
    assert not prepared.content.endswith(b"\r\n.\r\n")


def test_compat32_message_with_bare_newlines_in_payload() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["Subject"] = "a folded\r\n subject"
    msg.set_payload("one\ntwo\rthree\r\n.four\nFrom the start\n")
    prepared = prepare_message(msg, now=NOW)
    assert BARE_NEWLINE.search(prepared.content) is None
    body = prepared.content.split(b"\r\n\r\n", 1)[1]
    # not dot-stuffed and not ">From"-mangled: the protocol layer owns the wire escaping
    assert body == b"one\r\ntwo\r\nthree\r\n.four\r\nFrom the start\r\n"
    assert prepared.envelope == Envelope("a@example.com", ("x@example.org",))
    assert "Message-ID" not in msg


def test_seven_bit_and_eight_bit_detection() -> None:
    ascii_msg = make("plain\n", From="a@example.com", To="x@example.org")
    assert prepare_message(ascii_msg, now=NOW).body_type is BodyType.SEVEN_BIT
    eight = make("héllo wörld\n", From="a@example.com", To="x@example.org")
    prepared = prepare_message(eight, now=NOW)
    assert prepared.body_type is BodyType.EIGHT_BIT_MIME
    assert "héllo wörld".encode() in prepared.content
    assert not prepared.needs_smtputf8


def test_eight_bit_reencoded_when_server_lacks_8bitmime() -> None:
    eight = make("héllo wörld\n", From="a@example.com", To="x@example.org")
    prepared = prepare_message(eight, now=NOW, eight_bit_allowed=False)
    assert prepared.body_type is BodyType.SEVEN_BIT
    assert prepared.content.isascii()
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content() == "héllo wörld\n"
    assert eight["Content-Transfer-Encoding"] == "8bit"  # the original is untouched


def test_non_ascii_subject_is_encoded_without_smtputf8() -> None:
    msg = make(From="Jörg <j@example.com>", To="x@example.org", Subject="Grüße")
    prepared = prepare_message(msg, now=NOW)
    assert head_of(prepared.content).isascii()
    assert not prepared.needs_smtputf8
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert parsed["Subject"] == "Grüße"
    assert parsed["From"] == "Jörg <j@example.com>"


def test_body_type_values_are_wire_keywords() -> None:
    assert [b.value for b in BodyType] == ["7BIT", "8BITMIME", "BINARYMIME"]


def test_size_and_repr() -> None:
    prepared = prepare_message(make(From="a@example.com", To="x@example.org"), now=NOW)
    assert isinstance(prepared, PreparedMessage)
    assert prepared.size == len(prepared.content)
    assert "content" not in repr(prepared)


def test_one_megabyte_attachment_round_trip() -> None:
    data = os.urandom(1 << 20)
    msg = make(From="a@example.com", To="x@example.org")
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename="b.bin")
    prepared = prepare_message(msg, now=NOW)
    assert BARE_NEWLINE.search(prepared.content) is None
    assert prepared.body_type is BodyType.SEVEN_BIT
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    attachments = list(parsed.iter_attachments())
    assert len(attachments) == 1
    assert attachments[0].get_filename() == "b.bin"
    assert attachments[0].get_content() == data


# -- SMTPUTF8 and IDNA ----------------------------------------------------------------------


def test_non_ascii_addresses_need_smtputf8() -> None:
    msg = make(From="Jö <jö@exämple.com>", To="zoë@example.org")
    prepared = prepare_message(msg, now=NOW)
    assert prepared.needs_smtputf8
    assert prepared.envelope.needs_smtputf8
    assert prepared.envelope == Envelope("jö@exämple.com", ("zoë@example.org",))
    assert "From: Jö <jö@exämple.com>\r\n".encode() in prepared.content
    assert b"=?utf-8?" not in head_of(prepared.content)
    assert prepared.body_type is BodyType.EIGHT_BIT_MIME


def test_non_ascii_local_part_refused_without_smtputf8() -> None:
    msg = make(From="jö@example.com", To="x@example.org")
    with pytest.raises(MessageError, match="non-ASCII local part") as info:
        prepare_message(msg, now=NOW, utf8_allowed=False)
    assert info.value.hint is not None
    assert "SMTPUTF8" in info.value.hint
    # a non-ASCII local part only in the headers is refused too
    msg = make(From="a@example.com", To="zoë@example.org")
    with pytest.raises(MessageError, match="non-ASCII local part"):
        prepare_message(msg, recipients=["x@example.org"], now=NOW, utf8_allowed=False)


def test_idn_domains_are_punycoded_without_smtputf8() -> None:
    msg = make(
        From="Jörg <joerg@bücher.example>",
        To="Team: a@müller.example, b@example.org;",
        Cc="c@müller.example",
    )
    prepared = prepare_message(msg, now=NOW, utf8_allowed=False)
    assert not prepared.needs_smtputf8
    assert prepared.envelope == Envelope(
        "joerg@xn--bcher-kva.example",
        ("a@xn--mller-kva.example", "b@example.org", "c@xn--mller-kva.example"),
    )
    head = head_of(prepared.content)
    assert head.isascii()
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert parsed["From"].addresses[0].display_name == "Jörg"
    assert parsed["From"].addresses[0].addr_spec == "joerg@xn--bcher-kva.example"
    assert [g.display_name for g in parsed["To"].groups] == ["Team"]
    assert extract_addresses([parsed["To"]]) == ["a@xn--mller-kva.example", "b@example.org"]
    assert msg["From"].addresses[0].domain == "bücher.example"  # original untouched


def test_idn_domain_kept_as_utf8_when_allowed() -> None:
    msg = make(From="joerg@bücher.example", To="x@example.org")
    prepared = prepare_message(msg, now=NOW)
    assert prepared.needs_smtputf8
    assert prepared.envelope.sender == "joerg@bücher.example"
    assert "From: joerg@bücher.example".encode() in prepared.content


def test_raw_utf8_headers_parsed_from_bytes() -> None:
    raw = "From: Jö <jö@exämple.com>\r\nTo: x@example.org\r\nSubject: hé\r\n\r\nbody\r\n"
    msg = email.message_from_bytes(raw.encode(), policy=policy.default)
    prepared = prepare_message(msg, now=NOW)
    assert prepared.needs_smtputf8
    assert prepared.envelope.sender == "jö@exämple.com"
    assert "From: Jö <jö@exämple.com>\r\n".encode() in prepared.content


# -- injection ------------------------------------------------------------------------------


def test_header_injection_refused_in_compat32_message() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["Subject"] = "x\r\nBcc: evil@example.net"
    msg.set_payload("hi")
    with pytest.raises(MessageError, match="line break"):
        prepare_message(msg, now=NOW)


@pytest.mark.parametrize("value", ["x\nBcc: e@example.net", "x\rBcc: e@example.net", "x\r\n"])
def test_header_injection_refused_in_email_message(value: str) -> None:
    msg = EmailMessage(policy=policy.compat32)
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["Subject"] = value
    with pytest.raises(MessageError, match="line break"):
        prepare_message(msg, now=NOW)


def test_trailing_line_break_refused_even_with_policy_default() -> None:
    # policy.default refuses embedded line breaks at assignment, but accepts a trailing one
    with pytest.raises(ValueError, match="linefeed"):
        EmailMessage()["Subject"] = "x\r\nBcc: e@example.net"
    msg = make(From="a@example.com", To="x@example.org", Subject="x\r\n")
    with pytest.raises(MessageError, match="line break"):
        prepare_message(msg, now=NOW)


def test_header_injection_refused_in_a_mime_part() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    part = Message()
    part["Content-Description"] = "x\r\nContent-Type: text/html"
    part.set_payload("p")
    msg.attach(part)
    with pytest.raises(MessageError, match="line break"):
        prepare_message(msg, now=NOW)


def test_bad_header_name_refused() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["X-Bad Name"] = "v"
    with pytest.raises(MessageError, match="invalid header name"):
        prepare_message(msg, now=NOW)


@pytest.mark.parametrize(
    ("sender", "recipient"),
    [
        ("a@example.com\r\nRCPT TO:<x@evil>", "x@example.org"),
        ("a@example.com", "x@example.org>\r\nDATA"),
        ("a@example.com", "x\x00@example.org"),
        ("Alice <a@example.com>", "x@example.org"),
        ("a@example.com", ""),
        ("a@example.com", "not-an-address"),
    ],
)
def test_bad_envelope_addresses_refused(sender: str, recipient: str) -> None:
    msg = make(From="a@example.com", To="x@example.org")
    with pytest.raises(MessageError):
        prepare_message(msg, sender=sender, recipients=[recipient], now=NOW)


def test_recipients_as_one_string_refused() -> None:
    msg = make(From="a@example.com", To="x@example.org")
    with pytest.raises(MessageError, match="not one str"):
        prepare_message(msg, recipients="x@example.org", now=NOW)
    with pytest.raises(MessageError, match="not one str"):
        Envelope("a@example.com", "x@example.org")  # type: ignore[arg-type]


def test_unsupported_input_type() -> None:
    with pytest.raises(MessageError, match="cannot send a str"):
        prepare_message("From: a@b\r\n\r\n", sender="a@b.c", recipients=["x@y.z"])  # type: ignore[arg-type]


# -- raw bytes ------------------------------------------------------------------------------


def test_bytes_need_an_explicit_envelope() -> None:
    raw = b"From: a@example.com\r\nTo: x@example.org\r\n\r\nhi\r\n"
    with pytest.raises(MessageError, match="explicit envelope") as info:
        prepare_message(raw)
    assert info.value.hint is not None
    with pytest.raises(MessageError, match="explicit envelope"):
        prepare_message(raw, sender="a@example.com")
    with pytest.raises(MessageError, match="explicit envelope"):
        prepare_message(raw, recipients=["x@example.org"])


def test_bytes_are_sent_as_given_with_crlf() -> None:
    raw = b"From: a@example.com\nTo: x@example.org\nBcc: b@example.org\r\n\nline\rnext\r\n.dot\n"
    prepared = prepare_message(raw, sender="a@example.com", recipients=["x@example.org"])
    assert prepared.content == (
        b"From: a@example.com\r\nTo: x@example.org\r\nBcc: b@example.org\r\n\r\n"
        b"line\r\nnext\r\n.dot\r\n"
    )
    assert prepared.message_id is None
    assert prepared.body_type is BodyType.SEVEN_BIT
    assert not prepared.needs_smtputf8


def test_bytes_message_id_read_from_header_block_only() -> None:
    raw = b"Subject: x\r\nMessage-ID:\r\n <id@example.com>\r\n\r\nbody\r\n"
    prepared = prepare_message(raw, sender="", recipients=["x@example.org"])
    assert prepared.message_id == "<id@example.com>"
    raw = b"Subject: x\r\n\r\nMessage-ID: <in-body@example.com>\r\n"
    prepared = prepare_message(raw, sender="", recipients=["x@example.org"])
    assert prepared.message_id is None


def test_bytes_eight_bit_and_envelope_utf8() -> None:
    raw = "Subject: x\r\n\r\nhéllo\r\n".encode()
    prepared = prepare_message(raw, sender="jö@exämple.com", recipients=["x@ä.example"])
    assert prepared.body_type is BodyType.EIGHT_BIT_MIME
    assert prepared.needs_smtputf8
    prepared = prepare_message(
        raw, sender="j@exämple.com", recipients=["x@example.org"], utf8_allowed=False
    )
    assert prepared.envelope.sender == "j@xn--exmple-cua.com"
    assert not prepared.needs_smtputf8
    with pytest.raises(MessageError, match="8BITMIME"):
        prepare_message(raw, sender="", recipients=["x@example.org"], eight_bit_allowed=False)


# -- values and helpers ---------------------------------------------------------------------


def test_envelope_value() -> None:
    env = Envelope("", ["a@example.com", "b@example.com", "a@EXAMPLE.COM"])  # type: ignore[arg-type]
    assert env.recipients == ("a@example.com", "b@example.com")
    assert not env.needs_smtputf8
    assert Envelope("", ("ü@example.com",)).needs_smtputf8
    assert pickle.loads(pickle.dumps(env)) == env
    with pytest.raises(MessageError, match="no recipients"):
        Envelope("a@example.com", ())


def test_extract_addresses() -> None:
    values = [
        "Alice <a@example.com>, b@example.com (Bob)",
        'Team: c@example.com, "D, d" <d@example.com>;, undisclosed:;',
        "",
    ]
    assert extract_addresses(values) == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ]
    assert extract_addresses([]) == []
    with pytest.raises(MessageError, match="cannot find an address"):
        extract_addresses(["just words"])


@given(st.binary(max_size=300))
def test_normalize_line_endings_properties(data: bytes) -> None:
    out = normalize_line_endings(data)
    assert BARE_NEWLINE.search(out) is None
    assert normalize_line_endings(out) == out
    assert out.replace(b"\r", b"").replace(b"\n", b"") == data.replace(b"\r", b"").replace(
        b"\n", b""
    )


@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\xff"]), max_size=40))
def test_normalize_line_endings_counts_line_breaks(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    breaks = data.count(b"\r\n") + data.replace(b"\r\n", b"").count(b"\r")
    breaks += data.replace(b"\r\n", b"").count(b"\n")
    assert normalize_line_endings(data).count(b"\r\n") == breaks


def test_normalize_line_endings_examples() -> None:
    assert normalize_line_endings(b"a\nb\rc\r\nd\r\r\n") == b"a\r\nb\r\nc\r\nd\r\n\r\n"
    assert normalize_line_endings(b"") == b""


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("folded\r\n value", False),
        ("folded\n\tvalue", False),
        ("two\r\n folds\r\n\there", False),
        ("a\r\nb", True),
        ("a\rb", True),
        ("a\nb", True),
        ("a\r\n \r\nBcc: e@example.net", True),
        ("a\r\r\n b", True),
    ],
)
def test_line_breaks_must_be_folding(value: str, refused: bool) -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["Subject"] = value
    msg.set_payload("hi")
    if refused:
        with pytest.raises(MessageError, match="line break"):
            prepare_message(msg, now=NOW)
    else:
        prepared = prepare_message(msg, now=NOW)
        assert BARE_NEWLINE.search(prepared.content) is None
        assert header_names(prepared.content) == ["from", "to", "subject", "message-id", "date"]


def test_header_object_with_embedded_header_refused() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg["Subject"] = Header("x\r\nBcc: evil@example.net")  # type: ignore[assignment]
    with pytest.raises(MessageError):
        prepare_message(msg, now=NOW)


def test_compat32_idn_addresses_are_punycoded() -> None:
    msg = Message()
    msg["From"] = "Jörg <joerg@bücher.example>"
    msg["To"] = "x@example.org"
    msg.set_payload("hi")
    prepared = prepare_message(msg, now=NOW)
    # compat32 cannot write UTF-8 addresses, so the header is punycoded even when allowed
    assert prepared.content.isascii()
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert parsed["From"].addresses[0].addr_spec == "joerg@xn--bcher-kva.example"
    assert parsed["From"].addresses[0].display_name == "Jörg"
    # the envelope keeps UTF-8 when the server allows it
    assert prepared.envelope.sender == "joerg@bücher.example"
    assert prepared.needs_smtputf8
    prepared = prepare_message(msg, now=NOW, utf8_allowed=False)
    assert prepared.envelope.sender == "joerg@xn--bcher-kva.example"
    assert not prepared.needs_smtputf8


def test_prepared_message_pickles() -> None:
    prepared = prepare_message(make(From="a@example.com", To="x@example.org"), now=NOW)
    assert pickle.loads(pickle.dumps(prepared)) == prepared


def test_iter_content_matches_content() -> None:
    prepared = prepare_message(make(From="a@example.com", To="x@example.org"), now=NOW)
    chunks = list(prepared.iter_content(10))
    assert b"".join(chunks) == prepared.content
    assert all(len(chunk) == 10 for chunk in chunks[:-1])
    assert list(prepared.iter_content(10)) == chunks  # repeatable: a retry sends the same
    assert prepared.size == len(prepared.content)
    assert b"".join(prepared.iter_content()) == prepared.content


def test_iter_content_keeps_message_id_and_date_fixed() -> None:
    prepared = prepare_message(make(From="a@example.com", To="x@example.org"))
    first = b"".join(prepared.iter_content(64))
    assert first == b"".join(prepared.iter_content(1 << 20))
    assert prepared.message_id is not None
    assert prepared.message_id.encode() in first


def test_raw_bytes_message_id_with_lf_endings() -> None:
    data = b"Subject: x\nMessage-ID: <lf@example.com>\n\nbody\n"
    prepared = prepare_message(data, sender="a@example.com", recipients=["b@example.com"])
    assert prepared.message_id == "<lf@example.com>"
    assert prepared.size == len(data) + 4
    assert b"".join(prepared.iter_content(3)) == data.replace(b"\n", b"\r\n")


def test_raw_8bit_headers() -> None:
    utf8 = "From: a@example.com\r\nTo: x@example.org\r\nSubject: hé\r\n\r\nbody\r\n".encode()
    msg = email.message_from_bytes(utf8, policy=policy.default)
    prepared = prepare_message(msg, now=NOW)
    assert prepared.needs_smtputf8  # RFC 6532: raw UTF-8 header text
    assert "Subject: hé\r\n".encode() in prepared.content
    with pytest.raises(MessageError, match="raw 8-bit") as info:
        prepare_message(msg, now=NOW, utf8_allowed=False)
    assert info.value.hint is not None
    latin1 = "From: Jö <a@example.com>\r\nTo: x@example.org\r\n\r\nbody\r\n".encode("latin-1")
    msg = email.message_from_bytes(latin1, policy=policy.default)
    with pytest.raises(MessageError, match="not UTF-8"):
        prepare_message(msg, now=NOW)


def test_empty_message_id_is_replaced() -> None:
    msg = make(From="a@example.com", To="x@example.org", Message_ID="  ")
    prepared = prepare_message(msg, now=NOW)
    assert prepared.message_id is not None
    assert prepared.message_id.endswith("@example.com>")
    assert prepared.content.count(b"Message-ID:") == 1


def test_non_ascii_group_name_is_encoded_when_punycoding() -> None:
    msg = make(From="a@example.com", To="Équipe: a@müller.example;")
    prepared = prepare_message(msg, now=NOW, utf8_allowed=False)
    assert prepared.content.isascii()
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert [g.display_name for g in parsed["To"].groups] == ["Équipe"]


def test_unencodable_compat32_payload_is_a_message_error() -> None:
    msg = Message()
    msg["From"] = "a@example.com"
    msg["To"] = "x@example.org"
    msg.set_payload("héllo")  # no charset: compat32 cannot write it
    with pytest.raises(MessageError, match="cannot serialise"):
        prepare_message(msg, now=NOW)

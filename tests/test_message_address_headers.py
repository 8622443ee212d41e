"""Every RFC 5322 address header gets the same treatment of a non-ASCII address.

RFC 2047 §5 forbids encoded-words in an addr-spec, so a non-ASCII address can never be
written as ``=?utf-8?q?...?=@example.test``. Without SMTPUTF8 a non-ASCII domain is written
as IDNA A-labels (RFC 5890) and a non-ASCII local part is refused with
``ExtensionNotOffered``; with SMTPUTF8 the address is written as UTF-8 (RFC 6532 §3.2) and
the message needs SMTPUTF8. The address headers are those of RFC 5322 §3.6.2, §3.6.3 and
§3.6.6; Bcc and Resent-Bcc never go out, so their addresses matter only in the envelope.

The last tests send over real sockets to LocalServers on 127.0.0.1 and read the octets
that arrived.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from smtpkit import Submitter
from smtpkit.errors import ExtensionNotOffered
from smtpkit.message import prepare_message
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.timeout(30)

#: The address headers that go out (RFC 5322 §3.6.2, §3.6.3, §3.6.6).
SENT_ADDRESS_HEADERS = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
)
NON_ASCII_LOCAL = "jörg@example.test"
NON_ASCII_DOMAIN = "jorg@bücher.example"
A_LABEL_DOMAIN = "jorg@xn--bcher-kva.example"
DATE = "Thu, 01 Jan 2026 00:00:00 +0000"


def message_with(header: str, value: str) -> EmailMessage:
    """A message whose ``header`` is ``value``; every other address is ASCII."""
    msg = EmailMessage()
    fields = {"From": "alice@example.test", "To": "bob@example.test"}
    if header.startswith("Resent-"):
        # A Resent block on top (RFC 5322 §3.6.6): Resent-Date and Resent-From are required.
        resent = {"Resent-Date": DATE, "Resent-From": "carol@example.test"}
        resent[header] = value
        for name, text in resent.items():
            msg[name] = text
    else:
        fields[header] = value
    for name, text in fields.items():
        msg[name] = text
    msg["Subject"], msg["Message-ID"], msg["Date"] = "hi", "<addr-1@example.test>", DATE
    msg.set_content("hello")
    return msg


def prepare(msg: EmailMessage, *, utf8_allowed: bool) -> tuple[bytes, bool]:
    """The header line of the one header under test, and ``needs_smtputf8``."""
    prepared = prepare_message(
        msg,
        sender="alice@example.test",
        recipients=["bob@example.test"],
        utf8_allowed=utf8_allowed,
    )
    return prepared.content, prepared.needs_smtputf8


def header_line(content: bytes, header: str) -> bytes:
    head = content.split(b"\r\n\r\n", 1)[0]
    # Resent-To and To both end in "To:": match the whole name at the start of a line.
    lines = [line for line in head.split(b"\r\n") if line.startswith(f"{header}: ".encode())]
    assert len(lines) == 1, (header, head)
    return lines[0]


@pytest.mark.parametrize("header", SENT_ADDRESS_HEADERS)
def test_non_ascii_domain_without_smtputf8_is_written_as_a_labels(header: str) -> None:
    content, needs_smtputf8 = prepare(message_with(header, NON_ASCII_DOMAIN), utf8_allowed=False)
    assert header_line(content, header) == f"{header}: {A_LABEL_DOMAIN}".encode()
    assert content.isascii()
    assert needs_smtputf8 is False


@pytest.mark.parametrize("header", SENT_ADDRESS_HEADERS)
def test_non_ascii_domain_with_smtputf8_is_written_as_utf8(header: str) -> None:
    content, needs_smtputf8 = prepare(message_with(header, NON_ASCII_DOMAIN), utf8_allowed=True)
    assert header_line(content, header) == f"{header}: {NON_ASCII_DOMAIN}".encode()
    assert needs_smtputf8 is True


@pytest.mark.parametrize("header", SENT_ADDRESS_HEADERS)
def test_non_ascii_local_part_without_smtputf8_is_refused(header: str) -> None:
    with pytest.raises(ExtensionNotOffered) as caught:
        prepare(message_with(header, NON_ASCII_LOCAL), utf8_allowed=False)
    assert caught.value.extension == "SMTPUTF8"
    assert NON_ASCII_LOCAL in str(caught.value)
    assert header in str(caught.value)


@pytest.mark.parametrize("header", SENT_ADDRESS_HEADERS)
def test_non_ascii_local_part_with_smtputf8_is_written_as_utf8(header: str) -> None:
    content, needs_smtputf8 = prepare(message_with(header, NON_ASCII_LOCAL), utf8_allowed=True)
    assert header_line(content, header) == f"{header}: {NON_ASCII_LOCAL}".encode()
    assert needs_smtputf8 is True


@pytest.mark.parametrize("header", SENT_ADDRESS_HEADERS)
def test_display_name_stays_an_encoded_word_and_the_domain_becomes_a_labels(header: str) -> None:
    # RFC 2047 §5 (3) allows an encoded-word in a phrase (the display name), not in the
    # addr-spec: the name is encoded, the address is ASCII.
    msg = message_with(header, f"Jörg <{NON_ASCII_DOMAIN}>")
    content, needs_smtputf8 = prepare(msg, utf8_allowed=False)
    line = header_line(content, header)
    assert line == f"{header}: =?utf-8?q?J=C3=B6rg?= <{A_LABEL_DOMAIN}>".encode()
    assert needs_smtputf8 is False


@pytest.mark.parametrize("header", ["Reply-To", "Resent-To", "Resent-Cc"])
def test_a_group_in_a_list_header_gets_a_labels(header: str) -> None:
    msg = message_with(header, f"Team: {NON_ASCII_DOMAIN}, dave@example.test;")
    content, _ = prepare(msg, utf8_allowed=False)
    line = header_line(content, header)
    assert line == f"{header}: Team: {A_LABEL_DOMAIN}, dave@example.test;".encode()


def test_reply_to_parsed_from_raw_utf8_octets_is_written_as_utf8_or_refused() -> None:
    # A message read from RFC 6532 octets: the parsed Reply-To holds the UTF-8 address.
    raw = (
        "From: alice@example.test\r\nTo: bob@example.test\r\n"
        f"Reply-To: {NON_ASCII_LOCAL}\r\nSubject: hi\r\nMessage-ID: <addr-2@example.test>\r\n"
        f"Date: {DATE}\r\n\r\nhello\r\n"
    ).encode()
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    content, needs_smtputf8 = prepare(msg, utf8_allowed=True)
    assert header_line(content, "Reply-To") == f"Reply-To: {NON_ASCII_LOCAL}".encode()
    assert needs_smtputf8 is True
    with pytest.raises(ExtensionNotOffered):
        prepare(msg, utf8_allowed=False)


def test_reply_to_encoded_word_in_the_local_part_is_not_passed_on() -> None:
    # An encoded-word where an addr-spec belongs is decoded by the parser; it must not be
    # written back as one: the decoded local part needs SMTPUTF8.
    msg = message_with("Reply-To", "=?utf-8?q?j=C3=B6rg?=@example.test")
    content, needs_smtputf8 = prepare(msg, utf8_allowed=True)
    assert b"=?" not in header_line(content, "Reply-To")
    assert needs_smtputf8 is True
    with pytest.raises(ExtensionNotOffered):
        prepare(msg, utf8_allowed=False)


@pytest.mark.parametrize("header", ["Bcc", "Resent-Bcc"])
def test_blind_copies_go_only_to_the_envelope(header: str) -> None:
    # Bcc and Resent-Bcc are removed (RFC 5322 §3.6.3); their addresses reach the envelope,
    # which punycodes a domain and refuses a non-ASCII local part without SMTPUTF8.
    msg = message_with(header, NON_ASCII_DOMAIN)
    prepared = prepare_message(msg, utf8_allowed=False)
    assert A_LABEL_DOMAIN in prepared.envelope.recipients
    assert f"{header}:".encode() not in prepared.content
    assert prepared.content.isascii()
    assert prepared.needs_smtputf8 is False
    with pytest.raises(ExtensionNotOffered):
        prepare_message(message_with(header, NON_ASCII_LOCAL), utf8_allowed=False)
    prepared = prepare_message(message_with(header, NON_ASCII_LOCAL), utf8_allowed=True)
    assert NON_ASCII_LOCAL in prepared.envelope.recipients
    assert prepared.needs_smtputf8 is True


def test_caller_message_is_not_changed() -> None:
    msg = message_with("Reply-To", NON_ASCII_DOMAIN)
    before = msg.as_bytes(policy=policy.SMTPUTF8)
    prepare(msg, utf8_allowed=False)
    assert msg.as_bytes(policy=policy.SMTPUTF8) == before


# -- over real sockets -------------------------------------------------------------------------


def submitter(server: LocalServer) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def test_reply_to_bytes_on_the_wire_with_and_without_smtputf8(
    local_server: ServerFactory,
) -> None:
    offers = local_server()
    plain = local_server(smtputf8=False)

    with submitter(offers) as mail:
        mail.send(message_with("Reply-To", NON_ASCII_LOCAL))
    [received] = offers.wait_for(1, timeout=TIMEOUT)
    assert received.smtputf8 is True
    assert "SMTPUTF8" in received.mail_options
    assert header_line(received.raw, "Reply-To") == f"Reply-To: {NON_ASCII_LOCAL}".encode()

    with submitter(plain) as mail:
        mail.send(message_with("Reply-To", NON_ASCII_DOMAIN))
        with pytest.raises(ExtensionNotOffered):
            mail.send(message_with("Reply-To", NON_ASCII_LOCAL))
    [received] = plain.wait_for(1, timeout=TIMEOUT)
    assert received.smtputf8 is False
    assert header_line(received.raw, "Reply-To") == f"Reply-To: {A_LABEL_DOMAIN}".encode()
    assert received.raw.isascii()
    assert len(plain.messages) == 1  # the refused one never reached MAIL

"""Header injection through characters the ``email`` folder treats as line breaks.

``str.splitlines()`` splits on more than CR and LF (VT, FF, FS, GS, RS, NEL, LS, PS), and
``email.policy.EmailPolicy`` folds a parsed header value with ``splitlines()`` and joins the
pieces with CRLF: on Python 3.11 a parsed Subject holding ``\\x0b`` went out as
``Subject: hi\\r\\nX-Injected: 1\\r\\n\\r\\nInjected body``. Every such character is refused
in every header, whatever the input, with a typed ``MessageError``.
"""

from __future__ import annotations

import email
import email.errors
import email.generator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.policy import Policy
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpkit import MessageError, Security, Submitter
from smtpkit.message import prepare_message
from smtpkit.message._headers import LINE_BREAK_CHARACTERS

if TYPE_CHECKING:
    from conftest import ServerFactory

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TIMEOUT = 5.0
#: Every character str.splitlines() breaks a line at, other than CR and LF themselves.
SPLITLINES_BREAKS = [
    ch for ch in map(chr, range(0x110000)) if len(f"a{ch}b".splitlines()) > 1 and ch not in "\r\n"
]
POLICIES = {
    "default": policy.default,
    "SMTP": policy.SMTP,
    "SMTPUTF8": policy.SMTPUTF8,
    "compat32": policy.compat32,
}


def parsed(subject: str, pol: Policy[Any] = policy.default) -> Message:
    """A message parsed from text whose Subject is ``subject`` (as a mail gateway gets it)."""
    source = (
        "From: alice@example.test\nTo: bob@example.test\n"
        f"Subject: {subject}\nMessage-ID: <1@example.test>\n\nbody\n"
    )
    return email.message_from_string(source, policy=pol)


def injected(ch: str) -> str:
    return f"hi{ch}X-Injected: 1{ch}{ch}Injected body"


def test_the_refused_set_covers_every_splitlines_break() -> None:
    assert set(SPLITLINES_BREAKS) == {"\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"} | {
        "\u2028",
        "\u2029",
    }
    assert set(SPLITLINES_BREAKS) | {"\r", "\n"} <= set(LINE_BREAK_CHARACTERS)


@pytest.mark.parametrize("ch", SPLITLINES_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_no_header_is_injected_on_the_wire(local_server: ServerFactory, ch: str) -> None:
    # Before the fix, U+000B..U+2029 in a parsed Subject reached the server as a new header
    # and an early end of the header block.
    server = local_server(security=Security.NONE)
    submitter = Submitter(server.host, server.port, security=Security.NONE, timeout=TIMEOUT)
    with pytest.raises(MessageError) as caught:
        submitter.send(parsed(injected(ch)))
    assert "Subject" in str(caught.value)
    assert caught.value.hint
    assert "line break" in caught.value.hint
    assert server.messages == []


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("ch", SPLITLINES_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_parsed_messages_of_every_policy_are_refused(name: str, ch: str) -> None:
    # compat32 raised email.errors.HeaderParseError, untyped, for some of these.
    with pytest.raises(MessageError, match="Subject"):
        prepare_message(parsed(injected(ch), POLICIES[name]), now=NOW)


@pytest.mark.parametrize("ch", SPLITLINES_BREAKS, ids=lambda c: f"U+{ord(c):04X}")
def test_built_messages_are_refused_in_values_names_and_parts(ch: str) -> None:
    legacy = Message()  # compat32 stores any value
    legacy["From"] = "alice@example.test"
    legacy["To"] = f"Bob{ch}Bcc: evil@example.net <bob@example.test>"
    legacy.set_payload("x")
    with pytest.raises(MessageError, match="'To'"):
        prepare_message(legacy, now=NOW)

    named = Message()
    named["From"], named["To"] = "alice@example.test", "bob@example.test"
    named[f"X-A{ch}Bcc"] = "evil@example.net"
    with pytest.raises(MessageError, match="invalid header name"):
        prepare_message(named, now=NOW)

    outer = EmailMessage()
    outer["From"], outer["To"] = "alice@example.test", "bob@example.test"
    outer.set_content("text")
    outer.add_attachment(b"data", maintype="application", subtype="octet-stream")
    part = next(iter(outer.iter_attachments()))
    part._headers.append(("Content-Description", f"x{ch}Content-Type: text/html"))  # type: ignore[attr-defined]
    with pytest.raises(MessageError, match="Content-Description"):
        prepare_message(outer, now=NOW)


def test_an_encoded_word_that_decodes_to_a_break_is_refused() -> None:
    # The folder writes a header object's decoded text: the check reads that text too.
    msg = EmailMessage()
    msg["From"], msg["To"] = "alice@example.test", "bob@example.test"
    msg["Subject"] = "=?utf-8?q?hi=0BX-Injected:_1?="
    assert "\x0b" in str(msg["Subject"])
    with pytest.raises(MessageError, match="Subject"):
        prepare_message(msg, now=NOW)


def test_a_header_name_ending_in_a_newline_is_refused() -> None:
    # "^...$" matched before a final "\n"; the name went out as "X-A\r\n: v".
    msg = Message()
    msg["From"], msg["To"] = "alice@example.test", "bob@example.test"
    msg["X-A\n"] = "v"
    with pytest.raises(MessageError, match="invalid header name"):
        prepare_message(msg, now=NOW)


@pytest.mark.parametrize(
    "octets",
    [b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", "\x85".encode(), "\u2028".encode()],
    ids=["VT", "FF", "FS", "GS", "RS", "NEL", "LS"],
)
def test_raw_bytes_with_a_break_character_in_a_header_are_refused(octets: bytes) -> None:
    raw = b"From: a@example.test\r\nSubject: hi" + octets + b"X-Injected: 1\r\n\r\nbody\r\n"
    with pytest.raises(MessageError, match="line break") as caught:
        prepare_message(raw, sender="a@example.test", recipients=["b@example.test"])
    assert caught.value.hint


def test_raw_bytes_may_hold_those_characters_in_the_body() -> None:
    # A form feed in body text is ordinary (page breaks in plain text).
    raw = b"Subject: hi\r\n\r\npage one\x0cpage two\x0b\x1c\r\n"
    prepared = prepare_message(raw, sender="a@example.test", recipients=["b@example.test"])
    assert prepared.content == raw


def test_legitimate_folding_is_kept() -> None:
    msg = parsed("a long subject\n that was folded")
    content = prepare_message(msg, now=NOW).content
    assert b"Subject: a long subject\r\n that was folded\r\n" in content


_TEXT = st.lists(
    st.characters(blacklist_categories=("Cs",), max_codepoint=0x2100)
    | st.sampled_from(["\r", "\n", "\r\n", "\x0b", "\x85", "\u2028", "=?utf-8?q?", "?=", ":"]),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_TEXT, to_name=_TEXT, pol=st.sampled_from(sorted(POLICIES)), as_text=st.booleans())
def test_no_email_package_error_escapes_and_no_header_is_added(
    subject: str, to_name: str, pol: str, as_text: bool
) -> None:
    """Whatever the header text: a MessageError, or output with exactly the fields given."""
    if as_text:
        source = f"From: a@example.test\nTo: {to_name} <b@example.test>\nSubject: {subject}\n\nx\n"
        try:
            msg = email.message_from_string(source, policy=POLICIES[pol])
        except Exception:  # a parser failure is not what is tested here
            return
    else:
        msg = Message(policy=POLICIES[pol])
        msg["From"] = "a@example.test"
        try:  # EmailPolicy refuses CR and LF itself (and trips on some text) at assignment
            msg["To"] = f"{to_name} <b@example.test>"
            msg["Subject"] = subject
        except Exception:
            return
        msg.set_payload("x")
    try:
        content = prepare_message(msg, now=NOW).content
    except MessageError:
        return
    head = content.split(b"\r\n\r\n", 1)[0]
    names = [
        line.split(b":", 1)[0].lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in b" \t"
    ]
    expected = [n.lower().encode() for n in msg] + [b"date"]
    assert sorted(names) == sorted(expected + ([b"message-id"] if "Message-ID" not in msg else []))


def test_an_address_the_email_package_trips_on_is_a_message_error() -> None:
    # Python 3.11's header parser raises AttributeError on this To field (found by the
    # property test above); whatever a Python version does, nothing untyped escapes.
    source = "From: a@example.test\nTo: . <b@example.test>\n\nx\n"
    msg = email.message_from_string(source, policy=policy.SMTP)
    try:
        msg["To"]  # reading it runs the header parser
    except AttributeError:
        with pytest.raises(MessageError, match="cannot read") as caught:
            prepare_message(msg, now=NOW)
        assert caught.value.hint
    else:
        assert prepare_message(msg, now=NOW).envelope.recipients == ("b@example.test",)


def test_an_email_package_exception_becomes_a_message_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"] = "alice@example.test", "bob@example.test"
    msg["Subject"] = "Grüße"  # needs an encoded-word: the email package folds it
    msg.set_content("x")

    def broken(self: object, *args: object, **kwargs: object) -> None:
        raise email.errors.HeaderParseError("no")

    monkeypatch.setattr(policy.EmailPolicy, "fold_binary", broken)
    with pytest.raises(MessageError, match="cannot serialise"):
        prepare_message(msg, now=NOW)

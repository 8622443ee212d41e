"""What the protocol core gives out again instead of rebuilding: repeated replies, envelope
commands. Each test would fail if a kept value could differ from a freshly built one, leak
a secret, or grow without bound."""

from __future__ import annotations

import base64

import pytest

from smtpkit.errors import LocalProtocolError, MessageError, RemoteProtocolError
from smtpkit.protocol import (
    NEED_DATA,
    ClientConnection,
    Command,
    ReplyParser,
    ReplyReceived,
    _commands,
    _parser,
    validate_address,
)
from smtpkit.replies import Reply


def test_a_repeated_one_line_reply_is_the_same_value() -> None:
    parser = ReplyParser()
    parser.feed(b"250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n354 go ahead\r\n250 2.1.0 Ok\n")
    first, second, third, fourth = (parser.next_reply() for _ in range(4))
    assert first == Reply(250, ("2.1.0 Ok",))
    assert second is first
    assert fourth is first  # a bare LF ends the same line
    assert third == Reply(354, ("go ahead",))
    assert parser.next_reply() is None


def test_replies_that_differ_stay_apart() -> None:
    parser = ReplyParser()
    parser.feed(b"250 Ok\r\n250 ok\r\n550 Ok\r\n250 Ok \r\n")
    replies = [parser.next_reply() for _ in range(4)]
    assert replies == [
        Reply(250, ("Ok",)),
        Reply(250, ("ok",)),
        Reply(550, ("Ok",)),
        Reply(250, ("Ok ",)),
    ]


def test_the_kept_replies_are_bounded() -> None:
    parser = ReplyParser()
    for n in range(3 * _parser._REPEATS_KEPT):
        parser.feed(b"250 2.0.0 Ok: queued as %d\r\n" % n)
        reply = parser.next_reply()
        assert reply == Reply(250, (f"2.0.0 Ok: queued as {n}",))
        assert len(parser._repeats) <= _parser._REPEATS_KEPT


def test_a_multi_line_reply_is_still_checked_after_a_kept_one() -> None:
    parser = ReplyParser()
    parser.feed(b"250 Ok\r\n250-a\r\n251 b\r\n")
    assert parser.next_reply() == Reply(250, ("Ok",))
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_discard_after_starttls_forgets_the_kept_replies() -> None:
    parser = ReplyParser()
    parser.feed(b"250 Ok\r\n")
    assert parser.next_reply() is not None
    parser.discard()
    assert parser._repeats == {}


def test_a_reply_to_auth_is_never_kept() -> None:
    secret = base64.b64encode(b"\0alice\0canary-Pa55w0rd-3b9c").decode()
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.example"))
    conn.receive_data(b"250-mx\r\n250 AUTH PLAIN\r\n")
    conn.next_event()
    conn.send(Command.auth("PLAIN", secret))
    conn.receive_data(f"535 5.7.8 rejected {secret}\r\n".encode())
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert secret not in event.reply.lines[0]
    kept = b"".join(conn._parser._repeats)
    assert secret.encode() not in kept
    assert conn.next_event() is NEED_DATA


def test_the_transcript_still_shows_the_content_and_its_end() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.example"))
    conn.receive_data(b"250-mx\r\n250 PIPELINING\r\n")
    conn.next_event()
    conn.send(Command.mail("a@example.com"))
    conn.send(Command.rcpt("b@example.com"))
    conn.send(Command.data())
    conn.receive_data(b"250 Ok\r\n250 Ok\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    conn.content(b"Subject: x\r\n\r\nhi\r\n")
    conn.end_content()
    assert conn.transcript[-2:] == ("C: <18 octets of message content>", "C: .")
    assert conn.pending[-1] == Command(".", ".", conn.pending[-1].phase, ".")


def test_envelope_commands_are_given_out_again() -> None:
    first = Command.mail("shop@example.com", ["SIZE=100"])
    assert Command.mail("shop@example.com", ("SIZE=100",)) is first
    assert Command.mail("shop@example.com").to_bytes() == b"MAIL FROM:<shop@example.com>\r\n"
    rcpt = Command.rcpt("bob@example.org", ["NOTIFY=NEVER"])
    assert Command.rcpt("bob@example.org", ["NOTIFY=NEVER"]) is rcpt
    assert rcpt.to_bytes() == b"RCPT TO:<bob@example.org> NOTIFY=NEVER\r\n"
    # The same address as a recipient is another command.
    assert Command.rcpt("shop@example.com").line == "RCPT TO:<shop@example.com>"


@pytest.mark.parametrize(
    ("address", "params"),
    [
        ("shop@example.com\r\nRSET", ()),
        ("shop@example.com", ("SIZE=1\r\nRSET",)),
        ("", ()),
        ("a b@example.com", ()),
    ],
)
def test_a_bad_envelope_is_refused_every_time(address: str, params: tuple[str, ...]) -> None:
    Command.mail("shop@example.com")  # something valid is kept first
    for _ in range(2):
        with pytest.raises(MessageError):
            Command.rcpt(address, params)
    for _ in range(2):
        if address == "":
            assert Command.mail(address, params).line.startswith("MAIL FROM:<>")
        else:
            with pytest.raises(MessageError):
                Command.mail(address, params)


def test_wrong_types_still_raise_what_they_raised() -> None:
    with pytest.raises(TypeError):
        Command.mail("shop@example.com", [["SIZE=1"]])  # type: ignore[list-item]
    with pytest.raises(MessageError):
        Command.mail(42)  # type: ignore[arg-type]


def test_the_kept_commands_are_bounded() -> None:
    for n in range(3 * _commands._ENVELOPE_KEPT):
        command = Command.rcpt(f"user{n}@example.com")
        assert command.line == f"RCPT TO:<user{n}@example.com>"
        assert len(_commands._ENVELOPE) <= _commands._ENVELOPE_KEPT


def test_a_checked_address_is_known_and_others_are_still_checked() -> None:
    assert validate_address("known@example.com") == "known@example.com"
    assert "known@example.com" in _commands._PLAIN_KNOWN
    assert validate_address("known@example.com") == "known@example.com"
    for bad in ("known@example.com\r\n", "known@example.com>", ["known@example.com"]):
        with pytest.raises(MessageError):
            validate_address(bad)  # type: ignore[arg-type]
    assert "known@example.com\r\n" not in _commands._PLAIN_KNOWN
    for n in range(2 * _commands._PLAIN_KEPT + 5):
        validate_address(f"u{n}@example.com")
        assert len(_commands._PLAIN_KNOWN) <= _commands._PLAIN_KEPT


def test_a_commands_wire_bytes_are_its_line_and_crlf() -> None:
    for command in (
        Command.mail("шоп@example.com", ["SMTPUTF8"]),
        Command.rcpt("b@example.org"),
        Command.data(),
        Command.auth("PLAIN", "AGEAYg=="),
    ):
        assert command.to_bytes() == command.line.encode("utf-8") + b"\r\n"
        assert command.wire == command.to_bytes()
        assert "wire" not in repr(command)
    assert Command.data() == Command.data()


def test_events_are_the_dataclass_values() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert event == ReplyReceived(event.command, Reply(220, ("mx",)))
    with pytest.raises(AttributeError):
        event.reply = Reply(250, ("x",))  # type: ignore[misc]


def test_pipelining_is_read_from_the_latest_ehlo() -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.example"))
    conn.receive_data(b"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
    conn.next_event()
    conn.send(Command.starttls())
    conn.receive_data(b"220 go\r\n")
    conn.next_event()
    conn.tls_established()
    conn.send(Command.ehlo("client.example"))
    conn.receive_data(b"250 mx\r\n")  # no PIPELINING after TLS
    conn.next_event()
    conn.send(Command.mail("a@example.com"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Command.rcpt("b@example.com"))


def test_parameters_given_as_an_iterator_are_all_sent() -> None:
    mail = Command.mail("gen@example.com", (p for p in ["SIZE=12", "BODY=8BITMIME"]))
    assert mail.line == "MAIL FROM:<gen@example.com> SIZE=12 BODY=8BITMIME"
    rcpt = Command.rcpt("gen@example.org", iter(["NOTIFY=NEVER"]))
    assert rcpt.line == "RCPT TO:<gen@example.org> NOTIFY=NEVER"

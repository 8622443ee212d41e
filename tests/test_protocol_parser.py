"""Byte-level tests for the incremental reply parser (RFC 5321 §4.2)."""

from __future__ import annotations

import pytest

from smtpkit.errors import RemoteProtocolError
from smtpkit.protocol import MAX_REPLY_BYTES, MAX_REPLY_LINE, ReplyParser
from smtpkit.replies import Reply


def drain(parser: ReplyParser) -> list[Reply]:
    """Every complete reply the parser holds, in order."""
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    return replies


def parse(data: bytes) -> list[Reply]:
    parser = ReplyParser()
    parser.feed(data)
    replies = drain(parser)
    assert parser.buffered == 0
    return replies


GMAIL_EHLO = (
    b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
GMAIL_EHLO_REPLY = Reply(
    250,
    (
        "smtp.gmail.com at your service, [203.0.113.5]",
        "SIZE 35882577",
        "8BITMIME",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "PIPELINING",
        "CHUNKING",
        "SMTPUTF8",
    ),
)


# -- well-formed replies ---------------------------------------------------------------------


def test_single_line_reply() -> None:
    # S: 220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp
    assert parse(b"220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp\r\n") == [
        Reply(220, ("smtp.gmail.com ESMTP a1-20020a05 - gsmtp",))
    ]


def test_multi_line_reply() -> None:
    assert parse(GMAIL_EHLO) == [GMAIL_EHLO_REPLY]


def test_incomplete_reply_waits_for_more() -> None:
    parser = ReplyParser()
    # S: 250-smtp.example.com          (no final line yet)
    parser.feed(b"250-smtp.example.com\r\n250 PIPEL")
    assert parser.next_reply() is None
    assert parser.buffered == len(b"250-smtp.example.com\r\n250 PIPEL")
    # S: 250 PIPELINING
    parser.feed(b"INING\r\n")
    assert parser.next_reply() == Reply(250, ("smtp.example.com", "PIPELINING"))
    assert parser.next_reply() is None
    assert parser.buffered == 0


@pytest.mark.parametrize("split", range(1, len(GMAIL_EHLO)))
def test_reply_split_at_every_byte_boundary(split: int) -> None:
    parser = ReplyParser()
    parser.feed(GMAIL_EHLO[:split])
    assert parser.next_reply() is None
    parser.feed(GMAIL_EHLO[split:])
    assert drain(parser) == [GMAIL_EHLO_REPLY]
    assert parser.buffered == 0


def test_reply_fed_one_byte_at_a_time() -> None:
    wire = b"220 ready\r\n" + GMAIL_EHLO + b"221 2.0.0 closing connection\r\n"
    parser = ReplyParser()
    replies: list[Reply] = []
    for index in range(len(wire)):
        parser.feed(wire[index : index + 1])
        replies.extend(drain(parser))
    assert replies == [
        Reply(220, ("ready",)),
        GMAIL_EHLO_REPLY,
        Reply(221, ("2.0.0 closing connection",)),
    ]


def test_several_replies_in_one_feed() -> None:
    # Pipelined answers to MAIL, RCPT, RCPT, DATA arrive in one read (RFC 2920 §3.2).
    wire = (
        b"250 2.1.0 OK\r\n"
        b"250 2.1.5 OK\r\n"
        b"550-5.1.1 The email account that you tried to reach does not exist.\r\n"
        b"550 5.1.1  https://support.google.com/mail/?p=NoSuchUser\r\n"
        b"354 Go ahead\r\n"
    )
    replies = parse(wire)
    assert [r.code for r in replies] == [250, 250, 550, 354]
    assert replies[2].lines == (
        "5.1.1 The email account that you tried to reach does not exist.",
        "5.1.1  https://support.google.com/mail/?p=NoSuchUser",
    )
    assert replies[2].enhanced_code == "5.1.1"


def test_bare_lf_line_endings_are_tolerated() -> None:
    # S: 250-mx.example.com<LF>
    # S: 250 SIZE 1000<LF>
    assert parse(b"250-mx.example.com\n250 SIZE 1000\n") == [
        Reply(250, ("mx.example.com", "SIZE 1000"))
    ]


def test_mixed_line_endings() -> None:
    assert parse(b"250-a\n250-b\r\n250 c\n") == [Reply(250, ("a", "b", "c"))]


def test_code_with_no_text() -> None:
    # S: 250
    assert parse(b"250\r\n") == [Reply(250, ("",))]
    # S: 250<SP>
    assert parse(b"250 \r\n") == [Reply(250, ("",))]


def test_continuation_line_with_no_text() -> None:
    # S: 250-
    # S: 250 OK
    assert parse(b"250-\r\n250 OK\r\n") == [Reply(250, ("", "OK"))]


def test_text_is_kept_verbatim() -> None:
    # Gmail's double spaces before the URL are part of the text.
    reply = parse(b"534 5.7.14  Learn more at \r\n")[0]
    assert reply.lines == ("5.7.14  Learn more at ",)


# -- enhanced status codes (RFC 3463) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "enhanced", "text"),
    [
        # S: 250 OK                       (no enhanced code)
        (b"250 OK\r\n", None, "OK"),
        # S: 535 5.7.8 Username and Password not accepted.
        (
            b"535 5.7.8 Username and Password not accepted.\r\n",
            "5.7.8",
            "Username and Password not accepted.",
        ),
        # S: 535 5.7.139 Authentication unsuccessful, basic authentication is disabled.
        (
            b"535 5.7.139 Authentication unsuccessful, basic authentication is disabled.\r\n",
            "5.7.139",
            "Authentication unsuccessful, basic authentication is disabled.",
        ),
        # S: 550 6.6.0 ...  (class 6 does not exist: the text is kept)
        (b"550 6.6.0 no such class\r\n", None, "6.6.0 no such class"),
        # S: 250 5.1.1 ...  (class 5 does not match the 2xx code)
        (b"250 5.1.1 mismatch\r\n", None, "5.1.1 mismatch"),
        # S: 250 2.0.0
        (b"250 2.0.0\r\n", "2.0.0", ""),
        # S: 550 5.7.1234 ...  (four-digit detail is not a code)
        (b"550 5.7.1234 too long\r\n", None, "5.7.1234 too long"),
        # S: 550 5.7.1x ...  (the code must end at a space)
        (b"550 5.7.1x glued\r\n", None, "5.7.1x glued"),
    ],
)
def test_enhanced_codes(wire: bytes, enhanced: str | None, text: str) -> None:
    (reply,) = parse(wire)
    assert reply.enhanced_code == enhanced
    assert reply.text == text


def test_enhanced_code_stripped_from_every_line() -> None:
    # S: 534-5.7.9 Application-specific password required. For more information, go to
    # S: 534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp
    (reply,) = parse(
        b"534-5.7.9 Application-specific password required. For more information, go to\r\n"
        b"534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp\r\n"
    )
    assert reply.enhanced_code == "5.7.9"
    assert reply.text == (
        "Application-specific password required. For more information, go to\n"
        "https://support.google.com/mail/?p=InvalidSecondFactor - gsmtp"
    )


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        b"\r\n",  # empty line
        b"OK\r\n",  # no code
        b"25\r\n",  # two digits
        b"abc hello\r\n",  # letters
        b"2x0 hello\r\n",  # letter inside the code
        b" 250 hello\r\n",  # leading space
        b"600 hello\r\n",  # beyond 5yz
        b"199 hello\r\n",  # below 2yz
        b"099 hello\r\n",
        b"260 hello\r\n",  # second digit above 5 (RFC 5321 §4.2: x0z-x5z)
        b"250*x\r\n",  # bad separator
        b"250\thello\r\n",  # a tab is not the separator
        b"2500 hello\r\n",  # four digits
        b"250-first\r\n251 second\r\n",  # code changed mid-reply
        b"250-first\r\n550 second\r\n",
        b"\xff\xfe\xfd\r\n",  # binary garbage
    ],
)
def test_malformed_lines_raise_remote_protocol_error(wire: bytes) -> None:
    parser = ReplyParser()
    parser.feed(wire)
    with pytest.raises(RemoteProtocolError):
        drain(parser)


def test_error_names_the_offending_line() -> None:
    parser = ReplyParser()
    parser.feed(b"2x0 hello\r\n")
    with pytest.raises(RemoteProtocolError, match=r"2x0 hello.*no 3-digit code"):
        parser.next_reply()


def test_code_change_mid_reply_is_named() -> None:
    parser = ReplyParser()
    parser.feed(b"250-first\r\n251 second\r\n")
    with pytest.raises(RemoteProtocolError, match="from 250 to 251"):
        parser.next_reply()


def test_non_utf8_text_does_not_crash() -> None:
    # S: 250 caf\xe9 (Latin-1 from an old server)
    (reply,) = parse(b"250 caf\xe9 ok\r\n")
    assert reply.code == 250
    assert reply.lines == ("caf\ufffd ok",)


def test_utf8_text_is_decoded() -> None:
    (reply,) = parse("250 Grüße\r\n".encode())
    assert reply.lines == ("Grüße",)


# -- memory bounds ------------------------------------------------------------------------------


def test_line_at_the_limit_is_accepted() -> None:
    line = b"250 " + b"x" * (MAX_REPLY_LINE - 4)
    assert len(line) == MAX_REPLY_LINE
    parser = ReplyParser()
    parser.feed(line)
    assert parser.next_reply() is None
    parser.feed(b"\n")
    assert parser.next_reply() == Reply(250, ("x" * (MAX_REPLY_LINE - 4),))


def test_overlong_line_raises_in_feed_without_a_newline() -> None:
    parser = ReplyParser()
    parser.feed(b"250 " + b"x" * (MAX_REPLY_LINE - 4))
    with pytest.raises(RemoteProtocolError, match="longer than 4096"):
        parser.feed(b"x")


def test_overlong_line_raises_when_fed_in_small_pieces() -> None:
    parser = ReplyParser()
    with pytest.raises(RemoteProtocolError):  # noqa: PT012 - the loop is the point
        for _ in range(MAX_REPLY_LINE):
            parser.feed(b"xx")
    # Raised as soon as the limit was crossed: memory stayed bounded.
    assert parser.buffered == MAX_REPLY_LINE + 2


def test_overlong_tail_after_a_complete_reply_raises_in_feed() -> None:
    # S: 250 ok
    # S: xxxx... (no newline, fed again and again without draining)
    parser = ReplyParser()
    parser.feed(b"250 ok\r\n")
    parser.feed(b"x" * 4000)
    with pytest.raises(RemoteProtocolError, match="longer than"):
        parser.feed(b"x" * 4000)


def test_overlong_line_with_its_newline_raises() -> None:
    parser = ReplyParser()
    with pytest.raises(RemoteProtocolError):  # noqa: PT012
        parser.feed(b"250 " + b"x" * MAX_REPLY_LINE + b"\r\n")
        parser.next_reply()


def test_overlong_line_after_a_short_one_raises_in_next_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250-ok\r\n250 " + b"x" * MAX_REPLY_LINE + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="longer than"):
        parser.next_reply()


def test_reply_of_many_short_lines_over_the_cap_raises() -> None:
    parser = ReplyParser()
    line = b"250-" + b"y" * 60 + b"\r\n"
    count = 0
    with pytest.raises(RemoteProtocolError, match="larger than 65536"):  # noqa: PT012
        while True:
            parser.feed(line)
            count += 1
            assert parser.next_reply() is None
            assert parser.buffered <= MAX_REPLY_BYTES + len(line)
    assert count * len(line) > MAX_REPLY_BYTES
    assert count * len(line) <= MAX_REPLY_BYTES + len(line)


def test_reply_just_under_the_cap_is_accepted() -> None:
    line = b"250-" + b"y" * 60 + b"\r\n"
    count = (MAX_REPLY_BYTES - 6) // len(line)
    wire = line * count + b"250 z\r\n"
    assert len(wire) <= MAX_REPLY_BYTES
    (reply,) = parse(wire)
    assert len(reply.lines) == count + 1


def test_reply_byte_count_resets_between_replies() -> None:
    # Many replies whose total exceeds the cap are fine: the cap is per reply.
    one = b"250-" + b"y" * 1000 + b"\r\n250 ok\r\n"
    parser = ReplyParser()
    for _ in range(3 * MAX_REPLY_BYTES // len(one)):
        parser.feed(one)
        assert len(drain(parser)) == 1
    assert parser.buffered == 0


# -- discard (RFC 3207 §4.2) -------------------------------------------------------------------


def test_discard_drops_partial_and_complete_data() -> None:
    parser = ReplyParser()
    parser.feed(b"250-injected\r\n250 more\r\n250-partial")
    assert parser.discard() == len(b"250-injected\r\n250 more\r\n250-partial")
    assert parser.buffered == 0
    assert parser.next_reply() is None
    parser.feed(b"250 fresh\r\n")
    assert parser.next_reply() == Reply(250, ("fresh",))


def test_discard_drops_the_half_read_reply_state() -> None:
    parser = ReplyParser()
    parser.feed(b"250-first line\r\n")
    assert parser.next_reply() is None
    assert parser.discard() == len(b"250-first line\r\n")
    # A reply with another code is not "a code change mid-reply" after the discard.
    parser.feed(b"220 hello\r\n")
    assert parser.next_reply() == Reply(220, ("hello",))


def test_to_bytes_round_trips_through_the_parser() -> None:
    for reply in (GMAIL_EHLO_REPLY, Reply(250), Reply(550, ("5.1.1 a ", "5.1.1  b"))):
        assert parse(reply.to_bytes()) == [reply]

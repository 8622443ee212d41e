"""Fuzzing the receive side: whatever a server sends, only RemoteProtocolError comes out.

A hostile or broken server controls every byte the client reads. The core must not crash
with anything but ``RemoteProtocolError``, must keep its buffers bounded, and must always
make progress (every call returns).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpkit.errors import LocalProtocolError, RemoteProtocolError
from smtpkit.protocol import (
    MAX_REPLY_BYTES,
    MAX_REPLY_LINE,
    NEED_DATA,
    ClientConnection,
    Command,
    ConnectionClosed,
    Extensions,
    ReplyParser,
    ReplyReceived,
    State,
)
from smtpkit.replies import Reply

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ----------------------------------------------------------------------------------

_codes = st.one_of(
    st.sampled_from([b"220", b"221", b"235", b"250", b"334", b"354", b"421", b"535", b"550"]),
    st.integers(0, 999).map(lambda n: b"%03d" % n),
    st.binary(min_size=0, max_size=4),
)
_separators = st.sampled_from([b" ", b"-", b"", b"*", b"\t", b"  "])
_text = st.one_of(
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),
    st.sampled_from(
        [
            b"SIZE 35882577",
            b"SIZE",
            b"SIZE 0",
            "SIZE \u00b2".encode(),
            "SIZE \u0661\u0662".encode(),
            b"SIZE 99999999999999999999999999",
            b"AUTH LOGIN PLAIN XOAUTH2",
            b"AUTH=LOGIN",
            b"auth=",
            b"AUTH",
            b"PIPELINING",
            b"STARTTLS",
            b"5.7.8 denied",
            b"6.6.0 bad class",
            b"5.7.139 x",
            b"#4.5.3 x",
            "5.\u0667.1 x".encode(),
        ]
    ),
)
_endings = st.sampled_from([b"\r\n", b"\n", b"\r", b"", b"\r\r\n"])
_line = st.builds(lambda c, s, t, e: c + s + t + e, _codes, _separators, _text, _endings)
_near_valid = st.lists(_line, max_size=12).map(b"".join)
# Well-formed EHLO continuation lines with odd keyword text.
_ehlo_lines = st.lists(
    st.builds(lambda t, e: b"250-" + t + e, _text, st.sampled_from([b"\r\n", b"\n"])),
    max_size=12,
).map(b"".join)

# Large inputs built from small draws: long lines and replies of many short lines.
_long_line = st.builds(
    lambda n, nl: b"250 " + b"x" * n + (b"\r\n" if nl else b""),
    st.integers(MAX_REPLY_LINE - 10, MAX_REPLY_LINE + 10),
    st.booleans(),
)
_many_lines = st.builds(
    lambda n, width: (b"250-" + b"y" * width + b"\r\n") * n + b"250 end\r\n",
    st.integers(1, 1200),
    st.integers(0, 120),
)
_stream = st.one_of(
    st.binary(max_size=300),
    _near_valid,
    st.lists(st.one_of(_near_valid, _long_line, _many_lines), max_size=3).map(b"".join),
)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    start = 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [p for p in pieces if p]


# -- the parser alone ----------------------------------------------------------------------------


def _run_parser(data: bytes, cuts: list[int]) -> list[Reply]:
    parser = ReplyParser()
    replies: list[Reply] = []
    chunks = _chunks(data, cuts)
    try:
        for chunk in chunks:
            parser.feed(chunk)
            assert parser.buffered <= MAX_REPLY_BYTES + MAX_REPLY_LINE + len(chunk)
            # Each call consumes at least one line or returns None: bounded by the input.
            for _ in range(len(data) + 1):
                reply = parser.next_reply()
                assert parser.buffered <= MAX_REPLY_BYTES + MAX_REPLY_LINE + len(chunk)
                if reply is None:
                    break
                replies.append(reply)
            else:
                raise AssertionError("next_reply() kept returning replies")
            # After draining, only one incomplete line and one incomplete reply may remain.
            assert parser.buffered <= MAX_REPLY_BYTES + MAX_REPLY_LINE
    except RemoteProtocolError:
        pass
    return replies


@FUZZ
@given(data=_stream, cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_parser_only_raises_remote_protocol_error(data: bytes, cuts: list[int]) -> None:
    for reply in _run_parser(data, cuts):
        assert 200 <= reply.code <= 599
        assert reply.lines
        # Every value derived from a parsed reply is computable without error.
        assert isinstance(reply.text, str)
        assert isinstance(str(reply), str)
        reply.to_bytes()
        _ = reply.enhanced_code, reply.is_transient, reply.is_permanent
        Extensions.from_reply(reply)


@FUZZ
@given(data=_near_valid, cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_chunking_does_not_change_the_result(data: bytes, cuts: list[int]) -> None:
    def outcome(pieces: list[bytes]) -> tuple[list[Reply], bool]:
        parser = ReplyParser()
        replies: list[Reply] = []
        try:
            for piece in pieces:
                parser.feed(piece)
                while (reply := parser.next_reply()) is not None:
                    replies.append(reply)
        except RemoteProtocolError:
            return replies, True
        return replies, False

    whole = outcome([data] if data else [])
    split = outcome(_chunks(data, cuts))
    assert split == whole


# -- the connection ------------------------------------------------------------------------------

_DRIVER_COMMANDS = (
    Command.ehlo("client.example.com"),
    Command.helo("client.example.com"),
    Command.mail("alice@example.com"),
    Command.rcpt("bob@example.org"),
    Command.data(),
    Command.auth("LOGIN"),
    Command.auth_response("dXNlcg=="),
    Command.noop(),
    Command.quit(),
)


def _drive(conn: ClientConnection, data: bytes, cuts: list[int], react: bool) -> None:
    """Feed ``data`` in pieces; when ``react``, send whatever the state allows between reads."""
    chunks = [*_chunks(data, cuts), b""]
    steps = 0
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while True:
                steps += 1
                assert steps < 10 * (len(data) + 10), "next_event() does not make progress"
                event = conn.next_event()
                if event is NEED_DATA:
                    break
                if isinstance(event, ConnectionClosed):
                    assert conn.state is State.CLOSED
                    assert conn.pending == ()
                    return
                assert isinstance(event, ReplyReceived)
                if event.reply.code == 421:
                    assert conn.state is State.CLOSED
                if conn.state is State.TLS_HANDSHAKE:
                    conn.tls_established()
                if conn.state is State.CONTENT:
                    conn.send_content(b"Subject: x\n\n.body\n")
                if react:
                    for command in _DRIVER_COMMANDS:
                        try:
                            conn.send(command)
                        except LocalProtocolError:
                            continue
                        break
    except RemoteProtocolError:
        assert conn.state is State.CLOSED


@FUZZ
@given(data=_stream, cuts=st.lists(st.integers(0, 10**6), max_size=20), react=st.booleans())
def test_connection_only_raises_remote_protocol_error(
    data: bytes, cuts: list[int], react: bool
) -> None:
    _drive(ClientConnection(), data, cuts, react)


@FUZZ
@given(
    ehlo=_ehlo_lines | _near_valid, rest=_stream, cuts=st.lists(st.integers(0, 10**6), max_size=20)
)
def test_fuzzed_ehlo_reply(ehlo: bytes, rest: bytes, cuts: list[int]) -> None:
    # S: 220 mx.example.com
    # C: EHLO client.example.com
    # S: <anything>
    conn = ClientConnection()
    conn.receive_data(b"220 mx.example.com\r\n")
    assert isinstance(conn.next_event(), ReplyReceived)
    conn.send(Command.ehlo("client.example.com"))
    _drive(conn, b"250-mx.example.com\r\n" + ehlo + b"250 OK\r\n" + rest, cuts, react=True)


@FUZZ
@given(data=_stream, cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_fuzzed_replies_to_a_pipelined_transaction(data: bytes, cuts: list[int]) -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx.example.com\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.example.com"))
    conn.receive_data(b"250-mx.example.com\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    conn.next_event()
    for command in (
        Command.mail("a@example.com"),
        Command.rcpt("b@example.org"),
        Command.rcpt("c@example.net"),
        Command.data(),
    ):
        conn.send(command)
    _drive(conn, data, cuts, react=False)


@FUZZ
@given(data=_stream, cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_fuzzed_bytes_after_starttls(data: bytes, cuts: list[int]) -> None:
    conn = ClientConnection()
    conn.receive_data(b"220 mx.example.com\r\n250-mx.example.com\r\n250 STARTTLS\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.example.com"))
    conn.next_event()
    conn.send(Command.starttls())
    try:
        conn.receive_data(b"220 go ahead\r\n" + data[: len(data) // 2])
    except RemoteProtocolError:
        assert conn.state is State.CLOSED
        return
    conn.next_event()
    assert conn.state is State.TLS_HANDSHAKE
    # Whatever plaintext followed the 220 is dropped, none of it becomes an event.
    conn.tls_established()
    assert conn.next_event() is NEED_DATA
    _drive(conn, data[len(data) // 2 :], cuts, react=True)

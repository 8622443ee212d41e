"""Byte-level tests for message content: CRLF normalisation, dot-stuffing, the terminator."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpkit.protocol import ContentEncoder, encode_content, normalize_line_endings

TERMINATOR = b"\r\n.\r\n"


def server_unstuff(wire: bytes) -> bytes:
    """What an RFC 5321 §4.5.2 server rebuilds: lines up to the lone ".", one "." stripped."""
    lines = wire.split(b"\r\n")
    out = []
    for line in lines:
        if line == b".":
            break
        out.append(line[1:] if line.startswith(b".") else line)
    else:
        raise AssertionError("no terminator line")
    return b"".join(line + b"\r\n" for line in out)


def first_terminator_line(wire: bytes) -> int:
    """Byte offset where the server would see the end of the content."""
    if wire.startswith(b".\r\n"):
        return 0
    return wire.index(TERMINATOR) + 2


def expected_content(data: bytes) -> bytes:
    """The normalised input with a final CRLF, as the server should store it."""
    normal = normalize_line_endings(data)
    if normal and not normal.endswith(b"\r\n"):
        normal += b"\r\n"
    return normal


def encode_in_chunks(data: bytes, cuts: list[int]) -> bytes:
    encoder = ContentEncoder()
    out = b""
    start = 0
    for cut in sorted(set(cuts)):
        out += encoder.encode(data[start:cut])
        start = cut
    out += encoder.encode(data[start:])
    out += encoder.finish()
    return out


# -- normalize_line_endings ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", b""),
        (b"a", b"a"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r\r", b"\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),  # LF then a lone CR: two line breaks
        (b"\r\r\n", b"\r\n\r\n"),
    ],
)
def test_normalize_line_endings(data: bytes, expected: bytes) -> None:
    assert normalize_line_endings(data) == expected


# -- encode_content: exact bytes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "wire"),
    [
        # Empty content: the terminator line alone.
        (b"", b".\r\n"),
        # C: Subject: hi
        # C:
        # C: body
        # C: .
        (b"Subject: hi\r\n\r\nbody\r\n", b"Subject: hi\r\n\r\nbody\r\n.\r\n"),
        # No final newline: a CRLF is added before the terminator.
        (b"body", b"body\r\n.\r\n"),
        # Bare LF, bare CR and mixed endings all become CRLF.
        (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
        (b"a\rb\r", b"a\r\nb\r\n.\r\n"),
        (b"a\nb\rc\r\nd", b"a\r\nb\r\nc\r\nd\r\n.\r\n"),
        # Dot at the very start: stuffed.
        (b".hidden\r\n", b"..hidden\r\n.\r\n"),
        # Dot after CRLF: stuffed.
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        # A lone "." line would end the data early: stuffed to "..".
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        # ".." lines get a third dot.
        (b"..\r\n", b"...\r\n.\r\n"),
        (b"a\r\n..b\r\n", b"a\r\n...b\r\n.\r\n"),
        # A dot that is not at the start of a line is left alone.
        (b"a.b\r\nc.\r\n", b"a.b\r\nc.\r\n.\r\n"),
        # Dot after a bare LF or a bare CR: the line break is normalised, then stuffed.
        (b"a\n.b", b"a\r\n..b\r\n.\r\n"),
        (b"a\r.b", b"a\r\n..b\r\n.\r\n"),
        # Blank lines stay blank.
        (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
    ],
)
def test_encode_content_exact(content: bytes, wire: bytes) -> None:
    assert encode_content(content) == wire


@pytest.mark.parametrize(
    "attack",
    [
        # The classic: end the DATA early and start a second transaction.
        b"Subject: x\r\n\r\nhello\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<v@x.org>\r\n",
        # "SMTP smuggling" variants that some servers treat as an end of data.
        b"hello\n.\nMAIL FROM:<evil@example.com>\n",
        b"hello\r.\rMAIL FROM:<evil@example.com>\r",
        b"hello\n.\r\nMAIL FROM:<evil@example.com>\r\n",
        b"hello\r\n.\nMAIL FROM:<evil@example.com>\n",
        b"hello\r\n.\rMAIL FROM:<evil@example.com>\r",
        b"hello\r.\r\nMAIL FROM:<evil@example.com>\r\n",
        b".\r\nMAIL FROM:<evil@example.com>\r\n",
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\r\n",
        b"\r\n.\r\n.\r\n.\r\n",
        b".\n.\n.\n",
    ],
)
def test_smuggled_terminators_are_neutralised(attack: bytes) -> None:
    wire = encode_content(attack)
    # The only CRLF.CRLF is the real terminator, at the very end.
    assert wire.endswith(TERMINATOR)
    assert wire.count(TERMINATOR) == 1
    assert first_terminator_line(wire) == len(wire) - 3
    # No bare CR or LF survives for a lenient server to misread.
    assert wire.replace(b"\r\n", b"").count(b"\r") == 0
    assert wire.replace(b"\r\n", b"").count(b"\n") == 0
    assert server_unstuff(wire) == expected_content(attack)


# -- ContentEncoder across chunk boundaries --------------------------------------------------


def test_crlf_split_across_chunks() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a\r") == b"a"  # the CR waits: it may start a CRLF
    assert encoder.encode(b"\nb") == b"\r\nb"
    assert encoder.finish() == b"\r\n.\r\n"


def test_lone_cr_at_chunk_end_followed_by_text() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a\r") == b"a"
    assert encoder.encode(b"b") == b"\r\nb"
    assert encoder.finish() == b"\r\n.\r\n"


def test_lone_cr_at_the_very_end() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a\r") == b"a"
    assert encoder.finish() == b"\r\n.\r\n"


def test_dot_at_the_start_of_a_chunk_after_a_line_break() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a\r\n") == b"a\r\n"
    assert encoder.encode(b".b\r\n") == b"..b\r\n"
    assert encoder.finish() == b".\r\n"


def test_dot_in_a_chunk_after_a_held_cr() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a\r") == b"a"
    assert encoder.encode(b".\r") == b"\r\n.."
    assert encoder.encode(b"\n") == b"\r\n"
    assert encoder.finish() == b".\r\n"


def test_dot_in_the_middle_of_a_line_across_chunks_is_not_stuffed() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"a") == b"a"
    assert encoder.encode(b".b") == b".b"
    assert encoder.finish() == b"\r\n.\r\n"


def test_empty_chunks_change_nothing() -> None:
    encoder = ContentEncoder()
    assert encoder.encode(b"") == b""
    assert encoder.encode(b".") == b".."
    assert encoder.encode(b"") == b""
    assert encoder.finish() == b"\r\n.\r\n"


def test_octets_counts_encoded_content() -> None:
    encoder = ContentEncoder()
    encoder.encode(b".a\nb")
    assert encoder.octets == len(b"..a\r\nb")
    encoder.finish()
    assert encoder.octets == len(b"..a\r\nb\r\n")


def test_encoder_is_reusable_after_finish() -> None:
    encoder = ContentEncoder()
    encoder.encode(b"one\r")
    assert encoder.finish() == b"\r\n.\r\n"
    assert encoder.encode(b".two") == b"..two"


# -- properties ----------------------------------------------------------------------------------

# Bytes rich in the characters that matter, so the interesting cases come up often.
_content = st.lists(
    st.sampled_from([b".", b"\r", b"\n", b"\r\n", b"a", b"..", b"\r\n.\r\n", b"\xff", b" "]),
    max_size=40,
).map(b"".join) | st.binary(max_size=200)


@settings(max_examples=400, deadline=None)
@given(data=_content, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_chunked_encoding_equals_whole_encoding(data: bytes, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(data)]
    whole = encode_content(data)
    assert encode_in_chunks(data, cuts) == whole


@settings(max_examples=400, deadline=None)
@given(data=_content)
def test_encoded_content_is_safe_and_reversible(data: bytes) -> None:
    wire = encode_content(data)
    # Every line ends in CRLF: no bare CR, no bare LF.
    stripped = wire.replace(b"\r\n", b"")
    assert b"\r" not in stripped
    assert b"\n" not in stripped
    # The terminator is there exactly once, at the very end.
    assert wire.endswith(b".\r\n")
    if wire == b".\r\n":
        assert data == b""
    else:
        assert wire.count(TERMINATOR) == 1
        assert wire.endswith(TERMINATOR)
        assert not wire.startswith(b".\r\n")
    assert first_terminator_line(wire) == len(wire) - 3
    # The server's un-stuffing recovers the normalised input.
    assert server_unstuff(wire) == expected_content(data)


@settings(max_examples=200, deadline=None)
@given(data=_content, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_octets_matches_the_bytes_produced(data: bytes, cuts: list[int]) -> None:
    encoder = ContentEncoder()
    produced = b""
    start = 0
    for cut in sorted({c for c in cuts if c <= len(data)}):
        produced += encoder.encode(data[start:cut])
        start = cut
    produced += encoder.encode(data[start:])
    tail = encoder.finish()
    assert encoder.octets == len(produced) + len(tail) - len(b".\r\n")

"""Streaming content: PreparedMessage.iter_content gives the generator's octets, lazily.

Each message is checked against the plain ``BytesGenerator`` output (what smtpkit sent
before streaming): same octets for every chunk size and every iteration, exact ``size``,
CRLF only. The deferral threshold and slice size are lowered in most tests so that small
messages take the streaming path (and slice edges fall in awkward places); one test uses the
real values. The memory tests measure with ``tracemalloc`` how much is allocated while
preparing and while iterating a message with a 20 MB attachment.
"""

from __future__ import annotations

import copy
import email
import io
import os
import random
import re
import socket
import tracemalloc
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpkit.message import BodyType, PreparedMessage, prepare_message
from smtpkit.message import _stream as message_stream
from smtpkit.message._stream import RawSegment, TextSegment, WireContent
from smtpkit.message._wire import generator_policy
from smtpkit.protocol import normalize_line_endings

BARE_NEWLINE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
CHUNK_SIZES = (1, 7, 4096, 1 << 20)
HEADERS = {
    "From": "a@example.com",
    "To": "b@example.com",
    "Message-ID": "<fixed@example.com>",
    "Date": "Thu, 01 Jan 2026 00:00:00 +0000",
}


@pytest.fixture(autouse=True)
def _no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> str:
        raise AssertionError("getfqdn called")

    monkeypatch.setattr(socket, "getfqdn", refuse)


@pytest.fixture
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defer payloads from 40 characters and cut them in 13-character slices."""
    monkeypatch.setattr(message_stream, "DEFER_MIN", 40)
    monkeypatch.setattr(message_stream, "SLICE", 13)


def headed(msg: Message, **extra: str) -> Message:
    for name, value in {**HEADERS, **extra}.items():
        msg[name] = value
    return msg


def fix_boundaries(msg: Message) -> Message:
    """Give every multipart a boundary, so both serialisations draw no random one."""
    for number, part in enumerate(msg.walk()):
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            part.set_boundary(f"b{number}=")
    return msg


def reference(msg: Message, *, utf8: bool = False, seven_bit: bool = False) -> bytes:
    """What prepare_message produced before streaming: BytesGenerator, then CRLF."""
    work = copy.deepcopy(msg)
    del work["Bcc"]
    buffer = io.BytesIO()
    gen_policy = generator_policy(work, utf8=utf8, seven_bit=seven_bit)
    BytesGenerator(buffer, policy=gen_policy).flatten(work, unixfrom=False)
    return normalize_line_endings(buffer.getvalue())


def check_stream(prepared: PreparedMessage, expected: bytes) -> None:
    """Same octets for every chunk size and on every call; exact size; CRLF only."""
    for chunk_size in CHUNK_SIZES:
        chunks = list(prepared.iter_content(chunk_size))
        assert all(len(c) == chunk_size for c in chunks[:-1])
        assert 0 < len(chunks[-1]) <= chunk_size
        assert b"".join(chunks) == expected
        assert list(prepared.iter_content(chunk_size)) == chunks
    assert prepared.size == len(expected)
    assert prepared.content == expected
    assert BARE_NEWLINE.search(expected) is None
    assert not expected.endswith(b"\r\n.\r\n")


def mixed_text(lines: int) -> str:
    """Text whose line breaks are CRLF, LF and lone CR, so some CRs end a slice."""
    breaks = ("\r\n", "\n", "\r", "\r\n\r", "\n\r\n")
    return "".join(f"line {n:04d} body{breaks[n % len(breaks)]}" for n in range(lines))


# -- message objects ----------------------------------------------------------------------


@pytest.mark.usefixtures("small_slices")
def test_multipart_with_attachments() -> None:
    msg = headed(EmailMessage(), Subject="report")
    msg.set_content("Plain text.\n" * 10)
    msg.add_alternative("<p>HTML</p>\n" * 10, subtype="html")
    msg.add_attachment(os.urandom(3000), maintype="application", subtype="pdf", filename="a")
    msg.add_attachment(b"tiny", maintype="application", subtype="octet-stream", filename="b")
    fix_boundaries(msg)
    prepared = prepare_message(msg)
    assert prepared.body_type is BodyType.SEVEN_BIT
    assert sum(isinstance(p, TextSegment) for p in prepared._wire.parts) == 3
    check_stream(prepared, reference(msg))


@pytest.mark.usefixtures("small_slices")
def test_eight_bit_text_is_streamed_as_octets() -> None:
    msg = headed(EmailMessage())
    msg.set_content("grüße, naïve café\n" * 20, cte="8bit")
    prepared = prepare_message(msg)
    assert prepared.body_type is BodyType.EIGHT_BIT_MIME
    assert any(isinstance(p, TextSegment) and p.eight_bit for p in prepared._wire.parts)
    check_stream(prepared, reference(msg))
    assert "grüße, naïve café\r\n".encode() in prepared.content


@pytest.mark.usefixtures("small_slices")
def test_eight_bit_text_reencoded_without_8bitmime() -> None:
    msg = headed(EmailMessage())
    msg.set_content("grüße, naïve café\n" * 20, cte="8bit")
    prepared = prepare_message(msg, eight_bit_allowed=False)
    assert prepared.body_type is BodyType.SEVEN_BIT
    check_stream(prepared, reference(msg, seven_bit=True))
    parsed = email.message_from_bytes(prepared.content, policy=policy.default)
    assert parsed.get_content() == "grüße, naïve café\n" * 20


@pytest.mark.usefixtures("small_slices")
def test_mixed_line_endings_in_a_payload() -> None:
    msg = headed(Message())
    msg.set_payload(mixed_text(50))
    prepared = prepare_message(msg)
    assert isinstance(prepared._wire.parts[1], TextSegment)
    check_stream(prepared, reference(msg))


@pytest.mark.usefixtures("small_slices")
def test_compat32_mime_tree_and_preamble() -> None:
    msg = headed(MIMEMultipart())
    msg.preamble = "This is a MIME message.\n" * 3
    msg.epilogue = "bye\n"
    msg.attach(MIMEText("text part " * 30))
    msg.attach(MIMEApplication(os.urandom(500), Name="x.bin"))
    fix_boundaries(msg)
    prepared = prepare_message(msg)
    check_stream(prepared, reference(msg))


@pytest.mark.usefixtures("small_slices")
def test_forwarded_message_with_attachment() -> None:
    inner = headed(EmailMessage(), Subject="inner")
    inner.set_content("inner body\n" * 10)
    inner.add_attachment(os.urandom(1000), maintype="image", subtype="png", filename="i.png")
    outer = headed(EmailMessage(), Subject="Fwd: inner")
    outer.set_content("see below\n")
    outer.add_attachment(inner)
    fix_boundaries(outer)
    prepared = prepare_message(outer)
    check_stream(prepared, reference(outer))


@pytest.mark.usefixtures("small_slices")
def test_non_ascii_headers_with_smtputf8() -> None:
    msg = EmailMessage()
    for name, value in HEADERS.items():
        msg[name] = value
    msg.replace_header("From", "Jö <jö@exämple.com>")
    msg["Subject"] = "Grüße"
    msg.set_content("body line\n" * 20)
    msg.add_attachment(os.urandom(400), maintype="application", subtype="zip", filename="z")
    fix_boundaries(msg)
    prepared = prepare_message(msg)
    assert prepared.needs_smtputf8
    assert prepared._wire.streamed
    expected = reference(msg, utf8=True)
    assert "From: Jö <jö@exämple.com>\r\n".encode() in expected
    check_stream(prepared, expected)


@pytest.mark.usefixtures("small_slices")
def test_bcc_stays_out_of_a_streamed_message() -> None:
    msg = headed(EmailMessage(), Bcc="hidden@example.org")
    msg.set_content("x" * 200)
    prepared = prepare_message(msg)
    assert "hidden@example.org" in prepared.envelope.recipients
    assert b"hidden@example.org" not in prepared.content
    check_stream(prepared, reference(msg))


@pytest.mark.usefixtures("small_slices")
def test_generated_boundary_avoids_deferred_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first random boundary occurs in a deferred payload: a second one is drawn."""
    tokens = iter([1, 1, 2])
    monkeypatch.setattr(random, "randrange", lambda _: next(tokens))
    taken = "===============" + f"{1:019d}" + "=="
    msg = headed(EmailMessage())
    msg.set_content("intro\n")
    msg.add_attachment(
        f"line\n--{taken}\nline\n" * 5, subtype="plain", cte="7bit", disposition="attachment"
    )
    prepared = prepare_message(msg)
    content = prepared.content
    boundary = email.message_from_bytes(content).get_boundary()
    assert boundary == "===============" + f"{2:019d}" + "=="
    parsed = email.message_from_bytes(content, policy=policy.default)
    assert len(list(parsed.iter_attachments())) == 1
    check_stream(prepared, content)


def test_real_thresholds_small_message_is_one_bytes() -> None:
    msg = headed(EmailMessage())
    msg.set_content("short\n")
    prepared = prepare_message(msg)
    assert not prepared._wire.streamed
    assert len(prepared._wire.parts) == 1
    assert prepared.content is prepared.content  # kept, not rebuilt
    check_stream(prepared, reference(msg))


def test_real_thresholds_large_attachment() -> None:
    msg = headed(EmailMessage())
    msg.set_content("See the attachment.\n")
    msg.add_attachment(os.urandom(3 << 20), maintype="application", subtype="octet-stream")
    fix_boundaries(msg)
    prepared = prepare_message(msg)
    assert prepared._wire.streamed
    expected = reference(msg)
    for chunk_size in (4096, 1 << 20, 10 << 20):
        chunks = list(prepared.iter_content(chunk_size))
        assert max(map(len, chunks)) <= chunk_size
        assert b"".join(chunks) == expected
    assert prepared.size == len(expected)


# -- raw bytes ----------------------------------------------------------------------------


def prepare_raw(data: bytes) -> PreparedMessage:
    return prepare_message(data, sender="a@example.com", recipients=["b@example.com"])


def test_raw_crlf_bytes_are_sent_from_the_same_buffer() -> None:
    data = b"Message-ID: <r@example.com>\r\nSubject: x\r\n\r\nbody\r\n" * 3
    prepared = prepare_raw(data)
    assert prepared._wire.parts == (data,)
    assert prepared._wire.parts[0] is data
    assert prepared.content is data
    assert prepared.message_id == "<r@example.com>"
    check_stream(prepared, data)


@pytest.mark.usefixtures("small_slices")
def test_raw_bytes_with_mixed_line_endings() -> None:
    body = mixed_text(40).encode() + "ünïcode\r".encode()
    data = b"Subject: x\nMessage-ID: <m@example.com>\r\r" + body
    prepared = prepare_raw(data)
    assert isinstance(prepared._wire.parts[0], RawSegment)
    assert prepared.message_id == "<m@example.com>"
    assert prepared.body_type is BodyType.EIGHT_BIT_MIME
    check_stream(prepared, normalize_line_endings(data))


@pytest.mark.parametrize(
    "data",
    [b"\r", b"\n", b"a\r", b"\r\n", b"\n\r", b"\r\r\n\n", b"x" * 12 + b"\r\n" + b"y"],
)
@pytest.mark.usefixtures("small_slices")
def test_raw_line_break_edges(data: bytes) -> None:
    check_stream(prepare_raw(data), normalize_line_endings(data))


def test_empty_raw_content_yields_one_empty_chunk() -> None:
    prepared = prepare_raw(b"")
    assert list(prepared.iter_content()) == [b""]
    assert prepared.size == 0
    assert prepared.content == b""


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        prepare_raw(b"x\r\n").iter_content(0)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="ab-.\r\n\udcc3", max_size=120),
    raw=st.binary(max_size=120).map(lambda b: b.replace(b"\x00", b"\r")),
    chunk_size=st.integers(min_value=1, max_value=50),
    slice_size=st.integers(min_value=1, max_value=20),
)
def test_any_payload_and_slicing_gives_the_generator_octets(
    text: str, raw: bytes, chunk_size: int, slice_size: int
) -> None:
    with (
        mock.patch.object(message_stream, "DEFER_MIN", 1),
        mock.patch.object(message_stream, "SLICE", slice_size),
    ):
        msg = headed(Message())
        msg.set_payload(text)
        prepared = prepare_message(msg)
        expected = reference(msg)
        assert b"".join(prepared.iter_content(chunk_size)) == expected
        assert prepared.size == len(expected)
        assert BARE_NEWLINE.search(expected) is None
        # Any octets as the body: a leading empty line ends an empty header block (RFC 5322
        # §2.1), since raw header blocks are checked for break characters and 8-bit text.
        raw = b"\r\n" + raw
        raw_prepared = prepare_raw(raw)
        assert b"".join(raw_prepared.iter_content(chunk_size)) == normalize_line_endings(raw)
        assert raw_prepared.size == len(normalize_line_endings(raw))


# -- segments -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 2, 3, 5, 64])
def test_text_segment_cr_at_slice_edges(step: int) -> None:
    text = "a\r\nb\rc\nd\r\r\n\n\re\r"
    segment = TextSegment(text, eight_bit=False)
    octets = b"".join(segment.iter_bytes(step))
    assert octets == normalize_line_endings(text.encode())
    assert segment.size == len(octets)


@pytest.mark.parametrize("step", [1, 2, 3, 64])
def test_raw_segment_cr_at_slice_edges(step: int) -> None:
    data = b"\r\r\na\n\r\n\rb\r"
    segment = RawSegment(data)
    assert b"".join(segment.iter_bytes(step)) == normalize_line_endings(data)
    assert segment.size == len(normalize_line_endings(data))


def test_wire_content_equality_is_by_octets() -> None:
    one = WireContent([b"ab\r\n", TextSegment("c" * 10 + "\n", eight_bit=False)])
    other = WireContent([b"ab\r\nccccc", b"ccccc\r\n"])
    assert one == other
    assert hash(one) == hash(other)
    assert one != WireContent([b"ab\r\n"])


@pytest.mark.usefixtures("small_slices")
def test_prepared_messages_compare_by_octets() -> None:
    msg = headed(EmailMessage())
    msg.set_content("z" * 100)
    assert prepare_message(msg) == prepare_message(msg)


# -- memory -------------------------------------------------------------------------------


def traced_peak(action: object) -> int:
    """Peak traced allocation (bytes) above the level when ``action`` starts."""
    assert callable(action)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        action()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start


def drain(prepared: PreparedMessage) -> int:
    total = 0
    for chunk in prepared.iter_content():
        total += len(chunk)
    return total


def test_memory_while_preparing_and_streaming_an_attachment() -> None:
    msg = headed(EmailMessage(), Subject="20 MB")
    msg.set_content("See the attachment.\n")
    msg.add_attachment(
        os.urandom(20 << 20), maintype="application", subtype="octet-stream", filename="x"
    )
    prepared: list[PreparedMessage] = []
    prepare_peak = traced_peak(lambda: prepared.append(prepare_message(msg)))
    wire_size = prepared[0].size
    assert wire_size > 27 << 20  # base64: 4/3 of the attachment, plus line breaks
    totals: list[int] = []
    stream_peak = traced_peak(lambda: totals.append(drain(prepared[0])))
    assert totals == [wire_size]
    ratios = (prepare_peak / wire_size, stream_peak / wire_size)
    print(f"peak / wire size: prepare {ratios[0]:.3f}, iter_content {ratios[1]:.3f}")
    assert ratios[0] < 0.5
    assert ratios[1] < 0.5


def test_memory_while_streaming_raw_bytes_with_lf() -> None:
    data = b"Subject: raw\n\n" + (b"0123456789" * 7 + b"\n") * (300_000)
    prepared: list[PreparedMessage] = []
    prepare_peak = traced_peak(lambda: prepared.append(prepare_raw(data)))
    totals: list[int] = []
    stream_peak = traced_peak(lambda: totals.append(drain(prepared[0])))
    wire_size = prepared[0].size
    assert totals == [wire_size] == [len(data) + data.count(b"\n")]
    print(
        f"raw: peak / wire size: prepare {prepare_peak / wire_size:.3f}, "
        f"iter_content {stream_peak / wire_size:.3f}"
    )
    assert prepare_peak < 0.5 * wire_size
    assert stream_peak < 0.5 * wire_size

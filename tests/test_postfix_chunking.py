"""CHUNKING (BDAT, RFC 3030) against a real server: Postfix's smtpd on 127.0.0.1.

aiosmtpd and smtp-sink do not offer CHUNKING, so the BDAT path of smtpkit is checked here
against Postfix (``tests/postfix_server.py``). Every test reads the bytes smtpkit actually
wrote (a recording transport) to prove ``BDAT`` was used and no ``DATA``, and compares what
Postfix delivered with what was sent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from postfix_server import Delivery, PostfixServer, group_alive, unavailable_reason

from smtpkit import (
    Outgoing,
    RecipientRejected,
    Security,
    SendResult,
    Submitter,
)
from smtpkit.config import Endpoint
from smtpkit.message import prepare_message
from smtpkit.transports import SocketTransport, Stream

_REASON = unavailable_reason()

pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"Postfix integration: {_REASON}"),
    pytest.mark.timeout(60),
]

SENDER = "sender@example.test"
REFUSED = "refused@example.test"


# -- a transport that keeps every byte smtpkit writes -------------------------------------


class RecordingStream:
    """A socket stream that also keeps every write, in order."""

    def __init__(self, inner: Stream) -> None:
        self._inner = inner
        self.writes: list[bytes] = []

    @property
    def is_encrypted(self) -> bool:
        return self._inner.is_encrypted

    def send(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._inner.send(data)

    def receive(self, max_bytes: int = 65536) -> bytes:
        return self._inner.receive(max_bytes)

    def set_timeout(self, seconds: float) -> None:
        self._inner.set_timeout(seconds)

    def start_tls(self, context: object, server_hostname: str) -> None:
        raise AssertionError("no TLS on this loopback test server")

    def close(self) -> None:
        self._inner.close()


class RecordingTransport:
    """A real socket transport whose streams record what the client sent."""

    def __init__(self) -> None:
        self.streams: list[RecordingStream] = []
        self._lock = threading.Lock()

    def connect(self, endpoint: Endpoint) -> RecordingStream:
        stream = RecordingStream(SocketTransport().connect(endpoint))
        with self._lock:
            self.streams.append(stream)
        return stream


def client_commands(raw: bytes) -> list[tuple[str, bytes]]:
    """Split what a client wrote into ``(command line, BDAT payload)`` pairs.

    A ``BDAT n`` line is followed by exactly ``n`` octets of content (RFC 3030 §2), which
    are returned as its payload; other commands have an empty payload. Parsing stops at
    ``DATA`` (whose content length depends on the server's 354).
    """
    commands: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(raw):  # bounded: pos grows on every pass
        end = raw.index(b"\r\n", pos)
        line = raw[pos:end].decode("utf-8")
        pos = end + 2
        verb = line.split(" ", 1)[0].upper()
        if verb == "BDAT":
            size = int(line.split()[1])
            commands.append((line, raw[pos : pos + size]))
            pos += size
            continue
        commands.append((line, b""))
        if verb == "DATA":
            break
    return commands


def verbs(commands: list[tuple[str, bytes]]) -> list[str]:
    return [line.split(" ", 1)[0].split(":", 1)[0].upper() for line, _ in commands]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    server = PostfixServer(reject={REFUSED: "550 5.1.1 No such user here"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


def submitter(server: PostfixServer, transport: RecordingTransport, **options: int) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=10.0,
        transport=transport,
        **options,  # type: ignore[arg-type]
    )


def make_message(tag: str, body: str, to: str = "rcpt@example.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = to
    message["Subject"] = f"chunking {tag}"
    message["Message-ID"] = f"<{tag}@smtpkit.example.test>"
    message.set_content(body)
    return message


def wire(message: EmailMessage) -> bytes:
    """The octets smtpkit sends for ``message`` (CRLF line ends, headers as prepared)."""
    return prepare_message(message, local_hostname="localhost").content


def arrived(server: PostfixServer, message_id: str, count: int = 1) -> list[Delivery]:
    """The deliveries of ``message_id``, once at least ``count`` have arrived (15 s at most)."""
    deadline = time.monotonic() + 15.0
    while True:
        found = [d for d in server.deliveries() if d.message_id == message_id]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{count} deliveries of {message_id} expected, found {len(found)}; "
                f"log tail: {server.log()[-2000:]}"
            )
        time.sleep(0.05)


def body_of(content: bytes) -> bytes:
    """The body of CRLF wire content, with LF line ends (as Postfix stores it)."""
    return content.partition(b"\r\n\r\n")[2].replace(b"\r\n", b"\n")


# -- tests ----------------------------------------------------------------------------------


def test_small_message_goes_out_with_one_bdat_last(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    message = make_message("small", "Hello over BDAT.\n")
    with submitter(postfix, transport) as sending:  # close() says QUIT; collection does not
        result = sending.send(message)

    assert isinstance(result, SendResult)
    assert result.reply.code == 250
    assert "queued as" in result.reply.text
    [stream] = transport.streams
    commands = client_commands(b"".join(stream.writes))
    assert verbs(commands) == ["EHLO", "MAIL", "RCPT", "BDAT", "QUIT"]
    line, payload = commands[3]
    assert line == f"BDAT {len(payload)} LAST"
    assert payload == wire(message)

    [delivery] = arrived(postfix, "<small@smtpkit.example.test>")
    assert delivery.sender == SENDER
    assert delivery.recipient == "rcpt@example.test"
    assert delivery.body == body_of(payload)
    queue_id = result.reply.text.rsplit(" ", 1)[-1]
    assert postfix.message_ids()[queue_id] == "<small@smtpkit.example.test>"


def test_lines_starting_with_a_dot_are_sent_unstuffed_and_arrive_intact(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    body = ".leading dot\n..two dots\n.\nmiddle\n. space after dot\n.\n"
    message = make_message("dots", body)
    submitter(postfix, transport).send(message)

    [stream] = transport.streams
    commands = client_commands(b"".join(stream.writes))
    assert "DATA" not in verbs(commands)
    [(_, payload)] = [c for c in commands if c[0].startswith("BDAT")]
    # BDAT carries the content as it is: no dot-stuffing, no terminating "."
    assert b"\r\n.leading dot\r\n..two dots\r\n.\r\nmiddle\r\n" in payload
    assert b"\r\n..leading" not in payload
    assert payload.endswith(b"\r\n.\r\n")  # the body's own last line, not a terminator
    [delivery] = arrived(postfix, "<dots@smtpkit.example.test>")
    assert delivery.body == body.encode("ascii")


def test_a_3_mb_message_goes_out_in_several_chunks(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    line = "".join(chr(33 + i % 94) for i in range(76))
    lines = [f".{n:07d} {line}" if n % 100 == 0 else f"{n:07d} {line}" for n in range(36_000)]
    body = "\n".join(lines) + "\n"
    message = make_message("large", body)
    message.replace_header("Content-Transfer-Encoding", "7bit")
    content = wire(message)
    assert len(content) > 3_000_000

    result = submitter(postfix, transport).send(message)

    assert result.reply.code == 250
    [stream] = transport.streams
    commands = client_commands(b"".join(stream.writes))
    chunks = [(line, payload) for line, payload in commands if line.startswith("BDAT")]
    assert len(chunks) >= 3
    assert all(not line.endswith("LAST") for line, _ in chunks[:-1])
    assert chunks[-1][0].endswith(" LAST")
    assert b"".join(payload for _, payload in chunks) == content
    assert "DATA" not in verbs(commands)

    [delivery] = arrived(postfix, "<large@smtpkit.example.test>")
    expected = body_of(content)
    assert hashlib.sha256(delivery.body).hexdigest() == hashlib.sha256(expected).hexdigest()
    [session] = [s for s in postfix.sessions() if s.counts.get("bdat") == len(chunks)]
    assert "data" not in session.counts


def test_send_many_pipelines_50_messages_over_one_connection(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    messages = [make_message(f"bulk-{n:02d}", f"Message number {n}.\n") for n in range(50)]
    before = len(postfix.sessions())
    # window=1: one transaction at a time, the end of each riding with the next envelope
    # (the BDAT window has its own tests: tests/test_window_postfix.py).
    with submitter(postfix, transport, max_connections=1, window=1) as client:
        outcomes = client.send_many(messages, concurrency=1)

    assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
    assert len(outcomes) == 50
    [stream] = transport.streams  # one connection for all 50
    commands = client_commands(b"".join(stream.writes))
    names = verbs(commands)
    assert names.count("BDAT") == 50
    assert names.count("MAIL") == 50
    assert "DATA" not in names
    # Pipelining across messages (RFC 2920 §3.1): the last chunk of one message leaves in
    # the same write as the next message's envelope.
    pipelined = [w for w in stream.writes if b" LAST\r\n" in w and b"MAIL FROM:" in w]
    assert len(pipelined) >= 49

    ids = {f"<bulk-{n:02d}@smtpkit.example.test>" for n in range(50)}
    assert {outcome.message_id for outcome in outcomes if isinstance(outcome, SendResult)} == ids
    for message_id in sorted(ids):
        assert len(arrived(postfix, message_id)) == 1
    sessions = postfix.wait_for_sessions(before + 1)
    [session] = [s for s in sessions[before:] if s.counts.get("mail")]
    assert session.counts["mail"] == 50
    assert session.accepted["bdat"] == 50
    assert "data" not in session.counts


def test_one_refused_recipient_is_reported_and_the_others_get_the_message(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    message = make_message("partial", "Two of three.\n")
    recipients = ["first@example.test", REFUSED, "third@example.test"]
    result = submitter(postfix, transport).send(wire(message), sender=SENDER, recipients=recipients)

    assert result.partially_rejected
    assert result.accepted == ("first@example.test", "third@example.test")
    assert list(result.rejected) == [REFUSED]
    refusal = result.rejected[REFUSED]
    assert refusal.code == 550
    assert refusal.enhanced_code == "5.1.1"
    assert "No such user here" in refusal.text
    [stream] = transport.streams
    assert verbs(client_commands(b"".join(stream.writes))).count("BDAT") == 1

    deliveries = arrived(postfix, "<partial@smtpkit.example.test>", count=2)
    assert sorted(d.recipient for d in deliveries) == ["first@example.test", "third@example.test"]


def test_every_recipient_refused_raises_and_sends_no_content(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    message = make_message("refused", "Nobody gets this.\n", to=REFUSED)
    with pytest.raises(RecipientRejected) as caught:
        submitter(postfix, transport).send(message)

    assert caught.value.recipient == REFUSED
    [stream] = transport.streams
    names = verbs(client_commands(b"".join(stream.writes)))
    assert "BDAT" not in names
    assert "DATA" not in names
    assert not [d for d in postfix.deliveries() if "refused@" in d.message_id]


def test_outgoing_envelope_overrides_headers(
    postfix: PostfixServer, transport: RecordingTransport
) -> None:
    message = make_message("envelope", "Envelope test.\n", to="header-only@example.test")
    outgoing = Outgoing(message, sender="bounce@example.test", recipients=["env@example.test"])
    [outcome] = submitter(postfix, transport).send_many([outgoing])

    assert isinstance(outcome, SendResult)
    [delivery] = arrived(postfix, "<envelope@smtpkit.example.test>")
    assert delivery.sender == "bounce@example.test"
    assert delivery.recipient == "env@example.test"


def test_stop_leaves_no_process_and_no_directory() -> None:
    server = PostfixServer().start()
    root, pgid = server.root, server.master_pid
    assert pgid is not None
    server.stop()
    server.stop()  # idempotent

    assert not group_alive(pgid)
    assert not root.exists()

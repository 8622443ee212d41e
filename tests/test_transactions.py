"""Mail transactions on one connection, checked byte by byte on the FakeTransport.

Each test records every ``send()`` the client makes (one call is one flight on the wire) and
checks the server's side too: what it queued (``outbox``), what it kept without answering
(``dropped``), and the client mistakes it noticed (``protocol_errors``).
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest

from smtpkit import (
    DeliveryUnknown,
    MessageRejected,
    Phase,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    SendResult,
    ServiceUnavailable,
    SMTPError,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.drivers import Outgoing
from smtpkit.retry import Retry
from smtpkit.testing import FakeCapabilities, FakeTransport

pytestmark = pytest.mark.timeout(30)

HOST = "smtp.example.test"
SENDER = "alice@example.test"


class RecordingStream:
    """A fake stream that records each ``send()`` (one flight) and can rewrite replies."""

    def __init__(self, inner: object, owner: RecordingTransport) -> None:
        self._inner = inner
        self._owner = owner
        self.sends: list[bytes] = []

    @property
    def is_encrypted(self) -> bool:
        return bool(self._inner.is_encrypted)  # type: ignore[attr-defined]

    def send(self, data: bytes) -> None:
        self.sends.append(bytes(data))
        self._inner.send(data)  # type: ignore[attr-defined]

    def receive(self, max_bytes: int = 65536) -> bytes:
        data: bytes = self._inner.receive(max_bytes)  # type: ignore[attr-defined]
        for old, new in self._owner.rewrite.items():
            data = data.replace(old, new)
        return data

    def set_timeout(self, seconds: float) -> None:
        self._inner.set_timeout(seconds)  # type: ignore[attr-defined]

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._inner.start_tls(context, server_hostname)  # type: ignore[attr-defined]

    def close(self) -> None:
        self._inner.close()  # type: ignore[attr-defined]


class RecordingTransport:
    """Wraps a FakeTransport; keeps every stream so tests can read the flights."""

    def __init__(self, fake: FakeTransport) -> None:
        self.fake = fake
        self.streams: list[RecordingStream] = []
        #: Reply bytes to replace on their way to the client (to play a lying server).
        self.rewrite: dict[bytes, bytes] = {}

    def connect(self, endpoint: Endpoint) -> RecordingStream:
        stream = RecordingStream(self.fake.connect(endpoint), self)
        self.streams.append(stream)
        return stream

    def flights(self, connection: int = 0) -> list[bytes]:
        """The sends of one connection after login, without the final QUIT."""
        sends = self.streams[connection].sends
        start = next(i for i, data in enumerate(sends) if data.startswith(b"AUTH ")) + 1
        return [data for data in sends[start:] if data != b"QUIT\r\n"]


def message(index: int, *recipients: str, body: str | None = None) -> EmailMessage:
    """A small message with a known Message-ID, to find it on the server."""
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = ", ".join(recipients or (f"r{index}@example.test",))
    msg["Subject"] = f"message {index}"
    msg["Message-ID"] = mid(index)
    msg.set_content(body if body is not None else f"Body of message {index}.\n")
    return msg


def mid(index: int) -> str:
    return f"<m{index}@example.test>"


def outbox_ids(fake: FakeTransport) -> list[str]:
    return [str(sent.message["Message-ID"]) for sent in fake.messages]


def make(
    caps: FakeCapabilities | None = None, **options: object
) -> tuple[FakeTransport, RecordingTransport, Submitter]:
    fake = FakeTransport(capabilities=caps)
    recording = RecordingTransport(fake)
    submitter = Submitter(
        HOST,
        transport=recording,
        auth=PasswordAuth(SENDER, "pw"),
        **options,  # type: ignore[arg-type]
    )
    return fake, recording, submitter


def commands(flight: bytes) -> list[bytes]:
    return flight.split(b"\r\n")[:-1]


# -- within one message ----------------------------------------------------------------------


def test_envelope_is_one_flight_with_pipelining() -> None:
    fake, recording, submitter = make()
    to = ("a@example.test", "b@example.test", "c@example.test")
    submitter.send(message(1, *to))

    envelope, content = recording.flights()
    assert commands(envelope) == [
        b"MAIL FROM:<alice@example.test> SIZE=%d" % len(fake.messages[0].raw),
        b"RCPT TO:<a@example.test>",
        b"RCPT TO:<b@example.test>",
        b"RCPT TO:<c@example.test>",
        b"DATA",
    ]
    assert content.endswith(b"\r\n.\r\n")
    assert fake.messages[0].recipients == to
    assert fake.protocol_errors == []


def test_without_pipelining_every_command_waits_for_its_reply() -> None:
    fake, recording, submitter = make(FakeCapabilities(pipelining=False))
    submitter.send_many([message(1, "a@example.test", "b@example.test"), message(2)], concurrency=1)

    flights = recording.flights()
    envelope_flights = [f for f in flights if not f.startswith(b"From:")]
    assert all(len(commands(f)) == 1 for f in envelope_flights)
    verbs = [f.split(b" ")[0].rstrip(b"\r\n") for f in envelope_flights]
    assert verbs == [b"MAIL", b"RCPT", b"RCPT", b"DATA", b"MAIL", b"RCPT", b"DATA"]
    # Without PIPELINING the next envelope never rides with the previous content.
    assert all(b"MAIL FROM" not in f for f in flights if f.startswith(b"From:"))
    assert outbox_ids(fake) == [mid(1), mid(2)]
    assert fake.protocol_errors == []


# -- across messages -------------------------------------------------------------------------


def test_send_many_sends_each_content_end_with_the_next_envelope() -> None:
    fake, recording, submitter = make()
    outcomes = submitter.send_many([message(i) for i in range(10)], concurrency=1)

    assert all(isinstance(o, SendResult) for o in outcomes)
    flights = recording.flights()
    # One envelope, then one flight per message: about one round trip each.
    assert len(flights) == 11
    assert commands(flights[0])[-1] == b"DATA"
    for i, flight in enumerate(flights[1:10]):
        content, dot, envelope = flight.rpartition(b"\r\n.\r\n")
        assert dot, f"flight {i + 1} has no end of content"
        assert f"Message-ID: {mid(i)}".encode() in content
        assert commands(envelope) == [
            b"MAIL FROM:<alice@example.test> SIZE=%d" % len(fake.messages[i + 1].raw),
            b"RCPT TO:<r%d@example.test>" % (i + 1),
            b"DATA",
        ]
    assert flights[10].endswith(b"\r\n.\r\n")
    assert b"MAIL FROM" not in flights[10]
    assert outbox_ids(fake) == [mid(i) for i in range(10)]
    assert fake.connections == 1
    assert fake.protocol_errors == []


def test_single_sends_in_a_with_block_reuse_the_connection_without_pipelining_across() -> None:
    fake, recording, submitter = make()
    with submitter:
        for i in range(3):
            submitter.send(message(i))
    flights = recording.flights()
    # Each send() waits for its final reply before the next envelope: two flights each.
    assert len(flights) == 6
    assert [f.startswith(b"MAIL FROM") for f in flights] == [True, False] * 3
    assert fake.connections == 1
    assert outbox_ids(fake) == [mid(0), mid(1), mid(2)]
    assert fake.protocol_errors == []


def test_replies_are_matched_to_their_message_under_partial_failures() -> None:
    fake, _, submitter = make()
    # MAIL: messages 0 and 1 accepted, message 2 refused, the rest accepted.
    fake.reply("mail", "250 2.1.0 OK", times=2)
    fake.reply("mail", "550 5.7.1 Sender address rejected")
    # RCPT: message 4 loses one of two recipients, message 5 loses both.
    fake.reply("rcpt", "550 5.1.1 No such user", recipient="x4@example.test")
    fake.reply("rcpt", "550 5.1.1 No such user", recipient="r5a@example.test")
    fake.reply("rcpt", "450 4.2.1 Mailbox busy", recipient="r5b@example.test")
    # DATA is consulted for messages with a recipient: 0, 1, 3, 4 go on, 6 is refused.
    fake.reply("data", "354 Go ahead", times=4)
    fake.reply("data", "554 5.7.0 Not now, not ever")
    # Final replies for 0, 1, 3, 4, 7: message 3 gets 451, message 7 gets 554.
    fake.reply("message", "250 2.0.0 OK: queued as {id}", times=2)
    fake.reply("message", "451 4.3.0 Temporary local problem")
    fake.reply("message", "250 2.0.0 OK: queued as {id}")
    fake.reply("message", "554 5.6.0 Content rejected")

    messages = [message(i) for i in range(8)]
    messages[4] = message(4, "r4@example.test", "x4@example.test")
    messages[5] = message(5, "r5a@example.test", "r5b@example.test")
    outcomes = submitter.send_many(messages, concurrency=1)

    ok0, ok1, sender, final451, partial, nobody, data, final554 = outcomes
    assert isinstance(ok0, SendResult)
    assert ok0.message_id == mid(0)
    assert isinstance(ok1, SendResult)
    assert ok1.message_id == mid(1)
    assert isinstance(sender, SenderRejected)
    assert sender.phase is Phase.MAIL
    assert isinstance(final451, ServiceUnavailable)
    assert (final451.phase, final451.reply.code, final451.is_transient) == (
        Phase.MESSAGE,
        451,
        True,
    )
    assert isinstance(partial, SendResult)
    assert partial.accepted == ("r4@example.test",)
    assert list(partial.rejected) == ["x4@example.test"]
    assert partial.rejected["x4@example.test"].code == 550
    assert isinstance(nobody, RecipientRejected)
    assert dict(nobody.rejected).keys() == {"r5a@example.test", "r5b@example.test"}
    assert isinstance(data, MessageRejected)
    assert (data.phase, data.reply.code) == (Phase.DATA, 554)
    assert isinstance(final554, MessageRejected)
    assert (final554.phase, final554.reply.code) == (Phase.MESSAGE, 554)

    assert outbox_ids(fake) == [mid(0), mid(1), mid(4)]
    assert fake.messages[2].recipients == ("r4@example.test",)
    assert fake.connections == 1
    assert all(step.exhausted for step in fake.scripts)
    assert fake.protocol_errors == []
    # RSET follows each refused envelope, pipelined with the next envelope.
    lines = [line for line in fake.transcript if line.startswith("C: ")]
    assert lines.count("C: RSET") == 3


def test_stray_354_without_recipients_ends_an_empty_message_then_rsets() -> None:
    fake, recording, submitter = make()
    # The server accepts the recipient, but the client is told it refused it: DATA gets
    # 354 although, as far as the client knows, no recipient was accepted (RFC 2920 §3.1).
    fake.reply("rcpt", "250 2.1.5 STRAY", recipient="r0@example.test")
    recording.rewrite[b"250 2.1.5 STRAY\r\n"] = b"550 5.1.1 No such user\r\n"
    fake.reply("message", "554 5.5.1 No valid recipients")

    outcomes = submitter.send_many([message(0), message(1)], concurrency=1)

    refused, delivered = outcomes
    assert isinstance(refused, RecipientRejected)
    assert refused.recipient == "r0@example.test"
    assert isinstance(delivered, SendResult)
    flights = recording.flights()
    # An empty content end, RSET and the next envelope travel together.
    assert commands(flights[1])[:2] == [b".", b"RSET"]
    assert commands(flights[1])[-1] == b"DATA"
    assert outbox_ids(fake) == [mid(1)]
    assert fake.protocol_errors == []


def test_outgoing_raw_bytes_with_explicit_envelope() -> None:
    fake, _, submitter = make()
    raw = bytes(message(7).as_bytes())
    [result] = submitter.send_many(
        [Outgoing(raw, sender="bounce@example.test", recipients=["z@example.test"])]
    )
    assert isinstance(result, SendResult)
    [sent] = fake.messages
    assert (sent.sender, sent.recipients) == ("bounce@example.test", ("z@example.test",))


# -- BDAT (RFC 3030) -------------------------------------------------------------------------

DOTTED = "Hello,\n.a line that starts with a dot\n..two dots\n.\nBye\n"


def test_chunking_sends_bdat_without_dot_stuffing() -> None:
    fake, recording, submitter = make(FakeCapabilities(chunking=True))
    submitter.send(message(1, body=DOTTED))

    [sent] = fake.messages
    assert sent.chunked
    assert b"\r\n.a line that starts with a dot\r\n..two dots\r\n.\r\nBye\r\n" in sent.raw
    envelope, content = recording.flights()
    assert commands(envelope)[-1].startswith(b"RCPT TO:")
    assert content.startswith(b"BDAT %d LAST\r\n" % len(sent.raw))
    assert b"\r\n..a line" not in content  # no dot-stuffing inside BDAT
    assert not any(line in ("C: DATA", "C: .") for line in fake.transcript)
    assert fake.protocol_errors == []


def test_use_chunking_false_falls_back_to_data() -> None:
    fake, _, submitter = make(FakeCapabilities(chunking=True), use_chunking=False)
    submitter.send(message(1, body=DOTTED))
    [sent] = fake.messages
    assert not sent.chunked
    assert b"\r\n.a line that starts with a dot\r\n..two dots\r\n" in sent.raw
    assert "C: DATA" in fake.transcript
    assert not any(line.startswith("C: BDAT") for line in fake.transcript)
    assert fake.protocol_errors == []


@pytest.mark.parametrize("pipelining", [True, False])
def test_large_content_goes_in_several_bdat_chunks(pipelining: bool) -> None:
    fake, _, submitter = make(FakeCapabilities(chunking=True, pipelining=pipelining))
    body = "".join(f"{n:06d} {'.' if n % 7 == 0 else 'x'}{'y' * 70}\n" for n in range(40_000))
    msg = message(1, body=body)  # about 3 MB
    result = submitter.send(msg)

    [sent] = fake.messages
    assert sent.raw.count(b"\n") > 40_000
    assert result.message_id == mid(1)
    bdats = [line for line in fake.transcript if line.startswith("C: BDAT")]
    assert len(bdats) >= 3
    assert bdats[-1].endswith(" LAST")
    assert not any(line.endswith(" LAST") for line in bdats[:-1])
    assert sum(int(line.split()[2]) for line in bdats) == len(sent.raw)
    assert fake.protocol_errors == []


def test_bdat_last_travels_with_the_next_envelope() -> None:
    fake, recording, submitter = make(FakeCapabilities(chunking=True), window=1)
    submitter.send_many([message(i) for i in range(3)], concurrency=1)
    flights = recording.flights()
    assert len(flights) == 4
    for i, flight in enumerate(flights[1:3]):
        assert flight.startswith(b"BDAT %d LAST\r\n" % len(fake.messages[i].raw))
        assert flight.endswith(
            b"MAIL FROM:<alice@example.test> SIZE=%d\r\nRCPT TO:<r%d@example.test>\r\n"
            % (len(fake.messages[i + 1].raw), i + 1)
        )
    assert outbox_ids(fake) == [mid(0), mid(1), mid(2)]
    assert fake.protocol_errors == []


def test_bdat_refused_sender_sends_no_chunk_and_the_next_message_goes_through() -> None:
    fake, recording, submitter = make(FakeCapabilities(chunking=True), window=1)
    fake.reply("mail", "550 5.7.1 Sender rejected")
    first, second = submitter.send_many([message(0), message(1)], concurrency=1)

    assert isinstance(first, SenderRejected)
    assert isinstance(second, SendResult)
    # The content goes out only after an accepted recipient, so nothing of message 0
    # reached the server: no chunk to discard, and the server's transaction was reset.
    envelope, rset_and_next, content = recording.flights()
    assert b"BDAT" not in envelope + rset_and_next
    assert commands(rset_and_next)[0] == b"RSET"
    assert content.startswith(b"BDAT")
    assert outbox_ids(fake) == [mid(1)]
    assert fake.dropped == []
    assert fake.protocol_errors == []


def test_bdat_all_recipients_refused() -> None:
    fake, recording, submitter = make(FakeCapabilities(chunking=True), window=1)
    fake.reply("rcpt", "550 5.1.1 No such user", recipient="a@example.test")
    fake.reply("rcpt", "550 5.1.1 No such user", recipient="b@example.test")
    first, second = submitter.send_many(
        [message(0, "a@example.test", "b@example.test"), message(1)], concurrency=1
    )
    assert isinstance(first, RecipientRejected)
    assert set(first.rejected) == {"a@example.test", "b@example.test"}
    assert isinstance(second, SendResult)
    assert sum(1 for f in recording.flights() if f.startswith(b"BDAT")) == 1
    assert outbox_ids(fake) == [mid(1)]
    assert fake.protocol_errors == []


@pytest.mark.parametrize("pipelining", [True, False])
def test_refused_bdat_chunk_is_a_data_refusal_and_the_session_goes_on(pipelining: bool) -> None:
    fake, _, submitter = make(FakeCapabilities(chunking=True, pipelining=pipelining))
    fake.reply("data", "452 4.3.1 Insufficient system storage")
    big = message(0, body="z" * 60 + "\n" + ("w" * 76 + "\n") * 20_000)  # > 1 MiB
    first, second = submitter.send_many([big, message(1)], concurrency=1)

    assert isinstance(first, ReplyError)
    assert (first.phase, first.reply.code, first.is_transient) == (Phase.DATA, 452, True)
    assert isinstance(second, SendResult)
    assert outbox_ids(fake) == [mid(1)]
    assert fake.connections == 1
    assert fake.protocol_errors == []


# -- connection loss -------------------------------------------------------------------------


def test_disconnect_after_content_is_unknown_and_the_pipelined_next_is_resent_once() -> None:
    fake, _, submitter = make(retry=Retry(attempts=3, backoff=0))
    fake.reply("message", "250 2.0.0 OK: queued as {id}", times=2)
    fake.disconnect("message")
    outcomes = submitter.send_many([message(i) for i in range(5)], concurrency=1)

    assert [type(o) for o in outcomes] == [
        SendResult,
        SendResult,
        DeliveryUnknown,
        SendResult,
        SendResult,
    ]
    unknown = outcomes[2]
    assert isinstance(unknown, DeliveryUnknown)
    assert unknown.message_id == mid(2)
    # Message 2 is never resent (not even with a Retry policy): it may have been delivered.
    assert [str(m.message["Message-ID"]) for m in fake.dropped] == [mid(2)]
    assert outbox_ids(fake) == [mid(0), mid(1), mid(3), mid(4)]
    assert fake.connections == 2
    # Message 3's envelope had gone out on the first connection, unanswered.
    first = [line for line in fake.streams[0].transcript if line.startswith("C: RCPT")]
    assert "C: RCPT TO:<r3@example.test>" not in first  # the server never read it
    assert fake.protocol_errors == []


def test_timeout_on_final_reply_is_delivery_unknown() -> None:
    fake, _, submitter = make(retry=Retry(attempts=3, backoff=0))
    fake.timeout("message")
    with pytest.raises(DeliveryUnknown) as caught:
        submitter.send(message(1))
    assert caught.value.message_id == mid(1)
    assert [str(m.message["Message-ID"]) for m in fake.dropped] == [mid(1)]
    assert fake.messages == []
    assert fake.connections == 1


def test_timeout_on_final_reply_in_send_many_resends_only_the_next_message() -> None:
    fake, _, submitter = make()
    fake.reply("message", "250 2.0.0 OK: queued as {id}")
    fake.timeout("message")
    outcomes = submitter.send_many([message(i) for i in range(4)], concurrency=1)
    assert [type(o) for o in outcomes] == [SendResult, DeliveryUnknown, SendResult, SendResult]
    assert outbox_ids(fake) == [mid(0), mid(2), mid(3)]
    assert fake.connections == 2


def test_reused_connection_closed_while_idle_is_replaced_transparently() -> None:
    fake, _, submitter = make()  # no Retry policy: the free resend is not a retry
    with submitter:
        submitter.send(message(0))
        fake.disconnect("mail")
        result = submitter.send(message(1))
    assert result.message_id == mid(1)
    assert outbox_ids(fake) == [mid(0), mid(1)]
    assert fake.connections == 2
    assert fake.protocol_errors == []


def test_reused_connection_dead_twice_gives_up_after_one_free_resend() -> None:
    fake, _, submitter = make()
    with submitter:
        submitter.send(message(0))
        fake.disconnect("mail", times=2)
        with pytest.raises(SMTPError):
            submitter.send(message(1))
    assert outbox_ids(fake) == [mid(0)]
    assert fake.connections == 2


@pytest.mark.parametrize("how", ["421", "disconnect"])
def test_server_ending_the_session_between_messages_costs_no_message(how: str) -> None:
    # A per-session limit: the server answers the next MAIL with 421 (or just hangs up)
    # after two messages. Those envelopes were never answered: resent on a new connection.
    fake, _, submitter = make()
    fake.reply("mail", "250 2.1.0 OK", times=2)
    if how == "421":
        fake.reply("mail", "421 4.7.0 Too many messages in this session")
    else:
        fake.disconnect("mail")
    outcomes = submitter.send_many([message(i) for i in range(5)], concurrency=1)
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert outbox_ids(fake) == [mid(i) for i in range(5)]
    assert fake.connections == 2
    assert fake.protocol_errors == []

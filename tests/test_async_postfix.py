"""AsyncSubmitter's BDAT (RFC 3030) against a real CHUNKING server: Postfix on 127.0.0.1.

aiosmtpd offers no CHUNKING, so the asyncio driver's BDAT path is checked against Postfix
(``tests/postfix_server.py``), reading the bytes the client actually wrote through a
recording asyncio transport.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from postfix_server import PostfixServer, unavailable_reason

from smtpkit import AsyncSubmitter, RecipientRejected, Security, SendResult, SMTPError
from smtpkit.config import Endpoint
from smtpkit.drivers import AsyncioTransport, AsyncStream

_REASON = unavailable_reason()

pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"Postfix integration: {_REASON}"),
    pytest.mark.timeout(60),
]

SENDER = "sender@example.test"
REFUSED = "refused@example.test"


class RecordingStream:
    """An asyncio stream that also keeps every write."""

    def __init__(self, inner: AsyncStream) -> None:
        self._inner = inner
        self.writes: list[bytes] = []

    @property
    def peer_address(self) -> str | None:
        return self._inner.peer_address

    @property
    def is_encrypted(self) -> bool:
        return self._inner.is_encrypted

    async def send(self, data: bytes, timeout: float) -> None:
        self.writes.append(bytes(data))
        await self._inner.send(data, timeout)

    async def receive(self, timeout: float) -> bytes:
        return await self._inner.receive(timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        raise AssertionError("no TLS on this loopback test server")

    def abort(self) -> None:
        self._inner.abort()


class RecordingTransport:
    def __init__(self) -> None:
        self.streams: list[RecordingStream] = []

    async def connect(self, endpoint: Endpoint) -> RecordingStream:
        stream = RecordingStream(await AsyncioTransport().connect(endpoint))
        self.streams.append(stream)
        return stream


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    server = PostfixServer(reject={REFUSED: "550 5.1.1 No such user here"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_message(tag: str, to: str = "rcpt@example.test") -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, to, f"async bdat {tag}"
    message["Message-ID"] = f"<async-{tag}@smtpkit.example.test>"
    message.set_content(f"Hello over BDAT from asyncio, {tag}.\n")
    return message


def test_send_many_pipelines_bdat_and_resets_after_a_refusal(postfix: PostfixServer) -> None:
    transport = RecordingTransport()
    messages = [make_message(str(n)) for n in range(4)]
    messages.insert(2, make_message("refused", to=REFUSED))

    async def main() -> list[SendResult | SMTPError]:
        async with AsyncSubmitter(
            postfix.host,
            postfix.port,
            security=Security.NONE,
            timeout=10,
            transport=transport,
            max_connections=1,
            window=1,  # one transaction at a time: the exchange asserted below
        ) as submitter:
            return await submitter.send_many(messages)

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[2], RecipientRejected)
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 2)
    [stream] = transport.streams
    wire = b"".join(stream.writes)
    assert b"\r\nDATA\r\n" not in wire
    assert wire.count(b" LAST\r\n") == 4  # one BDAT LAST per accepted message
    assert b"RSET\r\n" in wire  # after the refused envelope, before the next MAIL
    # The end of each message travelled with the next envelope (one write each).
    assert any(b" LAST\r\n" in w and w.rstrip().endswith(b">") for w in stream.writes)
    expected = {f"<async-{n}@smtpkit.example.test>" for n in range(4)}
    found = {d.message_id for d in postfix.wait_for_deliveries(len(expected))}
    assert expected <= found

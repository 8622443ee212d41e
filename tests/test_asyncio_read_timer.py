"""``AsyncioStream.receive``: one timer handle bounds each wait for data; a timeout is an
``OperationTimeout``, a cancellation stays a cancellation, and neither leaves a reader or a
live timer behind. Real sockets on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import time

import pytest

from smtpkit import OperationTimeout, Security
from smtpkit.config import Endpoint
from smtpkit.transports._asyncio import AsyncioStream, AsyncioTransport

pytestmark = pytest.mark.timeout(30)


async def _pair() -> tuple[AsyncioStream, asyncio.StreamWriter, asyncio.Server]:
    """A connected stream and the server side's writer."""
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def serve(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await AsyncioTransport().connect(
        Endpoint("127.0.0.1", port, security=Security.NONE, connect_timeout=2.0)
    )
    return stream, await asyncio.wait_for(accepted, 2.0), server


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    scheduled = getattr(loop, "_scheduled", [])
    return sum(1 for handle in scheduled if not handle.cancelled())


def test_a_silent_server_times_out_and_the_stream_reads_later_data() -> None:
    async def main() -> None:
        stream, writer, server = await _pair()
        loop = asyncio.get_running_loop()
        before = _live_timers(loop)
        started = time.monotonic()
        with pytest.raises(OperationTimeout):
            await stream.receive(0.2)
        assert 0.15 < time.monotonic() - started < 1.5
        assert stream._protocol.reader is None  # the next read may wait again
        writer.write(b"250 OK\r\n")
        assert await stream.receive(2.0) == b"250 OK\r\n"
        assert _live_timers(loop) == before  # each read's timer is gone with its read
        stream.abort()
        writer.close()
        server.close()

    asyncio.run(main())


def test_a_cancelled_read_raises_cancelled_and_leaves_no_timer() -> None:
    async def main() -> None:
        stream, writer, server = await _pair()
        loop = asyncio.get_running_loop()
        before = _live_timers(loop)
        read = asyncio.ensure_future(stream.receive(30.0))
        await asyncio.sleep(0.05)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert stream._protocol.reader is None
        assert _live_timers(loop) == before
        writer.write(b"220 ready\r\n")
        assert await stream.receive(2.0) == b"220 ready\r\n"
        stream.abort()
        writer.close()
        server.close()

    asyncio.run(main())


def test_buffered_data_is_returned_without_waiting() -> None:
    async def main() -> None:
        stream, writer, server = await _pair()
        writer.write(b"250-a\r\n250 b\r\n")
        await writer.drain()
        for _ in range(100):  # bounded: until the client's protocol has buffered it
            if stream._protocol.buffer:
                break
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        calls: list[float] = []
        original = loop.call_later

        def counting(delay: float, *args: object) -> asyncio.TimerHandle:
            calls.append(delay)
            return original(delay, *args)  # type: ignore[arg-type]

        loop.call_later = counting  # type: ignore[method-assign,assignment]
        assert await stream.receive(2.0) == b"250-a\r\n250 b\r\n"
        loop.call_later = original  # type: ignore[method-assign]
        assert calls == []
        stream.abort()
        writer.close()
        server.close()

    asyncio.run(main())

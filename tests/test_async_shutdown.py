"""Closing an AsyncSubmitter's kept connections never hangs and never does I/O from the collector.

Over a real LocalServer scripted never to answer QUIT (RFC 5321 §4.1.1.10: the client
SHOULD wait for the reply, but a closing application must not hang on it), as for the sync
``Submitter`` (tests/test_shutdown_quit.py):

* ``aclose()`` waits for QUIT replies within one budget for all connections together (the
  command timeout, at most 5 s);
* an AsyncSubmitter garbage-collected without ``aclose()`` - while its loop runs, or after
  its loop closed - closes its sockets (the server sees each disconnect) without QUIT,
  without touching a closed loop, and says so with a ``ResourceWarning`` naming
  ``aclose()`` / ``async with``, as asyncio does for an unclosed transport.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
from email.message import EmailMessage

import pytest

from smtpkit import AsyncSubmitter, Security
from smtpkit.testing import LocalServer
from tests.conftest import ServerFactory, ServerLog

pytestmark = pytest.mark.timeout(30)


def message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", f"n{n}"
    msg.set_content("hello")
    return msg


def silent_on_quit(local_server: ServerFactory, **options: object) -> LocalServer:
    server = local_server(**options)
    server.timeout("quit", times=None)  # reads QUIT, never answers
    return server


async def kept(server: LocalServer, *, timeout: float, connections: int) -> AsyncSubmitter:
    """An AsyncSubmitter keeping ``connections`` idle connections to ``server``."""
    submitter = AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=timeout,
        max_connections=connections,
    )
    await submitter.send(message())  # a real transaction on the first connection
    # The rest, opened while every other one is held: each is a new, logged-in connection.
    held = [await submitter._pool.acquire() for _ in range(connections)]
    for conn in held:
        await submitter._pool.release(conn)
    assert submitter._pool.idle == connections
    return submitter


def asyncio_complaints(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What asyncio logged about the loop: a destroyed pending task, a callback that failed
    ("Event loop is closed"), an unclosed transport."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "asyncio" and r.levelno >= logging.WARNING
    ]


def unclosed_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "AsyncSubmitter" in str(w.message)
    ]


def test_aclose_waits_one_budget_for_all_connections(local_server: ServerFactory) -> None:
    server = silent_on_quit(local_server)
    timeout = 0.6

    async def main() -> float:
        submitter = await kept(server, timeout=timeout, connections=4)
        began = time.monotonic()
        await submitter.aclose()
        took = time.monotonic() - began
        assert submitter._pool.size == 0
        return took

    took = asyncio.run(main())
    assert took < timeout + 0.3, took


def test_cancelled_aclose_stops_waiting_and_aborts_the_rest(
    local_server: ServerFactory, server_log: ServerLog
) -> None:
    """A lifespan shutdown that times out cancels aclose(): no QUIT wait goes on behind it."""
    server = silent_on_quit(local_server)

    async def main() -> float:
        submitter = await kept(server, timeout=3.0, connections=2)
        closing = asyncio.ensure_future(submitter.aclose())
        await asyncio.sleep(0.2)  # both QUITs sent, their replies awaited (3 s budget)
        began = time.monotonic()
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        for _ in range(5):  # the aborted transports close on the loop's next turns
            await asyncio.sleep(0)
        assert submitter._pool.size == 0
        return time.monotonic() - began

    took = asyncio.run(main())
    assert took < 0.5, took
    server_log.wait_closed(2, timeout=1)  # closed now, not at the end of the 3 s budget


def test_dropped_while_loop_runs_closes_sockets_without_quit(
    local_server: ServerFactory, server_log: ServerLog, caplog: pytest.LogCaptureFixture
) -> None:
    server = silent_on_quit(local_server)

    async def main() -> list[warnings.WarningMessage]:
        box = [await kept(server, timeout=2.0, connections=2)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            began = time.monotonic()
            box.clear()
            gc.collect()
            assert time.monotonic() - began < 0.5  # no QUIT wait on the loop's thread
            # The loop closes the aborted transports on its next turns.
            for _ in range(5):
                await asyncio.sleep(0)
        return caught

    caught = asyncio.run(main())
    server_log.wait_closed(2, timeout=2)  # both sockets really closed
    assert "QUIT" not in server_log.verbs()
    assert asyncio_complaints(caplog) == []
    found = unclosed_warnings(caught)
    assert len(found) == 1, [str(w.message) for w in caught]
    assert "aclose()" in found[0]
    assert "async with" in found[0]
    assert "2 open connection" in found[0]


def test_dropped_on_another_thread_closes_through_the_loop(
    local_server: ServerFactory, server_log: ServerLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The collector runs on a worker thread while the loop runs: the aborts are handed to
    the loop (call_soon_threadsafe), never done on the wrong thread."""
    server = silent_on_quit(local_server)

    async def main() -> list[warnings.WarningMessage]:
        box = [await kept(server, timeout=2.0, connections=2)]

        def drop() -> list[warnings.WarningMessage]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                box.clear()
                gc.collect()
            return caught

        caught = await asyncio.to_thread(drop)
        for _ in range(5):
            await asyncio.sleep(0)
        return caught

    caught = asyncio.run(main())
    server_log.wait_closed(2, timeout=2)
    assert "QUIT" not in server_log.verbs()
    assert asyncio_complaints(caplog) == []
    assert len(unclosed_warnings(caught)) == 1, [str(w.message) for w in caught]


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS, Security.NONE])
def test_left_open_when_loop_closes_then_collected(
    local_server: ServerFactory,
    server_log: ServerLog,
    caplog: pytest.LogCaptureFixture,
    security: Security,
) -> None:
    server = silent_on_quit(local_server, security=security)

    async def main() -> AsyncSubmitter:
        return await kept(server, timeout=2.0, connections=2)

    box = [asyncio.run(main())]  # the loop is closed now, the connections still open
    gc.collect()  # garbage of earlier tests, whatever it warns, is not this test's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        box.clear()
        gc.collect()
    server_log.wait_closed(2, timeout=2)
    assert "QUIT" not in server_log.verbs()
    assert asyncio_complaints(caplog) == []
    messages = [str(w.message) for w in caught]
    assert len(unclosed_warnings(caught)) == 1, messages
    # Nothing touched the closed loop, and asyncio had nothing left to complain about.
    assert not [m for m in messages if "Event loop is closed" in m], messages
    assert not [m for m in messages if "unclosed transport" in m], messages


def test_closed_with_aclose_warns_nothing(local_server: ServerFactory) -> None:
    server = local_server()

    async def main() -> None:
        async with AsyncSubmitter(
            server.host,
            server.port,
            security=server.security,
            tls_context=server.client_tls_context(),
            timeout=2.0,
        ) as submitter:
            await submitter.send(message())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert unclosed_warnings(caught) == []

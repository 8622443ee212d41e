"""Close a fixture's ``AsyncSubmitter`` in the event loop its connections belong to.

Job: the pytest plugin's async fixtures are plain (synchronous) fixtures, so they work under
pytest-asyncio, AnyIO's plugin, or ``asyncio.run`` inside a plain test, and require none of
them. But a synchronous fixture's teardown runs after the test's event loop is closed (every
runner closes its loop first), and a connection of a closed loop cannot QUIT: smtpkit can
only close its socket directly (``smtpkit.transports._release``), which a test of what the
server saw would notice as a session ended without QUIT. So:

* :class:`LoopGuardedTransport` wraps the real :class:`~smtpkit.drivers.AsyncTransport`. The
  first connection it opens in an event loop starts a small async generator there, the
  guard. Runners finalize async generators before they close their loop
  (``loop.shutdown_asyncgens()``: ``asyncio.run``, ``asyncio.Runner`` and so pytest-asyncio
  and AnyIO): the guard then awaits the submitter's ``aclose()``, so its connections QUIT
  in their own loop, while it still runs.
* :func:`close_async_submitter`, at the fixture's teardown: for a loop that is still open
  (a module- or session-scoped loop) it closes the guard there, which does the same; then
  ``aclose()`` in a private loop drops whatever is left (a fake's in-memory connections).

Invariants:
    * Nothing here is imported until an async fixture is used (it imports asyncio).
    * Closing never raises and is bounded by :data:`CLOSE_TIMEOUT` per loop.
    * No loop is created, set or closed but the private one :func:`close_async_submitter`
      makes; the policy's current loop is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

from smtpkit.config import Endpoint
from smtpkit.drivers import AsyncStream, AsyncSubmitter, AsyncTransport

__all__ = ["CLOSE_TIMEOUT", "LoopGuardedTransport", "close_async_submitter"]

#: Seconds closing a submitter's connections may take in one loop (QUIT to a local server).
CLOSE_TIMEOUT = 10.0


async def _guard(close: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    """Suspended until its loop finalizes async generators; then closes, in that loop."""
    try:
        yield
    finally:
        # Bounded, and never raising: shutdown_asyncgens() would only log an error.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close(), CLOSE_TIMEOUT)


class LoopGuardedTransport:
    """An :class:`~smtpkit.drivers.AsyncTransport` that arms a guard in each loop it is
    used in, so the submitter is closed before that loop closes (see the module doc)."""

    def __init__(self, inner: AsyncTransport) -> None:
        self._inner = inner
        self._close: Callable[[], Awaitable[None]] | None = None
        # Strong references: a loop tracks its async generators in a WeakSet only.
        self.guards: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    def closes(self, submitter: AsyncSubmitter) -> None:
        """Name the submitter whose ``aclose()`` the guards await."""
        self._close = submitter.aclose

    async def connect(self, endpoint: Endpoint) -> AsyncStream:
        loop = asyncio.get_running_loop()
        if self._close is not None and loop not in self.guards:
            guard = _guard(self._close)
            await anext(guard)  # started: the running loop now finalizes it
            self.guards[loop] = guard
        return await self._inner.connect(endpoint)

    def __repr__(self) -> str:
        return f"LoopGuardedTransport({self._inner!r})"


def close_async_submitter(
    submitter: AsyncSubmitter, transport: LoopGuardedTransport | None = None
) -> None:
    """Close ``submitter`` from synchronous code (a fixture's teardown); never raises.

    Each guarded loop still open and idle gets its guard closed there (its connections
    QUIT); a loop already closed had it closed by its runner. Then ``aclose()`` runs in a
    private loop, which forgets the connections of any other loop and closes them.
    """
    guards = transport.guards if transport is not None else {}
    for loop, guard in list(guards.items()):
        if not loop.is_closed() and not loop.is_running():
            with contextlib.suppress(Exception):
                loop.run_until_complete(guard.aclose())
    guards.clear()
    private = asyncio.new_event_loop()
    try:
        with contextlib.suppress(Exception):
            private.run_until_complete(asyncio.wait_for(submitter.aclose(), CLOSE_TIMEOUT))
    finally:
        private.close()

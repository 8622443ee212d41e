"""The quota calls of the asyncio driver, made without blocking the event loop.

A quota's store may do I/O (SQLite, Redis), and a blocking call on the event loop would
stop every task of the application for its duration (up to the store's timeout when it is
down). So with such a store every call runs in a worker thread of the loop's default
executor: :func:`admit` (a message's place, asked between transactions) awaits it, the
places a refused message gives back are handed to a thread too and awaited at the end of
the call (:func:`quota_settled`), and the lookahead inside an open transaction, which must
answer at once, takes a job only when its place was asked for *ahead* (the gate's
``spawn``: when a message starts, the places of the next ones, one per connection, are
asked for in threads, and the answers are back long before they are needed). A
:class:`MemoryQuotaStore` is called inline: its calls take microseconds and do no I/O.

Invariants:
    * No store call runs on the event loop unless the store is in memory.
    * Every store call handed to a thread by a ``send``/``send_many`` call is finished when
      that call returns (so a given-back place is free for the caller's next call).
    * A cancelled call may leave a place it asked for counted until its window passes (the
      thread finishes the store call on its own), which errs on the safe side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from smtpkit.drivers._batch_state import BatchState
from smtpkit.drivers._common import Job
from smtpkit.drivers._quota_gate import QuotaGate, Verdict

__all__ = ["admit", "quota_settled"]


class _ThreadCalls:
    """A gate's store calls in worker threads, remembered until awaited."""

    def __init__(self, gate: QuotaGate) -> None:
        self._gate = gate
        self._loop = asyncio.get_running_loop()
        self.pending: set[asyncio.Future[object]] = set()
        self._last_ask: asyncio.Future[object] | None = None
        gate.spawn = self.spawn
        gate.defer = self.defer
        gate.companion = self

    def _track(self, future: asyncio.Future[object]) -> asyncio.Future[object]:
        self.pending.add(future)
        future.add_done_callback(self.pending.discard)
        return future

    def spawn(self, job: Job) -> asyncio.Future[object]:
        # Chained: each ask starts when the one before it has answered, so the places
        # asked ahead reach the store in message order and a later message never takes
        # the place an earlier one asked for first (the executor's threads would race).
        previous, self._last_ask = self._last_ask, None
        ask = self._loop.create_task(self._ask_after(previous, job))
        self._last_ask = ask
        return self._track(ask)

    async def _ask_after(self, previous: asyncio.Future[object] | None, job: Job) -> object:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its outcome is its own; only the order matters
        return await self._loop.run_in_executor(None, self._gate.ask, job)

    def defer(self, call: Callable[[], object]) -> None:
        self._track(self._loop.run_in_executor(None, call))


def _calls(gate: QuotaGate) -> _ThreadCalls:
    calls = gate.companion
    if not isinstance(calls, _ThreadCalls):
        calls = _ThreadCalls(gate)
    return calls


async def _ask(gate: QuotaGate, job: Job) -> Verdict:
    if gate.inline:
        return gate.ask(job)
    future = gate.pending(job) or _calls(gate).spawn(job)
    assert isinstance(future, asyncio.Future)
    verdict = await future
    assert isinstance(verdict, Verdict)
    return verdict


async def admit(state: BatchState, job: Job) -> bool:
    """Reserve ``job``'s place before a connection is taken for it; waits (with no
    connection held) for a place that frees up soon.

    Returns:
        True: send it. False: it does not start (its quota refusal is its reported outcome,
        or the batch stopped while it waited).
    """
    gate = state.quota
    if gate is None:
        return True
    while True:  # bounded: each pass waits for a place that frees up, or ends
        wait = state.admitted(job, await _ask(gate, job))
        if wait is None:
            return False
        if wait == 0:
            return True
        await asyncio.sleep(wait)


async def quota_settled(state: BatchState) -> None:
    """End of a call: give back places held by jobs that never started, and wait for
    every store call handed to a thread."""
    gate = state.quota
    if gate is None or gate.inline:
        return
    calls = gate.companion
    gate.close()
    if isinstance(calls, _ThreadCalls):
        while calls.pending:  # bounded: a give-back starts no further call
            await asyncio.gather(*list(calls.pending), return_exceptions=True)
    gate.spawn = gate.defer = gate.companion = None

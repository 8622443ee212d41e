"""The tasks of one ``AsyncSubmitter.send_many`` call: workers, the source's reader, a reporter.

The bookkeeping is :class:`~smtpkit.drivers._batch_state.BatchState`'s (shared with the
threaded driver); this module does the waiting with asyncio. Each worker waits for a job
*between* transactions (a retry backoff, the rate limit, an async source), takes a
connection, and runs the engine's transactions on it with the batch's lookahead, which
never waits. Outcomes go to one reporter task that logs them, calls the hooks and the
caller's ``on_result`` (a function or an ``async def``), so no user code runs in a worker,
where a transaction may be open.

Invariants:
    * A worker never holds a connection while it waits; a connection given back is never
      mid-transaction.
    * An async source is read ahead by at most ``read_ahead`` jobs: memory stays bounded
      for an endless generator.
    * Cancelling ``send_many`` starts no further message: the workers with no transaction
      open are cancelled; those with one finish it (each reply has its deadline), within
      ``deadline`` seconds (the command timeout) all together, after which they are
      cancelled too and their connections aborted (an open message is reported unknown
      after its final ``.``, stale before it). Every outcome queued then reaches
      ``on_result`` before the same ``CancelledError`` propagates. A second cancellation
      stops every wait at once; ``unreported`` then says outcomes may have missed
      ``on_result``. No task of the batch outlives ``run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
    Sized,
)

from smtpkit.drivers._async_io import AsyncConnection, maybe_await
from smtpkit.drivers._async_pool import AsyncPool
from smtpkit.drivers._async_quota import admit
from smtpkit.drivers._batch_state import BatchState
from smtpkit.drivers._common import Item, Job, Outcome
from smtpkit.drivers._tracker import SendTracker
from smtpkit.errors import SMTPError

__all__ = ["AsyncBatch", "OnResult", "Transact"]

OnResult = Callable[[int, Outcome], object | Awaitable[object]]
#: ``transact(conn, first, take, report)``: the submitter's engine run on one connection.
Transact = Callable[
    [AsyncConnection, Job, Callable[[], Job | None] | None, Callable[[Job, Outcome], None]],
    Awaitable[None],
]


def _no_prepare(job: object, conn: object) -> None:
    """What the hooks' start wrapper wraps: the engine prepares the message itself."""


class AsyncBatch:
    """One ``send_many`` call: its state, its source, and the tasks that work on it."""

    def __init__(
        self,
        state: BatchState,
        messages: Iterable[Item] | AsyncIterable[Item],
        *,
        pool: AsyncPool,
        transact: Transact,
        tracker: SendTracker,
        on_result: OnResult | None,
        read_ahead: int,
        deadline: float,
    ) -> None:
        self.state = state
        self._pool = pool
        self._transact = transact
        self._tracker = tracker
        self._start = tracker.prepare(_no_prepare)
        self._on_result = on_result
        self._read_ahead = read_ahead
        self._changed = asyncio.Event()
        self._reports: asyncio.Queue[tuple[int, Outcome] | None] = asyncio.Queue()
        self._source: AsyncIterator[Item] | None = None
        if isinstance(messages, AsyncIterable):
            self._source = aiter(messages)
            state.exhausted = False
        else:
            state.read_from(iter(messages), len(messages) if isinstance(messages, Sized) else None)
        self.callback_error: Exception | None = None
        self._deadline = deadline
        self._busy: set[asyncio.Future[None]] = set()  # workers with a transaction open
        #: A second cancellation cut the wind-down short: some outcomes missed on_result.
        self.unreported = False

    def report(self, index: int, outcome: Outcome) -> None:
        """The state's ``report``: hand a final outcome to the reporter task."""
        self._reports.put_nowait((index, outcome))
        self._changed.set()

    async def run(self, workers: int) -> None:
        """Run the batch to its end (or until cancelled)."""
        feeder = asyncio.ensure_future(self._feed())
        reporter = asyncio.ensure_future(self._report())
        tasks = [asyncio.ensure_future(self._work()) for _ in range(workers)]
        try:
            # Shielded: cancelling send_many must not cancel a worker mid-transaction.
            await asyncio.shield(asyncio.gather(*tasks))
        except asyncio.CancelledError:
            await self._wind_down(tasks, feeder, reporter)
            raise
        except BaseException:
            for task in (*tasks, feeder, reporter):
                task.cancel()
            await asyncio.gather(*tasks, feeder, reporter, return_exceptions=True)
            raise
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        self._reports.put_nowait(None)
        await reporter

    async def _wind_down(
        self,
        tasks: Sequence[asyncio.Future[None]],
        feeder: asyncio.Future[None],
        reporter: asyncio.Future[None],
    ) -> None:
        """``send_many`` was cancelled: start nothing more, let the open transactions end
        (bounded by ``deadline``), then hand every queued outcome to ``on_result``."""
        self.state.stop()
        self._changed.set()
        feeder.cancel()
        for task in tasks:
            if task not in self._busy:
                task.cancel()  # waiting between transactions: nothing of its is on its way
        try:
            # asyncio.wait never cancels what it waits for; each reply has its own deadline
            # too, this bounds them all together.
            await asyncio.wait(tasks, timeout=self._deadline)
            for task in tasks:
                task.cancel()  # still open at the deadline: aborted, reported unknown/stale
            await asyncio.wait([*tasks, feeder])
            self._reports.put_nowait(None)
            await asyncio.shield(reporter)  # every outcome queued reaches on_result
        except asyncio.CancelledError:  # a second cancellation: stop waiting at once
            self.unreported = not reporter.done()
            for task in (*tasks, feeder, reporter):
                task.cancel()
            # Cancelled tasks end at their next step: abandon() reports synchronously.
            await asyncio.gather(*tasks, feeder, reporter, return_exceptions=True)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: a worker's own errors are in state.crash

    # -- the tasks -----------------------------------------------------------------------

    async def _feed(self) -> None:
        """Read an async source ahead into the state's ready queue."""
        state, source = self.state, self._source
        if source is None:
            return
        try:
            while not state.stopped:
                while state.queued >= self._read_ahead and not state.stopped:
                    await self._wait_for_change()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    break
                state.add(item)
                self._changed.set()
        except Exception as error:  # the caller's iterator failed: stop, raise at the end
            state.fail(error)
        finally:
            state.exhausted = True
            self._changed.set()

    async def _report(self) -> None:
        while (item := await self._reports.get()) is not None:
            index, outcome = item
            self._tracker.finished(index, outcome)  # the INFO line and the hooks
            if self._on_result is None or self.callback_error is not None:
                continue
            try:
                await maybe_await(self._on_result(index, outcome))
            except Exception as error:
                self.callback_error = error
                self.state.stop()
                self._changed.set()

    async def _work(self) -> None:
        state, pool = self.state, self._pool
        try:
            while (job := await self._next()) is not None:
                if not await admit(state, job):
                    continue  # refused by the quota (its outcome), or the batch stopped
                try:
                    conn = await pool.acquire()
                except SMTPError as error:
                    state.opening_failed(job, error)
                    self._changed.set()
                    continue
                await self._run_on(conn, job)
        except Exception as error:  # a bug, or the caller's iterable failed: stop, re-raise
            state.fail(error)
            self._changed.set()

    async def _next(self) -> Job | None:
        """The next job, waited for between transactions; ``None`` when the batch is done."""
        state = self.state
        while (got := state.next_job()) is None:
            if state.done:
                return None
            await self._wait_for_change()
        job, wait = got
        if wait > 0:
            await asyncio.sleep(wait)  # a backoff or the rate limit, no connection held
            if state.stopped:
                state.put_back(job)  # never started: it gets no outcome
                return None
        return job

    async def _wait_for_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    async def _run_on(self, conn: AsyncConnection, job: Job) -> None:
        state = self.state
        link = conn.link
        assert link is not None
        self._start(job, conn)
        take = state.lookahead(link, self._pool.state.policy.left(link), self._start)

        def settle(done: Job, outcome: Outcome) -> None:
            state.settle(done, outcome)
            self._changed.set()

        task = asyncio.current_task()
        assert task is not None
        self._busy.add(task)  # no await since the connection was taken: nothing missed
        try:
            await self._transact(conn, job, take, settle)
            await self._pool.release(conn, keep=not state.used(link, take.taken))
        finally:
            self._busy.discard(task)

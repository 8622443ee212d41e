"""The tasks of one ``AsyncSubmitter.send_many`` call: workers, the source's reader, a reporter.

Each worker waits for a job *between* transactions (:meth:`Batch.next_job`), takes a
connection, and runs the engine's transactions on it with the batch's lookahead
(:meth:`Batch.take_now`, which never waits). Outcomes go to one reporter task that logs
them, calls the hooks and the caller's ``on_result`` (a function or an ``async def``), so
no user code runs in a worker, where a transaction may be open.

Invariants:
    * A worker never holds a connection while it waits (for the source, a backoff or the
      rate limit); a connection given back is never mid-transaction.
    * After a refused login no worker opens a connection again: the remaining messages end
      with the same error (``Batch.login_failure``).
    * Cancelling ``send_many`` cancels every task of the batch; the connections in use are
      aborted (their open messages are reported unknown or stale first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from smtpkit._result import SendResult
from smtpkit.drivers._async_batch import Batch, BatchJob
from smtpkit.drivers._async_io import Connection, maybe_await
from smtpkit.drivers._async_pool import AsyncPool
from smtpkit.engine import Pacing
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.hooks import SendTracker

__all__ = ["BatchRun", "Transact", "batch_workers"]

Outcome = SendResult | SMTPError
OnResult = Callable[[int, Outcome], object | Awaitable[object]]
#: ``transact(conn, first, take, report)``: the submitter's engine run on one connection.
Transact = Callable[
    [
        Connection,
        BatchJob,
        Callable[[], BatchJob | None] | None,
        Callable[[BatchJob, Outcome], None],
    ],
    Awaitable[None],
]


def _no_prepare(job: object, conn: object) -> None:
    """What the hooks' start wrapper wraps: the engine prepares the message itself."""


def batch_workers(
    concurrency: object, max_per_second: object, max_per_connection: object, limit: int
) -> int:
    """The number of workers for ``send_many``'s options; refuses wrong values with a hint."""
    for name, value in (("concurrency", concurrency), ("max_per_connection", max_per_connection)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigurationError(f"{name} must be a positive integer or None, got {value!r}")
    if isinstance(concurrency, int) and concurrency > limit:
        raise ConfigurationError(
            f"concurrency={concurrency} is more than max_connections={limit}",
            hint=f"pass max_connections={concurrency} to the AsyncSubmitter, or lower concurrency",
        )
    if max_per_second is not None:
        Pacing(max_per_second)  # type: ignore[arg-type]  # refuses a wrong value itself
    return concurrency if isinstance(concurrency, int) else limit


class BatchRun:
    """The tasks of one ``send_many`` call: workers, the async source's reader, a reporter."""

    def __init__(
        self,
        batch: Batch,
        *,
        pool: AsyncPool,
        transact: Transact,
        tracker: SendTracker,
        on_result: OnResult | None,
        per_connection: int | None,
    ) -> None:
        self._pool = pool
        self._transact = transact
        self._batch = batch
        self._tracker = tracker
        self._start = tracker.prepare(_no_prepare)
        self._on_result = on_result
        self._per_connection = per_connection
        self.callback_error: Exception | None = None

    async def run(self, workers: int) -> None:
        batch = self._batch
        feeder = asyncio.ensure_future(batch.feed())
        reporter = asyncio.ensure_future(self._report())
        tasks = [asyncio.ensure_future(self._work()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in (*tasks, feeder, reporter):
                task.cancel()
            await asyncio.gather(*tasks, feeder, reporter, return_exceptions=True)
            raise
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        batch.reports.put_nowait(None)
        await reporter

    async def _report(self) -> None:
        reports = self._batch.reports
        while (item := await reports.get()) is not None:
            job, outcome = item
            self._tracker.finished(job.index, outcome)  # the INFO line and the hooks
            if self._on_result is None or self.callback_error is not None:
                continue
            try:
                await maybe_await(self._on_result(job.index, outcome))
            except Exception as error:
                self.callback_error = error
                self._batch.stop()

    async def _work(self) -> None:
        batch, pool = self._batch, self._pool
        try:
            while (job := await batch.next_job()) is not None:
                if batch.login_failure is not None:
                    batch.finish(job, batch.login_failure)  # no login again, no retry
                    continue
                try:
                    conn = await pool.acquire()
                except SMTPError as error:
                    batch.opening_failed(error)
                    if batch.login_failure is not None:
                        batch.finish(job, error)
                    else:
                        batch.settle(job, error)
                    continue
                await self._run_on(conn, job)
        except Exception as error:  # a bug, or the caller's iterable failed: stop, re-raise
            batch.fail(error)

    async def _run_on(self, conn: Connection, job: BatchJob) -> None:
        batch = self._batch
        assert conn.link is not None
        left = self._pool.policy.left(conn.link)
        cap = self._per_connection if left is None else min(left, self._per_connection or left)
        taken = 1
        self._start(job, conn)

        def take() -> BatchJob | None:
            nonlocal taken
            if cap is not None and taken >= cap:
                return None
            following = batch.take_now()
            if following is not None:
                taken += 1
                self._start(following, conn)
            return following

        await self._transact(conn, job, take, batch.settle)
        await self._pool.release(conn, keep=self._per_connection is None)

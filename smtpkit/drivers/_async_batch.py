"""``AsyncSubmitter.send_many``: jobs from an iterable or async iterable, over pooled links.

Up to ``concurrency`` worker tasks each take a connection and run the engine's
:class:`~smtpkit.engine.Transactions` on it: the first job is waited for *between*
transactions (the source, a retry backoff, the rate limit); every further job is handed to
the engine's lookahead only if it is ready *now*, so nothing waits inside an open
transaction. Outcomes go to a reporter task that logs them, calls the hooks and the
caller's ``on_result`` - never a worker, which may have a transaction open.

Invariants:
    * Every message taken ends with exactly one outcome; a ``ConnectionStale`` one is sent
      again once at once, other errors as the ``Retry`` policy allows, ``DeliveryUnknown``
      never (unless the policy opts in).
    * After an ``AuthenticationError`` opening a connection (not a token refresh failure)
      no new connection is opened: the remaining messages get the same error, so a wrong
      password costs one login, not one per message (provider lockouts).
    * The first connection is opened alone; the other workers start once it is up, so a
      refused login is tried once, not ``concurrency`` times in parallel.
    * An async source is read ahead by at most a few jobs per worker: memory stays bounded
      for an endless generator.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from email.message import Message

from smtpkit._result import SendResult
from smtpkit._submitter import Outgoing
from smtpkit.engine import Attempts, Pacing
from smtpkit.errors import AuthenticationError, SMTPError
from smtpkit.retry import Retry

__all__ = ["Batch", "BatchJob"]

Outcome = SendResult | SMTPError
Item = Message | Outgoing


@dataclass(eq=False)
class BatchJob:
    """One message of a batch (satisfies the engine's ``Submission``)."""

    index: int
    message: Message | bytes
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    attempts: Attempts = field(default_factory=Attempts)

    @classmethod
    def of(cls, index: int, item: Item, retry: Retry) -> BatchJob:
        if isinstance(item, Outgoing):
            recipients = None if item.recipients is None else tuple(item.recipients)
            return cls(index, item.message, item.sender, recipients, Attempts(retry))
        return cls(index, item, attempts=Attempts(retry))


class Batch:
    """The shared state of one ``send_many`` call; the workers live in the submitter."""

    def __init__(
        self,
        messages: Iterable[Item] | AsyncIterable[Item],
        *,
        retry: Retry,
        pacing: Pacing,
        clock: Callable[[], float],
        read_ahead: int,
    ) -> None:
        self._retry = retry
        self._pacing = pacing
        self._clock = clock
        self._read_ahead = read_ahead
        self._created = 0
        self._ready: deque[BatchJob] = deque()
        self._retries: list[tuple[float, int, BatchJob]] = []  # (ready at, index, job)
        self._sync: Iterator[Item] | None = None
        self._async: AsyncIterator[Item] | None = None
        #: How many messages the caller passed, when it says (a list): for the unsent count.
        self.total = len(messages) if isinstance(messages, Sized) else None
        if isinstance(messages, AsyncIterable):
            self._async = aiter(messages)
        else:
            self._sync = iter(messages)
        self.exhausted = False
        self.in_flight = 0
        self.outcomes: dict[int, Outcome] = {}
        #: Set when the batch must start nothing more (on_result raised, or a crash).
        self.stopped = False
        #: The first AuthenticationError from opening a connection: every later job ends
        #: with it, and no connection is opened again.
        self.login_failure: SMTPError | None = None
        self.crash: BaseException | None = None
        self._changed = asyncio.Event()
        self.reports: asyncio.Queue[tuple[BatchJob, Outcome] | None] = asyncio.Queue()

    # -- the source ----------------------------------------------------------------------

    def _job(self, item: Item) -> BatchJob:
        job = BatchJob.of(self._created, item, self._retry)
        self._created += 1
        return job

    def _pull_sync(self) -> BatchJob | None:
        if self._sync is None or self.exhausted:
            return None
        try:
            item = next(self._sync)
        except StopIteration:
            self.exhausted = True
            self._sync = None
            return None
        return self._job(item)

    async def feed(self) -> None:
        """Read an async source ahead into the ready queue (a task of its own)."""
        source = self._async
        if source is None:
            return
        try:
            while not self.stopped:
                while len(self._ready) >= self._read_ahead and not self.stopped:
                    self._changed.clear()
                    await self._changed.wait()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    break
                self._ready.append(self._job(item))
                self._signal()
        except Exception as error:  # the caller's iterator failed: stop, raise at the end
            self.fail(error)
        finally:
            self.exhausted = True
            self._signal()

    # -- taking jobs ---------------------------------------------------------------------

    def _pop(self, now: float) -> BatchJob | None:
        if self._retries and self._retries[0][0] <= now:
            return heapq.heappop(self._retries)[2]
        if self._ready:
            return self._ready.popleft()
        try:
            return self._pull_sync()
        except Exception as error:  # the caller's iterator failed
            self.fail(error)
            return None

    def take_now(self) -> BatchJob | None:
        """A job that may start *now* (the engine's lookahead), or ``None``."""
        if self.stopped or self.login_failure is not None:
            return None
        now = self._clock()
        job = self._pop(now)
        if job is None:
            return None
        if not self._pacing.admit(now):
            self._ready.appendleft(job)  # not yet: it starts the next transaction instead
            return None
        self.in_flight += 1
        return job

    async def next_job(self) -> BatchJob | None:
        """The next job, waited for between transactions; ``None`` when the batch is done."""
        while True:
            if self.stopped:
                return None
            now = self._clock()
            job = self._pop(now)
            if job is not None:
                self.in_flight += 1
                wait = 0.0 if self.login_failure is not None else self._pacing.reserve(now)
                if wait > 0:
                    await asyncio.sleep(wait)
                return job
            if self.exhausted and not self._retries and self.in_flight == 0:
                return None
            timeout = self._retries[0][0] - now if self._retries else None
            self._changed.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._changed.wait()
            except TimeoutError:
                pass  # a retry is due

    # -- outcomes ------------------------------------------------------------------------

    def settle(self, job: BatchJob, outcome: Outcome) -> None:
        """Record ``job``'s outcome, or queue it for another try (never waits)."""
        delay = job.attempts.next_try(outcome) if isinstance(outcome, SMTPError) else None
        if delay is None:
            self.finish(job, outcome)
            return
        # Not accepted and worth another try; once the batch stopped, it stays unsent.
        self.in_flight -= 1
        if not self.stopped:
            heapq.heappush(self._retries, (self._clock() + delay, job.index, job))
        self._signal()

    def finish(self, job: BatchJob, outcome: Outcome) -> None:
        """Record ``job``'s final outcome and hand it to the reporter."""
        self.in_flight -= 1
        self.outcomes[job.index] = outcome
        self.reports.put_nowait((job, outcome))
        self._signal()

    @property
    def created(self) -> int:
        """How many jobs the source has given so far."""
        return self._created

    def final_outcomes(self) -> list[Outcome | None]:
        """One entry per message known so far, in input order; ``None`` for one not sent."""
        count = max(self._created, self.total or 0)
        return [self.outcomes.get(index) for index in range(count)]

    def opening_failed(self, error: SMTPError) -> None:
        """Opening a connection failed: a refused login ends every remaining job with the
        same error (a token that could not be refreshed is not a refused login)."""
        if isinstance(error, AuthenticationError) and self.login_failure is None:
            self.login_failure = error

    def fail(self, error: BaseException) -> None:
        """Stop the batch: start no further message; ``error`` is raised at the end."""
        if self.crash is None:
            self.crash = error
        self.stopped = True
        self._signal()

    def stop(self) -> None:
        """Start no further message (``on_result`` raised)."""
        self.stopped = True
        self._signal()

    def _signal(self) -> None:
        self._changed.set()

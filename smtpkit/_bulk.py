"""Sending many messages: jobs, a shared queue, worker threads, a rate limiter.

Invariants:
    * Every job ends with exactly one outcome: a ``SendResult`` or an ``SMTPError``.
    * A job is retried only when its error says the server cannot have accepted it (a
      ``ConnectionStale`` once, for free; other errors as the ``Retry`` policy allows);
      ``DeliveryUnknown`` is final unless the policy opts in.
    * The rate limiter spaces message starts by ``1/rate`` seconds across all threads.
    * Every loop is bounded: each job has a finite number of tries, and the queue only
      shrinks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from functools import partial

from smtpkit._pool import SessionPool
from smtpkit._result import SendResult
from smtpkit._session import ConnectionStale, Session
from smtpkit._transaction import Outcome, run_transactions
from smtpkit.errors import SMTPError
from smtpkit.message import PreparedMessage
from smtpkit.retry import Retry

__all__ = ["Job", "JobQueue", "RateLimiter", "deliver"]


@dataclass
class Job:
    """One message to send and its retry state."""

    index: int
    message: Message | bytes
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    retry: Retry = field(default_factory=Retry.never)
    stale_retried: bool = False

    def next_try(self, error: SMTPError) -> float | None:
        """Seconds to wait before trying again after ``error``, or ``None`` if final."""
        if isinstance(error, ConnectionStale) and not self.stale_retried:
            # The connection died before the server accepted anything: resend at once.
            self.stale_retried = True
            return 0.0
        if self.retry.can_retry(error):
            self.retry = self.retry.increment(error)
            return self.retry.delay()
        return None


class RateLimiter:
    """Spaces message starts at most ``rate`` per second, shared by all threads."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 0.0 if not rate else 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Block until the caller may start the next message."""
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)


class JobQueue:
    """Jobs waiting to be sent, shared by the workers."""

    def __init__(self, jobs: list[Job], limiter: RateLimiter) -> None:
        self._jobs = deque(jobs)
        self._lock = threading.Lock()
        self._limiter = limiter

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def pop(self) -> Job | None:
        """The next job, or ``None`` when the queue is empty."""
        with self._lock:
            return self._jobs.popleft() if self._jobs else None

    def push_front(self, job: Job) -> None:
        """Put a job back to be tried next."""
        with self._lock:
            self._jobs.appendleft(job)

    def feed(self, cap: int | None) -> Iterator[Job]:
        """Jobs for one session: at most ``cap`` of them, each after the rate limiter."""
        taken = 0
        while cap is None or taken < cap:
            job = self.pop()
            if job is None:
                return
            self._limiter.wait()
            taken += 1
            yield job


def _swap(
    prepare: Callable[[Job, Session], PreparedMessage], session: Session, job: Job
) -> PreparedMessage:
    return prepare(job, session)


def deliver(
    jobs: list[Job],
    *,
    pool: SessionPool,
    prepare: Callable[[Job, Session], PreparedMessage],
    workers: int,
    limiter: RateLimiter,
    per_connection: int | None,
    on_result: Callable[[int, Outcome], None] | None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome]:
    """Send every job over the pool with ``workers`` threads; outcomes in input order."""
    outcomes: list[Outcome | None] = [None] * len(jobs)
    queue = JobQueue(jobs, limiter)
    report_lock = threading.Lock()

    def finish(job: Job, outcome: Outcome) -> None:
        outcomes[job.index] = outcome
        if on_result is not None:
            with report_lock:
                on_result(job.index, outcome)

    def settle(job: Job, outcome: Outcome) -> None:
        if isinstance(outcome, SendResult):
            finish(job, outcome)
            return
        delay = job.next_try(outcome)
        if delay is None:
            finish(job, outcome)
            return
        if delay:
            sleep(delay)
        queue.push_front(job)

    def work() -> None:
        while queue:
            try:
                session = pool.acquire()
            except SMTPError as error:
                job = queue.pop()
                if job is not None:
                    settle(job, error)
                continue
            spent = False
            try:
                feed = queue.feed(per_connection)
                for job, outcome in run_transactions(
                    session, feed, partial(_swap, prepare, session)
                ):
                    settle(job, outcome)
                spent = per_connection is not None
            finally:
                if spent:
                    pool.discard(session)
                else:
                    pool.release(session)

    if workers <= 1:
        work()
    else:
        threads = [
            threading.Thread(target=work, name=f"smtpkit-send-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    missing = [index for index, outcome in enumerate(outcomes) if outcome is None]
    if missing:  # pragma: no cover - a bug guard: never report a message as silently lost
        raise AssertionError(f"no outcome recorded for messages {missing}")
    return [outcome for outcome in outcomes if outcome is not None]

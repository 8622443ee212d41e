"""Sending many messages: jobs, a shared queue, worker threads, a rate limiter.

Invariants:
    * Every job ends with exactly one outcome: a ``SendResult`` or an ``SMTPError``.
    * A job is retried only when its error says the server cannot have accepted it (a
      ``ConnectionStale`` once, for free; other errors as the ``Retry`` policy allows);
      ``DeliveryUnknown`` is final unless the policy opts in.
    * After a refused login (:func:`~smtpkit._pool.ends_logins`) the batch opens no new
      connection: every job not yet started ends with that same error, without a retry
      (logging in again only prolongs a provider's lockout).
    * The rate limiter spaces message starts by ``1/rate`` seconds across all threads.
    * Nothing waits inside an open transaction (after MAIL, before the final reply): a rate
      limit or a retry backoff is waited by a worker that holds no session, before it takes
      one; the next message is pulled into a transaction's pipeline only when it may start
      now. A message takes one rate slot, on its first try; retries do not take another.
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

from smtpkit._message_headers import header_recipients, header_sender, topmost_resent_block
from smtpkit._pool import SessionPool, ends_logins
from smtpkit._result import SendResult
from smtpkit._session import Session
from smtpkit._transaction import Outcome, run_transactions
from smtpkit.errors import ConnectionStale, MessageError, SMTPError
from smtpkit.message import Envelope, PreparedMessage
from smtpkit.providers import Preset
from smtpkit.retry import Retry

__all__ = ["Job", "JobQueue", "RateLimiter", "deliver", "recipient_cap_error"]


@dataclass
class Job:
    """One message to send and its retry state."""

    index: int
    message: Message | bytes
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    retry: Retry = field(default_factory=Retry.never)
    stale_retried: bool = False
    #: Its rate-limit slot was taken (on the first try); retries need none.
    started: bool = False
    #: The error of its last try, while it waits to be tried again.
    last_error: SMTPError | None = None
    #: Seconds to wait before the next try (a Retry backoff), waited with no session held.
    wait: float = 0.0

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


def recipient_cap_error(job: Job, preset: Preset | None) -> MessageError | None:
    """The error for a message with more recipients than ``preset`` allows, else ``None``.

    Pure: it reads the envelope the way message preparation does (explicit recipients, else
    To/Cc/Bcc or the newest Resent-* block; repeats counted once), so it runs before any
    connection is made. Past the limit a provider refuses the extra RCPTs (Gmail: ``452
    4.5.3``) and the message reaches only some recipients; refusing it whole is clearer.
    A message whose envelope cannot be read is left to preparation, which reports why.
    """
    allowed = preset.limits.recipients_per_message if preset is not None else None
    if preset is None or allowed is None:
        return None
    message, sender, recipients = job.message, job.sender, job.recipients
    try:
        if recipients is None or sender is None:
            if isinstance(message, bytes):
                return None  # raw bytes need an explicit envelope; preparation says so
            block = topmost_resent_block(message)
            if sender is None:
                sender = header_sender(message, block)
            if recipients is None:
                recipients = tuple(header_recipients(message, block))
        count = len(Envelope(sender, recipients).recipients)
    except Exception:  # preparation reads it again, and says what is wrong
        return None
    if count <= allowed:
        return None
    return MessageError(
        f"the message has {count} recipients; {preset.display_name} accepts at most "
        f"{allowed} per message",
        hint="send it in batches (e.g. one message per recipient with send_many)",
    )


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
        """Take the next start slot and block until it comes. Never call it with a
        transaction open: the server would wait for the client (and may time out)."""
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            self._sleep(start - now)

    def try_start(self) -> bool:
        """Take a start slot only if one is free now; never blocks."""
        if not self._interval:
            return True
        with self._lock:
            now = self._clock()
            if now < self._next:
                return False
            self._next = now + self._interval
            return True


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

    def pop_startable(self) -> Job | None:
        """The next job if it may start *now*: no backoff pending, and a rate slot free
        (or already taken on an earlier try). Never blocks: it is called with a
        transaction open, to pipeline the next message behind the current one."""
        with self._lock:
            if not self._jobs:
                return None
            job = self._jobs[0]
            if job.wait > 0 or not (job.started or self._limiter.try_start()):
                return None
            job.started = True
            return self._jobs.popleft()

    def push_front(self, job: Job) -> None:
        """Put a job back to be tried next."""
        with self._lock:
            self._jobs.appendleft(job)

    def feed(self, first: Job, cap: int | None, stopped: Callable[[], bool]) -> Iterator[Job]:
        """Jobs for one session: ``first``, then those that may start at once, ``cap`` in all.

        The feed ends at the first job that would have to wait (a backoff, the rate limit):
        the session then goes back to the pool when its transaction ends, and that job is
        waited for by a worker holding no session. It also ends once ``stopped()``.
        """
        yield first
        taken = 1
        while (cap is None or taken < cap) and not stopped():
            job = self.pop_startable()
            if job is None:
                return
            taken += 1
            yield job


def _cap(session: Session, pool: SessionPool, per_connection: int | None, used: int) -> int | None:
    """How many more jobs one session may take: ``per_connection`` (less the ``used`` jobs
    this batch already gave it) and the pool's ``max_messages_per_connection`` (less what
    the session already sent), whichever is smaller; without this a long run would ignore
    the pool's cap until the session returns.
    """
    if per_connection is not None:
        per_connection = max(1, per_connection - used)
    cap = pool.limits.max_messages_per_connection
    if cap is None:
        return per_connection
    left = max(1, cap - session.messages_sent)
    return left if per_connection is None else min(per_connection, left)


def _tracked(jobs: Iterator[Job], taken: list[Job]) -> Iterator[Job]:
    """Yield ``jobs``, keeping those without an outcome yet in ``taken``."""
    for job in jobs:
        taken.append(job)
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
    cancelled: Callable[[], bool] | None = None,
    precheck: Callable[[Job], SMTPError | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Outcome | None]:
    """Send every job over the pool with ``workers`` threads; outcomes in input order.

    ``on_result`` is called as each job ends, on the worker thread and possibly with a
    transaction open, so it must not block (the Submitter passes one that queues the call
    for a reporting thread). Once ``cancelled()`` is true, no job is started any more; a
    job that then never ended has the error of its last try as its outcome, or ``None``
    when it was never tried (only then is an outcome ``None``). ``precheck(job)`` runs
    before any wait or connection for the job; an error it returns is the job's outcome.
    """
    delivery = _Delivery(
        jobs,
        pool=pool,
        prepare=prepare,
        limiter=limiter,
        per_connection=per_connection,
        on_result=on_result,
        cancelled=cancelled or (lambda: False),
        precheck=precheck,
        sleep=sleep,
    )
    if workers <= 1:
        delivery.run_worker()
    else:
        threads = [
            threading.Thread(target=delivery.run_worker, name=f"smtpkit-send-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if delivery.crash is not None:
        # A bug: surface it, never an incomplete list of outcomes.
        raise delivery.crash
    outcomes = delivery.outcomes
    missing = [index for index, outcome in enumerate(outcomes) if outcome is None]
    if missing and not delivery.stopped():  # pragma: no cover - a bug guard
        raise AssertionError(f"no outcome recorded for messages {missing}")
    for job in jobs:
        if outcomes[job.index] is None:
            outcomes[job.index] = job.last_error
    return outcomes


class _Delivery:
    """The state one :func:`deliver` call shares between its worker threads."""

    def __init__(
        self,
        jobs: list[Job],
        *,
        pool: SessionPool,
        prepare: Callable[[Job, Session], PreparedMessage],
        limiter: RateLimiter,
        per_connection: int | None,
        on_result: Callable[[int, Outcome], None] | None,
        cancelled: Callable[[], bool],
        precheck: Callable[[Job], SMTPError | None] | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.outcomes: list[Outcome | None] = [None] * len(jobs)
        self._queue = JobQueue(jobs, limiter)
        self._limiter = limiter
        self._pool = pool
        self._prepare = prepare
        self._per_connection = per_connection
        self._on_result = on_result
        self._cancelled = cancelled
        self._precheck = precheck
        self._sleep = sleep
        self._lock = threading.Lock()
        #: Jobs this batch gave each session (for ``per_connection``).
        self._used: dict[Session, int] = {}
        #: The first unexpected exception a worker raised; the others then stop.
        self.crash: BaseException | None = None
        #: The refused login that ends every job not yet started (no further login).
        self.login_failure: SMTPError | None = None

    def stopped(self) -> bool:
        """True once no further job may start: a worker crashed, or the caller cancelled."""
        return self.crash is not None or self._cancelled()

    def run_worker(self) -> None:
        """:meth:`work`, recording an unexpected exception so the caller can re-raise it."""
        try:
            self.work()
        except BaseException as error:  # re-raised by deliver() after join
            with self._lock:
                if self.crash is None:
                    self.crash = error

    def finish(self, job: Job, outcome: Outcome) -> None:
        self.outcomes[job.index] = outcome
        if self._on_result is not None:
            self._on_result(job.index, outcome)

    def settle(self, job: Job, outcome: Outcome) -> None:
        if isinstance(outcome, SendResult):
            self.finish(job, outcome)
            return
        delay = job.next_try(outcome)
        if delay is None:
            self.finish(job, outcome)
            return
        job.wait = delay
        job.last_error = outcome
        self._queue.push_front(job)

    def work(self) -> None:
        """One worker: take a job, wait (holding no session) until it may start, take a
        session, send it and whatever may follow at once on that session; repeat."""
        pool, queue = self._pool, self._queue
        while not self.stopped():  # bounded: every pass ends a job or spends one of its tries
            job = queue.pop()
            if job is None:
                return
            if self.login_failure is not None:
                self.finish(job, self.login_failure)
                continue
            refusal = self._precheck(job) if self._precheck and not job.started else None
            if refusal is not None:  # refused before any wait or connection
                self.finish(job, refusal)
                continue
            # Waits happen here, with no session held and no transaction open (DESIGN 10).
            if job.wait > 0:
                self._sleep(job.wait)
                job.wait = 0.0
            if not job.started:
                self._limiter.wait()
                job.started = True
            if self.stopped():
                queue.push_front(job)  # never started: it gets no outcome
                return
            try:
                session = pool.acquire()
            except SMTPError as error:
                if ends_logins(error):
                    with self._lock:
                        if self.login_failure is None:
                            self.login_failure = error
                    self.finish(job, error)
                else:
                    self.settle(job, error)
                continue
            spent = True
            try:
                spent = self._run(session, job)
            finally:
                if spent:
                    self._used.pop(session, None)
                    pool.discard(session)
                else:
                    pool.release(session)

    def _run(self, session: Session, first: Job) -> bool:
        """Send ``first`` and the jobs that may follow it at once on ``session``; True
        when the session must be closed afterwards."""
        taken: list[Job] = []
        used = self._used.get(session, 0)
        cap = _cap(session, self._pool, self._per_connection, used)
        feed = self._queue.feed(first, cap, self.stopped)
        try:
            for job, outcome in run_transactions(
                session, _tracked(feed, taken), partial(_swap, self._prepare, session)
            ):
                taken[:] = [other for other in taken if other is not job]
                self.settle(job, outcome)
                used += 1
        except SMTPError as error:
            # A failure the transaction driver did not turn into outcomes (a local
            # protocol error): the session's state is unknown, so it is closed, and every
            # job taken for it ends with that error rather than silently.
            for job in taken:
                self.finish(job, error)
            return True
        self._used[session] = used
        return self._per_connection is not None and used >= self._per_connection

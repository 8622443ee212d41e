"""The bookkeeping of one batch, shared by both drivers: which job next, retries, outcomes.

A :class:`BatchState` decides and records; it never waits, sleeps or locks. The threaded
driver calls it under its batch lock and waits on a condition; the asyncio driver calls it
from its tasks and waits on an event. What it decides:

* :meth:`next_job`: the next job to start *between* transactions, with the wait its caller
  must do first with no connection held (a retry's backoff, or the rate limit); ``None``
  when none is ready;
* :meth:`lookahead`: the engine's ``TakeNext`` for one connection - a job only if it may
  start *now* (no backoff pending, a rate slot free), within the connection's caps;
* :meth:`settle`: an outcome is final, or the job goes back for another try (``Attempts``);
* :meth:`opening_failed`: a refused login ends every remaining job with the same error;
* :meth:`admitted` and the lookahead: the quota's place for each try, asked for before a
  connection is taken or the job is handed to the engine (:mod:`~smtpkit.drivers._quota_gate`);
* :meth:`results`: ``send_many``'s answer (:mod:`~smtpkit.drivers._batch_results`).

Invariants:
    * Every job handed out ends with exactly one outcome (reported through ``report``),
      except one that waits for a retry when the batch stops: its outcome is then the error
      of its last try (``None`` when it was never tried).
    * A job takes one rate slot, on its first try; retries take none.
    * After a refused login (:func:`~smtpkit.drivers._common.ends_logins`) no job starts a
      connection again: each ends with that error, without a retry (logging in again only
      prolongs a provider's lockout).
    * A preset's recipients-per-message cap is checked before a job waits or connects
      (:mod:`~smtpkit.drivers._recipient_cap`).
    * A quota refusal that no short wait cures (``QuotaExceeded`` beyond ``MAX_WAIT``,
      ``QuotaStoreUnavailable``) ends its job, and every job whose place was not asked for
      yet ends with the same error: the batch stops taking messages for an exhausted
      account.
    * Nothing here waits: a driver may call every method with a transaction open.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator

from smtpkit.drivers._batch_results import batch_results, outcomes_in_order
from smtpkit.drivers._common import Item, Job, Outcome, ends_logins
from smtpkit.drivers._quota_gate import QuotaGate, Verdict
from smtpkit.drivers._recipient_cap import recipient_cap_error
from smtpkit.engine import Link, Pacing
from smtpkit.engine._result import SendResult
from smtpkit.errors import QuotaExceeded, QuotaStoreUnavailable, SMTPError
from smtpkit.providers import Preset
from smtpkit.retry import Retry

__all__ = ["BatchState", "recipient_cap_error"]


class BatchState:
    """The jobs, retries and outcomes of one ``send``/``send_many`` call.

    Args:
        retry: the ``Retry`` policy each job starts with.
        pacing: the rate limit (shared with other calls of the same submitter).
        clock: monotonic seconds.
        report: ``report(index, outcome)`` with each job's final outcome (must not block).
        preset: the provider preset, for the recipients-per-message cap.
        per_connection: ``send_many``'s ``max_per_connection``.
        cancelled: the batch must start nothing more once this says so (``on_result``
            raised, in a reporter the state does not own).
        quota: the quota's calls for this batch (``None``: no quota).
    """

    def __init__(
        self,
        *,
        retry: Retry,
        pacing: Pacing,
        clock: Callable[[], float],
        report: Callable[[int, Outcome], None],
        preset: Preset | None = None,
        per_connection: int | None = None,
        cancelled: Callable[[], bool] | None = None,
        quota: QuotaGate | None = None,
    ) -> None:
        self._retry = retry
        self._pacing = pacing
        self._clock = clock
        self._report = report
        self._preset = preset
        self._per_connection = per_connection
        self._cancelled = cancelled
        self._source: Iterator[Item] | None = None
        self._ready: deque[Job] = deque()  # a job to try again goes first
        self._last_errors: dict[int, SMTPError] = {}
        self._paced = pacing.limited
        self._used: dict[Link, int] = {}  # jobs this batch gave each connection
        self.created = 0
        #: How many messages the caller passed, when it says: for the unsent count.
        self.total: int | None = None
        #: The source has no more jobs (a driver feeding jobs sets it when done).
        self.exhausted = True
        self.in_flight = 0
        self.outcomes: dict[int, Outcome] = {}
        #: The refused login every later job ends with.
        self.login_failure: SMTPError | None = None
        #: What stopped the batch with an exception (a bug, or the caller's iterator).
        self.crash: BaseException | None = None
        self._stopped = False
        self.quota = quota
        #: The quota refusal every later job ends with (the account is out of quota).
        self.quota_refusal: SMTPError | None = None

    # -- the source ----------------------------------------------------------------------

    def read_from(self, source: Iterator[Item], total: int | None = None) -> None:
        """Take jobs from ``source`` as they are needed."""
        self._source = source
        self.total = total
        self.exhausted = False

    def add(self, item: Item) -> Job:
        """Queue a job for ``item`` (a driver reading an async source ahead)."""
        job = Job.of(self.created, item, self._retry)
        self.created += 1
        self._ready.append(job)
        return job

    def add_job(self, job: Job) -> None:
        """Queue a job built by the caller (``send``'s one message)."""
        self.created = max(self.created, job.index + 1)
        self._ready.append(job)

    @property
    def queued(self) -> int:
        """Jobs waiting in the ready queue (not counting the source or retries)."""
        return len(self._ready)

    def _pull(self) -> Job | None:
        if self._source is None:
            return None
        try:
            item = next(self._source)
        except StopIteration:
            self._source = None
            self.exhausted = True
            return None
        except Exception as error:  # the caller's iterator failed: stop, raise at the end
            self._source = None
            self.exhausted = True
            self.fail(error)
            return None
        job = Job.of(self.created, item, self._retry)
        self.created += 1
        return job

    def _pop(self) -> Job | None:
        """The next job that passes the pre-connection checks (others end here)."""
        while True:
            job = self._ready.popleft() if self._ready else self._pull()
            if job is None:
                return None
            self.in_flight += 1
            if job.started or self._preset is None:
                return job
            refusal = recipient_cap_error(job, self._preset)
            if refusal is None:
                return job
            self.finish(job, refusal)  # refused before any wait or connection

    # -- handing out ---------------------------------------------------------------------

    @property
    def stopped(self) -> bool:
        """No further job may start (``on_result`` raised, or the batch crashed)."""
        if not self._stopped and self._cancelled is not None and self._cancelled():
            self._stopped = True
        return self._stopped

    @property
    def done(self) -> bool:
        """Nothing is left to start and nothing is on its way."""
        if self.stopped:
            return True
        return self.exhausted and not self._ready and self.in_flight == 0

    def next_job(self) -> tuple[Job, float] | None:
        """The next job to start and the seconds to wait first (a retry's backoff, or the
        rate limit), or ``None`` when none is ready now. Called between transactions."""
        while not self.stopped:
            job = self._pop()
            if job is None:
                return None
            if self.login_failure is not None:
                self.finish(job, self.login_failure)  # no login again, no retry
                continue
            if self.quota_refusal is not None and not self._asked(job):
                self.finish(job, self.quota_refusal)  # reported, never skipped silently
                continue
            if job.started:
                wait, job.wait = job.wait, 0.0
            else:
                wait = self._pacing.reserve(self._clock()) if self._paced else 0.0
                job.started = True
            return job, wait
        return None

    def put_back(self, job: Job) -> None:
        """A job handed out by :meth:`next_job` will not start after all (the batch
        stopped while its caller waited): it stays unsent."""
        self.in_flight -= 1
        self._ready.appendleft(job)

    def lookahead(
        self, link: Link, left: int | None, start: Callable[[Job, object], object]
    ) -> TakeNow:
        """The engine's ``TakeNext`` for one run on ``link`` after its first job.

        Args:
            left: messages the pool's policy still allows on ``link`` (``None``: no cap).
            start: ``start(job, None)`` for each job handed out (the start hooks).
        """
        per = self._per_connection
        cap = left
        if per is not None:
            room = max(1, per - self._used.get(link, 0))
            cap = room if cap is None else min(cap, room)
        return TakeNow(self, cap, start)

    def take_now(self) -> Job | None:
        """A job that may start *now*, or ``None``; never waits."""
        cancelled = self._cancelled
        if self._stopped or self.login_failure is not None or (cancelled and cancelled()):
            return None
        if self._ready and self._ready[0].wait > 0:
            return None  # a backoff is due first, waited with no transaction open
        job = self._pop()
        if job is None:
            return None
        if not job.started:
            if self._paced and not self._pacing.admit(self._clock()):
                self.in_flight -= 1
                self._ready.appendleft(job)  # not yet: it starts the next transaction
                return None
            job.started = True
        if self.quota is not None and not self._take_place(job, self.quota):
            return None
        return job

    # -- the quota (smtpkit.drivers._quota_gate) -----------------------------------------

    def admitted(self, job: Job, verdict: Verdict) -> float | None:
        """After ``quota.ask(job)`` for a job :meth:`next_job` handed out (no connection held).

        Returns:
            ``0.0``: start it. A positive number: wait that long (a place frees up soon),
            then ask again. ``None``: it does not start: its refusal is its outcome, or the
            batch stopped while it waited (it stays unsent).
        """
        refusal = verdict.refusal
        if refusal is None:
            self._ask_ahead()
            return 0.0
        wait = QuotaGate.wait_for(refusal)
        if wait is None:
            self._refused(job, refusal)
        elif not self.stopped:
            return wait
        else:
            self.put_back(job)
        return None

    def _take_place(self, job: Job, gate: QuotaGate) -> bool:
        """The quota's place for a job the lookahead is about to hand out; never waits."""
        if self.quota_refusal is None or gate.asked(job):
            verdict = gate.ask(job) if gate.inline else gate.peek_ready(job)
            if verdict is None:
                gate.ask_ahead(job)  # its answer is not back yet
            elif verdict.refusal is None:
                self._ask_ahead()
                return True
            elif gate.wait_for(verdict.refusal) is None:
                self._refused(job, verdict.refusal)
                return False
        # Not now (a short wait, an answer not back, or the account refused): the next
        # transaction takes it (next_job), with no transaction open.
        self.in_flight -= 1
        self._ready.appendleft(job)
        return False

    def _asked(self, job: Job) -> bool:
        """Whether ``job`` holds a place, or its ask is out: its own verdict decides."""
        return self.quota is not None and self.quota.asked(job)

    def _refused(self, job: Job, refusal: SMTPError) -> None:
        quota_error = isinstance(refusal, QuotaExceeded | QuotaStoreUnavailable)
        if quota_error and self.quota_refusal is None:
            # About the account: every job not yet asked for ends with it (one asked ahead
            # keeps its own verdict: asks made at once may come back in any order).
            self.quota_refusal = refusal
        self.finish(job, refusal)

    def _ask_ahead(self) -> None:
        """A job is starting: ask for the places of the next ones (up to the gate's
        depth) now, in worker threads, so the lookahead finds them ready (a store that
        does I/O)."""
        gate = self.quota
        if gate is None or gate.spawn is None or self.quota_refusal is not None:
            return
        ready = self._ready
        while len(ready) < gate.depth and (pulled := self._pull()) is not None:
            ready.append(pulled)
        for following in itertools.islice(ready, gate.depth):
            if following.wait <= 0:  # a retry's backoff comes first: it asks when due
                gate.ask_ahead(following)

    def used(self, link: Link, count: int) -> bool:
        """Record ``count`` jobs run on ``link``; whether it reached ``max_per_connection``."""
        used = self._used[link] = self._used.get(link, 0) + count
        return self._per_connection is not None and used >= self._per_connection

    # -- outcomes ------------------------------------------------------------------------

    def settle(self, job: Job, outcome: Outcome) -> None:
        """Record ``job``'s outcome, or queue it for another try (never waits)."""
        delay = None if isinstance(outcome, SendResult) else job.next_try(outcome)
        if delay is None:
            self.finish(job, outcome)
            return
        assert isinstance(outcome, SMTPError)
        if self.quota is not None:
            self.quota.settle(job, outcome)  # this try's place; the next try asks again
        # Not accepted and worth another try, first in line; once the batch stopped, it
        # stays unsent.
        self.in_flight -= 1
        job.last_error = self._last_errors[job.index] = outcome
        job.wait = delay
        if not self.stopped:
            self._ready.appendleft(job)

    def finish(self, job: Job, outcome: Outcome) -> None:
        """Record ``job``'s final outcome and report it."""
        if self.quota is not None:
            self.quota.settle(job, outcome)
        self.in_flight -= 1
        self.outcomes[job.index] = outcome
        if job.last_error is not None:
            del self._last_errors[job.index]
        self._report(job.index, outcome)

    def opening_failed(self, job: Job, error: SMTPError) -> None:
        """Opening a connection for ``job`` failed: a refused login ends it and every
        later job; anything else is settled as a try."""
        if ends_logins(error):
            if self.login_failure is None:
                self.login_failure = error
            self.finish(job, error)
        else:
            self.settle(job, error)

    def fail(self, error: BaseException) -> None:
        """Stop the batch: start no further message; ``error`` is raised at the end."""
        if self.crash is None:
            self.crash = error
        self._stopped = True

    def stop(self) -> None:
        """Start no further message (``on_result`` raised)."""
        self._stopped = True

    def final_outcomes(self) -> list[Outcome | None]:
        """One entry per message known, in input order; ``None`` for one never tried."""
        count = max(self.created, self.total or 0)
        return outcomes_in_order(self.outcomes, self._last_errors, count)

    def results(self, callback_error: BaseException | None) -> list[Outcome]:
        """``send_many``'s answer: one outcome per message, in input order
        (:func:`~smtpkit.drivers._batch_results.batch_results`, which says what it raises)."""
        return batch_results(self.final_outcomes(), self.crash, callback_error)


class TakeNow:
    """``TakeNext`` for one run on one connection: jobs that may start now, up to a cap."""

    __slots__ = ("_cap", "_start", "_state", "taken")

    def __init__(
        self, state: BatchState, cap: int | None, start: Callable[[Job, object], object]
    ) -> None:
        self._state = state
        self._cap = cap
        self._start = start
        self.taken = 1  # the run's first job

    def __call__(self) -> Job | None:
        if self._cap is not None and self.taken >= self._cap:
            return None
        job = self._state.take_now()
        if job is not None:
            self.taken += 1
            self._start(job, None)
        return job

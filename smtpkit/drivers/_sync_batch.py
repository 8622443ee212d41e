"""The threads of one ``Submitter.send``/``send_many`` call: workers over the pool.

Each worker waits for a job *between* transactions (:meth:`BatchState.next_job`: a retry
backoff, the rate limit), takes a connection, and runs the engine's transactions on it with
the batch's lookahead (:meth:`BatchState.lookahead`, which never waits). ``send`` is the
one-job, one-worker case on the calling thread, so there is a single send path.

Invariants:
    * A worker never holds a connection while it waits; a connection given back is never
      mid-transaction (a run that stops aborts its connection).
    * With several workers every state change happens under the batch's lock and wakes the
      waiting workers; one worker (``send``, ``concurrency=1``) is the only thread that
      touches the state, and takes no lock. No user code runs under the lock (the hooks and
      ``on_result`` run on the tracker's reporting thread, or, for ``send``, after the run).
    * An unexpected exception in a worker stops the batch: the others start nothing more,
      and :func:`run_batch` raises it after every worker has ended.
    * An interrupt of the calling thread (Ctrl-C: ``KeyboardInterrupt``) while workers run
      stops the batch the same way: no message starts after it, and it propagates once no
      transaction is open, so every message on its way has its outcome (the reply, or
      ``DeliveryUnknown``). A connection whose run raised is aborted and its place in the
      pool freed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from smtpkit.drivers._batch_state import BatchState
from smtpkit.drivers._common import Job, Outcome
from smtpkit.drivers._quota_gate import QuotaGate
from smtpkit.drivers._sync_io import SyncConnection, SyncDriver
from smtpkit.drivers._sync_pool import SyncPool
from smtpkit.engine import Pacing
from smtpkit.errors import SMTPError

__all__ = ["SharedPacing", "run_batch"]

#: The longest a waiting worker sleeps before it looks again (a stop it was not woken for).
_POLL = 1.0


class SharedPacing(Pacing):
    """The engine's :class:`~smtpkit.engine.Pacing` for many threads (one lock)."""

    __slots__ = ("_lock",)

    def __init__(self, rate: float | None) -> None:
        super().__init__(rate)
        self._lock = threading.Lock()

    def admit(self, now: float) -> bool:
        with self._lock:
            return super().admit(now)

    def reserve(self, now: float) -> float:
        with self._lock:
            return super().reserve(now)


def run_batch(
    state: BatchState,
    *,
    workers: int,
    pool: SyncPool,
    driver: SyncDriver,
    start: Callable[[Job, object], object],
    sleep: Callable[[float], None],
    lookahead: bool = True,
) -> None:
    """Send every job of ``state`` with ``workers`` threads (1: on the calling thread).

    ``lookahead=False`` (``send``: one job) asks the state for no job inside a transaction.

    Raises:
        BaseException: what a worker raised unexpectedly (a bug, or the caller's iterator).
    """
    batch = _Workers(state, pool, driver, start, sleep, shared=workers > 1, lookahead=lookahead)
    if workers <= 1:
        batch.work()
    else:
        threads = [
            threading.Thread(target=batch.work, name=f"smtpkit-send-{n}", daemon=True)
            for n in range(workers)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C (or SystemExit) in the calling thread
            batch.interrupted()
            raise
    if state.quota is not None:
        state.quota.close()  # places asked ahead for messages that never started
    if state.crash is not None:
        raise state.crash


class _Workers:
    """The state one :func:`run_batch` call shares between its worker threads."""

    def __init__(
        self,
        state: BatchState,
        pool: SyncPool,
        driver: SyncDriver,
        start: Callable[[Job, object], object],
        sleep: Callable[[float], None],
        *,
        shared: bool,
        lookahead: bool,
    ) -> None:
        self._state = state
        self._pool = pool
        self._driver = driver
        self._start = start
        self._sleep = sleep
        self._shared = shared
        self._lookahead = lookahead
        self._lock: threading.Condition | _Alone = (
            threading.Condition(threading.Lock()) if shared else _ALONE
        )
        self._waiting = 0  # workers waiting for a job (notified only when there are some)
        self._active = 0  # workers with a transaction run open (an interrupt waits for them)

    def work(self) -> None:
        """One worker: take a job, wait (holding no connection) until it may start, take a
        connection, send it and whatever may follow at once on that connection; repeat."""
        state = self._state
        try:
            while (got := self._next()) is not None:
                job, wait = got
                if wait > 0:
                    self._sleep(wait)  # a backoff or the rate limit, no connection held
                    if state.stopped:
                        with self._lock:
                            state.put_back(job)  # never started: it gets no outcome
                        return
                if state.quota is not None and not self._admit(job, state.quota):
                    continue  # refused by the quota (its outcome), or the batch stopped
                try:
                    conn = self._pool.acquire()
                except SMTPError as error:
                    with self._lock:
                        state.opening_failed(job, error)
                        self._wake()
                    continue
                with self._lock:
                    if state.stopped:  # stopped while it waited for a place or a connection
                        state.put_back(job)  # never started: it stays unsent
                        self._wake()
                        stop = True
                    else:
                        stop = False
                        self._active += 1
                if stop:
                    self._pool.release(conn, keep=True)
                    return
                try:
                    self._run_on(conn, job)
                finally:
                    with self._lock:
                        self._active -= 1
                        self._wake()
        except BaseException as error:  # re-raised by run_batch() after every worker ended
            with self._lock:
                state.fail(error)
                self._wake()

    def interrupted(self) -> None:
        """The calling thread was interrupted (Ctrl-C) while the workers ran: start nothing
        more, and wait until no transaction is open, so that every message on its way ends
        with its outcome (the server's reply, or ``DeliveryUnknown`` when the connection
        fails) before the interrupt propagates. Each reply has its deadline (the command
        timeout), so the wait is bounded. A second interrupt stops the wait: the messages
        still open then report their outcomes after ``send_many`` raised."""
        with self._lock:
            self._state.stop()
            self._waiting += 1  # so that every change of the state wakes this wait
            try:
                self._lock.notify_all()
                while self._active:  # bounded: each run ends within its replies' deadlines
                    self._lock.wait(_POLL)
            finally:
                self._waiting -= 1

    def _admit(self, job: Job, gate: QuotaGate) -> bool:
        """Reserve ``job``'s place in the quota before taking a connection: the store call
        with no lock held, then its verdict under the lock; a place that frees up soon is
        waited for, holding no connection."""
        while True:  # bounded: each pass waits for a place that frees up, or ends
            verdict = gate.ask_now(job)  # an ask made ahead, else the store call here
            with self._lock:
                wait = self._state.admitted(job, verdict)
                self._wake()
            if wait is None or wait == 0:
                return wait == 0
            self._sleep(wait)

    def _wake(self) -> None:
        """After a change of the state (under the lock): wake the workers waiting for one."""
        if self._waiting:
            self._lock.notify_all()

    def _next(self) -> tuple[Job, float] | None:
        state = self._state
        with self._lock:
            while (got := state.next_job()) is None:  # bounded: each pass ends or waits
                if state.done:
                    self._wake()  # the others may be done too
                    return None
                self._waiting += 1
                try:
                    self._lock.wait(_POLL)
                finally:
                    self._waiting -= 1
            return got

    def _run_on(self, conn: SyncConnection, first: Job) -> None:
        state, lock = self._state, self._lock
        link = conn.link
        assert link is not None
        take_now = None
        if self._lookahead:
            with lock:
                take_now = state.lookahead(link, self._pool.state.policy.left(link), self._start)
        take: Callable[[], Job | None] | None = take_now
        report: Callable[[Job, Outcome], None] = state.settle
        if self._shared and take_now is not None:

            def take() -> Job | None:
                with lock:
                    return take_now()

            def report(job: Job, outcome: Outcome) -> None:
                with lock:
                    state.settle(job, outcome)
                    self._wake()

        try:
            self._start(first, None)
            self._driver.transact(conn, first, take, report)
        except BaseException:
            # A bug or Ctrl-C on this thread: transact() reported the messages open and
            # aborted the connection; its place in the pool is free again (else every
            # interrupted call would keep one, until the pool had none left).
            self._pool.discard(conn)
            raise
        with lock:
            spent = state.used(link, 1 if take_now is None else take_now.taken)
        self._pool.release(conn, keep=not spent)


class _Alone:
    """The lock of a batch with one worker: there is no other thread to keep out (the
    hooks and ``on_result`` run elsewhere and never touch the state)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def notify_all(self) -> None:
        return None

    def wait(self, timeout: float) -> bool:
        time.sleep(timeout)  # never reached: a lone worker finds a job or is done
        return False


_ALONE = _Alone()

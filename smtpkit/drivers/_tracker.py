"""Per-call bookkeeping the drivers use to call :mod:`smtpkit.hooks` and log each message.

Not part of the public API. :class:`SendTracker` wraps a call's ``prepare`` step (the start
of a message's transaction) and its ``on_result`` callback (the outcome), and builds the
hooks' events with what only the driver knows: the call's number, the provider, the time
each message started.

Invariants:
    * No event is built and nothing is queued when nobody listens; the per-message path
      (``prepare``'s wrapper, :meth:`SendTracker.finished`) takes no lock.
    * With ``background=True`` no callback runs on a sending thread (where a transaction
      may be open); :meth:`SendTracker.close` returns after the last one.
    * No call is dropped: one that arrives as or after :meth:`SendTracker.close` runs
      (a worker that outlived an interrupted batch) runs on the thread that made it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError
from smtpkit.hooks import (
    SendFinished,
    SendRetried,
    SendStarted,
    _finished,
    _retried,
    _started,
    next_call_id,
    phase_of,
)

__all__ = ["SendTracker"]

logger = logging.getLogger("smtpkit.hooks")  # the hooks' logger: where these failures belong

_J = TypeVar("_J")
_S = TypeVar("_S")
_P = TypeVar("_P")


class SendTracker:
    """Per-batch bookkeeping the Submitter uses to call the hooks and log each message.

    Not part of the public API. It wraps the batch's ``prepare`` step (the start of a
    message's transaction) and its ``on_result`` callback (the outcome). With
    ``per_message=False`` (a single ``send``) the elapsed time runs from the call itself, so
    it includes connecting and logging in; in a batch it runs from the message's first
    transaction start.

    With ``background=True`` (a batch) the calls go to a reporting thread, so that they
    never run on a sending thread with a transaction open; :meth:`close` waits for the last
    one. The times are taken when the events happen, not when the calls run. If
    ``on_result`` raises, it is not called again and the exception is kept in
    :attr:`error` for the caller to raise.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Callable[[], float],
        log: Callable[[SendResult, float], None],
        on_result: Callable[[int, SendResult | SMTPError], None] | None,
        per_message: bool = True,
        background: bool = False,
        log_enabled: Callable[[], bool] | None = None,
        provider: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._provider = provider
        #: This call's number in the process, carried by each of its events.
        self.call_id = next_call_id()
        self._clock = clock
        self._log = log
        self._log_enabled = log_enabled or (lambda: True)
        self._on_result = on_result
        self._lock = threading.Lock()
        self._begun = clock()
        self._starts: dict[int, float] = {}
        self._tries: dict[int, int] = {}
        self._per_message = per_message
        #: What ``on_result`` raised (it is then called no more).
        self.error: BaseException | None = None
        self._calls: queue.SimpleQueue[Callable[[], None] | None] | None = None
        self._thread: threading.Thread | None = None
        self._background = background
        self._closed = False

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, call: Callable[[], None]) -> None:
        if not self._background:
            self._call(call)
            return
        if self._calls is None:
            with self._lock:  # the reporting thread starts with the first call it gets
                late = self._closed  # read _background before close(): no thread now
                if self._calls is None and not late:
                    self._calls = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._report, name="smtpkit-report", daemon=True
                    )
                    self._thread.start()
            if late:
                self._call(call)
                return
        calls = self._calls
        assert calls is not None
        calls.put(call)
        if self._closed:
            # close() may have drained the queue before this call arrived (a worker that
            # outlived an interrupted batch): run what is left here, never drop it.
            self._drain(calls)

    def _call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # a bug in logging: never lose the calls after it
            logger.warning("reporting a send outcome failed", exc_info=True)

    def _drain(self, calls: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        """Run every call still queued, on this thread (each ``get`` hands a call to one
        thread only, so none runs twice)."""
        while True:  # bounded: ends when the queue is empty
            try:
                call = calls.get_nowait()
            except queue.Empty:
                return
            if call is not None:
                self._call(call)

    def _report(self) -> None:
        calls = self._calls
        assert calls is not None
        while True:  # ends at the None that close() queues
            call = calls.get()
            if call is None:
                return
            self._call(call)

    @property
    def failed(self) -> bool:
        """True once ``on_result`` raised: the batch should start no further message."""
        return self.error is not None

    def close(self) -> None:
        """Wait until every queued call has run (the reporting thread then ends)."""
        with self._lock:
            calls, thread = self._calls, self._thread
            self._background = False  # a late event is then reported on the caller's thread
            self._closed = True
        if calls is not None and thread is not None:
            calls.put(None)
            thread.join()
            # A call queued after the None (a _dispatch that read ``_background`` before
            # it changed) runs here, or on its own thread once it sees ``_closed``.
            self._drain(calls)

    # -- events ----------------------------------------------------------------------------

    def prepare(self, prepare: Callable[[_J, _S], _P]) -> Callable[[_J, _S], _P]:
        """Wrap ``prepare(job, session)``: record the job's first start and call the hooks."""

        # Every message passes here: nothing is locked, and an event is built only for a
        # listener. No lock is needed: a job is on one thread at a time (a retry starts
        # after the try before it ended), so only that thread writes the job's entries, and
        # each dict operation is atomic on its own.
        starts, tries, clock = self._starts, self._tries, self._clock

        def wrapped(job: _J, session: _S) -> _P:
            index: int = getattr(job, "index", 0)
            if index not in starts:
                starts[index] = clock()
                if _started:
                    event = SendStarted(self._host, self._port, index, self.call_id)
                    self._dispatch(lambda: _started.emit(event))
            else:  # a retry: the first try is not counted in ``tries``
                attempt = tries[index] = tries.get(index, 1) + 1
                if _retried:
                    again = SendRetried(self._host, self._port, index, attempt, self.call_id)
                    self._dispatch(lambda: _retried.emit(again))
            return prepare(job, session)

        return wrapped

    def finished(self, index: int, outcome: SendResult | SMTPError) -> None:
        """Log a sent message, call the end hooks, then the caller's ``on_result``."""
        if self._on_result is None and not _finished and not self._log_enabled():
            return  # nobody listens: no call to queue (most batches in production)
        started = self._starts.get(index, self._begun) if self._per_message else self._begun
        elapsed = self._clock() - started
        self._dispatch(lambda: self._finished(index, outcome, elapsed))

    def _finished(self, index: int, outcome: SendResult | SMTPError, elapsed: float) -> None:
        if isinstance(outcome, SendResult):
            self._log(outcome, elapsed)
        if _finished:  # no event built when nobody listens
            result = outcome if isinstance(outcome, SendResult) else None
            error = None if isinstance(outcome, SendResult) else outcome
            provider = self._provider or getattr(error, "provider", None)
            event = SendFinished(
                self._host,
                self._port,
                index,
                elapsed,
                result=result,
                error=error,
                phase=phase_of(error),
                provider=provider if isinstance(provider, str) else None,
                call_id=self.call_id,
            )
            _finished.emit(event)
        on_result = self._on_result
        if on_result is None:
            return
        try:
            on_result(index, outcome)
        except BaseException as error:  # kept for the caller; later calls are skipped
            with self._lock:
                self._on_result = None
                if self.error is None:
                    self.error = error

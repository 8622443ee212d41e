"""Hooks before and after each message a :class:`~smtpkit.Submitter` sends, for metrics.

Register a callback once, at start-up; every Submitter in the process calls it::

    import smtpkit.hooks

    def count(event: smtpkit.hooks.SendFinished) -> None:
        outcome = "sent" if event.ok else type(event.error).__name__
        metrics.histogram("smtp.send.seconds", event.elapsed, tags={"outcome": outcome})

    remove = smtpkit.hooks.on_send_end(count)
    ...
    remove()  # unregister (tests)

``on_send_start`` callbacks run just before a message's transaction starts (once per
message, even when it is retried); ``on_send_end`` callbacks run once per message with its
outcome: a :class:`~smtpkit.SendResult` or the :class:`~smtpkit.errors.SMTPError` it ended
with; ``on_send_retry`` callbacks run each time a message's transaction starts again (a
``Retry`` policy's retry, or a resend after a connection found closed). Both ``send()`` and
``send_many()`` call them.

Invariants:
    * Registering and removing are thread-safe; a send uses the callbacks registered when it
      calls them (a snapshot), so registering from another thread never blocks a send.
    * A callback's exception is logged (``WARNING`` on logger ``smtpkit.hooks``, with the
      traceback) and swallowed: metrics never change what happens to a message.
    * Callbacks never run inside an open SMTP transaction (the server would wait for the
      client, and may time out): ``send()`` calls them on its own thread before and after
      the transaction; a ``send_many`` batch calls them (and its ``on_result``) on one
      reporting thread of its own, one call at a time, in the order the events happened,
      and returns only after the last call. A slow callback delays other callbacks, never
      a message.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError

__all__ = [
    "SendFinished",
    "SendRetried",
    "SendStarted",
    "clear",
    "on_send_end",
    "on_send_retry",
    "on_send_start",
]

logger = logging.getLogger("smtpkit.hooks")

_J = TypeVar("_J")
_S = TypeVar("_S")
_P = TypeVar("_P")


@dataclass(frozen=True)
class SendStarted:
    """A message is about to be sent.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
    """

    host: str
    port: int
    index: int


@dataclass(frozen=True)
class SendRetried:
    """A message's transaction is starting again, after a try that failed.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
        attempt: which try of the message's transaction this is (2 for the first retry).
    """

    host: str
    port: int
    index: int
    attempt: int


@dataclass(frozen=True)
class SendFinished:
    """A message's outcome is known.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
        elapsed: seconds from the message's start (its first try) to its outcome.
        result: what the server said, when it accepted the message.
        error: the error the message ended with, when it was not sent.
    """

    host: str
    port: int
    index: int
    elapsed: float
    result: SendResult | None = None
    error: SMTPError | None = None

    @property
    def ok(self) -> bool:
        """True when the server accepted the message."""
        return self.result is not None


class _Callbacks:
    """A copy-on-write list of callbacks guarded by a lock."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._lock = threading.Lock()
        self._callbacks: tuple[Callable[..., object], ...] = ()

    def add(self, callback: Callable[..., object]) -> Callable[[], None]:
        if not callable(callback):
            raise TypeError(f"{self._kind} callback must be callable, got {callback!r}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def remove() -> None:
            with self._lock:
                items = list(self._callbacks)
                if callback in items:
                    items.remove(callback)
                self._callbacks = tuple(items)

        return remove

    def clear(self) -> None:
        with self._lock:
            self._callbacks = ()

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def emit(self, event: object) -> None:
        callbacks = self._callbacks  # a snapshot: the tuple is never mutated
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                logger.warning("%s callback %r failed", self._kind, callback, exc_info=True)


_started = _Callbacks("on_send_start")
_finished = _Callbacks("on_send_end")
_retried = _Callbacks("on_send_retry")


def on_send_start(callback: Callable[[SendStarted], object]) -> Callable[[], None]:
    """Call ``callback(SendStarted)`` before each message; returns a function that removes it."""
    return _started.add(callback)


def on_send_end(callback: Callable[[SendFinished], object]) -> Callable[[], None]:
    """Call ``callback(SendFinished)`` after each message; returns a function that removes it."""
    return _finished.add(callback)


def on_send_retry(callback: Callable[[SendRetried], object]) -> Callable[[], None]:
    """Call ``callback(SendRetried)`` each time a message's transaction starts again.

    Returns a function that removes it. A try that failed before its transaction started
    (say, the connection could not be opened) is retried without this event.
    """
    return _retried.add(callback)


def clear() -> None:
    """Remove every registered callback (for tests)."""
    _started.clear()
    _finished.clear()
    _retried.clear()


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
    ) -> None:
        self._host = host
        self._port = port
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

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self, call: Callable[[], None]) -> None:
        if not self._background:
            self._call(call)
            return
        if self._calls is None:
            with self._lock:  # the reporting thread starts with the first call it gets
                if self._calls is None:
                    self._calls = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._report, name="smtpkit-report", daemon=True
                    )
                    self._thread.start()
        assert self._calls is not None
        self._calls.put(call)

    def _call(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # a bug in logging: never lose the calls after it
            logger.warning("reporting a send outcome failed", exc_info=True)

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
        if calls is not None and thread is not None:
            calls.put(None)
            thread.join()

    # -- events ----------------------------------------------------------------------------

    def prepare(self, prepare: Callable[[_J, _S], _P]) -> Callable[[_J, _S], _P]:
        """Wrap ``prepare(job, session)``: record the job's first start and call the hooks."""

        def wrapped(job: _J, session: _S) -> _P:
            index: int = getattr(job, "index", 0)
            with self._lock:
                first = index not in self._starts
                if first:
                    self._starts[index] = self._clock()
                attempt = self._tries[index] = self._tries.get(index, 0) + 1
            if first and _started:  # no event built when nobody listens
                event = SendStarted(self._host, self._port, index)
                self._dispatch(lambda: _started.emit(event))
            elif not first and _retried:
                again = SendRetried(self._host, self._port, index, attempt)
                self._dispatch(lambda: _retried.emit(again))
            return prepare(job, session)

        return wrapped

    def finished(self, index: int, outcome: SendResult | SMTPError) -> None:
        """Log a sent message, call the end hooks, then the caller's ``on_result``."""
        if self._on_result is None and not _finished and not self._log_enabled():
            return  # nobody listens: no call to queue (most batches in production)
        with self._lock:
            started = self._starts.get(index, self._begun) if self._per_message else self._begun
        elapsed = self._clock() - started
        self._dispatch(lambda: self._finished(index, outcome, elapsed))

    def _finished(self, index: int, outcome: SendResult | SMTPError, elapsed: float) -> None:
        if isinstance(outcome, SendResult):
            self._log(outcome, elapsed)
        if _finished:  # no event built when nobody listens
            if isinstance(outcome, SendResult):
                event = SendFinished(self._host, self._port, index, elapsed, result=outcome)
            else:
                event = SendFinished(self._host, self._port, index, elapsed, error=outcome)
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

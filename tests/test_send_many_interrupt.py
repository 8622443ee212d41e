"""``Submitter.send_many`` interrupted by Ctrl-C (``KeyboardInterrupt`` in the calling thread).

A real ``SIGINT`` is delivered to the main thread (``signal.pthread_kill``) while worker
threads are sending to a LocalServer on 127.0.0.1, from the batch's ``on_result`` (the
reporting thread) at a chosen message. What must hold once ``send_many`` has raised:

* the ``KeyboardInterrupt`` itself propagates, promptly;
* no message starts after it: the server receives nothing more;
* every message the server accepted had its ``SendResult`` delivered to ``on_result``
  before ``send_many`` raised, exactly once, and no other call follows;
* a message on its way when the workers stopped is reported (accepted, or
  ``DeliveryUnknown``), never dropped.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from conftest import ServerFactory

from smtpkit import (
    BatchInterrupted,
    DeliveryUnknown,
    Security,
    SendResult,
    SMTPError,
    Submitter,
)
from smtpkit.drivers._tracker import SendTracker
from smtpkit.testing import ReceivedMessage

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 2.0
COUNT = 40


def message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.test"
    msg["To"] = "bob@example.test"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<k{n}@example.test>"
    msg.set_content(f"body {n}\n")
    return msg


class Received:
    """The Message-IDs the server accepted, each message a little slow to accept."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._lock = threading.Lock()
        self.ids: list[str] = []

    def __call__(self, received: ReceivedMessage) -> None:
        time.sleep(self._delay)  # the workers are mid-transaction for a while
        with self._lock:
            self.ids.append(str(received.message["Message-ID"]))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.ids)


def interrupt_main() -> None:
    """A real SIGINT to the main thread: it wakes a blocked ``join`` like a Ctrl-C."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


class Recorder:
    """``on_result``: records each call; at the ``at``-th call it sends the Ctrl-C."""

    def __init__(self, at: int, interrupt: Callable[[], None] = interrupt_main) -> None:
        self._at = at
        self._interrupt = interrupt
        self._lock = threading.Lock()
        self.calls: list[tuple[int, SendResult | SMTPError]] = []
        self.returned = False  # set by the test once send_many has raised
        self.late = 0

    def __call__(self, index: int, outcome: SendResult | SMTPError) -> None:
        with self._lock:
            self.calls.append((index, outcome))
            self.late += self.returned  # called after send_many raised: must stay 0
            count = len(self.calls)
        if count == self._at:
            self._interrupt()

    def snapshot(self) -> list[tuple[int, SendResult | SMTPError]]:
        with self._lock:
            return list(self.calls)


def submitter_for(server: object) -> Submitter:
    return Submitter(
        server.host,  # type: ignore[attr-defined]
        server.port,  # type: ignore[attr-defined]
        security=Security.NONE,
        timeout=TIMEOUT,
        max_connections=4,
    )


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT")
@pytest.mark.parametrize("concurrency", [1, 4])
def test_ctrl_c_stops_the_batch_and_loses_no_accepted_result(
    local_server: ServerFactory, concurrency: int
) -> None:
    received = Received(delay=0.02)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=3)
    messages = [message(n) for n in range(COUNT)]
    with submitter_for(server) as submitter:
        began = time.monotonic()
        with pytest.raises(KeyboardInterrupt) as caught:
            submitter.send_many(messages, concurrency=concurrency, on_result=recorder)
        took = time.monotonic() - began
        recorder.returned = True
        at_raise = received.snapshot()
        time.sleep(0.4)  # bounded: long enough for a worker still running to send more
        later = received.snapshot()

    assert took < TIMEOUT + 1.0  # promptly: bounded by the command timeout
    assert len(later) < COUNT, "the interrupt stopped nothing"
    assert recorder.late == 0, "on_result was called after send_many raised"
    calls = recorder.snapshot()
    unknown_ids = {o.message_id for _, o in calls if isinstance(o, DeliveryUnknown)}
    # Only a message reported unknown (its content was on its way) may still land afterwards.
    assert set(later) - set(at_raise) <= unknown_ids, "messages were sent after send_many raised"
    indices = [index for index, _ in calls]
    assert len(indices) == len(set(indices)), "an outcome was reported twice"
    reported = {outcome.message_id for _, outcome in calls if isinstance(outcome, SendResult)}
    unknown = [outcome for _, outcome in calls if isinstance(outcome, DeliveryUnknown)]
    # Every accepted message was reported as sent, or (at most once per worker) unknown.
    missing = set(later) - reported
    assert len(missing) <= len(unknown), (missing, unknown)
    # Nothing is reported sent that the server did not accept.
    assert reported <= set(at_raise)
    assert len(unknown) <= concurrency
    # The interrupt itself says what happened (a note: it stays a KeyboardInterrupt).
    [note] = caught.value.__notes__
    assert note.startswith("send_many was interrupted: ")
    assert f"{len(reported)} accepted (" in note
    assert f"{COUNT - len(calls)} not sent (" in note or len(calls) == COUNT
    assert "each outcome went to on_result" in note


class InterruptAt(Received):
    """The server's ``on_message``: a Ctrl-C to the client's main thread at message ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__(delay=0.01)
        self._at = at

    def __call__(self, received: ReceivedMessage) -> None:
        super().__call__(received)
        if len(self.snapshot()) == self._at:
            interrupt_main()


def test_ctrl_c_without_on_result_names_the_accepted_messages_in_a_note(
    local_server: ServerFactory,
) -> None:
    received = InterruptAt(3)
    server = local_server(security=Security.NONE, on_message=received)
    with submitter_for(server) as submitter:
        with pytest.raises(KeyboardInterrupt) as caught:
            submitter.send_many([message(n) for n in range(COUNT)], concurrency=2)
        at_raise = received.snapshot()
        time.sleep(0.3)
        later = received.snapshot()
    assert later == at_raise  # the workers stopped
    [note] = caught.value.__notes__
    # Every message the server accepted is counted as accepted or unknown (an interrupt
    # between the server's acceptance and its reply being read), none as not sent.
    counted = {
        kind: int(note.split(f" {kind} (")[0].rsplit(" ", 1)[-1])
        for kind in ("accepted", "unknown")
        if f" {kind} (" in note
    }
    assert sum(counted.values()) >= len(at_raise) >= counted.get("accepted", 0) > 0, note
    assert "pass on_result to get each" in note


def test_ctrl_c_from_on_result_is_batch_interrupted_with_every_outcome(
    local_server: ServerFactory,
) -> None:
    """A KeyboardInterrupt *raised by* on_result (not a signal) is the existing, documented
    case: BatchInterrupted from it, carrying every outcome."""
    received = Received(delay=0.01)
    server = local_server(security=Security.NONE, on_message=received)

    def interrupt() -> None:
        raise KeyboardInterrupt

    recorder = Recorder(at=3, interrupt=interrupt)
    messages = [message(n) for n in range(COUNT)]
    with submitter_for(server) as submitter:
        with pytest.raises(BatchInterrupted) as caught:
            submitter.send_many(messages, concurrency=4, on_result=recorder)
        at_raise = received.snapshot()
        time.sleep(0.3)
        later = received.snapshot()
    assert isinstance(caught.value.__cause__, KeyboardInterrupt)
    assert later == at_raise
    accepted = {o.message_id for o in caught.value.outcomes if isinstance(o, SendResult)}
    assert accepted == set(at_raise)
    assert len(caught.value.not_sent) > 0


def test_a_call_queued_as_the_tracker_closes_still_runs() -> None:
    """The race of ``SendTracker.close()`` with ``_dispatch``: a worker read
    ``_background`` (True) just before ``close()`` changed it, and queues its call after
    the reporting thread ended. It must still run, once."""
    ran: list[int] = []
    tracker = SendTracker(
        "127.0.0.1",
        25,
        clock=time.monotonic,
        log=lambda *_: None,
        on_result=None,
        background=True,
    )
    tracker._dispatch(lambda: ran.append(1))  # starts the reporting thread
    tracker.close()
    tracker._background = True  # what the late worker saw before close() changed it
    tracker._dispatch(lambda: ran.append(2))
    assert ran == [1, 2]


def test_a_first_call_that_comes_after_close_still_runs() -> None:
    """The same race before any call was queued: no reporting thread starts after close()
    (it would wait forever for its end); the call runs on the thread that made it."""
    ran: list[str] = []
    tracker = SendTracker(
        "127.0.0.1",
        25,
        clock=time.monotonic,
        log=lambda *_: None,
        on_result=None,
        background=True,
    )
    tracker.close()
    tracker._background = True
    tracker._dispatch(lambda: ran.append(threading.current_thread().name))
    assert ran == [threading.current_thread().name]
    assert tracker._thread is None


@pytest.mark.parametrize("concurrency", [1, 2])
def test_after_ctrl_c_the_submitter_still_sends(
    local_server: ServerFactory, concurrency: int
) -> None:
    """A Ctrl-C that lands mid-transaction (on the calling thread with one worker) aborts
    that connection: its place in the pool is given back, so the next call can send."""
    received = Received(delay=0.05)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=1)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=TIMEOUT,
        max_connections=concurrency,
    )
    with pytest.raises(KeyboardInterrupt):
        submitter.send_many(
            [message(n) for n in range(10)], concurrency=concurrency, on_result=recorder
        )
    again: list[object] = []
    # In a thread, so that a place lost from the pool fails in seconds, not after the
    # pool's two-minute acquire timeout.
    sender = threading.Thread(
        target=lambda: again.extend(
            submitter.send_many([message(100 + n) for n in range(concurrency)])
        ),
        daemon=True,
    )
    sender.start()
    sender.join(TIMEOUT * 2)
    assert not sender.is_alive(), "no connection became free: the interrupt kept its place"
    submitter.close()
    assert len(again) == concurrency
    assert all(isinstance(outcome, SendResult) for outcome in again), again

"""``AsyncSubmitter.send_many`` whose task is cancelled while workers send to a LocalServer.

The task awaiting ``send_many(messages, concurrency=4, on_result=...)`` is cancelled after
the ``at``-th ``on_result`` call (a plain function and an ``async def``), or, without
``on_result``, once the server has accepted a few messages. What must hold:

* the ``CancelledError`` propagates, within the command timeout (+1 s);
* no message starts after it: only a message reported unknown may still reach the server;
* every message the server accepted was reported to ``on_result`` (sent, or
  ``DeliveryUnknown``) before the cancellation propagated, exactly once; nothing is
  reported sent that the server did not accept; without ``on_result`` a note on the
  ``CancelledError`` counts what was accepted, unknown and not sent;
* no task of the batch is left behind, and the submitter still sends afterwards;
* a second cancellation stops waiting for the messages in flight at once.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from conftest import ServerFactory

from smtpkit import AsyncSubmitter, DeliveryUnknown, Security, SendResult, SMTPError, Timeouts
from smtpkit.testing import ReceivedMessage

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 1.0
COUNT = 40

Outcome = SendResult | SMTPError


def message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.test"
    msg["To"] = "bob@example.test"
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<c{n}@example.test>"
    msg.set_content(f"body {n}\n")
    return msg


class Received:
    """The Message-IDs the server accepted, each message a little slow to accept."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self.ids: list[str] = []

    def __call__(self, received: ReceivedMessage) -> None:
        time.sleep(self.delay)  # the workers are mid-transaction for a while
        with self._lock:
            self.ids.append(str(received.message["Message-ID"]))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.ids)


class Recorder:
    """``on_result``: records each call; at the ``at``-th call it cancels ``task`` (when
    set: the task awaiting ``send_many``) and sets ``reached``."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls: list[tuple[int, Outcome]] = []
        self.reached = asyncio.Event()
        self.task: asyncio.Future[object] | None = None
        self.cancelled_at = 0.0
        self.returned = False  # set by the test once send_many has raised
        self.late = 0

    def record(self, index: int, outcome: Outcome) -> None:
        self.calls.append((index, outcome))
        self.late += self.returned  # called after send_many raised: must stay 0
        if len(self.calls) == self.at:
            self.reached.set()
            if self.task is not None:
                self.cancelled_at = time.monotonic()
                self.task.cancel()  # from inside on_result: outcomes are queued behind it

    async def record_async(self, index: int, outcome: Outcome) -> None:
        await asyncio.sleep(0)  # a real await inside the callback
        self.record(index, outcome)


def submitter_for(server: object) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,  # type: ignore[attr-defined]
        server.port,  # type: ignore[attr-defined]
        security=Security.NONE,
        timeout=TIMEOUT,
        max_connections=4,
    )


def other_tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def cancelled(
    task: asyncio.Future[object], *, cancel: bool = True
) -> tuple[float, asyncio.CancelledError]:
    """Cancel ``task`` (unless done elsewhere); how long until it ended, and the
    ``CancelledError`` it raised."""
    began = time.monotonic()
    if cancel:
        task.cancel()
    done, _ = await asyncio.wait({task}, timeout=TIMEOUT + 5)
    took = time.monotonic() - began
    assert task in done, "send_many did not end after its task was cancelled"
    assert task.cancelled()
    try:
        task.result()
    except asyncio.CancelledError as error:
        return took, error
    raise AssertionError("not cancelled")  # pragma: no cover


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_cancel_loses_no_accepted_result(local_server: ServerFactory, kind: str) -> None:
    received = Received(delay=0.02)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=3)
    callback: Callable[[int, Outcome], object] = (
        recorder.record if kind == "sync" else recorder.record_async
    )

    async def main() -> tuple[float, list[str], list[str], SendResult]:
        submitter = submitter_for(server)
        before = other_tasks()
        messages = [message(n) for n in range(COUNT)]
        task = asyncio.ensure_future(
            submitter.send_many(messages, concurrency=4, on_result=callback)
        )
        recorder.task = task
        await asyncio.wait_for(recorder.reached.wait(), 10)
        await cancelled(task, cancel=False)  # on_result cancelled it
        took = time.monotonic() - recorder.cancelled_at
        recorder.returned = True
        at_raise = received.snapshot()
        await asyncio.sleep(0.4)  # bounded: long enough for a worker still running to send
        later = received.snapshot()
        assert other_tasks() <= before, "a task of the batch outlived send_many"
        after = await submitter.send(message(999))  # the submitter still works
        await submitter.aclose()
        return took, at_raise, later, after

    took, at_raise, later, after = asyncio.run(main())

    assert took < TIMEOUT + 1.0  # promptly: bounded by the command timeout
    assert len(later) < COUNT + 1, "the cancellation stopped nothing"
    assert recorder.late == 0, "on_result was called after send_many raised"
    calls = recorder.calls
    indices = [index for index, _ in calls]
    assert len(indices) == len(set(indices)), "an outcome was reported twice"
    sent = {o.message_id for _, o in calls if isinstance(o, SendResult)}
    unknown = {o.message_id for _, o in calls if isinstance(o, DeliveryUnknown)}
    accepted = set(later) - {"<c999@example.test>"}
    # Only a message reported unknown (its content was on its way) may land afterwards.
    assert accepted - set(at_raise) <= unknown, "messages were sent after send_many raised"
    # Every message the server accepted was reported, as sent or unknown ...
    assert accepted <= sent | unknown, f"accepted but never reported: {accepted - sent - unknown}"
    # ... and nothing is reported sent that the server did not accept.
    assert sent <= accepted
    assert len(calls) > recorder.at  # the messages in flight were reported too
    # Their replies came well within the deadline: they finished, none is left unknown.
    assert not unknown, f"messages in flight were cut short: {unknown}"
    assert set(later) - {"<c999@example.test>"} == set(at_raise)
    assert after.message_id == "<c999@example.test>"


def test_cancel_without_on_result_notes_what_was_sent(local_server: ServerFactory) -> None:
    received = Received(delay=0.02)
    server = local_server(security=Security.NONE, on_message=received)

    async def main() -> tuple[list[str], asyncio.CancelledError]:
        submitter = submitter_for(server)
        messages = [message(n) for n in range(COUNT)]
        task = asyncio.ensure_future(submitter.send_many(messages, concurrency=4))
        for _ in range(500):  # bounded: 5 s
            if len(received.snapshot()) >= 3:
                break
            await asyncio.sleep(0.01)
        _, error = await cancelled(task)
        await asyncio.sleep(0.3)
        later = received.snapshot()
        await submitter.aclose()
        return later, error

    later, error = asyncio.run(main())
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "send_many was interrupted" in notes, notes
    accepted = re.search(r"(\d+) accepted", notes)
    unknown = re.search(r"(\d+) unknown", notes)
    count_accepted = int(accepted.group(1)) if accepted else 0
    count_unknown = int(unknown.group(1)) if unknown else 0
    assert count_accepted >= 3
    # Every accepted message is counted as accepted or unknown; none counted accepted wrongly.
    assert count_accepted <= len(later) <= count_accepted + count_unknown
    assert re.search(r"\d+ not sent", notes), notes


def test_second_cancel_stops_waiting_at_once(local_server: ServerFactory) -> None:
    received = Received(delay=0.02)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=2)

    async def main() -> tuple[float, asyncio.CancelledError]:
        submitter = submitter_for(server)
        messages = [message(n) for n in range(COUNT)]
        task = asyncio.ensure_future(
            submitter.send_many(messages, concurrency=4, on_result=recorder.record)
        )
        await asyncio.wait_for(recorder.reached.wait(), 10)
        received.delay = 1.6  # the messages in flight now wait long for their replies
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.sleep(0.05)
        took, error = await cancelled(task)  # the second cancellation
        await submitter.aclose()
        return took, error

    took, error = asyncio.run(main())
    assert took < 0.8, f"a second cancellation still waited {took:.2f} s"
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "send_many was interrupted" in notes, notes


def test_replies_slower_than_the_command_timeout_end_unknown(local_server: ServerFactory) -> None:
    """The wait for the messages in flight is bounded by the command timeout, even when the
    final reply's own timeout is longer: those cut short are reported unknown."""
    received = Received(delay=0.0)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=2)
    command = 0.3

    async def main() -> tuple[float, list[str], list[str]]:
        submitter = AsyncSubmitter(
            server.host,
            server.port,
            security=Security.NONE,
            timeout=Timeouts(connect=2.0, command=command, final_reply=5.0),
            max_connections=2,
        )
        messages = [message(n) for n in range(COUNT)]
        task = asyncio.ensure_future(
            submitter.send_many(messages, concurrency=2, on_result=recorder.record_async)
        )
        await asyncio.wait_for(recorder.reached.wait(), 10)
        received.delay = 0.8  # the final replies now come after the deadline
        await asyncio.sleep(0.05)
        took, _ = await cancelled(task)
        recorder.returned = True
        at_raise = received.snapshot()
        await asyncio.sleep(1.0)  # bounded: the server accepts what it had read
        later = received.snapshot()
        await submitter.aclose()
        return took, at_raise, later

    took, at_raise, later = asyncio.run(main())
    assert took < command + 1.0, f"the wind-down took {took:.2f} s"
    assert recorder.late == 0
    sent = {o.message_id for _, o in recorder.calls if isinstance(o, SendResult)}
    unknown = {o.message_id for _, o in recorder.calls if isinstance(o, DeliveryUnknown)}
    assert unknown, "no message was in flight when the deadline passed"
    assert set(later) <= sent | unknown, f"accepted, never reported: {set(later) - sent - unknown}"
    assert sent <= set(later)
    assert set(later) - set(at_raise) <= unknown


def test_asyncio_timeout_around_send_many_loses_nothing(local_server: ServerFactory) -> None:
    """``asyncio.timeout()`` around ``send_many`` is a cancellation too: it ends as the
    ``TimeoutError`` the caller asked for, with every accepted message reported."""
    received = Received(delay=0.02)
    server = local_server(security=Security.NONE, on_message=received)
    recorder = Recorder(at=0)

    async def main() -> tuple[float, list[str]]:
        submitter = submitter_for(server)
        messages = [message(n) for n in range(COUNT)]
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.15):
                await submitter.send_many(messages, concurrency=4, on_result=recorder.record_async)
        took = time.monotonic() - began
        recorder.returned = True
        at_raise = received.snapshot()
        await asyncio.sleep(0.3)
        later = received.snapshot()
        assert later == at_raise, "messages were sent after send_many raised"
        await submitter.aclose()
        return took, later

    took, later = asyncio.run(main())
    assert took < 0.15 + TIMEOUT + 1.0
    assert recorder.late == 0
    assert later, "nothing was sent before the timeout: the test proves nothing"
    assert len(later) < COUNT
    sent = {o.message_id for _, o in recorder.calls if isinstance(o, SendResult)}
    assert sent == set(later), "accepted and reported sent differ"

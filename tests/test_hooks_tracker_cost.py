"""The hooks' per-message bookkeeping (``SendTracker``) costs nearly nothing when nobody
listens, and counts starts and retries the same as before when someone does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from smtpkit import ServerDisconnected, hooks
from smtpkit.drivers._common import log_sent
from smtpkit.drivers._tracker import SendTracker


@dataclass
class _Job:
    index: int


class _NoLock:
    """A lock that fails the test if the per-message path takes it."""

    def __enter__(self) -> None:
        raise AssertionError("the per-message path took the tracker's lock")

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture(autouse=True)
def _no_callbacks() -> Iterator[None]:
    hooks.clear()
    yield
    hooks.clear()


def _tracker() -> SendTracker:
    return SendTracker(
        "127.0.0.1",
        25,
        clock=time.monotonic,
        log=log_sent,
        on_result=None,
        log_enabled=lambda: False,
    )


def _nothing(job: _Job, session: object) -> str:
    return f"prepared {job.index}"


def test_a_start_and_its_retries_take_no_lock() -> None:
    tracker = _tracker()
    tracker._lock = _NoLock()  # type: ignore[assignment]
    start = tracker.prepare(_nothing)
    assert [start(_Job(i), None) for i in (0, 1, 0, 0)] == [
        "prepared 0",
        "prepared 1",
        "prepared 0",
        "prepared 0",
    ]
    tracker.finished(0, ServerDisconnected("lost"))  # nobody listens: returns at once


def test_starts_and_retries_are_numbered_as_before() -> None:
    started: list[int] = []
    retried: list[tuple[int, int]] = []
    hooks.on_send_start(lambda event: started.append(event.index))
    hooks.on_send_retry(lambda event: retried.append((event.index, event.attempt)))
    tracker = _tracker()
    start = tracker.prepare(_nothing)
    for index in (0, 1, 0, 2, 0, 1):
        start(_Job(index), None)
    assert started == [0, 1, 2]
    assert retried == [(0, 2), (0, 3), (1, 2)]

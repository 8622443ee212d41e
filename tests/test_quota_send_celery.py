"""The Celery task and the Submitter's quota: a real worker (in-process, memory broker)
sending to a LocalServer.

``Submitter.send`` itself waits (with no connection held) for a place that frees up within
``MAX_WAIT`` seconds; the task sees ``QuotaExceeded`` only for a longer wait. The quota
here counts 1 message a second on a clock the test moves, and ``MAX_WAIT`` is 0, so the
task gets the refusal with a ``retry_after`` of hundredths of a second instead of a day.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery, signals
from celery.contrib.testing.worker import start_worker

from smtpkit import QuotaExceeded, Security, Submitter
from smtpkit.celery import close_submitters, make_send_task, message_payload, register_submitter
from smtpkit.celery._task import _quota_countdown
from smtpkit.drivers import _quota_gate
from smtpkit.providers import Limits
from smtpkit.quotas import MemoryQuotaStore, Quota
from smtpkit.retry import Retry
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

FAST = Retry(attempts=2, backoff=0.05, max_backoff=0.1)  # one retry for a failure
WAIT = 20


class Clock:
    """The quota's wall clock, moved by the test (thread-safe reads)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("smtpkit_quota_tests", broker="memory://", backend="cache+memory://")
    app.conf.update(
        broker_connection_retry_on_startup=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_transport_options={"polling_interval": 0.02},
    )
    return app


@pytest.fixture(scope="module")
def server(clock: Clock) -> Iterator[LocalServer]:
    with LocalServer(security=Security.NONE) as smtp:
        quota = Quota(MemoryQuotaStore(), Limits(messages_per_second=1), key="celery", clock=clock)
        register_submitter(
            "quota",
            lambda: Submitter(smtp.host, smtp.port, security=Security.NONE, quota=quota, timeout=5),
        )
        yield smtp
        close_submitters()


@pytest.fixture(scope="module")
def task(app: Celery, server: LocalServer) -> Iterator[Any]:
    send = make_send_task(app, name="tests.quota_send", retry=FAST)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield send


def message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", subject
    msg.set_content("body")
    return msg


def test_a_quota_refusal_is_retried_at_retry_after_without_using_a_try(
    task: Any, server: LocalServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_quota_gate, "MAX_WAIT", 0.0)
    server.clear()
    task.delay(**message_payload(message("first"), submitter="quota")).get(timeout=WAIT)
    with clock.lock:
        clock.now += 0.95  # the first message leaves the per-second window in 0.05 s
    reasons: list[BaseException] = []
    gaps = threading.Event()

    def on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
        reasons.append(getattr(reason, "exc", reason))  # celery's Retry holds the error
        if len(reasons) == FAST.attempts + 2:  # more quota waits than the policy has tries
            with clock.lock:
                clock.now += 1.0  # the place frees up
            gaps.set()

    signals.task_retry.connect(on_retry, weak=False)
    try:
        summary = task.delay(**message_payload(message("second"), submitter="quota")).get(
            timeout=WAIT
        )
    finally:
        signals.task_retry.disconnect(on_retry)

    assert gaps.is_set()
    assert len(reasons) == FAST.attempts + 2
    assert all(isinstance(reason, QuotaExceeded) for reason in reasons)
    assert {reason.limit for reason in reasons} == {"messages_per_second"}  # type: ignore[attr-defined]
    assert summary["accepted"] == ["b@example.test"]
    assert sorted(m.subject or "" for m in server.wait_for(2)) == ["first", "second"]


def test_the_countdown_is_retry_after_with_at_most_ten_percent_more() -> None:
    refusal = QuotaExceeded("over", limit="messages_per_day", retry_after=3600.0)

    waits = [_quota_countdown(refusal) for _ in range(200)]

    assert all(3600.0 <= wait <= 3960.0 for wait in waits)
    assert max(waits) > 3600.0  # spread, not all at once

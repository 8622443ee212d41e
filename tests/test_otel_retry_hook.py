"""smtpkit.hooks.on_send_retry, the event the OpenTelemetry retry counter is built on:
once per transaction started again, with the try's number, over a real LocalServer."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit import Retry, Submitter, hooks
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory


@pytest.fixture(autouse=True)
def _no_leftover_hooks() -> Iterator[None]:
    hooks.clear()
    yield
    hooks.clear()


def via(server: LocalServer) -> Submitter:
    retry = Retry(attempts=3, backoff=0.0, jitter=0.0, sleep=lambda seconds: None)
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        retry=retry,
    )


def message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", f"n{n}"
    msg.set_content("hello")
    return msg


def test_each_retry_is_reported_with_its_attempt_and_first_tries_are_not(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    server.reply("mail", "451 4.3.0 Try again", times=2)
    retried: list[hooks.SendRetried] = []
    started: list[hooks.SendStarted] = []
    hooks.on_send_retry(retried.append)
    hooks.on_send_start(started.append)
    via(server).send(message())
    assert retried == [
        hooks.SendRetried(server.host, server.port, 0, 2),
        hooks.SendRetried(server.host, server.port, 0, 3),
    ]
    assert len(started) == 1  # still once per message
    retried.clear()
    via(server).send(message(1))  # no failure: no retry event
    assert retried == []


def test_a_batch_reports_the_retried_message_s_index(local_server: ServerFactory) -> None:
    server = local_server()
    server.reply("rcpt", "451 4.3.0 Try again", times=1)
    retried: list[hooks.SendRetried] = []
    remove = hooks.on_send_retry(retried.append)
    via(server).send_many([message(n) for n in range(3)], concurrency=1)
    assert [(event.index, event.attempt) for event in retried] == [(0, 2)]
    remove()
    server.reply("rcpt", "451 4.3.0 Try again", times=1)
    via(server).send(message(9))
    assert len(retried) == 1  # removed: not called again

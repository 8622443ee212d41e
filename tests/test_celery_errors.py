"""A real Celery worker with the JSON result format hands the caller smtpkit's own errors.

The worker runs in-process (memory broker, ``cache+memory://`` results, JSON for both) and
sends to a LocalServer; the server's refusals come back from ``result.get()`` as the typed
error with its facts, and the stored result holds no secret.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery
from celery.contrib.testing.worker import start_worker

from smtpkit import Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.celery import close_submitters, make_send_task, message_payload, register_submitter
from smtpkit.errors import DeliveryUnknown, RecipientRejected, SenderRejected
from smtpkit.replies import Phase
from smtpkit.retry import Retry
from smtpkit.testing import LocalServer

USER, PASSWORD = "alice@example.test", "canary-Celery-9f3b"
WAIT = 20
NO_RETRY = Retry(attempts=1)


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("smtpkit_error_tests", broker="memory://", backend="cache+memory://")
    app.conf.update(
        broker_connection_retry_on_startup=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_transport_options={"polling_interval": 0.05},
    )
    return app


@pytest.fixture(scope="module")
def send_task(app: Celery) -> Any:
    return make_send_task(app, name="tests.errors.send", retry=NO_RETRY)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(credentials={USER: PASSWORD}, require_auth=True) as server:
        register_submitter(
            "errors",
            lambda: Submitter(
                server.host,
                server.port,
                auth=PasswordAuth(USER, PASSWORD),
                tls_context=server.client_tls_context(),
                timeout=5,
            ),
        )
        yield server
        close_submitters()


@pytest.fixture(scope="module")
def worker(app: Celery, send_task: Any, server: LocalServer) -> Iterator[None]:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


@pytest.fixture
def fresh(server: LocalServer, worker: None) -> LocalServer:
    server.clear()
    return server


def message(to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, "typed errors"
    msg.set_content("body")
    return msg


def stored_result(app: Celery, task_id: str) -> bytes:
    """The raw bytes the result backend holds for ``task_id``."""
    backend = app.backend
    raw = backend.get(backend.get_key_for_task(task_id))
    assert raw is not None
    return raw if isinstance(raw, bytes) else str(raw).encode()


def test_recipient_refusal_comes_back_as_recipient_rejected(
    app: Celery, send_task: Any, fresh: LocalServer
) -> None:
    fresh.reply(
        "rcpt",
        "550 5.1.1 <nobody@example.test>: no such user",
        recipient="nobody@example.test",
        times=None,
    )
    result = send_task.delay(**message_payload(message("nobody@example.test"), submitter="errors"))
    with pytest.raises(RecipientRejected) as caught:
        result.get(timeout=WAIT, interval=0.05)
    error = caught.value
    assert type(error) is RecipientRejected
    assert error.code == 550
    assert error.enhanced_code == "5.1.1"
    assert error.phase is Phase.RCPT
    assert error.recipient == "nobody@example.test"
    assert set(error.rejected) == {"nobody@example.test"}
    assert error.rejected["nobody@example.test"].code == 550
    assert error.is_transient is False
    assert error.hint
    assert "no such user" in str(error)
    assert any("RCPT TO:<nobody@example.test>" in line for line in error.transcript)
    assert fresh.messages == []
    # The stored result is JSON with the facts, and no form of the password.
    raw = stored_result(app, result.id)
    assert b'"exc_type": "RecipientRejected"' in raw
    plain = f"\0{USER}\0{PASSWORD}".encode()
    for secret in (PASSWORD.encode(), base64.b64encode(plain), base64.b64encode(b"x" + plain)):
        assert secret not in raw
    assert PASSWORD not in repr(error.__dict__)


def test_sender_refusal_keeps_its_class_and_phase(send_task: Any, fresh: LocalServer) -> None:
    fresh.reply("mail", "553 5.7.1 Sender address rejected: not owned by auth user")
    result = send_task.delay(**message_payload(message(), submitter="errors"))
    with pytest.raises(SenderRejected) as caught:
        result.get(timeout=WAIT, interval=0.05)
    assert caught.value.phase is Phase.MAIL
    assert (caught.value.code, caught.value.enhanced_code) == (553, "5.7.1")


def test_delivery_unknown_keeps_its_message_id(send_task: Any, fresh: LocalServer) -> None:
    fresh.disconnect("message")  # the server has the message; the reply is lost
    payload = message_payload(message(), submitter="errors")
    result = send_task.delay(**payload)
    with pytest.raises(DeliveryUnknown) as caught:
        result.get(timeout=WAIT, interval=0.05)
    [received] = fresh.dropped
    assert caught.value.message_id == received.message["Message-ID"]
    assert caught.value.recipients == ("bob@example.test",)
    assert caught.value.is_transient is False

"""smtpkit.celery: a real Celery worker (in-process, memory broker) sending to a LocalServer."""

from __future__ import annotations

import base64
import email.policy
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

import requests
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker
from oauth_endpoint import TokenEndpoint

from smtpkit import Submitter
from smtpkit.auth import PasswordAuth, Secret, XOAuth2Auth
from smtpkit.celery import (
    close_submitters,
    get_submitter,
    make_send_task,
    message_payload,
    register_submitter,
    summarize,
)
from smtpkit.celery._task import _countdown
from smtpkit.errors import (
    AuthenticationError,
    ConfigurationError,
    DeliveryUnknown,
    RateLimited,
    ServiceUnavailable,
    SMTPError,
    TokenRefreshError,
)
from smtpkit.oauth import FileTokenStore, RefreshTokenProvider, StoredGrant
from smtpkit.replies import Phase, Reply
from smtpkit.retry import Retry
from smtpkit.testing import LocalServer

USER, PASSWORD = "alice@example.test", "s3cret-Celery"
#: Short waits so a retry costs tenths of a second; the cap keeps any wait under a second.
FAST = Retry(attempts=3, backoff=0.2, multiplier=2.0, max_backoff=0.8, jitter=0.1)
#: Seconds to wait for any task result.
WAIT = 20


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("smtpkit_tests", broker="memory://", backend="cache+memory://")
    app.conf.update(
        broker_connection_retry_on_startup=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        broker_transport_options={"polling_interval": 0.05},  # memory broker: poll often
    )
    return app


@pytest.fixture(scope="module")
def tasks(app: Celery) -> dict[str, Any]:
    return {
        "send": make_send_task(app, name="tests.send", retry=FAST),
        "send_unknown": make_send_task(
            app, name="tests.send_unknown", retry=FAST, retry_unknown=True
        ),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(credentials={USER: PASSWORD}, require_auth=True) as smtp:
        register_submitter(
            "test",
            lambda: Submitter(
                smtp.host,
                smtp.port,
                auth=PasswordAuth(USER, PASSWORD),
                tls_context=smtp.client_tls_context(),
                timeout=5,
            ),
        )
        yield smtp
        close_submitters()


@pytest.fixture(scope="module")
def worker(app: Celery, tasks: dict[str, Any], server: LocalServer) -> Iterator[None]:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


@pytest.fixture
def fresh(server: LocalServer, worker: None) -> LocalServer:
    server.clear()
    return server


@pytest.fixture
def retries() -> Iterator[list[str]]:
    seen: list[str] = []

    def on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
        seen.append(str(reason))

    signals.task_retry.connect(on_retry, weak=False)
    yield seen
    signals.task_retry.disconnect(on_retry)


def message(subject: str = "hello", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", subject
    for name, value in headers.items():
        msg[name] = value
    msg.set_content("body")
    return msg


def test_sends_and_returns_a_json_summary(fresh: LocalServer, tasks: dict[str, Any]) -> None:
    payload = message_payload(message(Bcc="carol@example.test"), submitter="test")
    json.dumps(payload)  # the task's arguments are JSON
    summary = tasks["send"].delay(**payload).get(timeout=WAIT, interval=0.05)
    assert summary["accepted"] == ["bob@example.test", "carol@example.test"]
    assert summary["rejected"] == {}
    assert summary["reply"][0] == 250
    [received] = fresh.wait_for(1)
    assert received.message["Message-ID"] == summary["message_id"]
    assert "carol" not in received.raw.decode()  # Bcc only in the envelope
    assert received.auth_user == USER


def test_task_options(tasks: dict[str, Any]) -> None:
    task = tasks["send"]
    assert task.acks_late is True
    assert task.serializer == "json"
    assert task.max_retries == FAST.attempts - 1


def test_transient_failure_is_retried_then_succeeds(
    fresh: LocalServer, tasks: dict[str, Any], retries: list[str]
) -> None:
    fresh.reply("mail", "451 4.3.0 Try again later")
    summary = (
        tasks["send"].delay(**message_payload(message("retry"), submitter="test")).get(timeout=WAIT)
    )
    assert len(retries) == 1
    assert "451" in retries[0]
    [received] = fresh.wait_for(1)
    assert len(fresh.messages) == 1
    assert received.message["Message-ID"] == summary["message_id"]


def test_permanent_failure_is_not_retried(
    fresh: LocalServer, tasks: dict[str, Any], retries: list[str]
) -> None:
    fresh.reply("mail", "550 5.7.1 Sender refused")
    result = tasks["send"].delay(**message_payload(message("no"), submitter="test"))
    with pytest.raises(Exception, match=r"5\.7\.1"):
        result.get(timeout=WAIT, interval=0.05)
    assert result.state == "FAILURE"
    assert retries == []
    assert fresh.messages == []


def test_delivery_unknown_is_not_retried(
    fresh: LocalServer, tasks: dict[str, Any], retries: list[str]
) -> None:
    fresh.disconnect("message")  # the server has the message; the reply is lost
    result = tasks["send"].delay(**message_payload(message("once"), submitter="test"))
    with pytest.raises(Exception):  # the type comes back through JSON
        result.get(timeout=WAIT, interval=0.05)
    assert result.state == "FAILURE"
    assert retries == []
    assert len(fresh.dropped) == 1  # received exactly once...
    assert fresh.messages == []  # ...and never sent again


def test_delivery_unknown_is_retried_when_configured(
    fresh: LocalServer, tasks: dict[str, Any], retries: list[str]
) -> None:
    fresh.disconnect("message")
    payload = message_payload(message("twice"), submitter="test")
    tasks["send_unknown"].delay(**payload).get(timeout=WAIT, interval=0.05)
    assert len(retries) == 1
    # The documented cost of retry_unknown: the message may arrive twice (same Message-ID).
    [first] = fresh.dropped
    [second] = fresh.wait_for(1)
    assert first.message["Message-ID"] == second.message["Message-ID"]


def test_retries_stop_after_the_policy_attempts(
    fresh: LocalServer, tasks: dict[str, Any], retries: list[str]
) -> None:
    fresh.reply("mail", "451 4.3.0 Try again later", times=FAST.attempts)
    result = tasks["send"].delay(**message_payload(message("busy"), submitter="test"))
    with pytest.raises(Exception, match="Try again later"):
        result.get(timeout=WAIT, interval=0.05)
    assert len(retries) == FAST.attempts - 1
    assert fresh.messages == []


def test_a_transient_authentication_failure_is_not_retried(
    app: Celery, tasks: dict[str, Any], worker: None, retries: list[str]
) -> None:
    # Gmail's lockout reply is a 4xx at AUTH: transient, but retrying the login prolongs it.
    with LocalServer(
        credentials={USER: PASSWORD},
        require_auth=True,
        auth_failure_reply="454 4.7.0 Too many login attempts, please try again later.",
    ) as smtp:
        register_submitter(
            "locked-out",
            lambda: Submitter(
                smtp.host,
                smtp.port,
                auth=PasswordAuth(USER, "not-the-password"),
                tls_context=smtp.client_tls_context(),
                timeout=5,
            ),
        )
        result = tasks["send"].delay(**message_payload(message("auth"), submitter="locked-out"))
        with pytest.raises(Exception, match="Too many login attempts"):
            result.get(timeout=WAIT, interval=0.05)
        assert result.state == "FAILURE"
        assert retries == []
        assert len(smtp.auth_attempts) == 1  # one login, no more
        assert smtp.messages == []
        register_submitter("locked-out", lambda: Submitter("127.0.0.1", 2525))  # closes it


def test_token_refresh_inside_the_worker(
    app: Celery, tasks: dict[str, Any], worker: None, tmp_path: Path
) -> None:
    with (
        TokenEndpoint(rotate=True, refresh_token="rt-celery-1") as endpoint,
        LocalServer(oauth_tokens=endpoint.token_is_valid, require_auth=True) as smtp,
    ):
        store = FileTokenStore(tmp_path / "grant.json")
        store.write(
            StoredGrant(
                "oauth2", "client-1", endpoint.token_url, Secret("rt-celery-1"), username=USER
            )
        )
        made_in: list[str] = []

        def factory() -> Submitter:
            # Runs in the worker process, on its first task: its own provider and session.
            made_in.append(threading.current_thread().name)
            grant = store.read()
            assert grant is not None
            http = requests.Session()
            http.trust_env = False  # loopback only
            provider = RefreshTokenProvider(
                grant.token_url,
                grant.client_id,
                grant.refresh_token,
                on_rotate=store.save,
                session=http,
            )
            return Submitter(
                smtp.host,
                smtp.port,
                auth=XOAuth2Auth(USER, provider),
                tls_context=smtp.client_tls_context(),
                timeout=5,
            )

        register_submitter("oauth", factory)
        for n in range(2):
            payload = message_payload(message(f"oauth {n}"), submitter="oauth")
            tasks["send"].delay(**payload).get(timeout=WAIT, interval=0.05)
        assert len(smtp.wait_for(2)) == 2
        assert len(made_in) == 1  # one Submitter (and token) per worker process
        assert endpoint.count() == 1  # refreshed once, then cached
        grant = store.read()
        assert grant is not None
        assert grant.refresh_token.reveal() != "rt-celery-1"  # the rotated token persisted
        register_submitter("oauth", factory)  # closes the worker's kept connection


# -- pieces, without a worker --------------------------------------------------------------


def test_summary_is_json_safe() -> None:
    from smtpkit import SendResult  # noqa: PLC0415

    result = SendResult(
        "<1@example.test>",
        USER,
        ("bob@example.test",),
        {"x@example.test": Reply(550, ("5.1.1 User unknown",))},
        Reply(250, ("2.0.0 OK queued as 42",)),
    )
    summary = summarize(result)
    assert json.loads(json.dumps(summary)) == {
        "message_id": "<1@example.test>",
        "sender": USER,
        "accepted": ["bob@example.test"],
        "rejected": {"x@example.test": [550, "5.1.1", "User unknown"]},
        "reply": [250, "2.0.0 OK queued as 42"],
    }


def test_payload_fixes_message_id_and_date_once() -> None:
    payload = message_payload(message())
    again = message_payload(message())
    assert payload["message"] != again["message"]  # each message gets its own id
    parsed = message_from_bytes(base64.b64decode(payload["message"]), policy=email.policy.default)
    assert parsed["Message-ID"].endswith("@example.test>")
    assert parsed["Date"]


def test_raw_payload_needs_an_envelope() -> None:
    with pytest.raises(ConfigurationError):
        message_payload(b"Subject: x\r\n\r\nbody\r\n")
    payload = message_payload(b"x", sender=USER, recipients=["b@example.test"])
    assert payload["raw"] is True
    assert payload["recipients"] == ["b@example.test"]


def test_countdown_uses_the_retry_backoff() -> None:
    policy = Retry(attempts=6, backoff=10, multiplier=2, max_backoff=35, jitter=0)
    error = SMTPError("x")
    assert [_countdown(policy, error, n) for n in range(4)] == [10, 20, 35, 35]
    jittery = Retry(attempts=3, backoff=10, jitter=0.5)
    assert all(10 <= _countdown(jittery, error, 0) <= 15 for _ in range(20))


def test_submitters_are_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Submitter] = []

    def factory() -> Submitter:
        made.append(Submitter("127.0.0.1", 2525))
        return made[-1]

    register_submitter("per-process", factory)
    first = get_submitter("per-process")
    assert get_submitter("per-process") is first
    monkeypatch.setattr("os.getpid", lambda: -1)  # as in a forked child
    assert get_submitter("per-process") is not first
    assert len(made) == 2
    with pytest.raises(ConfigurationError, match="no Submitter configuration named"):
        get_submitter("missing")


def test_delivery_unknown_is_an_smtp_error_never_transient_for_the_task() -> None:
    from smtpkit.celery._task import _should_retry  # noqa: PLC0415

    error = DeliveryUnknown("lost")
    assert _should_retry(FAST, error) is False
    assert _should_retry(replace(FAST, retry_unknown=True), error) is True


def test_retryability_is_the_retry_policys() -> None:
    from smtpkit.celery._task import _should_retry  # noqa: PLC0415

    lockout = Reply(454, ("4.7.0 Too many login attempts, please try again later.",))
    transient_auth = AuthenticationError(lockout, Phase.AUTH)
    assert transient_auth.is_transient  # transient, and still never retried:
    assert _should_retry(FAST, transient_auth) is False
    assert _should_retry(FAST, RateLimited(lockout, Phase.AUTH)) is False  # how it is classified
    busy = ServiceUnavailable(Reply(451, ("4.3.0 Try again later",)), Phase.MAIL)
    assert _should_retry(FAST, busy) is True
    # A token that could not be obtained: no SMTP command was sent, so retrying is safe.
    assert _should_retry(FAST, TokenRefreshError("endpoint down", transient=True)) is True
    assert _should_retry(FAST, TokenRefreshError("invalid_grant", transient=False)) is False


def test_queuing_never_looks_up_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_dns() -> str:
        raise AssertionError("socket.getfqdn() called: a DNS lookup while queuing")

    monkeypatch.setattr("socket.getfqdn", no_dns)
    msg = EmailMessage()
    msg["To"], msg["Subject"] = "bob@example.test", "no From, no domain"
    msg.set_content("body")
    payload = message_payload(msg)
    parsed = message_from_bytes(base64.b64decode(payload["message"]), policy=email.policy.default)
    assert parsed["Message-ID"].endswith("@localhost>")
    sender_first = message(Sender="ops@sender.example.test")
    payload = message_payload(sender_first)
    parsed = message_from_bytes(base64.b64decode(payload["message"]), policy=email.policy.default)
    assert parsed["Message-ID"].endswith("@sender.example.test>")


def _in_thread(call: Callable[[], object], seconds: float = 5.0) -> list[object]:
    """Run ``call`` in a daemon thread; fail (rather than hang) if it does not finish."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as error:  # handed to the test
            out.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "get_submitter() deadlocked"
    return out


def test_a_factory_may_ask_for_another_submitter() -> None:
    register_submitter("inner", lambda: Submitter("127.0.0.1", 2525))

    def outer() -> Submitter:
        inner = get_submitter("inner")  # from inside a factory
        return Submitter(inner.host, 2526)

    register_submitter("outer", outer)
    [made] = _in_thread(lambda: get_submitter("outer"))
    assert isinstance(made, Submitter)
    assert made is get_submitter("outer")


def test_a_factory_asking_for_itself_is_refused_not_deadlocked() -> None:
    register_submitter("itself", lambda: get_submitter("itself"))
    [error] = _in_thread(lambda: get_submitter("itself"))
    assert isinstance(error, ConfigurationError)
    assert "asks for the Submitter it is making" in str(error)
    register_submitter("itself", lambda: Submitter("127.0.0.1", 2525))
    assert isinstance(get_submitter("itself"), Submitter)  # nothing left half-made


def test_concurrent_first_uses_run_the_factory_once() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> Submitter:
        calls.append(1)
        started.set()
        release.wait(5)
        return Submitter("127.0.0.1", 2525)

    register_submitter("slow", slow)
    results: list[Submitter] = []
    threads = [
        threading.Thread(target=lambda: results.append(get_submitter("slow")), daemon=True)
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(results) == 4
    assert len({id(s) for s in results}) == 1
    assert calls == [1]


@pytest.fixture(autouse=True)
def _quiet_celery_logs() -> None:
    logging.getLogger("celery").setLevel(logging.WARNING)

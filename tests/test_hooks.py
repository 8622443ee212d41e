"""smtpkit.hooks: callbacks before and after each message, for send and send_many."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit import Submitter, hooks
from smtpkit.auth import PasswordAuth
from smtpkit.errors import RecipientRejected, SenderRejected
from smtpkit.testing import FakeTransport

USER = "me@example.com"


@pytest.fixture(autouse=True)
def _no_leftover_hooks() -> Iterator[None]:
    hooks.clear()
    yield
    hooks.clear()


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport(credentials={USER: "pw"})


def submitter(fake: FakeTransport) -> Submitter:
    return Submitter("smtp.example.com", transport=fake, auth=PasswordAuth(USER, "pw"))


def message(n: int = 0, to: str = "you@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, f"n{n}"
    msg.set_content("hello")
    return msg


def test_send_calls_start_then_end_with_the_result(fake: FakeTransport) -> None:
    events: list[object] = []
    hooks.on_send_start(events.append)
    hooks.on_send_end(events.append)
    result = submitter(fake).send(message())
    start, end = events
    assert start == hooks.SendStarted("smtp.example.com", 587, 0)
    assert isinstance(end, hooks.SendFinished)
    assert end.ok
    assert end.result is result
    assert end.error is None
    assert end.elapsed >= 0


def test_a_failed_send_reports_its_error(fake: FakeTransport) -> None:
    ends: list[hooks.SendFinished] = []
    hooks.on_send_end(ends.append)
    fake.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.com")
    with pytest.raises(RecipientRejected) as caught:
        submitter(fake).send(message(to="nobody@example.com"))
    [end] = ends
    assert not end.ok
    assert end.error is caught.value


def test_send_many_calls_the_hooks_once_per_message(fake: FakeTransport) -> None:
    starts: list[hooks.SendStarted] = []
    ends: list[hooks.SendFinished] = []
    hooks.on_send_start(starts.append)
    hooks.on_send_end(ends.append)
    fake.reply("mail", "550 5.7.1 Sender refused", times=1)
    outcomes = submitter(fake).send_many([message(n) for n in range(5)], concurrency=2)
    assert sorted(s.index for s in starts) == [0, 1, 2, 3, 4]
    assert sorted(e.index for e in ends) == [0, 1, 2, 3, 4]
    by_index = {e.index: e for e in ends}
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, SenderRejected):
            assert by_index[index].error is outcome
        else:
            assert by_index[index].result is outcome


def test_a_failing_callback_is_logged_and_never_breaks_sending(
    fake: FakeTransport, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: object) -> None:
        raise RuntimeError("metrics backend down")

    seen: list[object] = []
    hooks.on_send_start(broken)
    hooks.on_send_end(broken)
    hooks.on_send_end(seen.append)  # later callbacks still run
    with caplog.at_level(logging.WARNING, logger="smtpkit.hooks"):
        submitter(fake).send(message())
    assert len(fake.messages) == 1
    assert len(seen) == 1
    failures = [r for r in caplog.records if r.name == "smtpkit.hooks"]
    assert len(failures) == 2
    assert all(r.exc_info is not None for r in failures)


def test_remove_unregisters(fake: FakeTransport) -> None:
    seen: list[object] = []
    remove = hooks.on_send_end(seen.append)
    remove()
    remove()  # idempotent
    submitter(fake).send(message())
    assert seen == []


def test_registering_needs_a_callable() -> None:
    with pytest.raises(TypeError):
        hooks.on_send_end("not callable")  # type: ignore[arg-type]


def test_registry_is_thread_safe() -> None:
    def noop(event: object) -> None:
        return None

    removers: list[object] = []
    lock = threading.Lock()

    def register() -> None:
        for _ in range(200):
            remove = hooks.on_send_start(noop)
            with lock:
                removers.append(remove)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(hooks._started._callbacks) == 800
    for remove in removers:
        remove()  # type: ignore[operator]
    assert hooks._started._callbacks == ()

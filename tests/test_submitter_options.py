"""Every Submitter keyword can be given through from_url / for_provider / from_env."""

from __future__ import annotations

import inspect
from email.message import EmailMessage

import pytest

from smtpkit import (
    BatchInterrupted,
    ConfigurationError,
    ConnectError,
    MessageError,
    Retry,
    Submitter,
)
from smtpkit.config._options import OPTION_NAMES
from smtpkit.testing import FakeTransport


def test_submitter_options_cover_every_submitter_keyword() -> None:
    parameters = set(inspect.signature(Submitter.__init__).parameters) - {"self"}
    assert parameters == OPTION_NAMES


def test_from_url_accepts_any_submitter_keyword_and_a_password() -> None:
    retry = Retry(attempts=2)
    submitter = Submitter.from_url(
        "smtps://me%40example.test@mail.example.test",
        password="pw",
        retry=retry,
        max_messages_per_connection=7,
        idle_timeout=5.0,
        use_chunking=False,
        transport=FakeTransport(),
    )
    assert submitter.pool_limits.max_messages_per_connection == 7
    assert submitter.pool_limits.idle_timeout == 5.0
    assert submitter.auth is not None
    assert submitter.auth.username == "me@example.test"


def test_for_provider_accepts_retry() -> None:
    submitter = Submitter.for_provider("gmail", retry=Retry(attempts=4), max_connections=2)
    assert submitter.pool_limits.max_connections == 2


def test_empty_recipient_list_is_an_error_not_the_headers() -> None:
    fake = FakeTransport()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "everyone@x.test", "s"
    message.set_content("b")
    submitter = Submitter("mail.example.test", transport=fake)
    with pytest.raises(MessageError, match="no recipients"):
        submitter.send(message, recipients=[])
    assert fake.messages == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_an_exception_in_on_result_is_raised_not_hidden(concurrency: int) -> None:
    fake = FakeTransport()
    messages = []
    for n in range(6):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@x.test", "b@x.test", f"m{n}"
        message.set_content("b")
        messages.append(message)

    class Boom(Exception):
        pass

    def on_result(index: int, outcome: object) -> None:
        if index == 2:
            raise Boom("callback failed")

    submitter = Submitter("mail.example.test", transport=fake, max_connections=3)
    # Raised from the callback's exception, with every outcome (see BatchInterrupted).
    with pytest.raises(BatchInterrupted) as caught:
        submitter.send_many(messages, concurrency=concurrency, on_result=on_result)
    assert isinstance(caught.value.__cause__, Boom)
    assert str(caught.value.__cause__) == "callback failed"
    assert len(caught.value.outcomes) == len(messages)


def test_max_per_second_must_be_positive() -> None:
    submitter = Submitter("mail.example.test", transport=FakeTransport())
    with pytest.raises(ConfigurationError, match="max_per_second"):
        submitter.send_many([], max_per_second=0)


def test_a_failed_open_keeps_nothing() -> None:
    fake = FakeTransport()
    fake.refuse_connect(times=1)
    submitter = Submitter("mail.example.test", transport=fake)
    with pytest.raises(ConnectError):
        submitter.open()
    # The failed open() left no open()/close() nesting behind: the end of one with block
    # closes (QUIT) the connection.
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "b@x.test", "s"
    message.set_content("b")
    with submitter:
        submitter.send(message)
    assert any(line.endswith("QUIT") for line in fake.transcript)

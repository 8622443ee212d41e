"""The threaded driver's own seams: what the behavioural suite (both drivers) does not see.

On the FakeTransport, no sockets: a submitter whose ``send`` raised leaves no reference
cycle behind (its kept connection closes when the submitter goes, not at the next cycle
collection), one worker takes no lock, and the engine's lookahead is not asked for a
single message.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit import MessageError, RecipientRejected, SendResult, Submitter
from smtpkit.drivers import _sync_batch
from smtpkit.testing import FakeTransport

pytestmark = pytest.mark.timeout(30)

HOST = "smtp.example.test"


def message(number: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", "s"
    msg["Message-ID"] = f"<sync-{number}@example.test>"
    msg.set_content("hello\n")
    return msg


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    """Only reference counting frees objects while the test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cycle_collector")
@pytest.mark.parametrize(
    ("send", "error"),
    [
        (lambda s: s.send(b"Subject: x\r\n\r\nbody\r\n"), MessageError),  # no envelope
        (lambda s: s.send(message(), recipients=["nobody@example.test"]), RecipientRejected),
    ],
)
def test_a_submitter_whose_send_raised_is_freed_without_the_cycle_collector(
    send: object, error: type[Exception]
) -> None:
    fake = FakeTransport()
    fake.reply("rcpt", "550 5.1.1 No such user", recipient="nobody@example.test")
    submitter = Submitter(HOST, transport=fake)
    alive = weakref.ref(submitter)
    with pytest.raises(error):
        send(submitter)  # type: ignore[operator]
    del submitter
    # The raised error is gone with the pytest.raises block: nothing else may hold the
    # submitter (a cycle through the error's traceback used to), so its finalizer has
    # closed the connection it kept (without QUIT: a finalizer does no network round trip).
    assert alive() is None
    assert [stream.closed for stream in fake.streams] == [True]
    assert "C: QUIT" not in fake.streams[0].transcript


def test_one_worker_takes_no_lock_and_send_asks_for_no_lookahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTransport()
    submitter = Submitter(HOST, transport=fake)
    made: list[object] = []
    real = _sync_batch._Workers.__init__

    def spy(self: _sync_batch._Workers, *args: object, **options: object) -> None:
        real(self, *args, **options)  # type: ignore[arg-type]
        made.append((self._lock, self._lookahead))

    monkeypatch.setattr(_sync_batch._Workers, "__init__", spy)
    with submitter:
        result = submitter.send(message(1))
        outcomes = submitter.send_many([message(2), message(3)], concurrency=1)
        submitter.send_many([message(4), message(5)], concurrency=2)
    assert isinstance(result, SendResult)
    assert all(isinstance(o, SendResult) for o in outcomes)
    (send_lock, send_ahead), (one_lock, one_ahead), (two_lock, two_ahead) = made
    assert send_lock is _sync_batch._ALONE
    assert send_ahead is False
    assert one_lock is _sync_batch._ALONE
    assert one_ahead is True
    assert two_lock is not _sync_batch._ALONE
    assert two_ahead is True
    # One worker still pipelines: message 3's envelope rides behind message 2's end.
    flights = fake.flights
    assert any("MAIL" in " ".join(flight) and "." in flight for flight in flights)
    assert len(fake.messages) == 5

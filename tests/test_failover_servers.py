"""smtpkit.Failover against real LocalServers on loopback: a server that is down, one that
throttles, one that drops the connection after the content, round robin, cool-downs."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from smtpkit import (
    BatchInterrupted,
    DeliveryUnknown,
    Failover,
    FailoverResult,
    Security,
    SendResult,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.errors import (
    ConnectError,
    InvalidCredentials,
    RecipientRejected,
    ServiceUnavailable,
    SMTPError,
    TLSError,
)
from smtpkit.failover import handled_by
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

USER, PASSWORD = "alice@example.test", "s3cret-pw"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def down_port() -> Iterator[int]:
    """A loopback port with nothing listening: bound (so no one else takes it), never
    listening, so a connection is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def via(server: LocalServer, **options: object) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **options,  # type: ignore[arg-type]
    )


def down(port: int) -> Submitter:
    return Submitter("127.0.0.1", port, security=Security.NONE, timeout=TIMEOUT)


def label(server: LocalServer) -> str:
    return f"{server.host}:{server.port}"


def message(n: int = 0, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, f"n{n}"
    msg["Message-ID"] = f"<failover-{n}@example.test>"
    msg.set_content("hello")
    return msg


def ids(server: LocalServer) -> list[str]:
    """The Message-IDs a server accepted (a message it accepted twice shows twice)."""
    return [str(received.message["Message-ID"]) for received in server.messages]


def counting(
    phase: str, answer: Callable[[], str | None]
) -> tuple[list[int], Callable[..., object]]:
    """A ``faults`` hook that counts the ``phase`` steps it sees and answers with ``answer()``."""
    seen = [0]

    def hook(step: str) -> str | None:
        if step != phase:
            return None
        seen[0] += 1
        return answer()

    return seen, hook


def test_a_server_that_is_down_is_skipped_for_the_next(
    local_server: ServerFactory, down_port: int
) -> None:
    good = local_server()
    clock = Clock()
    failover = Failover([down(down_port), via(good)], clock=clock)
    result = failover.send(message())
    assert isinstance(result, FailoverResult)
    assert result.server == label(good)
    assert result.servers_tried == (f"127.0.0.1:{down_port}", label(good))
    assert ids(good) == ["<failover-0@example.test>"]
    assert failover.cooling_down() == {f"127.0.0.1:{down_port}": 30.0}


@pytest.mark.parametrize("throttle", ["421 4.7.0 Try again later", "451 4.3.0 Try again later"])
def test_a_throttling_server_passes_the_message_on(
    local_server: ServerFactory, throttle: str
) -> None:
    busy, spare = local_server(), local_server()
    busy.reply("mail", throttle, times=None)
    result = Failover([via(busy), via(spare)]).send(message())
    assert result.server == label(spare)
    assert busy.messages == []
    assert ids(spare) == ["<failover-0@example.test>"]


def test_a_drop_after_the_content_stays_unknown_and_is_never_sent_again(
    local_server: ServerFactory,
) -> None:
    # The server keeps the message and closes the connection without the final reply, as
    # one whose reply got lost would (RFC 5321 §4.1.1.4): the client cannot know.
    dropper = local_server(faults=lambda phase: LocalServer.DROP if phase == "message" else None)
    spare = local_server()
    failover = Failover([via(dropper), via(spare)])
    with pytest.raises(DeliveryUnknown) as caught:
        failover.send(message())
    assert handled_by(caught.value) == label(dropper)
    assert caught.value.servers_tried == (label(dropper),)  # type: ignore[attr-defined]
    # Delivered once, by the server that dropped; never a second copy through the spare.
    assert ids(dropper) == ["<failover-0@example.test>"]
    assert spare.messages == []
    # The server whose connection broke is skipped for the next message.
    assert list(failover.cooling_down()) == [label(dropper)]
    assert failover.send(message(1)).server == label(spare)


def test_a_permanent_refusal_is_the_message_s_own_outcome(local_server: ServerFactory) -> None:
    strict, spare = local_server(), local_server()
    strict.reply("rcpt", "550 5.1.1 User unknown", times=None)
    failover = Failover([via(strict), via(spare)])
    with pytest.raises(RecipientRejected) as caught:
        failover.send(message())
    assert handled_by(caught.value) == label(strict)
    assert spare.messages == []
    assert failover.cooling_down() == {}  # the server did its job


def test_a_refused_login_and_a_failed_tls_handshake_move_on(local_server: ServerFactory) -> None:
    wrong = local_server(credentials={USER: "another password"})
    expired = local_server(certificate_expired=True)
    good = local_server(credentials={USER: PASSWORD})
    auth = PasswordAuth(USER, PASSWORD)
    failover = Failover([via(wrong, auth=auth), via(expired, auth=auth), via(good, auth=auth)])
    result = failover.send(message())
    assert result.servers_tried == (label(wrong), label(expired), label(good))
    assert ids(good) == ["<failover-0@example.test>"]
    # A single message: each server was tried once, so the refused login cost one AUTH.
    assert [attempt.success for attempt in wrong.auth_attempts] == [False]


def test_the_last_server_failure_is_raised_naming_every_server_tried(
    local_server: ServerFactory, down_port: int
) -> None:
    busy = local_server()
    busy.reply("mail", "421 4.7.0 Try again later", times=None)
    with pytest.raises(ServiceUnavailable) as caught:
        Failover([down(down_port), via(busy)]).send(message())
    assert caught.value.servers_tried == (f"127.0.0.1:{down_port}", label(busy))  # type: ignore[attr-defined]
    assert handled_by(caught.value) == label(busy)


def test_a_cooling_server_is_skipped_then_used_again_after_its_cooldown(
    local_server: ServerFactory,
) -> None:
    failing = [True]
    mails, hook = counting("mail", lambda: "451 4.3.0 Try again later" if failing[0] else None)
    primary, backup = local_server(faults=hook), local_server()
    clock = Clock()
    failover = Failover([via(primary), via(backup)], cooldown=60.0, clock=clock)

    assert failover.send(message(0)).server == label(backup)
    assert mails[0] == 1
    failing[0] = False  # the primary recovers, but its cool-down is not over
    clock.now = 59.0
    assert failover.send(message(1)).server == label(backup)
    assert mails[0] == 1  # skipped: not even a MAIL reached it
    clock.now = 60.0
    assert failover.send(message(2)).server == label(primary)
    assert ids(primary) == ["<failover-2@example.test>"]
    assert ids(backup) == ["<failover-0@example.test>", "<failover-1@example.test>"]


def test_when_all_cool_down_the_earliest_to_end_is_still_tried(
    local_server: ServerFactory,
) -> None:
    failing = [True]
    _, first_hook = counting("mail", lambda: "451 4.3.0 Later" if failing[0] else None)
    _, second_hook = counting("mail", lambda: "451 4.3.0 Later" if failing[0] else None)
    first, second = local_server(faults=first_hook), local_server(faults=second_hook)
    clock = Clock()
    failover = Failover([via(first), via(second)], cooldown=60.0, clock=clock)
    with pytest.raises(ServiceUnavailable):
        failover.send(message(0))  # both fail: both cool down, the first one first
    assert set(failover.cooling_down()) == {label(first), label(second)}
    failing[0] = False
    clock.now = 1.0
    result = failover.send(message(1))
    assert result.servers_tried == (label(first),)


def test_round_robin_spreads_messages_evenly(local_server: ServerFactory) -> None:
    servers = [local_server(security=Security.NONE) for _ in range(3)]
    failover = Failover([via(server) for server in servers], strategy="round_robin")
    used = [failover.send(message(n)).server for n in range(6)]
    assert used == [label(server) for server in servers] * 2
    outcomes = failover.send_many([message(n) for n in range(6, 15)])
    assert all(isinstance(outcome, FailoverResult) for outcome in outcomes)
    assert [len(server.messages) for server in servers] == [5, 5, 5]


def test_round_robin_from_many_threads_stays_even_and_sends_each_message_once(
    local_server: ServerFactory,
) -> None:
    servers = [local_server(security=Security.NONE) for _ in range(3)]
    failover = Failover([via(server) for server in servers], strategy="round_robin")
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for n in range(start, start + 3):
                failover.send(message(n))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(start,)) for start in (0, 3, 6, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert [len(server.messages) for server in servers] == [4, 4, 4]
    received = sorted(mid for server in servers for mid in ids(server))
    assert received == sorted(f"<failover-{n}@example.test>" for n in range(12))


def test_send_many_moves_a_batch_off_a_down_server_in_input_order(
    local_server: ServerFactory, down_port: int
) -> None:
    good = local_server()
    failover = Failover([down(down_port), via(good)])
    reported: list[tuple[int, SendResult | SMTPError]] = []
    outcomes = failover.send_many(
        [message(n) for n in range(5)],
        concurrency=2,
        on_result=lambda i, o: reported.append((i, o)),
    )
    assert [outcome.message_id for outcome in outcomes] == [  # type: ignore[union-attr]
        f"<failover-{n}@example.test>" for n in range(5)
    ]
    assert all(handled_by(outcome) == label(good) for outcome in outcomes)
    # on_result saw each message once, with its final outcome only.
    assert sorted(index for index, _ in reported) == [0, 1, 2, 3, 4]
    assert all(outcome is outcomes[index] for index, outcome in reported)
    assert sorted(ids(good)) == [f"<failover-{n}@example.test>" for n in range(5)]


def test_send_many_keeps_refusals_and_unknowns_where_they_happened(
    local_server: ServerFactory,
) -> None:
    def faults(phase: str) -> str | None:
        return LocalServer.DROP if phase == "message" and drops.pop() else None

    drops = [False, False, True]  # popped from the end: the first message's reply is lost
    first = local_server(faults=faults, pipelining=False)
    first.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.test", times=None)
    spare = local_server()
    failover = Failover([via(first, max_connections=1), via(spare)])
    outcomes = failover.send_many(
        [message(0), message(1, to="gone@example.test"), message(2)], concurrency=1
    )
    assert isinstance(outcomes[0], DeliveryUnknown)
    assert isinstance(outcomes[1], RecipientRejected)
    assert handled_by(outcomes[0]) == handled_by(outcomes[1]) == label(first)
    # The third message was already that server's to send, and it went on a new connection.
    assert isinstance(outcomes[2], FailoverResult)
    assert outcomes[2].server == label(first)
    # Each message reached one server at most, once: nothing was resent.
    assert ids(first) == ["<failover-0@example.test>", "<failover-2@example.test>"]
    assert spare.messages == []


def test_on_result_raising_interrupts_with_every_outcome(
    local_server: ServerFactory, down_port: int
) -> None:
    good = local_server()
    failover = Failover([down(down_port), via(good)])

    def stop(index: int, outcome: SendResult | SMTPError) -> None:
        raise RuntimeError("stop")

    with pytest.raises(BatchInterrupted) as caught:
        failover.send_many([message(n) for n in range(4)], concurrency=1, on_result=stop)
    assert isinstance(caught.value.__cause__, RuntimeError)
    outcomes = caught.value.outcomes
    assert len(outcomes) == 4
    sent = [outcome for outcome in outcomes if outcome is not None]
    # What the error calls sent is exactly what arrived; the rest may be sent again.
    assert sorted(o.message_id for o in sent) == sorted(ids(good))  # type: ignore[union-attr]
    assert 1 <= len(sent) < 4
    assert all(not isinstance(outcome, ConnectError) for outcome in outcomes)


def test_a_failing_server_is_logged_once_per_cooldown_without_addresses(
    local_server: ServerFactory, down_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    good = local_server()
    failover = Failover([down(down_port), via(good)], cooldown=0.0)
    with caplog.at_level(logging.WARNING, logger="smtpkit.failover"):
        failover.send(message(0))
    [record] = [r for r in caplog.records if r.name == "smtpkit.failover"]
    assert f"127.0.0.1:{down_port}" in record.getMessage()
    assert "ConnectError" in record.getMessage()
    assert "example.test" not in record.getMessage()


def test_the_context_manager_keeps_connections_and_closes_them(
    local_server: ServerFactory,
) -> None:
    first, second = local_server(), local_server()
    with Failover([via(first), via(second)], strategy="round_robin") as failover:
        for n in range(4):
            failover.send(message(n))
    assert len(first.messages) == len(second.messages) == 2


def test_tls_errors_are_server_failures_too(local_server: ServerFactory) -> None:
    expired, good = local_server(certificate_expired=True), local_server()
    with pytest.raises(TLSError):
        via(expired).send(message())
    assert Failover([via(expired), via(good)]).send(message(1)).server == label(good)


def test_a_wrong_password_alone_ends_with_the_login_error(local_server: ServerFactory) -> None:
    wrong = local_server(credentials={USER: "another password"})
    with pytest.raises(InvalidCredentials) as caught:
        Failover([via(wrong, auth=PasswordAuth(USER, PASSWORD))]).send(message())
    assert handled_by(caught.value) == label(wrong)
    assert PASSWORD not in repr(caught.value.__dict__)

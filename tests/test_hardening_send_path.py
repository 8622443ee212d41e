"""Send-path bugs found by hostile servers and a real Postfix, each pinned by a test.

Every test drives the public API (``smtpkit.Submitter``); where a bug was seen on real
sockets the test uses real sockets on 127.0.0.1 (``tests/scripted_smtp.py``, LocalServer,
or the private Postfix of ``tests/postfix_server.py``).
"""

from __future__ import annotations

import pickle
import threading
import time
from email.message import EmailMessage

import pytest
from conftest import ServerFactory
from scripted_smtp import ScriptedServer

import smtpkit.hooks
from smtpkit import (
    BatchInterrupted,
    ConfigurationError,
    InvalidCredentials,
    MessageError,
    Outgoing,
    Phase,
    RateLimited,
    RecipientRejected,
    Retry,
    Security,
    SendResult,
    SMTPError,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.testing import FakeCapabilities, FakeTransport, LocalServer

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0
NOBODY = "nobody@example.test"


def message(n: int, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.test"
    msg["To"] = to
    msg["Subject"] = f"message {n}"
    msg["Message-ID"] = f"<m{n}@example.test>"
    msg.set_content(f"body {n}\n")
    return msg


def on_loopback(server: ScriptedServer, **options: object) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=TIMEOUT,
        **options,  # type: ignore[arg-type]
    )


def rset_closes(verb: str, line: str, count: int) -> str | None:
    if verb == "RCPT" and NOBODY in line:
        return "550 5.1.1 No such user"
    if verb == "RSET":
        return "421 4.7.0 Closing the connection"
    return None


# -- 421 to RSET after a refused recipient ---------------------------------------------------


@pytest.mark.parametrize("pipelining", [False, True])
def test_421_to_rset_replaces_the_connection_for_the_next_message(pipelining: bool) -> None:
    with ScriptedServer(answer=rset_closes, pipelining=pipelining) as server:
        first, second = on_loopback(server).send_many(
            [message(1, to=NOBODY), message(2)], concurrency=1
        )

        assert isinstance(first, RecipientRejected)
        assert first.recipient == NOBODY
        assert isinstance(second, SendResult), second
        assert server.connections == 2
        assert len(server.messages) == 1
        assert b"body 2" in server.messages[0]


@pytest.mark.parametrize("pipelining", [False, True])
def test_421_to_rset_on_the_fake(pipelining: bool) -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(pipelining=pipelining))
    fake.reply("rcpt", "550 5.1.1 No such user", recipient=NOBODY)
    fake.reply("rset", "421 4.7.0 Closing the connection")
    submitter = Submitter("smtp.example.test", transport=fake, timeout=TIMEOUT)
    first, second, third = submitter.send_many(
        [message(1, to=NOBODY), message(2), message(3)], concurrency=1
    )

    assert isinstance(first, RecipientRejected)
    assert isinstance(second, SendResult), second
    assert isinstance(third, SendResult), third
    assert [sent.message["Message-ID"] for sent in fake.messages] == [
        "<m2@example.test>",
        "<m3@example.test>",
    ]
    assert fake.connections == 2
    assert fake.protocol_errors == []


# -- nothing waits inside an open transaction -------------------------------------------------


def open_waits(server: ScriptedServer) -> list[float]:
    """Seconds between each ``354`` the server sent and the end of that message's content.

    That is how long the transaction stayed open waiting for the client: a client that
    sleeps there (a rate limit, a slow callback) makes servers time out (Postfix's
    ``smtpd_timeout``).
    """
    waits: list[float] = []
    opened: float | None = None
    for at, text in server.events:
        if text.startswith("S: 354"):
            opened = at
        elif text.startswith("C: <") and opened is not None:
            waits.append(at - opened)
            opened = None
    return waits


@pytest.mark.parametrize("pipelining", [True, False])
def test_the_rate_limit_is_waited_between_transactions(pipelining: bool) -> None:
    interval = 0.4
    with ScriptedServer(pipelining=pipelining) as server:
        submitter = on_loopback(server, rate_limit=1 / interval)
        outcomes = submitter.send_many([message(n) for n in range(3)], concurrency=1)

        assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
        waits = open_waits(server)
        assert len(waits) == 3
        assert max(waits) < interval / 2, waits
        # The limit still holds: three message starts at least two intervals apart.
        starts = [at for at, text in server.events if text.startswith("C: MAIL")]
        assert starts[-1] - starts[0] >= 2 * interval - 0.05


def test_a_slow_on_result_runs_outside_the_transaction() -> None:
    slow = 0.4
    calls: list[int] = []

    def on_result(index: int, outcome: object) -> None:
        time.sleep(slow)
        calls.append(index)

    with ScriptedServer() as server:
        outcomes = on_loopback(server).send_many(
            [message(n) for n in range(3)], concurrency=1, on_result=on_result
        )

        assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
        assert sorted(calls) == [0, 1, 2]  # every call made before send_many returned
        waits = open_waits(server)
        assert len(waits) == 3
        assert max(waits) < slow / 2, waits


def test_a_slow_send_hook_runs_outside_the_transaction() -> None:
    slow = 0.4
    started: list[int] = []
    ended: list[int] = []

    def on_start(event: smtpkit.hooks.SendStarted) -> None:
        time.sleep(slow)
        started.append(event.index)

    def on_end(event: smtpkit.hooks.SendFinished) -> None:
        time.sleep(slow)
        ended.append(event.index)

    remove_start = smtpkit.hooks.on_send_start(on_start)
    remove_end = smtpkit.hooks.on_send_end(on_end)
    try:
        with ScriptedServer() as server:
            outcomes = on_loopback(server).send_many([message(n) for n in range(2)], concurrency=1)

            assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
            assert sorted(started) == sorted(ended) == [0, 1]
            waits = open_waits(server)
            assert len(waits) == 2
            assert max(waits) < slow / 2, waits
    finally:
        remove_start()
        remove_end()


@pytest.mark.parametrize("pipelining", [True, False])
def test_send_calls_the_end_hook_after_the_refused_transaction_is_reset(pipelining: bool) -> None:
    slow = 0.4
    ended: list[SMTPError | None] = []

    def on_end(event: smtpkit.hooks.SendFinished) -> None:
        time.sleep(slow)
        ended.append(event.error)

    remove = smtpkit.hooks.on_send_end(on_end)
    try:
        with ScriptedServer(answer=rset_closes_not, pipelining=pipelining) as server:
            with pytest.raises(RecipientRejected):
                on_loopback(server).send(message(1, to=NOBODY))

            assert len(ended) == 1
            assert isinstance(ended[0], RecipientRejected)
            refused = next(at for at, text in server.events if text.startswith("S: 550"))
            rset = next(at for at, text in server.events if text == "C: RSET")
            assert rset - refused < slow / 2
    finally:
        remove()


def rset_closes_not(verb: str, line: str, count: int) -> str | None:
    return "550 5.1.1 No such user" if verb == "RCPT" and NOBODY in line else None


# -- a refused login is not repeated for every message -----------------------------------------

USER, PASSWORD = "alice@example.test", "right password"


def login_server(local_server: ServerFactory, **options: object) -> LocalServer:
    return local_server(security=Security.NONE, credentials={USER: PASSWORD}, **options)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_wrong_password_logs_in_once_per_batch(
    local_server: ServerFactory, concurrency: int
) -> None:
    server = login_server(local_server)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        auth=PasswordAuth(USER, "wrong password"),
        timeout=TIMEOUT,
    )
    outcomes = submitter.send_many([message(n) for n in range(10)], concurrency=concurrency)

    assert len(server.auth_attempts) == 1, server.auth_attempts
    assert all(isinstance(outcome, InvalidCredentials) for outcome in outcomes), outcomes
    assert len({id(outcome) for outcome in outcomes}) == 1  # the same error for every one
    assert server.messages == []


def test_a_login_throttle_is_not_retried_within_the_batch(local_server: ServerFactory) -> None:
    server = login_server(
        local_server, auth_failure_reply="454 4.7.0 Too many login attempts, please try later"
    )
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD + "!"),
        timeout=TIMEOUT,
        retry=Retry(attempts=3, backoff=0),
    )
    outcomes = submitter.send_many([message(n) for n in range(20)], concurrency=2)

    assert len(server.auth_attempts) == 1, server.auth_attempts
    assert all(isinstance(outcome, RateLimited) for outcome in outcomes), outcomes
    assert all(outcome.phase is Phase.AUTH for outcome in outcomes)  # type: ignore[union-attr]


def test_a_later_batch_logs_in_again() -> None:
    # The rule is per batch: a refusal that has gone away is seen by the next call.
    fake = FakeTransport(credentials={USER: PASSWORD})
    fake.reply("auth", "454 4.7.0 Too many login attempts, please try later")
    submitter = Submitter(
        "smtp.example.test", auth=PasswordAuth(USER, PASSWORD), transport=fake, timeout=TIMEOUT
    )
    first = submitter.send_many([message(n) for n in range(3)], concurrency=1)
    second = submitter.send_many([message(n) for n in range(3)], concurrency=1)

    assert all(isinstance(outcome, RateLimited) for outcome in first), first
    assert all(isinstance(outcome, SendResult) for outcome in second), second
    assert [attempt.success for attempt in fake.auth_attempts] == [False, True]


# -- close() while another thread still sends -----------------------------------------------


@pytest.mark.parametrize("how", ["with", "open-close"])
def test_a_connection_in_use_at_close_is_closed_when_released(how: str) -> None:
    arrived, release = threading.Event(), threading.Event()

    def hold_the_final_reply(verb: str, line: str, count: int) -> str | None:
        if verb == ".":
            arrived.set()
            release.wait(TIMEOUT)
        return None

    with ScriptedServer(answer=hold_the_final_reply) as server:
        submitter = on_loopback(server)
        results: list[object] = []
        sender = threading.Thread(target=lambda: results.append(submitter.send(message(1))))
        if how == "with":
            with submitter:
                sender.start()
                assert arrived.wait(TIMEOUT)
        else:
            submitter.open()
            sender.start()
            assert arrived.wait(TIMEOUT)
            submitter.close()
        # The Submitter was closed while the sending thread still held its connection.
        release.set()
        sender.join(TIMEOUT)

        assert [type(result) for result in results] == [SendResult]
        server.wait_closed(server.connections, timeout=2.0)
        assert server.lines()[-1] == "C: QUIT"


# -- a BDAT chunk refused mid-message ---------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_chunk_on_the_fake_is_followed_by_rset(pipelining: bool) -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(chunking=True, pipelining=pipelining))
    fake.reply("data", "452 4.3.1 Insufficient system storage")  # the first non-final chunk
    big = message(1)
    big.set_content("z" * 60 + "\n" + ("w" * 76 + "\n") * 20_000)  # > 1 MiB: several chunks
    submitter = Submitter("smtp.example.test", transport=fake, timeout=TIMEOUT)
    first, second = submitter.send_many([big, message(2)], concurrency=1)

    assert isinstance(first, SMTPError)
    assert (first.phase, first.is_transient) == (Phase.DATA, True)  # type: ignore[attr-defined]
    assert isinstance(second, SendResult), second
    lines = [line for line in fake.transcript if line.startswith("C: ") and line[3] != "<"]
    verbs = [line[3:].split(" ", 1)[0].split(":", 1)[0] for line in lines]
    second_mail = verbs.index("MAIL", verbs.index("MAIL") + 1)
    assert verbs[second_mail - 1] == "RSET", lines
    assert fake.connections == 1
    assert fake.protocol_errors == []


# -- on_result raising ------------------------------------------------------------------------


class RecordingFailed(Exception):
    """What a caller's on_result raises (say, its database went away)."""


def slow_final_reply(verb: str, line: str, count: int) -> str | None:
    if verb == ".":
        time.sleep(0.05)  # a server a little slower than on_result
    return None


def message_ids(server: ScriptedServer) -> list[str]:
    found = []
    for content in server.messages:
        head = content.split(b"\r\n\r\n", 1)[0].decode()
        found += [
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("message-id:")
        ]
    return sorted(found)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_on_result_raising_carries_every_outcome(concurrency: int) -> None:
    messages = [message(n) for n in range(12)]

    def record(index: int, outcome: object) -> None:
        if index == 2:
            raise RecordingFailed("database is gone")

    with ScriptedServer(answer=slow_final_reply) as server:
        submitter = on_loopback(server)
        with pytest.raises(BatchInterrupted) as caught:
            submitter.send_many(messages, concurrency=concurrency, on_result=record)

        error = caught.value
        assert isinstance(error.__cause__, RecordingFailed)
        assert "RecordingFailed" in str(error)
        assert len(error.outcomes) == 12
        assert isinstance(error.outcomes[2], SendResult)
        assert len(error.not_sent) >= 12 - 3 - 2 * concurrency  # no further message started
        assert all(o is None or isinstance(o, SendResult) for o in error.outcomes)
        sent = sorted(o.message_id or "" for o in error.outcomes if isinstance(o, SendResult))
        assert message_ids(server) == sent

        # Sending what was not sent delivers every message exactly once.
        again = submitter.send_many([messages[i] for i in error.not_sent])
        assert all(isinstance(outcome, SendResult) for outcome in again)
        assert message_ids(server) == sorted(f"<m{n}@example.test>" for n in range(12))


def test_batch_interrupted_pickles_with_its_outcomes() -> None:
    fake = FakeTransport()
    fake.reply("rcpt", "550 5.1.1 No such user", recipient=NOBODY)

    def record(index: int, outcome: object) -> None:
        if index == 1:
            raise RecordingFailed("stop")

    submitter = Submitter("smtp.example.test", transport=fake, timeout=TIMEOUT)
    with pytest.raises(BatchInterrupted) as caught:
        submitter.send_many(
            [message(0), message(1, to=NOBODY), *(message(n) for n in range(2, 6))],
            concurrency=1,
            on_result=record,
        )
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is BatchInterrupted
    assert str(copy) == str(caught.value)
    assert copy.not_sent == caught.value.not_sent
    assert isinstance(copy.outcomes[0], SendResult)
    assert copy.outcomes[0] == caught.value.outcomes[0]
    assert isinstance(copy.outcomes[1], RecipientRejected)


# -- concurrency above the pool size ----------------------------------------------------------


def test_concurrency_above_max_connections_is_refused_before_anything_is_sent() -> None:
    fake = FakeTransport()
    submitter = Submitter("smtp.example.test", transport=fake, max_connections=4)
    with pytest.raises(ConfigurationError, match=r"concurrency=8.*max_connections=4") as caught:
        submitter.send_many([message(n) for n in range(20)], concurrency=8)

    assert "max_connections=8" in (caught.value.hint or "")
    assert fake.connections == 0


def test_concurrency_up_to_max_connections_uses_that_many_connections() -> None:
    fake = FakeTransport()
    submitter = Submitter("smtp.example.test", transport=fake, max_connections=8)
    outcomes = submitter.send_many([message(n) for n in range(40)], concurrency=8)

    assert all(isinstance(outcome, SendResult) for outcome in outcomes)
    assert 1 <= fake.connections <= 8


@pytest.mark.parametrize("concurrency", [0, -1, True, 2.5, "4", float("nan")])
def test_concurrency_of_the_wrong_kind_is_refused(concurrency: object) -> None:
    fake = FakeTransport()
    submitter = Submitter("smtp.example.test", transport=fake)
    with pytest.raises(ConfigurationError, match="concurrency"):
        submitter.send_many([message(0)], concurrency=concurrency)  # type: ignore[arg-type]
    assert fake.connections == 0


# -- a preset's recipients-per-message cap, before connecting ---------------------------------


def many_recipients(n: int, count: int) -> EmailMessage:
    msg = message(n)
    msg.replace_header("To", ", ".join(f"user{i}@example.test" for i in range(count)))
    return msg


def test_the_preset_recipient_cap_is_checked_before_connecting() -> None:
    with ScriptedServer() as server:
        submitter = on_loopback(server, provider="gmail")  # Gmail: 100 recipients a message
        with pytest.raises(MessageError, match=r"101 recipients; Gmail accepts at most 100"):
            submitter.send(many_recipients(1, 101))

        assert server.connections == 0


def test_the_preset_recipient_cap_in_a_batch_opens_nothing_for_that_message() -> None:
    with ScriptedServer() as server:
        submitter = on_loopback(server, provider="gmail")
        over = submitter.send_many([many_recipients(n, 150) for n in range(3)])
        assert all(isinstance(outcome, MessageError) for outcome in over), over
        assert server.connections == 0

        # Explicit envelopes count too (duplicates once, as they are sent).
        envelope = [f"user{i}@example.test" for i in range(100)] + ["user1@EXAMPLE.TEST"]
        first, second, third = submitter.send_many(
            [
                message(1),
                Outgoing(message(2), recipients=[f"u{i}@example.test" for i in range(101)]),
                Outgoing(message(3), recipients=envelope),
            ],
            concurrency=1,
        )
        assert isinstance(first, SendResult), first
        assert isinstance(second, MessageError), second
        assert isinstance(third, SendResult), third
        assert len(third.accepted) == 100
        assert server.connections == 1

"""Both drivers, one behaviour on the wire: deadlines, waiting, pipelining, closing.

Each test runs with ``smtpkit.Submitter`` and with ``smtpkit.AsyncSubmitter`` (the
``driver`` fixture of ``tests/drivers_kit.py``) against a server on 127.0.0.1 that measures
what the client did from the server's side: when each line arrived (``ScriptedServer``),
how many round trips it took (``FlightServer``), or that a dripping reply was cut off in
time (``HostileServer``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from drivers_kit import CALL_TIMEOUT, DriverFactory, driver, mail
from flight_server import FlightServer
from scripted_smtp import ScriptedServer

from smtpkit import (
    BatchInterrupted,
    DeliveryUnknown,
    OperationTimeout,
    RecipientRejected,
    Security,
    SendResult,
    Timeouts,
)
from tests.hostile_server import HostileServer, Peer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

#: The reply deadline under test, seconds: short, so the suite stays fast.
LIMIT = 0.6
#: How late the deadline may fire: scheduling on a loaded 2-core machine, plus closing.
MARGIN = 1.0
#: How often a dripping server sends the next piece: well inside LIMIT.
EVERY = 0.1
GENEROUS = 10.0


# -- one deadline per reply, not per read ----------------------------------------------------


def greet(peer: Peer) -> None:
    peer.send(b"220 hostile.test ESMTP\r\n")
    peer.read_line()  # EHLO
    peer.send(b"250-hostile.test\r\n250 PIPELINING\r\n")


def drip_greeting(peer: Peer) -> None:
    peer.drip(lambda i: b"220-still greeting %d\r\n" % i, every=EVERY, limit=LIMIT + 4)


def drip_ehlo(peer: Peer) -> None:
    peer.send(b"220 hostile.test ESMTP\r\n")
    peer.read_line()
    peer.drip(lambda i: b"250-still here %d\r\n" % i, every=EVERY, limit=LIMIT + 4)


def drip_envelope(peer: Peer) -> None:
    greet(peer)
    peer.read_line()  # MAIL, then RCPT/DATA wait behind it
    peer.drip(lambda i: b"2" if i == 0 else b"5", every=EVERY, limit=LIMIT + 4)


def silent_after_ehlo(peer: Peer) -> None:
    greet(peer)
    peer.read_line()  # MAIL, and then nothing at all
    peer.drip(lambda i: b"", every=EVERY, limit=LIMIT + 4)


DRIPS = {
    "greeting": drip_greeting,
    "ehlo": drip_ehlo,
    "mail": drip_envelope,
    "silent": silent_after_ehlo,
}


@pytest.fixture
def hostile() -> Iterator[list[HostileServer]]:
    servers: list[HostileServer] = []
    yield servers
    for server in servers:
        server.__exit__(None, None, None)
    for server in servers:
        assert server.errors == []


@pytest.mark.parametrize("step", sorted(DRIPS))
def test_a_dripping_reply_times_out_when_the_reply_is_due(
    driver: DriverFactory, hostile: list[HostileServer], step: str
) -> None:
    server = HostileServer(DRIPS[step]).__enter__()
    hostile.append(server)
    timeouts = Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS)
    client = driver.client(server.host, server.port, security=Security.NONE, timeout=timeouts)

    started = time.monotonic()
    with pytest.raises(OperationTimeout) as caught:
        client.send(mail())
    elapsed = time.monotonic() - started

    assert LIMIT <= elapsed < LIMIT + MARGIN, elapsed
    if step != "silent":  # a reply that started and stalled: say what to do about it
        assert caught.value.hint, caught.value


def test_a_dripping_final_reply_is_unknown_within_the_final_reply_timeout(
    driver: DriverFactory, hostile: list[HostileServer]
) -> None:
    def handler(peer: Peer) -> None:
        greet(peer)
        for _ in range(3):  # MAIL, RCPT, DATA: one pipelined flight
            peer.read_line()
        peer.send(b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 Go ahead\r\n")
        peer.read_content()
        peer.drip(lambda i: b"250" + (b"-" if i == 0 else b"x"), every=EVERY, limit=LIMIT + 4)

    server = HostileServer(handler).__enter__()
    hostile.append(server)
    timeouts = Timeouts(connect=GENEROUS, command=GENEROUS, final_reply=LIMIT)
    client = driver.client(server.host, server.port, security=Security.NONE, timeout=timeouts)

    started = time.monotonic()
    with pytest.raises(DeliveryUnknown) as caught:
        client.send(mail(4))
    elapsed = time.monotonic() - started

    assert LIMIT <= elapsed < LIMIT + MARGIN, elapsed
    assert caught.value.message_id == "<drv-4@example.test>"


# -- nothing waits inside an open transaction -------------------------------------------------


def open_transactions(server: ScriptedServer) -> list[float]:
    """Seconds from each ``MAIL`` the server read to the end of that message's content."""
    spans: list[float] = []
    opened: float | None = None
    for at, text in server.events:
        if text.startswith("C: MAIL"):
            opened = at
        elif text.startswith("C: <") and opened is not None:
            spans.append(at - opened)
            opened = None
    return spans


@pytest.mark.parametrize("how", ["send_many", "send"])
def test_the_rate_limit_is_waited_between_transactions(driver: DriverFactory, how: str) -> None:
    interval = 0.4
    with ScriptedServer() as server:
        client = driver.client(
            server.host, server.port, security=Security.NONE, rate_limit=1 / interval
        )
        if how == "send_many":
            outcomes = client.send_many([mail(n) for n in range(3)], concurrency=1)
        else:
            outcomes = [client.send(mail(n)) for n in range(3)]

        assert all(isinstance(o, SendResult) for o in outcomes), outcomes
        spans = open_transactions(server)
        assert len(spans) == 3
        assert max(spans) < interval / 2, spans
        # The limit holds all the same: three starts at least two intervals apart.
        starts = [at for at, text in server.events if text.startswith("C: MAIL")]
        assert starts[-1] - starts[0] >= 2 * interval - 0.05, starts


def test_a_slow_on_result_runs_outside_the_transaction(driver: DriverFactory) -> None:
    slow = 0.4
    calls: list[int] = []

    on_result = driver.slow_callback(slow, lambda index, outcome: calls.append(index))

    with ScriptedServer() as server:
        client = driver.client(server.host, server.port, security=Security.NONE)
        outcomes = client.send_many([mail(n) for n in range(3)], concurrency=1, on_result=on_result)

        assert all(isinstance(o, SendResult) for o in outcomes), outcomes
        assert sorted(calls) == [0, 1, 2]  # every call made before send_many returned
        spans = open_transactions(server)
        assert len(spans) == 3
        assert max(spans) < slow / 2, spans


# -- on_result raising -------------------------------------------------------------------------


class RecordingFailed(Exception):
    """What a caller's on_result raises (say, its database went away)."""


def message_ids(server: ScriptedServer) -> list[str]:
    found = []
    for content in server.messages:
        found += re.findall(rb"(?im)^message-id:\s*(\S+)\r?$", content.split(b"\r\n\r\n", 1)[0])
    return sorted(value.decode() for value in found)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_on_result_raising_stops_the_batch_and_carries_every_outcome(
    driver: DriverFactory, concurrency: int
) -> None:
    messages = [mail(n) for n in range(12)]

    def record(index: int, outcome: object) -> None:
        if index == 2:
            raise RecordingFailed("database is gone")

    def slow_final_reply(verb: str, line: str, count: int) -> str | None:
        if verb == ".":
            time.sleep(0.05)  # a server a little slower than on_result
        return None

    with ScriptedServer(answer=slow_final_reply) as server:
        client = driver.client(
            server.host, server.port, security=Security.NONE, max_connections=concurrency
        )
        with pytest.raises(BatchInterrupted) as caught:
            client.send_many(messages, concurrency=concurrency, on_result=record)

        error = caught.value
        assert isinstance(error.__cause__, RecordingFailed)
        assert len(error.outcomes) == 12
        assert isinstance(error.outcomes[2], SendResult)
        assert len(error.not_sent) >= 12 - 3 - 2 * concurrency  # no further message started
        assert all(o is None or isinstance(o, SendResult) for o in error.outcomes)
        sent = sorted(o.message_id or "" for o in error.outcomes if isinstance(o, SendResult))
        assert message_ids(server) == sent  # the outcomes say exactly what was delivered

        # Sending what was not sent delivers every message exactly once.
        again = client.send_many([messages[i] for i in error.not_sent])
        assert all(isinstance(o, SendResult) for o in again)
        assert message_ids(server) == sorted(f"<drv-{n}@example.test>" for n in range(12))


# -- 421 to RSET -------------------------------------------------------------------------------


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_421_to_rset_replaces_the_connection_for_the_next_message(
    driver: DriverFactory, pipelining: bool
) -> None:
    nobody = "nobody@example.test"

    def rset_closes(verb: str, line: str, count: int) -> str | None:
        if verb == "RCPT" and nobody in line:
            return "550 5.1.1 No such user"
        return "421 4.7.0 Closing the connection" if verb == "RSET" else None

    with ScriptedServer(answer=rset_closes, pipelining=pipelining) as server:
        client = driver.client(server.host, server.port, security=Security.NONE)
        first, second = client.send_many([mail(1, to=nobody), mail(2)], concurrency=1)

        assert isinstance(first, RecipientRejected)
        assert first.recipient == nobody
        assert isinstance(second, SendResult), second
        assert server.connections == 2
        assert message_ids(server) == ["<drv-2@example.test>"]


# -- pipelining across messages ----------------------------------------------------------------


def test_the_end_of_one_message_travels_with_the_next_envelope(driver: DriverFactory) -> None:
    count = 8
    with FlightServer() as server:
        client = driver.client(server.host, server.port, security=Security.NONE)
        outcomes = client.send_many([mail(n) for n in range(count)], concurrency=1)
        client.close()

    assert server.errors == []
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert server.messages == count
    [flights] = server.flights
    # EHLO, then MAIL RCPT DATA, then "." with the next MAIL RCPT DATA, ..., the last ".".
    joined = [flight for flight in flights if flight[:1] == ["."] and "MAIL" in flight]
    assert len(joined) == count - 1, flights
    assert [f for f in flights if "MAIL" in f] == [
        ["MAIL", "RCPT", "DATA"],
        *([[".", "MAIL", "RCPT", "DATA"]] * (count - 1)),
    ], flights
    # One round trip per message (plus EHLO, the last "." and QUIT), not two.
    assert len(flights) <= count + 3, flights


# -- close() while a send is in flight ---------------------------------------------------------


def test_close_while_a_send_is_in_flight_lets_it_finish_then_quits(driver: DriverFactory) -> None:
    arrived, release = threading.Event(), threading.Event()

    def hold_the_final_reply(verb: str, line: str, count: int) -> str | None:
        if verb == "." and count == 1:
            arrived.set()
            release.wait(CALL_TIMEOUT)
        return None

    with ScriptedServer(answer=hold_the_final_reply) as server:
        client = driver.client(server.host, server.port, security=Security.NONE)
        client.open()
        in_flight = client.start_send(mail(1))
        assert arrived.wait(CALL_TIMEOUT)
        client.close()  # while the send holds its connection, waiting for the final reply
        release.set()
        result = in_flight.result(CALL_TIMEOUT)

        assert isinstance(result, SendResult)
        assert result.message_id == "<drv-1@example.test>"
        server.wait_closed(1)  # the connection was not kept: it closed once the send ended
        assert server.sessions[0][-3:] == ["C: QUIT", "S: 221 2.0.0 Bye", "* closed"]
        # The submitter stays usable: the next send opens a new connection.
        assert client.send(mail(2)).accepted == ("bob@example.test",)
        assert server.connections == 2
        assert message_ids(server) == ["<drv-1@example.test>", "<drv-2@example.test>"]

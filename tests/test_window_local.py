"""The BDAT window over real sockets, against LocalServer with CHUNKING, for both drivers.

Each message has a sender of its own (``s<n>@example.test``), so a message that reached
the server inside another's transaction (the next MAIL meeting a transaction left open)
would show up with the wrong envelope. Every test checks what the server kept against
what the client reported.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from email.message import EmailMessage

import pytest
from drivers_kit import DriverFactory, driver

from smtpkit import (
    ConnectionStale,
    DeliveryUnknown,
    RecipientRejected,
    Security,
    SenderRejected,
    SendResult,
    ServiceUnavailable,
    SMTPError,
)
from smtpkit.testing import LocalServer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., LocalServer]
WINDOW = 4
NOBODY = "nobody@example.test"


def letter(number: int, *, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"s{number}@example.test", to
    msg["Subject"] = f"window {number}"
    msg["Message-ID"] = f"<win-{number}@example.test>"
    msg.set_content(f"Message number {number}.\n")
    return msg


def nth(phase: str, number: int, answer: str) -> Callable[[str], str | None]:
    """A faults hook: ``answer`` at the ``number``-th ``phase`` (1-based), else nothing."""
    seen: Counter[str] = Counter()

    def faults(current: str) -> str | None:
        seen[current] += 1
        return answer if current == phase and seen[current] == number else None

    return faults


def kept(server: LocalServer) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in server.messages)


def check_envelopes(server: LocalServer) -> None:
    """Every message kept arrived with its own envelope sender and only its recipients."""
    for received in server.messages:
        number = str(received.message["Message-ID"]).removeprefix("<win-").split("@")[0]
        assert received.sender == f"s{number}@example.test", received
        assert received.recipients == ("bob@example.test",), received
        assert received.chunked


def start(local_server: ServerFactory, **options: object) -> LocalServer:
    return local_server(security=Security.NONE, chunking=True, **options)


def test_a_window_of_messages_goes_out_before_the_first_reply(
    driver: DriverFactory, local_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(local_server)
    client = driver.for_server(server, window=WINDOW)
    caplog.set_level(logging.DEBUG, logger="smtpkit.wire")
    outcomes = client.send_many([letter(n) for n in range(12)], concurrency=1)
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert [o.message_id for o in outcomes] == [f"<win-{n}@example.test>" for n in range(12)]  # type: ignore[union-attr]
    assert kept(server) == Counter(f"<win-{n}@example.test>" for n in range(12))
    check_envelopes(server)
    assert server.connections == 1
    assert server.protocol_errors == []
    wire = [r.getMessage() for r in caplog.records if r.name == "smtpkit.wire"]
    contents = [i for i, line in enumerate(wire) if "octets of message content in BDAT" in line]
    first_reply = next(
        i for i, line in enumerate(wire) if line.startswith("S:") and i > contents[0]
    )
    # Four whole transactions were written before the first message's final reply was read.
    assert sum(1 for i in contents if i < first_reply) == WINDOW


def test_refused_recipients_and_a_refused_sender_disturb_no_other_message(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = start(local_server, faults=nth("mail", 7, "553 5.7.1 Sender refused"))
    server.reply("rcpt", "550 5.1.1 No such user", recipient=NOBODY, times=None)
    client = driver.for_server(server, window=WINDOW)
    messages = [letter(n, to=NOBODY if n in (2, 3) else "bob@example.test") for n in range(10)]
    outcomes = client.send_many(messages, concurrency=1)
    assert isinstance(outcomes[2], RecipientRejected)
    assert isinstance(outcomes[3], RecipientRejected)
    assert outcomes[3].recipient == NOBODY
    assert isinstance(outcomes[6], SenderRejected), outcomes[6]
    good = [n for n in range(10) if n not in (2, 3, 6)]
    assert all(isinstance(outcomes[n], SendResult) for n in good), outcomes
    # LocalServer keeps a transaction open after a BDAT refused for want of recipients;
    # the RSET in front of every MAIL in the window keeps the next message out of it.
    assert kept(server) == Counter(f"<win-{n}@example.test>" for n in good)
    check_envelopes(server)
    assert server.connections == 1
    assert server.protocol_errors == []


def test_a_421_mid_window_ends_the_connection_and_the_rest_is_sent_again(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = start(local_server, faults=nth("message", 5, "421 4.3.2 Shutting down"))
    client = driver.for_server(server, window=WINDOW)
    outcomes = client.send_many([letter(n) for n in range(12)], concurrency=1)
    assert isinstance(outcomes[4], ServiceUnavailable), outcomes[4]
    others = [n for n in range(12) if n != 4]
    # The messages written behind the 421 were stale: resent on a new connection for free.
    assert all(isinstance(outcomes[n], SendResult) for n in others), outcomes
    assert kept(server) == Counter(f"<win-{n}@example.test>" for n in others)
    check_envelopes(server)
    assert server.connections == 2


@pytest.mark.parametrize("cut", [LocalServer.DROP, LocalServer.DISCONNECT])
def test_a_connection_cut_mid_window_leaves_at_most_window_messages_unknown(
    driver: DriverFactory, local_server: ServerFactory, cut: str
) -> None:
    server = start(local_server, faults=nth("message", 5, cut))
    client = driver.for_server(server, window=WINDOW)
    outcomes = client.send_many([letter(n) for n in range(12)], concurrency=1)
    unknown = [n for n, o in enumerate(outcomes) if isinstance(o, DeliveryUnknown)]
    assert 4 in unknown
    assert 1 <= len(unknown) <= WINDOW
    assert set(unknown) <= set(range(4, 4 + WINDOW))
    delivered = kept(server)
    thrown_away = Counter(str(m.message["Message-ID"]) for m in server.dropped)
    for number, outcome in enumerate(outcomes):
        mid = f"<win-{number}@example.test>"
        if isinstance(outcome, SendResult):
            assert delivered[mid] == 1, (number, delivered[mid])
        else:
            assert isinstance(outcome, DeliveryUnknown), (number, outcome)
            # The server kept at most the message it was reading; nothing was resent.
            assert delivered[mid] + thrown_away[mid] <= 1
    assert delivered["<win-4@example.test>"] == (1 if cut == LocalServer.DROP else 0)
    check_envelopes(server)


def test_send_in_one_call_is_unchanged_by_the_window(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = start(local_server)
    client = driver.for_server(server, window=WINDOW)
    result = client.send(letter(1))
    assert result.message_id == "<win-1@example.test>"
    client.send(letter(2))
    assert kept(server) == Counter({"<win-1@example.test>": 1, "<win-2@example.test>": 1})
    check_envelopes(server)


def test_a_reused_connection_closed_by_the_server_is_replaced_without_a_loss(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = start(local_server)
    client = driver.for_server(server, window=WINDOW)
    client.open()
    server.disconnect("mail")  # the kept connection meets a server that hung up
    outcomes: list[SendResult | SMTPError] = client.send_many(
        [letter(n) for n in range(6)], concurrency=1
    )
    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert not any(isinstance(o, ConnectionStale) for o in outcomes)
    assert kept(server) == Counter(f"<win-{n}@example.test>" for n in range(6))

"""The BDAT window against a real CHUNKING server: a private Postfix on 127.0.0.1.

Both drivers keep whole transactions in flight (``window=8``); Postfix's own log says what
each session did (``mail=``, ``bdat=``, ``rset=``), its capture transport what it
delivered. What Postfix can really do mid-window: refuse a recipient (an access map), refuse
a recipient past ``smtpd_recipient_limit`` with ``452 4.5.3``, hang up with ``421`` at
``smtpd_hard_error_limit``, and lose the connection (a loopback relay here cuts it after a
number of octets, in the middle of a message).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from drivers_kit import DriverFactory, driver
from postfix_server import PostfixServer, Session, unavailable_reason

from smtpkit import (
    DeliveryUnknown,
    RecipientRejected,
    Security,
    SendResult,
    SMTPError,
)

__all__ = ["driver"]  # the fixture, imported for pytest

_REASON = unavailable_reason()

pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"Postfix integration: {_REASON}"),
    pytest.mark.timeout(90),
]

WINDOW = 8
REFUSED = "refused@example.test"
#: Recipients per message Postfix takes; the next RCPT gets "452 4.5.3 Error: too many
#: recipients" (RFC 5321 §4.5.3.1.10: the client sends the rest in another transaction).
RECIPIENT_LIMIT = 3


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    settings = {"smtpd_recipient_limit": str(RECIPIENT_LIMIT), "in_flow_delay": "0"}
    with PostfixServer(reject={REFUSED: "550 5.1.1 No such user"}, settings=settings) as server:
        yield server


def letter(tag: str, number: int, *, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = f"s{number}@example.test", to
    msg["Subject"] = f"{tag} {number}"
    msg["Message-ID"] = f"<{tag}-{number}@example.test>"
    msg.set_content(f"Message {number} of {tag}.\n")
    return msg


def delivered(server: PostfixServer, tag: str, wanted: int, timeout: float = 15.0) -> Counter[str]:
    """Message-ID -> deliveries (one per recipient) of this tag, once ``wanted`` arrived or
    after ``timeout`` seconds (then a little longer, so late duplicates would show)."""
    deadline = time.monotonic() + timeout
    while True:  # bounded by the deadline
        found = Counter(
            d.message_id for d in server.deliveries() if d.message_id.startswith(f"<{tag}-")
        )
        if sum(found.values()) >= wanted or time.monotonic() > deadline:
            time.sleep(0.3)  # anything more that was queued arrives too
            return Counter(
                d.message_id for d in server.deliveries() if d.message_id.startswith(f"<{tag}-")
            )
        time.sleep(0.05)


def sessions_after(server: PostfixServer, before: int, count: int) -> list[Session]:
    return server.wait_for_sessions(before + count)[before:]


def mid(tag: str, number: int) -> str:
    return f"<{tag}-{number}@example.test>"


def test_refused_and_over_the_limit_recipients_mid_window(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"wpf-{driver.name}"
    four = ", ".join(f"r{n}@example.test" for n in range(4))
    messages = [letter(tag, n) for n in range(20)]
    messages[5] = letter(tag, 5, to=REFUSED)
    messages[9] = letter(tag, 9, to=four)  # one recipient past smtpd_recipient_limit
    before = len(postfix.sessions())
    client = driver.client(postfix.host, postfix.port, security=Security.NONE, window=WINDOW)
    outcomes = client.send_many(messages, concurrency=1)
    client.close()

    assert isinstance(outcomes[5], RecipientRejected), outcomes[5]
    assert outcomes[5].recipient == REFUSED
    partial = outcomes[9]
    assert isinstance(partial, SendResult), partial
    assert partial.accepted == ("r0@example.test", "r1@example.test", "r2@example.test")
    assert partial.rejected["r3@example.test"].code == 452
    assert all(isinstance(o, SendResult) for n, o in enumerate(outcomes) if n != 5), outcomes
    [session] = sessions_after(postfix, before, 1)
    assert session.counts["mail"] == 20, session
    assert session.counts["bdat"] == 20, session  # message 5's too: refused, octets read
    assert session.accepted["bdat"] == 19, session
    assert "data" not in session.counts
    assert session.counts["rset"] >= 10, session  # an RSET in front of MAILs in the window
    found = delivered(postfix, tag, 19 + 2)
    expected = Counter({mid(tag, n): 1 for n in range(20) if n != 5})
    expected[mid(tag, 9)] = RECIPIENT_LIMIT
    assert found == expected


def test_a_421_at_the_hard_error_limit_mid_window(driver: DriverFactory) -> None:
    tag = f"wpf-hard-{driver.name}"
    settings = {
        "smtpd_hard_error_limit": "3",
        "smtpd_soft_error_limit": "100",
        "smtpd_error_sleep_time": "0",
        "in_flow_delay": "0",
    }
    with PostfixServer(reject={REFUSED: "550 5.1.1 No such user"}, settings=settings) as server:
        messages = [letter(tag, n) for n in range(12)]
        for n in (3, 4):
            messages[n] = letter(tag, n, to=REFUSED)
        client = driver.client(server.host, server.port, security=Security.NONE, window=WINDOW)
        outcomes = client.send_many(messages, concurrency=1)
        client.close()
        sessions = server.wait_for_sessions(2)
        found = delivered(server, tag, 10)
        log = server.log()

    assert "too many errors after" in log  # Postfix answered 421 and hung up mid-window
    refused = [n for n, o in enumerate(outcomes) if isinstance(o, RecipientRejected)]
    assert refused == [3, 4], outcomes
    # Messages 0-2 went through before the errors; the ones behind the 421 were stale,
    # sent again on a new connection: every other message was delivered exactly once.
    assert all(isinstance(o, SendResult) for n, o in enumerate(outcomes) if n not in (3, 4))
    assert found == Counter({mid(tag, n): 1 for n in range(12) if n not in (3, 4)})
    assert len(sessions) >= 2
    assert not any(isinstance(o, DeliveryUnknown) for o in outcomes)


class CuttingRelay:
    """A loopback relay to ``target`` that cuts its first connection, both ways, once the
    client has sent ``cut_after`` octets; later connections are relayed whole."""

    def __init__(self, target: tuple[str, int], cut_after: int) -> None:
        self.target = target
        self.cut_after = cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.cut = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CuttingRelay:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self.listener.close()

    def _accept(self) -> None:
        deadline = time.monotonic() + 60  # the relay stops by itself
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(self.target, timeout=10)
            limit = self.cut_after if self.connections == 0 else None
            self.connections += 1
            for args in ((client, server, limit), (server, client, None)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        src.settimeout(0.2)
        deadline = time.monotonic() + 60
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: limit - sent])
                    self.cut.set()
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def test_a_connection_cut_mid_window_loses_nothing_and_duplicates_nothing_silently(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"wpf-cut-{driver.name}"
    messages = [letter(tag, n) for n in range(30)]
    # EHLO and the first envelope are ~100 octets; each message ~420 with its envelope:
    # the cut falls inside about the seventh message, with the window full.
    with CuttingRelay((postfix.host, postfix.port), cut_after=2900) as relay:
        client = driver.client("127.0.0.1", relay.port, security=Security.NONE, window=WINDOW)
        outcomes: list[SendResult | SMTPError] = client.send_many(messages, concurrency=1)
        client.close()
        assert relay.cut.is_set()
        assert relay.connections >= 2
    unknown = [n for n, o in enumerate(outcomes) if isinstance(o, DeliveryUnknown)]
    assert 1 <= len(unknown) <= WINDOW, outcomes
    assert all(isinstance(o, SendResult | DeliveryUnknown) for o in outcomes), outcomes
    found = delivered(postfix, tag, 30 - len(unknown))
    for number, outcome in enumerate(outcomes):
        if isinstance(outcome, SendResult):
            assert found[mid(tag, number)] == 1, (number, found[mid(tag, number)])
        else:
            # Queued or not (its final reply was lost), but never sent twice.
            assert found[mid(tag, number)] <= 1, (number, found[mid(tag, number)])
    assert max(found.values()) == 1

"""The fault run, for both drivers: many messages against a server that fails at random.

A LocalServer on 127.0.0.1 answers MAIL, RCPT, DATA and the end of the content with a
``421``, a ``451``, a ``550`` (RCPT), or closes the connection without a word (``DROP``:
after the content it keeps the message, as a server whose reply was lost delivers it;
``DISCONNECT``: after the content it throws it away), each at random from a fixed seed;
the greeting, EHLO and RSET fail a few times too. The client retries transient failures
(``Retry(attempts=3)``). Then every outcome is reconciled with what the server kept:

* no silent loss: a message reported sent was delivered, exactly once;
* a message that failed with an error other than ``DeliveryUnknown`` was not delivered;
* duplicates only where reported unknown: a ``DeliveryUnknown`` message reached the server
  (kept or thrown away) and is there at most once - nothing was resent blindly.

Each driver sends :data:`DEFAULT_MESSAGES` (2,000; a few seconds each on loopback);
``SMTPKIT_TEST_FAULT_MESSAGES=N`` runs another number, e.g. 20,000 for a longer soak.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable

import pytest
from drivers_kit import DriverFactory, driver

from smtpkit import DeliveryUnknown, Outgoing, Retry, Security, SendResult, SMTPError
from smtpkit.testing import LocalServer, ReceivedMessage

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(300)

DEFAULT_MESSAGES = 2000
MESSAGES = int(os.environ.get("SMTPKIT_TEST_FAULT_MESSAGES", DEFAULT_MESSAGES))
ServerFactory = Callable[..., LocalServer]

#: Per phase, the chance of each fault. About one message in six meets one.
FAULTS: dict[str, list[tuple[float, str]]] = {
    "mail": [(0.015, "421 4.3.2 Shutting down"), (0.015, "451 4.3.0 Try later")],
    "rcpt": [
        (0.015, "451 4.3.0 Try later"),
        (0.01, "550 5.1.1 No such user"),
        (0.01, LocalServer.DROP),
    ],
    "data": [(0.015, "451 4.3.0 Try later"), (0.01, LocalServer.DROP)],
    "message": [
        (0.015, "451 4.3.0 Not queued, try later"),
        (0.01, "421 4.3.2 Shutting down"),
        (0.015, LocalServer.DROP),
        (0.01, LocalServer.DISCONNECT),
    ],
}


def random_faults(seed: int) -> Callable[[str], str | None]:
    rng = random.Random(seed)  # called on the server's one thread: no lock needed

    def faults(phase: str) -> str | None:
        roll = rng.random()
        for chance, fault in FAULTS.get(phase, []):
            if roll < chance:
                return fault
            roll -= chance
        return None

    return faults


_MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>\r\n]+>)\r?$", re.IGNORECASE | re.MULTILINE)


def raw_mail(number: int, tag: str) -> Outgoing:
    """A small message as bytes with its envelope: 2,000 EmailMessage objects take seconds
    to build on a loaded machine, and the run is about outcomes, not serialisation."""
    content = (
        f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {tag} {number}\r\n"
        f"Message-ID: <{tag}-{number}@example.test>\r\n\r\nHello number {number}.\r\n"
    )
    return Outgoing(content.encode(), "alice@example.test", ["bob@example.test"])


def message_id(received: ReceivedMessage) -> str:
    """The Message-ID, read from the raw header (parsing 2,000 messages' headers is slow)."""
    head = received.raw.split(b"\r\n\r\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    assert found is not None, head
    return found.group(1).decode()


def test_random_faults_lose_nothing_and_duplicate_nothing_silently(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(security=Security.NONE, faults=random_faults(seed=11))
    server.reply("greeting", "421 4.3.2 Too busy, try later", times=2)
    server.disconnect("ehlo", times=2)
    server.reply("rset", "421 4.3.2 Closing", times=2)
    client = driver.for_server(
        server, retry=Retry(attempts=3, backoff=0, jitter=0), max_connections=4, timeout=10.0
    )
    tag = f"fault-{driver.name}"
    messages = [raw_mail(n, tag) for n in range(MESSAGES)]

    started = time.monotonic()
    outcomes = client.send_many(messages, concurrency=4)
    elapsed = time.monotonic() - started
    client.close()

    assert len(outcomes) == MESSAGES
    assert all(isinstance(o, SendResult | SMTPError) for o in outcomes)
    assert server.server_errors == []
    delivered = Counter(message_id(m) for m in server.messages)
    thrown_away = Counter(message_id(m) for m in server.dropped)
    ids = [f"<{tag}-{n}@example.test>" for n in range(MESSAGES)]
    assert set(delivered) <= set(ids)
    lost: list[str] = []
    doubled: list[str] = []
    unexpected: list[tuple[str, str]] = []
    unknown_unseen: list[tuple[str, int, int]] = []
    for mid, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, SendResult):
            if delivered[mid] != 1:
                (lost if delivered[mid] == 0 else doubled).append(mid)
        elif isinstance(outcome, DeliveryUnknown):
            if delivered[mid] + thrown_away[mid] != 1:
                unknown_unseen.append((mid, delivered[mid], thrown_away[mid]))
        elif delivered[mid] or thrown_away[mid]:
            unexpected.append((mid, type(outcome).__name__))
    assert lost == [], f"reported sent, never delivered: {lost}"
    assert doubled == [], f"reported sent, delivered twice: {doubled}"
    assert unexpected == [], f"reported failed, yet the server has it: {unexpected}"
    assert unknown_unseen == [], f"unknown, not exactly once at the server: {unknown_unseen}"

    kinds = Counter(type(o).__name__ for o in outcomes)
    print(f"\n{driver.name}: {MESSAGES} messages in {elapsed:.1f} s, outcomes {dict(kinds)}")
    # The run met every kind of fault: transient ones retried away, some left unknown.
    assert kinds["SendResult"] > MESSAGES * 0.8, kinds
    assert kinds["DeliveryUnknown"] > 0, kinds
    assert kinds["RecipientRejected"] > 0, kinds
    assert server.connections > MESSAGES * 0.05  # the drops and 421s forced reconnections

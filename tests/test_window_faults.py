"""The fault run of ``tests/test_drivers_faults.py`` with the BDAT window on, both drivers.

Same server faults (random 421s, 451s, 550s, dropped and cut connections, from a fixed
seed), same client retry policy, same reconciliation, over CHUNKING with ``window=8``:

* no silent loss: a message reported sent was delivered, exactly once;
* a message that failed with an error other than ``DeliveryUnknown`` was not delivered;
* duplicates only where reported unknown: such a message reached the server at most once;
* the documented bound: one lost connection leaves at most ``window`` messages unknown, so
  a run can have no more than ``window`` unknown messages per connection.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
from drivers_kit import DriverFactory, driver
from test_drivers_faults import MESSAGES, message_id, random_faults, raw_mail

from smtpkit import DeliveryUnknown, Retry, Security, SendResult, SMTPError
from smtpkit.testing import LocalServer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(300)

ServerFactory = Callable[..., LocalServer]
WINDOW = 8


def test_random_faults_with_a_window_lose_nothing_and_duplicate_nothing_silently(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(security=Security.NONE, chunking=True, faults=random_faults(seed=11))
    server.reply("greeting", "421 4.3.2 Too busy, try later", times=2)
    server.disconnect("ehlo", times=2)
    server.reply("rset", "421 4.3.2 Closing", times=2)
    client = driver.for_server(
        server,
        retry=Retry(attempts=3, backoff=0, jitter=0),
        max_connections=4,
        timeout=10.0,
        window=WINDOW,
    )
    tag = f"wfault-{driver.name}"
    messages = [raw_mail(n, tag) for n in range(MESSAGES)]

    started = time.monotonic()
    outcomes = client.send_many(messages, concurrency=4)
    elapsed = time.monotonic() - started
    client.close()

    assert len(outcomes) == MESSAGES
    assert all(isinstance(o, SendResult | SMTPError) for o in outcomes)
    assert server.server_errors == []
    assert server.protocol_errors == []
    assert all(m.chunked for m in server.messages)  # BDAT, so the window was in use
    delivered = Counter(message_id(m) for m in server.messages)
    thrown_away = Counter(message_id(m) for m in server.dropped)
    ids = [f"<{tag}-{n}@example.test>" for n in range(MESSAGES)]
    assert set(delivered) <= set(ids)
    lost: list[str] = []
    doubled: list[str] = []
    unexpected: list[tuple[str, str]] = []
    unknown_twice: list[tuple[str, int, int]] = []
    for mid, outcome in zip(ids, outcomes, strict=True):
        if isinstance(outcome, SendResult):
            if delivered[mid] != 1:
                (lost if delivered[mid] == 0 else doubled).append(mid)
        elif isinstance(outcome, DeliveryUnknown):
            # Unknown: queued, thrown away or never read; at most once, never resent.
            if delivered[mid] + thrown_away[mid] > 1:
                unknown_twice.append((mid, delivered[mid], thrown_away[mid]))
        elif delivered[mid] or thrown_away[mid]:
            unexpected.append((mid, type(outcome).__name__))
    assert lost == [], f"reported sent, never delivered: {lost}"
    assert doubled == [], f"reported sent, delivered twice: {doubled}"
    assert unexpected == [], f"reported failed, yet the server has it: {unexpected}"
    assert unknown_twice == [], f"unknown and at the server more than once: {unknown_twice}"

    kinds = Counter(type(o).__name__ for o in outcomes)
    print(
        f"\n{driver.name}, window={WINDOW}: {MESSAGES} messages in {elapsed:.1f} s over "
        f"{server.connections} connections, outcomes {dict(kinds)}"
    )
    assert kinds["DeliveryUnknown"] > 0, kinds  # connections were lost mid-window
    assert kinds["DeliveryUnknown"] <= WINDOW * server.connections, kinds
    assert kinds["RecipientRejected"] > 0, kinds
    assert kinds["SendResult"] > MESSAGES * 0.6, kinds

"""Both drivers send with BDAT (RFC 3030) to a real CHUNKING server: a private Postfix.

aiosmtpd offers no CHUNKING, so this uses the throw-away Postfix of
``tests/postfix_server.py`` on 127.0.0.1 and reads, from Postfix's own log, which commands
each session used (``bdat=``, ``data=``, ``rset=``). Skipped, with the reason, where Postfix
cannot run (not root, not installed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from drivers_kit import DriverFactory, driver, mail
from postfix_server import Delivery, PostfixServer, Session, unavailable_reason

from smtpkit import MessageRejected, Phase, RecipientRejected, Security, SendResult

__all__ = ["driver"]  # the fixture, imported for pytest

_REASON = unavailable_reason()

pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"Postfix integration: {_REASON}"),
    pytest.mark.timeout(90),
]

REFUSED = "refused@example.test"


BLOCKED = "blocked@example.test"
#: smtpd_data_restrictions apply at the first BDAT: a message from BLOCKED has its first
#: chunk refused, a refusal in the middle of a multi-chunk message. smtpd_timeout drops a
#: client silent for a second ("421 4.4.2 ... timeout exceeded"): one that waited inside an
#: open transaction (for a rate limit, say) would lose its message.
SETTINGS = {
    "smtpd_data_restrictions": (
        f"check_sender_access inline:{{ {{ {BLOCKED} = 554 5.7.1 Sender blocked }} }}"
    ),
    "smtpd_timeout": "1s",
}


@pytest.fixture(scope="module")
def postfix() -> Iterator[PostfixServer]:
    reject = {REFUSED: "550 5.1.1 No such user here"}
    with PostfixServer(reject=reject, settings=SETTINGS) as server:
        yield server


def new_sessions(server: PostfixServer, before: int, count: int) -> list[Session]:
    return server.wait_for_sessions(before + count)[before:]


def deliveries_of(server: PostfixServer, wanted: dict[str, int]) -> list[Delivery]:
    """The deliveries of these Message-IDs, once each has as many as wanted (one file per
    recipient), or what there is after 15 s."""
    deadline = time.monotonic() + 15.0
    while True:  # bounded by the deadline
        found = [d for d in server.deliveries() if d.message_id in wanted]
        counts = Counter(d.message_id for d in found)
        if all(counts[mid] >= n for mid, n in wanted.items()) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_bdat_pipelined_with_a_refusal_and_a_multi_chunk_message(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"bdat-{driver.name}"
    big = mail(9, tag=tag)
    big.set_content(("x" * 76 + "\n") * 30_000, cte="7bit")  # ~2.3 MB: three 1 MiB chunks
    messages = [mail(n, tag=tag) for n in range(4)]
    messages.insert(2, mail(5, to=REFUSED, tag=tag))
    messages.append(big)
    before = len(postfix.sessions())
    client = driver.client(
        postfix.host, postfix.port, security=Security.NONE, timeout=10.0, window=1
    )

    outcomes = client.send_many(messages, concurrency=1)
    client.close()

    assert isinstance(outcomes[2], RecipientRejected), outcomes[2]
    assert outcomes[2].recipient == REFUSED
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 2), outcomes
    [session] = new_sessions(postfix, before, 1)
    assert "data" not in session.counts, session  # BDAT only
    assert session.counts["bdat"] == 4 + 3, session  # four small messages, three chunks
    assert session.counts["rset"] == 1, session  # after the refused envelope
    assert session.counts["mail"] == 6, session
    expected = {f"<{tag}-{n}@example.test>": 1 for n in (0, 1, 2, 3, 9)}
    found = deliveries_of(postfix, expected)
    assert sorted(d.message_id for d in found) == sorted(expected)  # each once
    [delivered_big] = [d for d in found if d.message_id == f"<{tag}-9@example.test>"]
    assert delivered_big.body.count(b"x" * 76 + b"\n") == 30_000  # every chunk arrived


def test_bdat_to_several_recipients_with_one_refused(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"bdat-rcpts-{driver.name}"
    client = driver.client(postfix.host, postfix.port, security=Security.NONE, timeout=10.0)

    result = client.send(mail(1, to=f"a@example.test, {REFUSED}, b@example.test", tag=tag))
    client.close()

    assert result.accepted == ("a@example.test", "b@example.test")
    assert list(result.rejected) == [REFUSED]
    found = deliveries_of(postfix, {f"<{tag}-1@example.test>": 2})
    assert sorted(d.recipient for d in found) == ["a@example.test", "b@example.test"]


def test_a_refused_chunk_is_followed_by_rset_before_the_next_mail(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"bdat-chunk-{driver.name}"
    big = mail(1, sender=BLOCKED, tag=tag)
    big.set_content(("y" * 76 + "\n") * 30_000, cte="7bit")  # three chunks
    before = len(postfix.sessions())
    client = driver.client(postfix.host, postfix.port, security=Security.NONE, timeout=10.0)

    first, second = client.send_many([big, mail(2, tag=tag)], concurrency=1)
    client.close()

    assert isinstance(first, MessageRejected), first
    assert (first.phase, first.code) == (Phase.DATA, 554)
    assert isinstance(second, SendResult), second
    [session] = new_sessions(postfix, before, 1)
    assert session.counts["rset"] == 1, session  # between the refused chunk and the next MAIL
    assert session.accepted["mail"] == 2, session
    found = deliveries_of(postfix, {f"<{tag}-2@example.test>": 1})
    assert [d.message_id for d in found] == [f"<{tag}-2@example.test>"]


def test_a_rate_limit_longer_than_smtpd_timeout_loses_no_message(
    driver: DriverFactory, postfix: PostfixServer
) -> None:
    tag = f"bdat-rate-{driver.name}"
    client = driver.client(
        postfix.host, postfix.port, security=Security.NONE, timeout=10.0, rate_limit=0.5
    )

    started = time.monotonic()
    outcomes = client.send_many([mail(n, tag=tag) for n in range(2)], concurrency=1)
    elapsed = time.monotonic() - started
    client.close()

    assert all(isinstance(o, SendResult) for o in outcomes), outcomes
    assert elapsed >= 2.0 - 0.05  # the second start waited for its slot, outside a transaction
    expected = {f"<{tag}-{n}@example.test>": 1 for n in range(2)}
    assert sorted(d.message_id for d in deliveries_of(postfix, expected)) == sorted(expected)

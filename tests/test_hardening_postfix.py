"""Send-path bugs seen against a real Postfix 3.x, pinned against the private Postfix.

``tests/postfix_server.py`` runs a throw-away Postfix on 127.0.0.1; these tests skip when it
cannot run here (not installed, not root).
"""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest
from postfix_server import PostfixServer, unavailable_reason
from test_postfix_chunking import RecordingTransport, client_commands, verbs

from smtpkit import MessageRejected, Phase, Security, SendResult, Submitter

_REASON = unavailable_reason()

pytestmark = [
    pytest.mark.skipif(_REASON is not None, reason=f"Postfix integration: {_REASON}"),
    pytest.mark.timeout(60),
]


def message(tag: str, body: str = "Hello.\n", sender: str = "sender@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "rcpt@example.test"
    msg["Subject"] = f"hardening {tag}"
    msg["Message-ID"] = f"<{tag}@smtpkit.example.test>"
    msg.set_content(body)
    return msg


def delivered(server: PostfixServer, ids: set[str], timeout: float = 15.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:  # bounded by the deadline
        found = {d.message_id for d in server.deliveries()} & ids
        if found == ids or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_a_rate_limit_longer_than_smtpd_timeout_loses_no_message() -> None:
    # Postfix drops a client silent for smtpd_timeout with "421 4.4.2 ... timeout exceeded".
    # A rate limiter that slept after the envelope was accepted made every message fail so.
    with PostfixServer(settings={"smtpd_timeout": "1s"}) as server:
        submitter = Submitter(
            server.host, server.port, security=Security.NONE, timeout=10.0, rate_limit=0.5
        )
        started = time.monotonic()
        outcomes = submitter.send_many([message("rate-1"), message("rate-2")], concurrency=1)
        elapsed = time.monotonic() - started

        assert all(isinstance(outcome, SendResult) for outcome in outcomes), outcomes
        assert elapsed >= 2.0 - 0.05  # the second start waited for its slot
        ids = {"<rate-1@smtpkit.example.test>", "<rate-2@smtpkit.example.test>"}
        assert delivered(server, ids) == ids
        assert "timeout after BDAT" not in server.log()


# -- a BDAT chunk refused mid-message ---------------------------------------------------------

BLOCKED = "blocked@example.test"


def big_message(tag: str, sender: str) -> EmailMessage:
    """A message of about 2.3 MB: three BDAT chunks of at most 1 MiB."""
    msg = message(tag, ("x" * 76 + "\n") * 30_000, sender=sender)
    msg.replace_header("Content-Transfer-Encoding", "7bit")
    return msg


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_chunk_is_followed_by_rset_before_the_next_mail(pipelining: bool) -> None:
    # smtpd_data_restrictions apply at the first BDAT: Postfix refuses that chunk (and
    # discards the rest of the message), a refusal in the middle of a multi-chunk message.
    settings = {
        "smtpd_data_restrictions": (
            f"check_sender_access inline:{{ {{ {BLOCKED} = 554 5.7.1 Sender blocked }} }}"
        )
    }
    if not pipelining:
        settings["smtpd_discard_ehlo_keywords"] = "pipelining"
    transport = RecordingTransport()
    with PostfixServer(settings=settings) as server:
        submitter = Submitter(
            server.host, server.port, security=Security.NONE, timeout=10.0, transport=transport
        )
        first, second = submitter.send_many(
            [big_message("refused-chunk", BLOCKED), message("after-chunk")], concurrency=1
        )

        assert isinstance(first, MessageRejected), first
        assert (first.phase, first.code) == (Phase.DATA, 554)
        assert isinstance(second, SendResult), second
        ids = {"<after-chunk@smtpkit.example.test>"}
        assert delivered(server, ids) == ids
        [stream] = transport.streams
        names = verbs(client_commands(b"".join(stream.writes)))
        second_mail = names.index("MAIL", names.index("MAIL") + 1)
        assert names[second_mail - 1] == "RSET", names
        assert names.count("RSET") == 1

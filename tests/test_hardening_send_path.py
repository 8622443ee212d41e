"""Send-path bugs found by hostile servers and a real Postfix, each pinned by a test.

Every test drives the public API (``smtpkit.Submitter``); where a bug was seen on real
sockets the test uses real sockets on 127.0.0.1 (``tests/scripted_smtp.py``, LocalServer,
or the private Postfix of ``tests/postfix_server.py``).
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from scripted_smtp import ScriptedServer

from smtpkit import RecipientRejected, Security, SendResult, Submitter
from smtpkit.testing import FakeCapabilities, FakeTransport

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
    assert [sent.message["Message-ID"] for sent in fake.outbox] == [
        "<m2@example.test>",
        "<m3@example.test>",
    ]
    assert fake.connections == 2
    assert fake.protocol_errors == []

"""Failover and AsyncFailover pass ``dsn=``, ``params=`` and ``dkim=`` on to the server that
takes the message, and move a DSN request past a server that does not offer DSN.

Real LocalServers on 127.0.0.1: one down (a bound port that never listens), one up with
``dsn=True``; what the server that accepted the message recorded is what arrived on the
wire. Async tests run their coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from smtpkit import (
    DSN,
    AsyncFailover,
    AsyncSubmitter,
    ESMTPParams,
    Failover,
    FailoverResult,
    MessageError,
    Outgoing,
    Security,
    Submitter,
)
from smtpkit.errors import ConnectError, DSNNotOffered
from smtpkit.failover._board import is_server_failure, lacks_dsn, may_move
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.timeout(60)

DSN_ASKED = DSN(notify=("failure", "delay"), ret="headers", envid="order-42")


@pytest.fixture
def down_port() -> Iterator[int]:
    """A loopback port with nothing listening (bound, never listening): refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def sync_via(server: LocalServer, **options: Any) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **options,
    )


def async_via(server: LocalServer, **options: Any) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **options,
    )


def message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", f"n{n}"
    msg["Message-ID"] = f"<failover-dsn-{n}@example.test>"
    msg.set_content("hello")
    return msg


def assert_dsn_arrived(server: LocalServer, count: int = 1) -> None:
    received = server.wait_for(count)
    for each in received:
        assert "RET=HDRS" in each.mail_options
        assert "ENVID=order-42" in each.mail_options
        assert "AUTH=<>" in each.mail_options  # the ESMTPParams, after smtpkit's own
        assert each.options_for("bob@example.test") == (
            "NOTIFY=FAILURE,DELAY",
            "ORCPT=rfc822;bob@example.test",
        )


# -- the options reach the server that took the message ------------------------------------


def test_failover_send_passes_dsn_and_params_to_the_server_that_accepts(
    local_server: ServerFactory, down_port: int
) -> None:
    up = local_server(dsn=True)
    down = Submitter("127.0.0.1", down_port, security=Security.NONE, timeout=TIMEOUT)
    with Failover([down, sync_via(up)]) as mail:
        result = mail.send(message(), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"}))
    assert isinstance(result, FailoverResult)
    assert result.servers_tried == (f"127.0.0.1:{down_port}", f"{up.host}:{up.port}")
    assert_dsn_arrived(up)


def test_async_failover_send_passes_dsn_and_params_to_the_server_that_accepts(
    local_server: ServerFactory, down_port: int
) -> None:
    up = local_server(dsn=True)

    async def main() -> FailoverResult:
        down = AsyncSubmitter("127.0.0.1", down_port, security=Security.NONE, timeout=TIMEOUT)
        async with AsyncFailover([down, async_via(up)]) as mail:
            return await mail.send(
                message(), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"})
            )

    result = asyncio.run(main())
    assert result.server == f"{up.host}:{up.port}"
    assert len(result.servers_tried) == 2
    assert_dsn_arrived(up)


def test_both_send_many_pass_each_outgoing_s_options(
    local_server: ServerFactory, down_port: int
) -> None:
    up = local_server(dsn=True)
    items = [
        Outgoing(message(n), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"}))
        for n in range(2)
    ]
    sync_down = Submitter("127.0.0.1", down_port, security=Security.NONE, timeout=TIMEOUT)
    with Failover([sync_down, sync_via(up)]) as mail:
        outcomes = mail.send_many(items)
    assert all(isinstance(outcome, FailoverResult) for outcome in outcomes), outcomes

    async def main() -> list[Any]:
        down = AsyncSubmitter("127.0.0.1", down_port, security=Security.NONE, timeout=TIMEOUT)
        async with AsyncFailover([down, async_via(up)]) as mail:
            return await mail.send_many(items)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, FailoverResult) for outcome in outcomes), outcomes
    assert_dsn_arrived(up, 4)


def test_failover_send_passes_a_dkim_signer(local_server: ServerFactory, down_port: int) -> None:
    pytest.importorskip("dkim")
    rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    from smtpkit.dkim import DKIMSigner  # noqa: PLC0415 - needs the [dkim] extra

    pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    up = local_server()
    down = Submitter("127.0.0.1", down_port, security=Security.NONE, timeout=TIMEOUT)
    with Failover([down, sync_via(up)]) as mail:
        mail.send(message(), dkim=DKIMSigner("s1", "example.test", pem))
    [received] = up.wait_for(1)
    assert "d=example.test" in str(received.message["DKIM-Signature"])


# -- a server without DSN: the DSN request moves on --------------------------------------


def test_a_dsn_request_moves_past_a_server_without_dsn_which_is_not_cooled_down(
    local_server: ServerFactory,
) -> None:
    plain = local_server()  # no DSN offered
    offers = local_server(dsn=True)
    mail = Failover([sync_via(plain), sync_via(offers)], cooldown=60)
    with mail:
        result = mail.send(message(), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"}))
        assert result.server == f"{offers.host}:{offers.port}"
        assert result.servers_tried == (f"{plain.host}:{plain.port}", result.server)
        assert plain.messages == []  # refused before MAIL: nothing was sent there
        assert_dsn_arrived(offers)
        assert mail.cooling_down() == {}  # the server is fine for mail without DSN
        later = mail.send(message(1))  # no DSN: the first server takes it
    assert later.server == f"{plain.host}:{plain.port}"


def test_async_a_dsn_request_moves_past_a_server_without_dsn(
    local_server: ServerFactory,
) -> None:
    plain = local_server()
    offers = local_server(dsn=True)

    async def main() -> tuple[FailoverResult, list[Any], dict[str, float]]:
        async with AsyncFailover([async_via(plain), async_via(offers)], cooldown=60) as mail:
            one = await mail.send(message(), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"}))
            many = await mail.send_many(
                [
                    Outgoing(message(n), dsn=DSN_ASKED, params=ESMTPParams(mail={"auth": "<>"}))
                    for n in (1, 2)
                ]
            )
            return one, many, mail.cooling_down()

    one, many, cooling = asyncio.run(main())
    assert one.server == f"{offers.host}:{offers.port}"
    assert [outcome.server for outcome in many] == [one.server, one.server]
    assert cooling == {}
    assert plain.messages == []
    assert_dsn_arrived(offers, 3)


def test_when_no_server_offers_dsn_the_refusal_names_every_server_tried(
    local_server: ServerFactory,
) -> None:
    first, second = local_server(), local_server()
    with Failover([sync_via(first), sync_via(second)]) as mail:
        with pytest.raises(MessageError, match="does not offer DSN") as caught:
            mail.send(message(), dsn=DSN_ASKED)
        [outcome] = mail.send_many([Outgoing(message(1), dsn=DSN_ASKED)])
    assert caught.value.servers_tried == (  # type: ignore[attr-defined]
        f"{first.host}:{first.port}",
        f"{second.host}:{second.port}",
    )
    assert isinstance(outcome, MessageError)
    assert len(outcome.servers_tried) == 2  # type: ignore[attr-defined]
    assert first.messages == []
    assert second.messages == []


def test_the_engine_s_dsn_refusal_is_what_the_board_recognises(
    local_server: ServerFactory,
) -> None:
    """The engine's refusal is its own class, which the board recognises by type."""
    server = local_server()
    with pytest.raises(DSNNotOffered) as caught, sync_via(server) as submitter:
        submitter.send(message(), dsn=DSN_ASKED)
    assert isinstance(caught.value, MessageError)  # existing handlers still catch it
    assert lacks_dsn(caught.value)
    # Recognised by class, not wording: a MessageError that merely says so does not count.
    assert not lacks_dsn(MessageError("the server does not offer DSN (RFC 3461)"))
    assert may_move(caught.value)
    assert not is_server_failure(caught.value)  # no cool-down for it
    other = MessageError("the message has 8-bit content and the server does not offer 8BITMIME")
    assert not lacks_dsn(other)
    assert not may_move(other)
    assert not lacks_dsn(ConnectError("the server does not offer DSN"))

"""Failover and AsyncFailover move a message that needs SMTPUTF8 or 8BITMIME past a server
that does not offer it, without cooling that server down.

The refusal comes before ``MAIL`` (``ExtensionNotOffered``), so nothing of the message was
sent and another server may offer the extension. Real LocalServers on 127.0.0.1: one started
with ``smtputf8=False`` (or ``eight_bit_mime=False``), one offering it; what each server
recorded is what arrived on the wire. Async tests run their coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
from collections.abc import Iterator
from email.message import EmailMessage, Message
from typing import Any

import pytest

from smtpkit import (
    AsyncFailover,
    AsyncSubmitter,
    Failover,
    FailoverResult,
    FailoverStrategy,
    MessageError,
    Outgoing,
    Submitter,
)
from smtpkit.errors import DSNNotOffered, ExtensionNotOffered
from smtpkit.failover._board import (
    Board,
    is_server_failure,
    lacks_extension,
    may_move,
)
from smtpkit.message import prepare_message
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

pytestmark = pytest.mark.timeout(60)

UTF8_RCPT = "jörg@example.test"  # a non-ASCII local part: only SMTPUTF8 can carry it


def sync_via(server: LocalServer) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def async_via(server: LocalServer) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def label(server: LocalServer) -> str:
    return f"{server.host}:{server.port}"


def utf8_message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", UTF8_RCPT, f"u{n}"
    msg["Message-ID"] = f"<failover-utf8-{n}@example.test>"
    msg.set_content("grüße")
    return msg


def ascii_message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", f"a{n}"
    msg["Message-ID"] = f"<failover-ascii-{n}@example.test>"
    msg.set_content("hello")
    return msg


EIGHT_BIT = (
    b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: 8bit\r\n"
    b"Message-ID: <failover-8bit@example.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Gr\xc3\xbc\xc3\x9fe\r\n"
)


def assert_arrived_with_smtputf8(server: LocalServer, count: int = 1) -> None:
    received = server.wait_for(count)
    assert len(received) == count
    for each in received:
        assert each.recipients == (UTF8_RCPT,)
        assert "SMTPUTF8" in each.mail_options


# -- SMTPUTF8: the message moves, the refusing server is not cooled down -------------------


def test_failover_moves_a_non_ascii_address_past_a_server_without_smtputf8(
    local_server: ServerFactory,
) -> None:
    plain = local_server(smtputf8=False)
    offers = local_server()
    mail = Failover([sync_via(plain), sync_via(offers)], cooldown=60)
    with mail:
        result = mail.send(utf8_message())
        assert isinstance(result, FailoverResult)
        assert result.server == label(offers)
        assert result.servers_tried == (label(plain), label(offers))
        assert_arrived_with_smtputf8(offers)
        assert plain.messages == []  # refused before MAIL: nothing was sent there
        assert mail.cooling_down() == {}  # the server is fine for ASCII mail
        later = mail.send(ascii_message())
    assert later.server == label(plain)
    assert len(plain.messages) == 1
    assert len(offers.messages) == 1  # the first message arrived exactly once


def test_async_failover_moves_a_non_ascii_address_past_a_server_without_smtputf8(
    local_server: ServerFactory,
) -> None:
    plain = local_server(smtputf8=False)
    offers = local_server()

    async def main() -> tuple[FailoverResult, FailoverResult, dict[str, float]]:
        async with AsyncFailover([async_via(plain), async_via(offers)], cooldown=60) as mail:
            one = await mail.send(utf8_message())
            cooling = mail.cooling_down()
            two = await mail.send(ascii_message())
            return one, two, cooling

    one, two, cooling = asyncio.run(main())
    assert one.server == label(offers)
    assert one.servers_tried == (label(plain), label(offers))
    assert cooling == {}
    assert two.server == label(plain)
    assert_arrived_with_smtputf8(offers)
    assert len(offers.messages) == 1
    assert [m.recipients for m in plain.messages] == [("bob@example.test",)]


def test_both_send_many_move_only_the_messages_that_need_smtputf8(
    local_server: ServerFactory,
) -> None:
    plain = local_server(smtputf8=False)
    offers = local_server()
    items: list[EmailMessage | Outgoing] = [utf8_message(0), ascii_message(1), utf8_message(2)]
    with Failover([sync_via(plain), sync_via(offers)], cooldown=60) as mail:
        outcomes = mail.send_many(items)
        sync_cooling = mail.cooling_down()
    assert [getattr(o, "server", o) for o in outcomes] == [
        label(offers),
        label(plain),
        label(offers),
    ]
    assert sync_cooling == {}

    async def main() -> tuple[list[Any], dict[str, float]]:
        async with AsyncFailover([async_via(plain), async_via(offers)], cooldown=60) as mail:
            return await mail.send_many(items), mail.cooling_down()

    outcomes, cooling = asyncio.run(main())
    assert [getattr(o, "server", o) for o in outcomes] == [
        label(offers),
        label(plain),
        label(offers),
    ]
    assert cooling == {}
    assert_arrived_with_smtputf8(offers, 4)
    assert len(plain.messages) == 2
    assert all(m.recipients == ("bob@example.test",) for m in plain.messages)


def test_round_robin_moves_the_message_whose_turn_fell_on_the_server_without_smtputf8(
    local_server: ServerFactory,
) -> None:
    offers = local_server()
    plain = local_server(smtputf8=False)
    with Failover(
        [sync_via(offers), sync_via(plain)], strategy=FailoverStrategy.ROUND_ROBIN, cooldown=60
    ) as mail:
        first = mail.send(utf8_message(0))  # its turn starts at offers
        second = mail.send(utf8_message(1))  # its turn starts at plain: moves to offers
        many = mail.send_many([utf8_message(2), utf8_message(3)])
        cooling = mail.cooling_down()
    assert first.servers_tried == (label(offers),)
    assert second.servers_tried == (label(plain), label(offers))
    assert [getattr(o, "server", o) for o in many] == [label(offers), label(offers)]
    assert cooling == {}
    assert plain.messages == []
    assert_arrived_with_smtputf8(offers, 4)


def test_async_round_robin_moves_past_the_server_without_smtputf8(
    local_server: ServerFactory,
) -> None:
    offers = local_server()
    plain = local_server(smtputf8=False)

    async def main() -> list[FailoverResult]:
        async with AsyncFailover(
            [async_via(offers), async_via(plain)], strategy="round_robin"
        ) as mail:
            return [await mail.send(utf8_message(n)) for n in range(2)]

    results = asyncio.run(main())
    assert [r.servers_tried for r in results] == [
        (label(offers),),
        (label(plain), label(offers)),
    ]
    assert plain.messages == []
    assert_arrived_with_smtputf8(offers, 2)


# -- no server offers it: the typed refusal, nothing sent anywhere -------------------------


def check_refusal(error: BaseException, servers: list[LocalServer], extension: str) -> None:
    assert isinstance(error, ExtensionNotOffered)
    assert isinstance(error, MessageError)  # existing handlers still catch it
    assert error.extension == extension
    assert error.servers_tried == tuple(map(label, servers))  # type: ignore[attr-defined]
    assert error.server == label(servers[-1])  # type: ignore[attr-defined]
    assert error.hint is not None
    assert f"offers {extension}" in error.hint  # says what kind of server would take it
    assert label(servers[-1]) in error.hint
    for server in servers:
        assert server.messages == []


def test_when_no_server_offers_smtputf8_the_typed_refusal_comes_back_and_nothing_is_sent(
    local_server: ServerFactory,
) -> None:
    first, second = local_server(smtputf8=False), local_server(smtputf8=False)
    with Failover([sync_via(first), sync_via(second)], cooldown=60) as mail:
        with pytest.raises(ExtensionNotOffered) as caught:
            mail.send(utf8_message())
        [outcome] = mail.send_many([utf8_message(1)])
        cooling = mail.cooling_down()
    check_refusal(caught.value, [first, second], "SMTPUTF8")
    check_refusal(outcome, [first, second], "SMTPUTF8")
    assert cooling == {}
    # The annotated copy pickles with the hint and the servers.
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is ExtensionNotOffered
    assert (again.extension, again.hint) == ("SMTPUTF8", caught.value.hint)


def test_async_when_no_server_offers_smtputf8_the_typed_refusal_comes_back(
    local_server: ServerFactory,
) -> None:
    first, second = local_server(smtputf8=False), local_server(smtputf8=False)

    async def main() -> tuple[BaseException, Any]:
        async with AsyncFailover([async_via(first), async_via(second)]) as mail:
            with pytest.raises(ExtensionNotOffered) as caught:
                await mail.send(utf8_message())
            [outcome] = await mail.send_many([utf8_message(1)])
            return caught.value, outcome

    error, outcome = asyncio.run(main())
    check_refusal(error, [first, second], "SMTPUTF8")
    check_refusal(outcome, [first, second], "SMTPUTF8")


# -- 8BITMIME ------------------------------------------------------------------------------


def test_eight_bit_content_moves_past_a_server_without_8bitmime(
    local_server: ServerFactory,
) -> None:
    plain = local_server(eight_bit_mime=False)
    offers = local_server()
    envelope = {"sender": "alice@example.test", "recipients": ["bob@example.test"]}
    with Failover([sync_via(plain), sync_via(offers)], cooldown=60) as mail:
        result = mail.send(EIGHT_BIT, **envelope)  # type: ignore[arg-type]
        cooling = mail.cooling_down()

    async def main() -> FailoverResult:
        async with AsyncFailover([async_via(plain), async_via(offers)]) as mail:
            return await mail.send(EIGHT_BIT, **envelope)  # type: ignore[arg-type]

    again = asyncio.run(main())
    assert result.servers_tried == again.servers_tried == (label(plain), label(offers))
    assert cooling == {}
    assert plain.messages == []
    received = offers.wait_for(2)
    assert len(received) == 2
    assert all("BODY=8BITMIME" in each.mail_options for each in received)
    assert all(b"Gr\xc3\xbc\xc3\x9fe" in each.raw for each in received)


def test_when_no_server_offers_8bitmime_the_refusal_names_it(
    local_server: ServerFactory,
) -> None:
    first, second = local_server(eight_bit_mime=False), local_server(eight_bit_mime=False)
    with (
        Failover([sync_via(first), sync_via(second)]) as mail,
        pytest.raises(MessageError) as caught,
    ):
        mail.send(EIGHT_BIT, sender="alice@example.test", recipients=["bob@example.test"])
    check_refusal(caught.value, [first, second], "8BITMIME")


# -- the engine's refusals are what the board recognises ------------------------------------


def test_the_engine_s_extension_refusals_are_typed_and_move_without_a_cool_down(
    local_server: ServerFactory,
) -> None:
    plain = local_server(smtputf8=False, eight_bit_mime=False)
    with sync_via(plain) as submitter:
        with pytest.raises(ExtensionNotOffered) as utf8:
            submitter.send(utf8_message())
        with pytest.raises(ExtensionNotOffered) as eight:
            submitter.send(EIGHT_BIT, sender="alice@example.test", recipients=["b@example.test"])
        with pytest.raises(ExtensionNotOffered) as sender:  # the envelope sender, too
            submitter.send(
                b"Subject: x\r\n\r\nx\r\n", sender="jörg@example.test", recipients=["b@x.test"]
            )
    assert plain.messages == []
    assert (utf8.value.extension, eight.value.extension) == ("SMTPUTF8", "8BITMIME")
    assert sender.value.extension == "SMTPUTF8"
    for error in (utf8.value, eight.value, sender.value):
        assert lacks_extension(error)
        assert may_move(error)
        assert not is_server_failure(error)  # no cool-down for it
    # Recognised by class, not wording.
    assert not lacks_extension(MessageError("the server does not offer SMTPUTF8"))
    assert not may_move(MessageError("the server does not offer 8BITMIME"))
    # DSN is one such extension.
    dsn = DSNNotOffered("the server does not offer DSN")
    assert isinstance(dsn, ExtensionNotOffered)
    assert dsn.extension == "DSN"
    assert lacks_extension(dsn)


def test_a_non_ascii_local_part_in_a_header_only_is_refused_typed_too(
    local_server: ServerFactory,
) -> None:
    """A To header naming a non-ASCII local part, an ASCII envelope: still SMTPUTF8."""
    plain = local_server(smtputf8=False)
    with sync_via(plain) as submitter, pytest.raises(ExtensionNotOffered) as caught:
        submitter.send(utf8_message(), recipients=["bob@example.test"])
    assert caught.value.extension == "SMTPUTF8"
    assert plain.messages == []


def test_the_error_round_trips_as_itself() -> None:
    error = ExtensionNotOffered("needs it", extension="SMTPUTF8", hint="use another server")
    rebuilt = type(error)(*error.args)
    assert type(rebuilt) is ExtensionNotOffered
    assert (rebuilt.extension, rebuilt.hint) == ("SMTPUTF8", "use another server")
    unpickled = pickle.loads(pickle.dumps(error))
    assert (unpickled.extension, str(unpickled)) == ("SMTPUTF8", str(error))


def test_a_compat32_message_refused_while_smtputf8_is_offered_is_not_an_extension_refusal() -> None:
    """With SMTPUTF8 offered, a compat32 message's non-ASCII local part is still refused (it
    cannot be written as UTF-8): the server lacks nothing, so it must not move."""
    msg = Message()  # compat32
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", UTF8_RCPT, "compat32"
    msg.set_payload("hello")
    with pytest.raises(MessageError) as caught:
        prepare_message(msg, recipients=["bob@example.test"], utf8_allowed=True)
    assert not isinstance(caught.value, ExtensionNotOffered)
    assert not may_move(caught.value)
    with pytest.raises(ExtensionNotOffered):  # without SMTPUTF8 it is the server's lack
        prepare_message(msg, recipients=["bob@example.test"], utf8_allowed=False)


# -- the only server that offers it is cooling down ----------------------------------------


def first_mail_refused() -> Any:
    """A fault injector: ``451`` to the first MAIL only (that server then cools down)."""
    calls = {"mail": 0}

    def faults(phase: str) -> str | None:
        if phase != "mail":
            return None
        calls["mail"] += 1
        return "451 4.3.0 Try again later" if calls["mail"] == 1 else None

    return faults


def test_a_message_refused_only_for_a_missing_extension_still_tries_a_cooling_server(
    local_server: ServerFactory,
) -> None:
    """Refusals for a missing extension are not tries: a message met no server that could
    take it, so, as a first try does, it goes to the cooling server rather than failing
    for good with a (permanent) ExtensionNotOffered."""
    offers = local_server(faults=first_mail_refused())
    plain = local_server(smtputf8=False)
    with Failover([sync_via(offers), sync_via(plain)], cooldown=60) as mail:
        warm = mail.send(ascii_message())  # 451 at offers: it cools down, plain takes it
        assert warm.servers_tried == (label(offers), label(plain))
        assert list(mail.cooling_down()) == [label(offers)]
        result = mail.send(utf8_message())
        [outcome] = mail.send_many([utf8_message(1)])
    assert result.servers_tried == (label(plain), label(offers))
    assert getattr(outcome, "servers_tried", outcome) == (label(plain), label(offers))
    assert_arrived_with_smtputf8(offers, 2)


def test_async_a_message_refused_only_for_a_missing_extension_still_tries_a_cooling_server(
    local_server: ServerFactory,
) -> None:
    offers = local_server(faults=first_mail_refused())
    plain = local_server(smtputf8=False)

    async def main() -> list[Any]:
        async with AsyncFailover([async_via(offers), async_via(plain)], cooldown=60) as mail:
            await mail.send(ascii_message())
            assert list(mail.cooling_down()) == [label(offers)]
            return [await mail.send(utf8_message()), *await mail.send_many([utf8_message(1)])]

    outcomes = asyncio.run(main())
    assert [getattr(o, "servers_tried", o) for o in outcomes] == [
        (label(plain), label(offers)),
        (label(plain), label(offers)),
    ]
    assert_arrived_with_smtputf8(offers, 2)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def down_port() -> Iterator[int]:
    """A loopback port with nothing listening (bound, never listening): refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_after_a_real_failure_a_cooling_server_is_not_tried_and_the_hint_says_so(
    local_server: ServerFactory, down_port: int
) -> None:
    """A message that already met a server failure follows the usual rule (a cooling server
    is skipped); the refusal's hint then names the server it skipped."""
    offers = local_server(faults=first_mail_refused())
    plain = local_server(smtputf8=False)
    down = Submitter("127.0.0.1", down_port, security=plain.security, timeout=TIMEOUT)
    down_label = f"127.0.0.1:{down_port}"
    clock = Clock()
    servers = [down, sync_via(plain), sync_via(offers)]
    with Failover(servers, strategy="round_robin", cooldown=60, clock=clock) as mail:
        mail.send(ascii_message(0))  # turn 0: down fails (cools until 60), plain takes it
        mail.send(ascii_message(1))  # turn 1: plain takes it
        clock.now = 30.0
        third = mail.send(ascii_message(2))  # turn 2: offers says 451 (cools until 90)
        assert third.servers_tried == (label(offers), label(plain))
        clock.now = 70.0  # down is back, offers still cooling
        with pytest.raises(ExtensionNotOffered) as caught:
            mail.send(utf8_message())  # turn 0: down fails, plain lacks SMTPUTF8
    error = caught.value
    assert error.servers_tried == (down_label, label(plain))  # type: ignore[attr-defined]
    assert error.hint is not None
    assert f"{label(offers)} (cooling down)" in error.hint
    assert offers.messages == []
    assert all(m.recipients == ("bob@example.test",) for m in plain.messages)


def test_the_board_tries_a_cooling_server_only_when_asked_and_only_untried_ones() -> None:
    clock = Clock()
    board = Board(3, FailoverStrategy.FAILOVER, cooldown=60, clock=clock)
    board.failed(1)
    clock.now = 10.0
    board.failed(2)  # 1 ends at 60, 2 at 70
    assert board.pick((0, 1, 2), (0,)) is None  # after a real try: cooling servers skipped
    assert board.pick((0, 1, 2), (0,), retry_cooling=True) == 1  # the one that ends first
    assert board.pick((0, 1, 2), (0, 1), retry_cooling=True) == 2
    assert board.pick((0, 1, 2), (0, 1, 2), retry_cooling=True) is None  # each at most once
    assert board.cooling_among([0, 1, 2]) == [1, 2]

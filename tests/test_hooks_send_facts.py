"""smtpkit.hooks events carry the facts observers used to infer: the phase a message failed
at, the provider, and which ``send()`` call an event belongs to when several run at once.

Over a real LocalServer (the phase is read off the conversation on the wire), for the
threaded ``Submitter`` and the asyncio ``AsyncSubmitter``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

import smtpkit.otel
from smtpkit import AsyncSubmitter, Submitter, hooks
from smtpkit.errors import DeliveryUnknown, RecipientRejected, ServerDisconnected
from smtpkit.testing import FakeTransport, LocalServer
from tests.conftest import ServerFactory

#: Short: a test that goes wrong fails fast instead of hanging.
TIMEOUT = 3.0


@pytest.fixture(autouse=True)
def _no_leftover_hooks() -> Iterator[None]:
    hooks.clear()
    yield
    hooks.clear()


def via(server: LocalServer, *, provider: str | None = None) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        provider=provider,
    )


def via_async(server: LocalServer) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def message(n: int = 0, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", to, f"n{n}"
    msg.set_content("hello")
    return msg


def finished_of(send: object) -> hooks.SendFinished:
    ends: list[hooks.SendFinished] = []
    remove = hooks.on_send_end(ends.append)
    try:
        assert callable(send)
        send()
    except Exception:  # the event is what is checked
        pass
    finally:
        remove()
    [end] = ends
    return end


def test_a_sent_message_reports_the_message_phase_and_no_provider(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    end = finished_of(lambda: via(server).send(message()))
    assert end.ok
    assert end.phase == "message"
    assert end.provider is None  # 127.0.0.1 is no provider's host and none was named


def test_a_refused_recipient_reports_rcpt_and_the_configured_provider(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown")
    end = finished_of(lambda: via(server, provider="microsoft365").send(message()))
    assert isinstance(end.error, RecipientRejected)
    assert end.phase == "rcpt"
    assert end.provider == "microsoft365"


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("phase", ["mail", "rcpt", "data"])
def test_a_disconnect_reports_the_command_whose_reply_never_came(
    local_server: ServerFactory, phase: str, pipelining: bool
) -> None:
    # With PIPELINING the client wrote MAIL, RCPT and DATA at once: the last command in the
    # transcript (DATA) is not where it failed; the first unanswered one is.
    server = local_server(pipelining=pipelining)
    server.disconnect(phase)
    end = finished_of(lambda: via(server, provider="gmail").send(message()))
    assert isinstance(end.error, ServerDisconnected)
    assert end.phase == phase
    assert end.provider == "gmail"  # a disconnect carries no provider of its own


def test_a_lost_final_reply_reports_the_message_phase(local_server: ServerFactory) -> None:
    server = local_server()
    server.disconnect("message")
    end = finished_of(lambda: via(server).send(message()))
    assert isinstance(end.error, DeliveryUnknown)
    assert end.phase == "message"


def test_the_provider_preset_of_the_host_is_reported_without_provider_option() -> None:
    fake = FakeTransport()
    submitter = Submitter("smtp.gmail.com", transport=fake)
    end = finished_of(lambda: submitter.send(message()))
    assert end.ok
    assert end.provider == "gmail"


def test_concurrent_sends_on_one_submitter_are_told_apart(local_server: ServerFactory) -> None:
    server = local_server()
    starts: list[hooks.SendStarted] = []
    ends: list[hooks.SendFinished] = []
    hooks.on_send_start(starts.append)
    hooks.on_send_end(ends.append)
    submitter = via(server)
    barrier = threading.Barrier(3, timeout=TIMEOUT)

    def send(n: int) -> None:
        barrier.wait()
        submitter.send(message(n))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 3)
    submitter.close()
    assert len(server.messages) == 3
    assert [s.index for s in starts] == [0, 0, 0]  # send()'s position, as documented
    assert len({s.call_id for s in starts}) == 3
    assert {s.call_id for s in starts} == {e.call_id for e in ends}
    assert all(s.call_id > 0 for s in starts)


def test_one_send_many_call_shares_one_call_id(local_server: ServerFactory) -> None:
    server = local_server()
    ends: list[hooks.SendFinished] = []
    hooks.on_send_end(ends.append)
    with via(server) as submitter:
        submitter.send_many([message(n) for n in range(3)], concurrency=2)
        submitter.send(message(9))
    assert sorted(e.index for e in ends[:3]) == [0, 1, 2]
    assert len({e.call_id for e in ends[:3]}) == 1
    assert ends[3].call_id != ends[0].call_id


def test_concurrent_async_sends_are_told_apart(local_server: ServerFactory) -> None:
    server = local_server()
    starts: list[hooks.SendStarted] = []
    ends: list[hooks.SendFinished] = []
    hooks.on_send_start(starts.append)
    hooks.on_send_end(ends.append)

    async def main() -> None:
        async with via_async(server) as submitter:
            await asyncio.gather(*(submitter.send(message(n)) for n in range(3)))

    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 3))
    assert len(server.messages) == 3
    assert len({s.call_id for s in starts}) == 3
    assert {s.call_id for s in starts} == {e.call_id for e in ends}
    assert all(e.phase == "message" for e in ends)


def test_events_built_the_old_way_still_work_and_compare_as_before() -> None:
    # Backward compatible: the new fields have defaults and the call id takes no part in
    # equality (events compared in users' tests stay equal).
    started = hooks.SendStarted("smtp.example.com", 587, 0)
    assert started.call_id == 0
    assert started == hooks.SendStarted("smtp.example.com", 587, 0, call_id=7)
    finished = hooks.SendFinished("smtp.example.com", 587, 0, 0.5)
    assert finished.phase is None
    assert finished.provider is None
    assert hooks.SendRetried("h", 1, 0, 2) == hooks.SendRetried("h", 1, 0, 2, call_id=3)


def test_otel_records_the_event_s_phase_and_provider(local_server: ServerFactory) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from tests.test_otel import Telemetry  # noqa: PLC0415 - needs the SDK, checked above

    telemetry = Telemetry()
    telemetry.instrument()
    try:
        server = local_server(pipelining=True)
        server.disconnect("rcpt")
        with pytest.raises(ServerDisconnected):
            via(server, provider="gmail").send(message())
    finally:
        smtpkit.otel.uninstrument()
    [span] = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["smtpkit.phase"] == "rcpt"  # not DATA, the last command written
    assert attributes["smtpkit.provider"] == "gmail"  # not derivable from 127.0.0.1

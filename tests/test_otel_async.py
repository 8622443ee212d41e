"""smtpkit.otel with the asyncio driver (``smtpkit.AsyncSubmitter``, ``AsyncFailover``)
against a real LocalServer, read back with the SDK's in-memory exporter and metric reader.

The same spans and counters as with the threaded Submitter (tests/test_otel.py), and what
differs under asyncio: the hooks run on the event loop, in the caller's task for ``send``
and in the batch's reporter task for ``send_many``, which asyncio starts with a copy of the
caller's context, so a batch's spans are children of the span current when it was called.
Each test runs its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.trace import SpanKind, StatusCode

import smtpkit.otel
from smtpkit import (
    AsyncFailover,
    AsyncSubmitter,
    DeliveryUnknown,
    Retry,
    Security,
    SendResult,
    SMTPError,
    hooks,
)
from smtpkit.auth import PasswordAuth
from smtpkit.errors import InvalidCredentials, RecipientRejected
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory
from tests.test_otel import (
    CANARY_ADDRESS,
    CANARY_PASSWORD,
    CANARY_RECIPIENT,
    Telemetry,
    message,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    hooks.clear()
    found = Telemetry()
    found.instrument()
    yield found
    smtpkit.otel.uninstrument()
    hooks.clear()


def via(server: LocalServer, **options: Any) -> AsyncSubmitter:
    return AsyncSubmitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **options,
    )


def attributes_of(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_an_accepted_message_is_one_client_span_and_one_sent(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    threads: list[int] = []
    hooks.on_send_end(lambda event: threads.append(threading.get_ident()))

    async def main() -> int:
        async with via(server) as submitter:
            await submitter.send(message())
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    [span] = telemetry.spans()
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = attributes_of(span)
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == server.port
    assert attributes["smtpkit.result"] == "sent"
    assert attributes["smtpkit.phase"] == "message"
    assert attributes["smtpkit.reply.code"] == 250
    assert attributes["smtpkit.recipients.accepted"] == 1
    assert attributes["smtpkit.recipients.rejected"] == 0
    assert "error.type" not in attributes
    assert span.start_time is not None
    assert span.end_time is not None
    assert 0 < span.end_time - span.start_time < 10 * 10**9
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "sent"}) == 1
    assert telemetry.count("smtpkit.messages") == 1
    [(_, duration)] = telemetry.points("smtpkit.send.duration")
    assert duration.count == 1
    assert threads == [loop_thread]  # the hooks ran on the event loop's thread


def test_refused_and_unknown_outcomes(local_server: ServerFactory, telemetry: Telemetry) -> None:
    refusing = local_server()
    refusing.reply("rcpt", "550 5.1.1 User unknown", times=None)
    lossy = local_server(faults=lambda phase: LocalServer.DROP if phase == "message" else None)

    async def main() -> None:
        async with via(refusing) as first, via(lossy) as second:
            with pytest.raises(RecipientRejected):
                await first.send(message())
            with pytest.raises(DeliveryUnknown):
                await second.send(message())

    asyncio.run(main())
    refused, unknown = telemetry.spans()
    attributes = attributes_of(refused)
    assert attributes["smtpkit.result"] == "refused"
    assert attributes["smtpkit.phase"] == "rcpt"
    assert attributes["smtpkit.reply.code"] == 550
    assert attributes["smtpkit.reply.enhanced_code"] == "5.1.1"
    assert attributes["error.type"] == "RecipientRejected"
    assert attributes["smtpkit.transient"] is False
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.status.description == "RecipientRejected"
    assert refused.events == ()  # no exception event: its message would quote the address
    assert attributes_of(unknown)["smtpkit.result"] == "unknown"
    assert attributes_of(unknown)["smtpkit.phase"] == "message"
    assert attributes_of(unknown)["error.type"] == "DeliveryUnknown"
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "refused"}) == 1
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "unknown"}) == 1


def test_a_retried_message_counts_one_retry_and_ends_as_one_span(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    server.reply("mail", "451 4.3.0 Try again", times=1)
    retry = Retry(attempts=3, backoff=0.0, jitter=0.0)

    async def main() -> None:
        async with via(server, retry=retry) as submitter:
            await submitter.send(message())

    asyncio.run(main())
    assert len(server.messages) == 1
    assert telemetry.count("smtpkit.retries") == 1
    assert telemetry.count("smtpkit.retries", **{"server.port": server.port}) == 1
    [span] = telemetry.spans()
    assert attributes_of(span)["smtpkit.result"] == "sent"


def test_a_batch_counts_each_outcome_and_retries(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.test", times=None)
    server.reply("mail", "451 4.3.0 Try again", times=1)
    retry = Retry(attempts=3, backoff=0.0, jitter=0.0)
    batch = [message(), message(to="gone@example.test"), message()]

    async def main() -> list[SendResult | SMTPError]:
        async with via(server, retry=retry) as submitter:
            return await submitter.send_many(batch, concurrency=1)

    outcomes = asyncio.run(main())
    assert [type(outcome).__name__ for outcome in outcomes] == [
        "SendResult",
        "RecipientRejected",
        "SendResult",
    ]
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "sent"}) == 2
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "refused"}) == 1
    assert telemetry.count("smtpkit.retries") == 1
    spans = telemetry.spans()
    assert sorted(attributes_of(s)["smtpkit.batch.index"] for s in spans) == [0, 1, 2]


def test_send_and_send_many_spans_are_children_of_the_caller_s_span(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    """Unlike the threaded Submitter's send_many (a reporting thread: root spans), the
    asyncio batch's reporter task inherits the caller's context."""
    server = local_server()
    tracer = telemetry.tracer_provider.get_tracer("app")

    async def main() -> tuple[int, int]:
        async with via(server) as submitter:
            with tracer.start_as_current_span("signup") as one:
                await submitter.send(message())
            with tracer.start_as_current_span("newsletter") as many:
                await submitter.send_many([message(), message()])
        return one.get_span_context().span_id, many.get_span_context().span_id

    one, many = asyncio.run(main())
    parents = [span.parent.span_id if span.parent else None for span in telemetry.spans()]
    assert parents == [one, many, many]


def test_async_failover_shows_the_failed_server_and_the_one_that_took_it(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    good = local_server()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]

        async def main() -> None:
            down = AsyncSubmitter("127.0.0.1", port, security=Security.NONE, timeout=TIMEOUT)
            async with AsyncFailover([down, via(good)]) as mail:
                await mail.send(message())

        asyncio.run(main())
    failed, sent = telemetry.spans()
    assert attributes_of(failed)["smtpkit.phase"] == "connect"
    assert attributes_of(failed)["smtpkit.result"] == "failed"
    assert attributes_of(failed)["server.port"] == port
    assert attributes_of(sent)["server.port"] == good.port
    assert attributes_of(sent)["smtpkit.result"] == "sent"


def test_no_address_or_password_in_any_span_or_metric(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server(credentials={CANARY_ADDRESS: CANARY_PASSWORD})
    server.reply("rcpt", f"550 5.1.1 <{CANARY_RECIPIENT}> unknown", recipient=CANARY_RECIPIENT)

    async def main() -> None:
        async with via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD)) as good:
            await good.send(message(to="bob@example.test", sender=CANARY_ADDRESS))
            await good.send_many([message(to=CANARY_RECIPIENT, sender=CANARY_ADDRESS)])
        wrong = via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD + "x"))
        with pytest.raises(InvalidCredentials):
            await wrong.send(message(sender=CANARY_ADDRESS))

    asyncio.run(main())
    assert len(telemetry.spans()) == 3
    text = telemetry.everything()
    assert "smtpkit.result" in text  # the dump does hold the telemetry
    for canary in (CANARY_ADDRESS, CANARY_RECIPIENT, "canary", CANARY_PASSWORD):
        assert canary not in text, canary


def test_addresses_only_when_asked_and_never_the_password(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    telemetry.instrument(record_addresses=True)  # replaces the default instrumentation
    server = local_server(credentials={CANARY_ADDRESS: CANARY_PASSWORD})
    server.reply("rcpt", f"550 5.1.1 <{CANARY_RECIPIENT}> unknown", recipient=CANARY_RECIPIENT)

    async def main() -> SendResult:
        async with via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD)) as submitter:
            result = await submitter.send(message(sender=CANARY_ADDRESS))
            with pytest.raises(RecipientRejected):
                await submitter.send(message(to=CANARY_RECIPIENT, sender=CANARY_ADDRESS))
            return result

    result = asyncio.run(main())
    sent, refused = telemetry.spans()
    assert attributes_of(sent)["smtpkit.sender"] == CANARY_ADDRESS
    assert list(attributes_of(sent)["smtpkit.recipients"]) == ["bob@example.test"]
    assert attributes_of(sent)["smtpkit.message_id"] == result.message_id
    assert list(attributes_of(refused)["smtpkit.recipients.refused"]) == [CANARY_RECIPIENT]
    [event] = refused.events
    assert event.name == "exception"
    assert CANARY_PASSWORD not in telemetry.everything()
    assert telemetry.count("smtpkit.messages") == 2

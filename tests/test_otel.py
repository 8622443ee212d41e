"""smtpkit.otel against a real LocalServer, read back with the OpenTelemetry SDK's in-memory
span exporter and metric reader: accepted, refused, unknown, retried; and no address or
secret in any span or metric unless asked for."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import smtpkit.otel
from smtpkit import DeliveryUnknown, Failover, Retry, Security, Submitter, hooks
from smtpkit.auth import PasswordAuth
from smtpkit.errors import ConfigurationError, InvalidCredentials, RecipientRejected
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory

#: Canaries: if either shows up in telemetry (without the opt-in, for the address), it leaked.
CANARY_ADDRESS = "canary-7f3a@example.test"
CANARY_RECIPIENT = "canary-rcpt-19c2@example.test"
CANARY_PASSWORD = "pw-canary-5be1d0"


class Telemetry:
    """What the SDK received: finished spans and metric points."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, **options: Any) -> None:
        smtpkit.otel.instrument(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **options
        )

    def spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == smtpkit.otel.SPAN_NAME]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return found

    def count(self, name: str, **wanted: Any) -> int:
        return sum(
            point.value
            for attributes, point in self.points(name)
            if all(attributes.get(key) == value for key, value in wanted.items())
        )

    def everything(self) -> str:
        """Every span (attributes, events, status, links) and metric point, as text."""
        spans = [span.to_json() for span in self.exporter.get_finished_spans()]
        data = self.reader.get_metrics_data()
        return "\n".join([*spans, data.to_json() if data else ""])


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    hooks.clear()
    found = Telemetry()
    found.instrument()
    yield found
    smtpkit.otel.uninstrument()
    hooks.clear()


def via(server: LocalServer, **options: Any) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **options,
    )


def message(to: str = "bob@example.test", sender: str = "alice@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "Hi"
    msg.set_content("hello")
    return msg


def test_an_accepted_message_is_one_client_span_and_one_sent(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    via(server).send(message())
    [span] = telemetry.spans()
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
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


def test_a_refused_recipient_is_refused_at_rcpt_with_its_enhanced_code(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", times=None)
    with pytest.raises(RecipientRejected):
        via(server).send(message())
    [span] = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["smtpkit.result"] == "refused"
    assert attributes["smtpkit.phase"] == "rcpt"
    assert attributes["smtpkit.reply.code"] == 550
    assert attributes["smtpkit.reply.enhanced_code"] == "5.1.1"
    assert attributes["error.type"] == "RecipientRejected"
    assert attributes["smtpkit.transient"] is False
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RecipientRejected"
    assert span.events == ()  # no exception event: its message would quote the address
    assert (
        telemetry.count(
            "smtpkit.messages", **{"smtpkit.result": "refused", "error.type": "RecipientRejected"}
        )
        == 1
    )


def test_a_reply_lost_after_the_content_is_unknown(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server(faults=lambda phase: LocalServer.DROP if phase == "message" else None)
    with pytest.raises(DeliveryUnknown):
        via(server).send(message())
    [span] = telemetry.spans()
    attributes = dict(span.attributes or {})
    assert attributes["smtpkit.result"] == "unknown"
    assert attributes["smtpkit.phase"] == "message"
    assert attributes["error.type"] == "DeliveryUnknown"
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "unknown"}) == 1


def test_a_retried_message_counts_one_retry_and_ends_as_one_span(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    server.reply("mail", "451 4.3.0 Try again", times=1)
    retry = Retry(attempts=3, backoff=0.0, jitter=0.0, sleep=lambda seconds: None)
    via(server, retry=retry).send(message())
    assert len(server.messages) == 1
    assert telemetry.count("smtpkit.retries") == 1
    assert telemetry.count("smtpkit.retries", **{"server.port": server.port}) == 1
    [span] = telemetry.spans()
    assert dict(span.attributes or {})["smtpkit.result"] == "sent"


def test_a_batch_counts_each_outcome(local_server: ServerFactory, telemetry: Telemetry) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.test", times=None)
    batch = [message(), message(to="gone@example.test"), message()]
    via(server).send_many(batch, concurrency=1)
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "sent"}) == 2
    assert telemetry.count("smtpkit.messages", **{"smtpkit.result": "refused"}) == 1
    spans = telemetry.spans()
    assert sorted(dict(s.attributes or {})["smtpkit.batch.index"] for s in spans) == [0, 1, 2]


def test_a_send_is_a_child_of_the_caller_s_span(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server()
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("signup") as parent:
        via(server).send(message())
    [span] = telemetry.spans()
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id


def test_failover_shows_the_failed_server_and_the_one_that_took_it(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = closed.getsockname()[1]
        good = local_server()
        down = Submitter("127.0.0.1", port, security=Security.NONE, timeout=TIMEOUT)
        Failover([down, via(good)]).send(message())
    failed, sent = sorted(telemetry.spans(), key=lambda s: s.start_time or 0)
    assert dict(failed.attributes or {})["smtpkit.phase"] == "connect"
    assert dict(failed.attributes or {})["smtpkit.result"] == "failed"
    assert dict(failed.attributes or {})["server.port"] == port
    assert dict(sent.attributes or {})["server.port"] == good.port


def test_no_address_or_password_in_any_span_or_metric(
    local_server: ServerFactory, telemetry: Telemetry
) -> None:
    server = local_server(credentials={CANARY_ADDRESS: CANARY_PASSWORD})
    server.reply("rcpt", f"550 5.1.1 <{CANARY_RECIPIENT}> unknown", recipient=CANARY_RECIPIENT)
    good = via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD))
    good.send(message(to="bob@example.test", sender=CANARY_ADDRESS))
    with pytest.raises(RecipientRejected):
        good.send(message(to=CANARY_RECIPIENT, sender=CANARY_ADDRESS))
    wrong = via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD + "x"))
    with pytest.raises(InvalidCredentials):
        wrong.send(message(sender=CANARY_ADDRESS))
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
    submitter = via(server, auth=PasswordAuth(CANARY_ADDRESS, CANARY_PASSWORD))
    result = submitter.send(message(sender=CANARY_ADDRESS))
    with pytest.raises(RecipientRejected):
        submitter.send(message(to=CANARY_RECIPIENT, sender=CANARY_ADDRESS))
    sent, refused = telemetry.spans()  # one span each: the first instrumentation is gone
    attributes = dict(sent.attributes or {})
    assert attributes["smtpkit.sender"] == CANARY_ADDRESS
    assert list(attributes["smtpkit.recipients"]) == ["bob@example.test"]
    assert attributes["smtpkit.message_id"] == result.message_id
    assert list(dict(refused.attributes or {})["smtpkit.recipients.refused"]) == [CANARY_RECIPIENT]
    [event] = refused.events
    assert event.name == "exception"
    assert CANARY_RECIPIENT in json.dumps(dict(event.attributes or {}))
    assert CANARY_PASSWORD not in telemetry.everything()
    assert telemetry.count("smtpkit.messages") == 2


def test_uninstrument_stops_it(local_server: ServerFactory, telemetry: Telemetry) -> None:
    server = local_server()
    smtpkit.otel.uninstrument()
    smtpkit.otel.uninstrument()  # idempotent
    via(server).send(message())
    assert telemetry.spans() == []


def test_record_addresses_must_be_a_bool() -> None:
    with pytest.raises(ConfigurationError, match="record_addresses"):
        smtpkit.otel.instrument(record_addresses="yes")  # type: ignore[arg-type]


def test_importing_smtpkit_never_imports_opentelemetry() -> None:
    code = (
        "import sys, smtpkit, smtpkit.otel, smtpkit.failover\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

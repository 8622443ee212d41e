"""OpenTelemetry for smtpkit: a span per message and counters, built on :mod:`smtpkit.hooks`.

Needs the ``otel`` extra (``pip install 'smtpkit[otel]'``, which brings
``opentelemetry-api`` only; the SDK and exporters are the application's choice)::

    import smtpkit.otel

    smtpkit.otel.instrument()      # the global TracerProvider and MeterProvider
    ...
    smtpkit.otel.uninstrument()

Every message a Submitter (or AsyncSubmitter) finishes becomes one span named
``smtp send`` (kind ``CLIENT``) and counts in ``smtpkit.messages``; see :func:`instrument`
for the attributes and instruments.

Invariants:
    * ``import smtpkit`` never imports OpenTelemetry, and neither does importing this
      module: :func:`instrument` imports it.
    * No span attribute, event, status or metric attribute holds an address (sender,
      recipient, Message-ID), the server's reply text or an error's message unless
      ``record_addresses=True``; none ever holds a secret (errors hold none, and nothing
      else is read).
    * Telemetry never changes what happens to a message: the hooks swallow (and log) a
      callback's exception, and the callbacks run outside any SMTP transaction.
    * :func:`instrument` and :func:`uninstrument` are thread-safe; a second
      ``instrument()`` replaces the first (no message is counted twice).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smtpkit import __version__, hooks, providers
from smtpkit.errors import (
    ConfigurationError,
    DeliveryUnknown,
    ReplyError,
    SMTPError,
)
from smtpkit.replies import Phase

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = ["SPAN_NAME", "instrument", "uninstrument"]

#: The name of every message's span: low-cardinality, as OpenTelemetry asks of span names.
SPAN_NAME = "smtp send"

_SCOPE = "smtpkit"

#: The phases that refuse *this message* (a failure reply there is a refusal, not a failure
#: to reach the server): MAIL, RCPT, DATA and the reply after the content.
_MESSAGE_PHASES = frozenset({Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.MESSAGE})

_lock = threading.Lock()
#: The instrumentation in force (at most one), guarded by ``_lock``.
_active: list[_Instrumentation] = []


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    record_addresses: bool = False,
) -> None:
    """Trace and count every message smtpkit sends, in this process, from now on.

    Each message's outcome becomes a span ``smtp send`` (kind ``CLIENT``), started when
    the message started (its ``elapsed`` before the outcome) and ended at the outcome. For
    ``send()`` it is a child of the span current in the caller. ``Submitter.send_many``
    reports from a thread of its own, so its spans are roots; ``AsyncSubmitter.send_many``
    reports from a task asyncio starts with a copy of the caller's context, so its spans
    are children of the span current when it was called. Under asyncio the spans end on
    the event loop's thread: give the tracer provider a ``BatchSpanProcessor`` (a
    ``SimpleSpanProcessor`` exports right there, stalling the loop). Attributes:

    * ``server.address``, ``server.port``: the server;
    * ``smtpkit.provider``: the provider preset, when known (``gmail``...);
    * ``smtpkit.result``: ``sent``, ``refused`` (a failure reply to MAIL, RCPT, DATA or the
      content), ``unknown`` (``DeliveryUnknown``) or ``failed`` (anything else);
    * ``smtpkit.phase``: the step reached: ``connect``, ``greeting``, ``ehlo``,
      ``starttls``, ``tls``, ``auth``, ``prepare``, ``mail``, ``rcpt``, ``data``,
      ``message`` (the content was sent);
    * ``smtpkit.reply.code``, ``smtpkit.reply.enhanced_code``: the final (or refusing)
      reply's code and RFC 3463 enhanced code, e.g. ``550`` and ``5.1.1``;
    * ``smtpkit.recipients.accepted``, ``smtpkit.recipients.rejected``: how many;
    * ``smtpkit.transient``: whether a failure may clear by itself;
    * ``smtpkit.batch.index``: the message's position in a ``send_many`` batch;
    * ``error.type``: the error class, e.g. ``RecipientRejected``.

    A failed message's span has status ``ERROR`` described by its error class only.

    Instruments (meter ``smtpkit``): ``smtpkit.messages`` (counter, ``{message}``, by
    ``smtpkit.result``, ``error.type``, server and provider), ``smtpkit.retries``
    (counter, ``{retry}``: a message's transaction started again) and
    ``smtpkit.send.duration`` (histogram, seconds, by result and server).

    Args:
        tracer_provider: default: OpenTelemetry's global one.
        meter_provider: default: OpenTelemetry's global one.
        record_addresses: also record ``smtpkit.sender``, ``smtpkit.recipients``,
            ``smtpkit.recipients.refused``, ``smtpkit.message_id``, the reply text
            (``smtpkit.reply.text``) and each error as an ``exception`` event with its
            message. Off by default: addresses are personal data, and reply texts and
            error messages quote them. Secrets are never recorded either way.

    Raises:
        ImportError: ``opentelemetry-api`` is not installed (``pip install
            'smtpkit[otel]'``).
        ConfigurationError: ``record_addresses`` is not ``True`` or ``False``.
    """
    if not isinstance(record_addresses, bool):
        raise ConfigurationError(
            f"record_addresses must be True or False, got {record_addresses!r}",
            hint="record_addresses=True records addresses in spans: personal data",
        )
    try:
        from opentelemetry import metrics, trace  # noqa: PLC0415 - optional, on demand
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "smtpkit.otel needs OpenTelemetry: pip install 'smtpkit[otel]'"
        ) from error
    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
    meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
    instrumentation = _Instrumentation(
        tracer=tracer,
        messages=meter.create_counter(
            "smtpkit.messages", unit="{message}", description="Messages finished, by result"
        ),
        retries=meter.create_counter(
            "smtpkit.retries",
            unit="{retry}",
            description="Message transactions started again after a failed try",
        ),
        duration=meter.create_histogram(
            "smtpkit.send.duration",
            unit="s",
            description="From a message's start to its outcome",
        ),
        record_addresses=record_addresses,
    )
    with _lock:
        for earlier in _active:
            earlier.remove()
        instrumentation.install()
        _active[:] = [instrumentation]


def uninstrument() -> None:
    """Stop tracing and counting (spans already ended stay exported). Idempotent."""
    with _lock:
        for earlier in _active:
            earlier.remove()
        _active.clear()


@functools.lru_cache(maxsize=64)
def _provider_for_host(host: str) -> str | None:
    preset = providers.for_host(host)
    return None if preset is None else preset.name


def _result(error: SMTPError | None) -> str:
    if error is None:
        return "sent"
    if isinstance(error, DeliveryUnknown):
        return "unknown"
    if isinstance(error, ReplyError) and error.phase in _MESSAGE_PHASES:
        return "refused"
    return "failed"


@dataclass
class _Instrumentation:
    """The instruments of one ``instrument()`` call and the hooks that feed them."""

    tracer: Tracer
    messages: Counter
    retries: Counter
    duration: Histogram
    record_addresses: bool
    _removers: list[Callable[[], None]] = field(default_factory=list)

    def install(self) -> None:
        self._removers = [hooks.on_send_end(self.finished), hooks.on_send_retry(self.retried)]

    def remove(self) -> None:
        for remove in self._removers:
            remove()
        self._removers = []

    def _server(self, host: str, port: int, provider: str | None) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {"server.address": host, "server.port": port}
        if provider is not None:
            attributes["smtpkit.provider"] = provider
        return attributes

    def retried(self, event: hooks.SendRetried) -> None:
        self.retries.add(1, self._server(event.host, event.port, _provider_for_host(event.host)))

    def finished(self, event: hooks.SendFinished) -> None:
        error, result = event.error, event.result
        # The event says which provider and phase (smtpkit.hooks); one built by hand may not.
        provider = event.provider or _provider_for_host(event.host)
        server = self._server(event.host, event.port, provider)
        outcome = _result(error)
        counted: dict[str, AttributeValue] = {**server, "smtpkit.result": outcome}
        if error is not None:
            counted["error.type"] = type(error).__name__
        self.messages.add(1, counted)
        self.duration.record(max(0.0, event.elapsed), {**server, "smtpkit.result": outcome})

        attributes: dict[str, AttributeValue] = {
            **counted,
            "smtpkit.phase": event.phase or hooks.phase_of(error),
            "smtpkit.batch.index": event.index,
        }
        reply = result.reply if result is not None else getattr(error, "reply", None)
        if reply is not None:
            attributes["smtpkit.reply.code"] = reply.code
            if reply.enhanced_code:
                attributes["smtpkit.reply.enhanced_code"] = reply.enhanced_code
        if result is not None:
            attributes["smtpkit.recipients.accepted"] = len(result.accepted)
            attributes["smtpkit.recipients.rejected"] = len(result.rejected)
        elif error is not None:
            attributes["smtpkit.transient"] = error.is_transient
            refused = getattr(error, "rejected", None)
            if isinstance(refused, dict):
                attributes["smtpkit.recipients.rejected"] = len(refused)
        if self.record_addresses:
            attributes.update(_addresses(result, error))

        from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: PLC0415

        end = time.time_ns()
        start = end - int(max(0.0, event.elapsed) * 1e9)
        span = self.tracer.start_span(
            SPAN_NAME, kind=SpanKind.CLIENT, attributes=attributes, start_time=start
        )
        if error is not None:
            if self.record_addresses:
                span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end(end_time=end)


def _addresses(result: object, error: SMTPError | None) -> dict[str, AttributeValue]:
    """The opt-in attributes: addresses, the Message-ID and the reply text."""
    attributes: dict[str, AttributeValue] = {}
    sender = getattr(result, "sender", None)
    if isinstance(sender, str):
        attributes["smtpkit.sender"] = sender
    accepted = getattr(result, "accepted", None)
    if isinstance(accepted, tuple):
        attributes["smtpkit.recipients"] = list(accepted)
    source = result if result is not None else error
    rejected = getattr(source, "rejected", None)
    if rejected:
        attributes["smtpkit.recipients.refused"] = sorted(rejected)
    recipients = getattr(error, "recipients", None)  # DeliveryUnknown's
    if isinstance(recipients, tuple) and recipients:
        attributes["smtpkit.recipients"] = list(recipients)
    message_id = getattr(source, "message_id", None)
    if isinstance(message_id, str):
        attributes["smtpkit.message_id"] = message_id
    reply = getattr(source, "reply", None)
    text = getattr(reply, "text", None)
    if isinstance(text, str):
        attributes["smtpkit.reply.text"] = text
    return attributes

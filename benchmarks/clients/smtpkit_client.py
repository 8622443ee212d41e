"""smtpkit: ``Submitter.send`` on one kept connection; ``send_many`` for N connections.

``send_many(messages, concurrency=N)`` is used when the installed smtpkit has it; otherwise
rows with more than one connection are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import smtpkit
from benchmarks.common import SENDER, Result, Skipped, build_message, recipient_list

__all__ = ["run"]


def run(
    host: str,
    port: int,
    *,
    count: int,
    recipients: int,
    message_bytes: int,
    duration_cap: float,
    connections: int = 1,
) -> Result:
    rcpts = recipient_list(recipients)
    message = build_message(message_bytes, rcpts)
    if connections != 1:
        return _run_many(host, port, message, count, duration_cap, connections)
    sent = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + duration_cap
    with smtpkit.Submitter(host, port, security=smtpkit.Security.NONE, timeout=30) as submitter:
        while sent < count and time.perf_counter() < deadline:
            submitter.send(message, sender=SENDER, recipients=rcpts)
            sent += 1
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Result(sent, seconds, cpu)


def _run_many(
    host: str, port: int, message: bytes, count: int, duration_cap: float, connections: int
) -> Result:
    submitter = smtpkit.Submitter(host, port, security=smtpkit.Security.NONE, timeout=30)
    send_many: Any = getattr(submitter, "send_many", None)
    if send_many is None:
        raise Skipped(f"smtpkit {smtpkit.__version__} has no Submitter.send_many yet")
    parsed = message_from_bytes(message, policy=policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    yielded = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + duration_cap

    def messages() -> Iterator[EmailMessage]:
        # Stops by count, and by time if send_many consumes the iterable lazily.
        nonlocal yielded
        while yielded < count and time.perf_counter() < deadline:
            yielded += 1
            yield parsed

    with submitter:
        results = send_many(messages(), concurrency=connections)
        # A list, or an iterator whose consumption does the sending: count either way.
        sent = sum(1 for _ in results) if results is not None else yielded
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return Result(sent, seconds, cpu)

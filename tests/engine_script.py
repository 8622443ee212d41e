"""A scripted driver for engine tests: server bytes in, client bytes recorded, no sockets.

The engine's steps are generators of effects; :class:`Script` performs them against a
queue of what the server "sends" and records everything the client wrote, so tests can
assert the exact bytes (and how they were grouped into writes, which shows pipelining).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import TypeVar

from smtpkit import SendResult
from smtpkit.auth import AccessToken
from smtpkit.engine import (
    Close,
    Connect,
    Connected,
    Effect,
    FetchToken,
    Log,
    Receive,
    Report,
    SendOptions,
    StartTLS,
    Steps,
    TakeNext,
    Write,
)
from smtpkit.errors import OperationTimeout, SMTPError
from smtpkit.message import prepare_message
from smtpkit.protocol import encode_content

R = TypeVar("R")

GREETING = b"220 mx.example.test ESMTP\r\n"
EHLO_STARTTLS = b"250-mx.example.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO_AUTH = (
    b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"
    b"250 AUTH PLAIN LOGIN XOAUTH2\r\n"
)
EHLO_PIPELINING = b"250-mx.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
EHLO_CHUNKING = b"250-mx.example.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n"
EHLO_BARE = b"250-mx.example.test\r\n250 8BITMIME\r\n"
EHLO_CHUNKING_ONLY = b"250-mx.example.test\r\n250-CHUNKING\r\n250 8BITMIME\r\n"


@dataclass(frozen=True)
class Later:
    """Server bytes that arrive ``seconds`` after the client starts waiting for them."""

    seconds: float
    data: bytes


@dataclass
class Job:
    """A job as a driver would hand it to the engine."""

    message: Message | bytes
    sender: str | None = None
    recipients: Sequence[str] | None = None
    name: str = ""
    options: SendOptions | None = None


def message(number: int, to: str = "bob@example.test", body: str = "Hello.\n") -> Job:
    msg = EmailMessage()
    msg["From"] = "alice@example.test"
    msg["To"] = to
    msg["Subject"] = f"message {number}"
    msg["Message-ID"] = f"<{number}@example.test>"
    msg["Date"] = "Thu, 01 Jan 2026 00:00:00 +0000"
    msg.set_content(body)
    return Job(msg, name=f"m{number}")


@dataclass
class Script:
    """Performs engine effects: ``Receive`` pops scripted server bytes, ``Write`` records."""

    incoming: deque[bytes | Later] = field(default_factory=deque)
    peer: str | None = "127.0.0.1"
    implicit_tls: bool = False
    jobs: deque[Job | None] = field(default_factory=deque)
    token: Callable[[FetchToken], AccessToken] | None = None
    now: float = 100.0
    writes: list[bytes] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    reports: list[tuple[object, SendResult | SMTPError]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def serve(self, *chunks: bytes | Later) -> Script:
        self.incoming.extend(chunks)
        return self

    def clock(self) -> float:
        return self.now

    @property
    def wire(self) -> bytes:
        return b"".join(self.writes)

    def kinds(self) -> list[str]:
        return [type(effect).__name__ for effect in self.effects]

    def outcomes(self) -> dict[str, SendResult | SMTPError]:
        return {job.name: result for job, result in self.reports if isinstance(job, Job)}

    def perform(self, effect: Effect) -> object:
        self.effects.append(effect)
        if isinstance(effect, Write):
            self.writes.append(effect.data)
            return None
        if isinstance(effect, Receive):
            if not self.incoming:
                raise OperationTimeout("the scripted server has nothing more to say")
            item = self.incoming.popleft()
            if isinstance(item, Later):
                self.now += item.seconds
                if self.now > effect.deadline:
                    raise OperationTimeout("the scripted reply came after the deadline")
                return item.data
            return item
        if isinstance(effect, Connect):
            return Connected(self.peer, self.implicit_tls)
        if isinstance(effect, StartTLS):
            return None
        if isinstance(effect, FetchToken):
            assert self.token is not None, "no token source scripted"
            return self.token(effect)
        if isinstance(effect, TakeNext):
            return self.jobs.popleft() if self.jobs else None
        if isinstance(effect, Report):
            self.reports.append((effect.job, effect.result))
            return None
        if isinstance(effect, Log):
            self.logs.append(effect.text)
            return None
        if isinstance(effect, Close):
            return None
        raise AssertionError(f"unknown effect {effect!r}")

    def run(self, steps: Steps[R]) -> R:
        """Drive ``steps`` to the end, throwing failed effects back in (the driver loop)."""
        answer: object = None
        failure: SMTPError | None = None
        for _ in range(10_000):
            try:
                effect = steps.throw(failure) if failure is not None else steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer, failure = None, None
            try:
                answer = self.perform(effect)
            except SMTPError as error:
                failure = error
        raise AssertionError("the engine did not finish within 10,000 effects")


def lines(*commands: str) -> bytes:
    """Commands as they travel: each with CRLF."""
    return b"".join(command.encode() + b"\r\n" for command in commands)


def content_of(job: Job) -> bytes:
    """The DATA content (dot-stuffed, terminated) the engine sends for ``job``."""
    prepared = prepare_message(job.message, sender=job.sender, recipients=job.recipients)
    return encode_content(prepared.content)


def raw_content(job: Job) -> bytes:
    return prepare_message(job.message, sender=job.sender, recipients=job.recipients).content


def ok(*codes: int) -> bytes:
    """Replies as bytes: 250 for 2xx, 354 for DATA, with fixed texts."""
    out = []
    for code in codes:
        text = {250: "2.0.0 OK", 354: "Go ahead", 221: "2.0.0 Bye"}.get(code, "reply")
        out.append(f"{code} {text}\r\n".encode())
    return b"".join(out)


def all_written(script: Script, needles: Iterable[bytes]) -> bool:
    wire = script.wire
    return all(needle in wire for needle in needles)

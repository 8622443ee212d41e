"""Shared pieces: the result type, test messages, free ports, waiting for a listener."""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

__all__ = [
    "HOST",
    "INPUTS",
    "REPO",
    "SENDER",
    "Result",
    "Skipped",
    "build_email_message",
    "build_message",
    "free_port",
    "recipient_list",
    "wait_for_port",
]

#: Every server, proxy and client in the benchmarks uses the loopback interface only.
HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
SENDER = "bench@example.test"


class Skipped(Exception):
    """A client cannot run this scenario (for example a missing feature); the text says why."""


@dataclass(frozen=True)
class Result:
    """What one client run achieved.

    ``seconds`` is wall-clock time from just before the connection is opened to just after
    the last message's final reply (QUIT is not timed). ``cpu_seconds`` is the CPU time
    (user + system) the client process spent in the same interval.
    """

    messages: int
    seconds: float
    cpu_seconds: float

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_message(self) -> float:
        """CPU microseconds per message."""
        return self.cpu_seconds / self.messages * 1e6 if self.messages else 0.0

    def as_dict(self) -> dict[str, float]:
        data: dict[str, float] = asdict(self)
        data["rate"] = self.rate
        data["cpu_us_per_message"] = self.cpu_us_per_message
        return data


def recipient_list(count: int) -> list[str]:
    """``count`` distinct envelope recipients."""
    return [f"rcpt{i}@example.test" for i in range(count)]


def build_message(size: int, recipients: list[str]) -> bytes:
    """A plain-text message of exactly ``size`` bytes (CRLF line ends, 76-byte lines)."""
    header = (
        f"From: {SENDER}\r\n"
        f"To: {', '.join(recipients)}\r\n"
        "Subject: benchmark\r\n"
        "Message-ID: <bench@example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    line = b"x" * 74 + b"\r\n"
    body_size = max(size - len(header), 2)
    body = (line * (body_size // len(line) + 1))[: body_size - 2] + b"\r\n"
    return header + body


#: The kinds of message input a client can be given: an ``EmailMessage`` as users build it
#: (the headline), or the message pre-flattened to bytes with an explicit envelope.
INPUTS = ("email", "bytes")


def build_email_message(size: int, recipients: list[str]) -> EmailMessage:
    """An ``EmailMessage`` built as users build one: From, To, Subject and ``set_content``.

    No Message-ID and no Date (clients that add them do that work per message). The body
    is lines of 74 ``x``; as many as keep the flattened message (CRLF) at most ``size``
    bytes, so it is the same size as :func:`build_message`'s within one line.
    """
    lines = 1
    while True:
        candidate = _email(recipients, lines + 1)
        if len(candidate.as_bytes(policy=policy.SMTP)) > size:
            return _email(recipients, lines)
        lines += 1


def _email(recipients: list[str], lines: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = ", ".join(recipients)
    message["Subject"] = "benchmark"
    message.set_content(("x" * 74 + "\n") * lines)
    return message


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 5.0, host: str = HOST) -> None:
    """Return once something accepts connections on ``host:port``; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing is listening on {host}:{port}") from None
            time.sleep(0.02)

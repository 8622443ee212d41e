"""Shared fixtures: a LocalServer factory and a reader for what the server was sent."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from smtpkit.testing import LocalServer

#: Seconds for every client step in socket tests: short, so a bug fails fast instead of hanging.
TIMEOUT = 5.0

ServerFactory = Callable[..., LocalServer]


@pytest.fixture
def local_server() -> Iterator[ServerFactory]:
    """``local_server(**options)`` starts a LocalServer; every one is stopped at teardown."""
    servers: list[LocalServer] = []

    def start(**options: Any) -> LocalServer:
        server = LocalServer(**options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


class ServerLog:
    """The command lines the local server read, from aiosmtpd's own log (AUTH arguments masked).

    aiosmtpd logs every command line it reads (``'%r >> %r'``, INFO, logger ``mail.log``) on
    the server thread; this reads those records, so tests can check what the server saw.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def commands(self) -> list[str]:
        """Every command line read, in order, e.g. ``["EHLO x", "STARTTLS", ...]``."""
        return [
            bytes(record.args[1]).decode("utf-8", "replace")
            for record in self._caplog.records
            if record.name == "mail.log"
            and record.msg == "%r >> %r"
            and isinstance(record.args, tuple)
        ]

    def verbs(self) -> list[str]:
        """The command verbs (``EHLO``, ``MAIL``, ...), upper-cased, in order."""
        return [line.split(" ", 1)[0].split(":", 1)[0].upper() for line in self.commands()]

    def connections_closed(self) -> int:
        """How many sessions the server has seen end (EOF or connection lost)."""
        return sum(
            1
            for record in self._caplog.records
            if record.name == "mail.log"
            and isinstance(record.msg, str)
            and record.msg.endswith(("connection lost", "EOF received"))
        )

    def wait_closed(self, count: int = 1, timeout: float = TIMEOUT) -> None:
        """Wait until the server has seen ``count`` sessions end, so its log is complete."""
        deadline = time.monotonic() + timeout
        while self.connections_closed() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the server saw {self.connections_closed()} sessions end")
            time.sleep(0.01)


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> ServerLog:
    """What the local server read, command by command."""
    caplog.set_level(logging.INFO, logger="mail.log")
    return ServerLog(caplog)


@pytest.fixture
def make_message() -> Callable[..., EmailMessage]:
    """``make_message(To=..., Subject=...)``: a small text message from alice@example.test."""

    def make(body: str = "Hello from smtpkit.\n", **headers: str) -> EmailMessage:
        message = EmailMessage()
        fields = {"From": "alice@example.test", "To": "bob@example.test", "Subject": "Hi"}
        fields.update(headers)
        for name, value in fields.items():
            message[name.replace("_", "-")] = value
        message.set_content(body)
        return message

    return make

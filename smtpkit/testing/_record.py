"""What a test server received, in one vocabulary for the fake and the real server.

Job: :class:`ReceivedMessage` (one message with its envelope and session facts),
:class:`AuthAttempt`, and :class:`Records`, the locked lists both
:class:`~smtpkit.testing.FakeTransport` and :class:`~smtpkit.testing.LocalServer` append to
and tests read. A test moved from one server to the other reads the same fields.

Invariants:
    * Every list is appended to under ``Records.lock``; readers get copies under the same
      lock, and a condition on it wakes :meth:`Records.wait_for`.
    * ``messages`` holds what the server accepted (a ``2xx`` after the content), ``dropped``
      what it received without sending a final reply (a scripted disconnect or timeout after
      the content): the client cannot know whether that will be delivered.
    * Queue ids are unique per server and count accepted messages only.
    * Nothing recorded holds a password or token: AUTH attempts keep the user name only.
"""

from __future__ import annotations

import dataclasses
import email.policy
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import NamedTuple

from smtpkit.testing._deprecation import renamed

__all__ = ["EVENT_HISTORY", "AuthAttempt", "ReceivedMessage", "Records", "parse_content"]

#: How many recent notable events (refusals, failed AUTH, drops) a ``wait_for`` error quotes.
EVENT_HISTORY = 10


class AuthAttempt(NamedTuple):
    """One AUTH exchange the server completed (a tuple: ``(mechanism, username, success)``).

    ``username`` is ``None`` when the response could not be parsed far enough to name one.
    """

    mechanism: str
    username: str | None
    success: bool


@dataclass(frozen=True)
class ReceivedMessage:
    """A message a test server received, the same type from the fake and the real server.

    Attributes:
        sender: the reverse-path of ``MAIL FROM`` (``""`` for the null sender ``<>``).
        recipients: the recipients the server accepted, in order.
        raw: the content as received, dot-stuffing removed (RFC 5321 §4.5.2); CRLF endings.
        message: ``raw`` parsed with :data:`email.policy.default`.
        auth_user: the user the session authenticated as, or ``None``.
        auth_mechanism: the SASL mechanism used, or ``None``.
        tls: whether the content arrived over an encrypted link.
        mail_options: the ``MAIL FROM`` parameters, keywords upper-cased, values as sent
            (``("SIZE=1234", "BODY=8BITMIME", "ENVID=abc")``).
        rcpt_options: the ``RCPT TO`` parameters of each accepted recipient, in the order of
            :attr:`recipients` (``(("NOTIFY=FAILURE",), ())``); see :meth:`options_for`.
        chunked: sent with ``BDAT`` (RFC 3030) rather than ``DATA``.
        connection: the number of the connection it came on (1 for the first).
        queue_id: the id in the server's ``250`` reply; ``None`` for dropped messages.
        path: where the message was saved as ``.eml`` (LocalServer with ``save_dir``).
    """

    sender: str
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
    message: EmailMessage = field(repr=False, compare=False)
    auth_user: str | None = None
    auth_mechanism: str | None = None
    tls: bool = False
    mail_options: tuple[str, ...] = ()
    rcpt_options: tuple[tuple[str, ...], ...] = ()
    chunked: bool = False
    connection: int = 0
    queue_id: str | None = None
    path: Path | None = None

    @property
    def subject(self) -> str | None:
        """The decoded ``Subject`` header, or ``None``."""
        value = self.message["Subject"]
        return None if value is None else str(value)

    @property
    def smtputf8(self) -> bool:
        """Whether ``MAIL FROM`` carried ``SMTPUTF8`` (RFC 6531)."""
        return "SMTPUTF8" in self.mail_options

    def options_for(self, recipient: str) -> tuple[str, ...]:
        """The ``RCPT TO`` parameters sent for ``recipient`` (case-insensitive).

        Raises:
            KeyError: ``recipient`` is not among the accepted :attr:`recipients`.
        """
        for address, options in zip(self.recipients, self.rcpt_options, strict=False):
            if address.casefold() == recipient.casefold():
                return options
        if any(address.casefold() == recipient.casefold() for address in self.recipients):
            return ()
        raise KeyError(recipient)

    @property
    def mail_from(self) -> str:
        """Deprecated: :attr:`sender`."""
        renamed("ReceivedMessage.mail_from", "ReceivedMessage.sender")
        return self.sender

    @property
    def rcpt_tos(self) -> tuple[str, ...]:
        """Deprecated: :attr:`recipients`."""
        renamed("ReceivedMessage.rcpt_tos", "ReceivedMessage.recipients")
        return self.recipients


def parse_content(raw: bytes) -> EmailMessage:
    """``raw`` parsed with :data:`email.policy.default` (never raises on bad input)."""
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default's factory
    return parsed


class Records:
    """What one test server saw, kept under one lock for every connection and thread.

    Args:
        queue_prefix: the start of the queue ids of accepted messages (``"FAKE"``).
    """

    def __init__(self, *, queue_prefix: str) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.messages: list[ReceivedMessage] = []
        self.dropped: list[ReceivedMessage] = []
        self.attempts: list[AuthAttempt] = []
        self.protocol_errors: list[str] = []
        self.server_errors: list[BaseException] = []
        self.events: deque[str] = deque(maxlen=EVENT_HISTORY)
        self.connections = 0
        self._queue_prefix = queue_prefix
        self._accepted = 0

    def add_message(self, received: ReceivedMessage, *, accepted: bool) -> ReceivedMessage:
        """Keep ``received``: accepted (given a queue id) or dropped; return what was kept."""
        with self.changed:
            if accepted:
                self._accepted += 1
                queue_id = f"{self._queue_prefix}{self._accepted:04d}"
                received = dataclasses.replace(received, queue_id=queue_id)
                self.messages.append(received)
            else:
                received = dataclasses.replace(received, queue_id=None)
                self.dropped.append(received)
                self.events.append(
                    f"content from <{received.sender}> received without a final reply "
                    "(scripted disconnect or timeout): kept in dropped"
                )
            self.changed.notify_all()
        return received

    def auth_attempt(self, attempt: AuthAttempt) -> None:
        """Keep one completed AUTH exchange."""
        with self.changed:
            self.attempts.append(attempt)
            if not attempt.success:
                self.events.append(
                    f"AUTH {attempt.mechanism} as {attempt.username!r}: credentials rejected"
                )
            self.changed.notify_all()

    def protocol_error(self, text: str) -> None:
        """Keep a client mistake the server noticed."""
        with self.lock:
            self.protocol_errors.append(text)
            self.events.append(f"client mistake: {text}")

    def server_error(self, error: BaseException, context: str) -> None:
        """Keep an exception raised inside the server (a bug or a failing callback)."""
        with self.lock:
            self.server_errors.append(error)
            self.events.append(f"error {context}: {type(error).__name__}: {error}")

    def note(self, event: str) -> None:
        """Remember a notable event for ``wait_for`` errors."""
        with self.lock:
            self.events.append(event)

    def connection_opened(self) -> int:
        """Count a new connection; return its number (1 for the first)."""
        with self.lock:
            self.connections += 1
            return self.connections

    def clear(self) -> None:
        """Forget everything seen; connections count from 1 again (queue ids do not)."""
        with self.lock:
            self.connections = 0
            for kept in (
                self.messages,
                self.dropped,
                self.attempts,
                self.protocol_errors,
                self.server_errors,
                self.events,
            ):
                kept.clear()

    def wait_for(self, count: int, timeout: float, where: str) -> list[ReceivedMessage]:
        """Block until ``count`` messages were accepted or ``timeout`` seconds pass.

        Raises:
            TimeoutError: fewer than ``count`` messages arrived in time; the message quotes
                the most recent notable events (refusals, failed AUTH, drops, errors).
        """
        with self.changed:
            if self.changed.wait_for(lambda: len(self.messages) >= count, timeout):
                return list(self.messages)
            got = len(self.messages)
            events = list(self.events)
        detail = "; ".join(events) if events else "no refusals, AUTH failures or errors"
        raise TimeoutError(
            f"{where}: expected {count} message(s) within {timeout:g} s but received {got}. "
            f"Recent server events: {detail}"
        )

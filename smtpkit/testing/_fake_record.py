"""What the fake server recorded: received messages, AUTH attempts, transcript lines.

Job: :class:`Recorder` receives every session's reports (it implements
:class:`~smtpkit.testing._fake_wire.SessionEvents`) and keeps them under one lock, so
several connections, on several threads, can share one fake server.

Invariants:
    * Every list is appended to under ``Recorder.lock``; readers copy under the same lock.
    * Queue ids are unique per fake server and count accepted messages only.
    * Nothing recorded holds a password or token: AUTH attempts keep the user name only.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage

from smtpkit.replies import Phase
from smtpkit.testing._fake_script import Script, Scripted
from smtpkit.testing._fake_wire import ReceivedContent
from smtpkit.testing._server_state import AuthAttempt

__all__ = ["Recorder", "SentMessage"]


@dataclass(frozen=True)
class SentMessage:
    """A message the fake server received.

    Attributes:
        sender: the reverse-path of ``MAIL FROM`` (``""`` for the null sender).
        recipients: the recipients the server accepted, in order.
        raw: the content as received, dot-stuffing removed (RFC 5321 §4.5.2); CRLF endings.
        message: ``raw`` parsed with :data:`email.policy.default`.
        auth_user: the user the session authenticated as, or ``None``.
        auth_mechanism: the SASL mechanism used, or ``None``.
        tls: whether the content arrived over an encrypted link.
        mail_options: the ``MAIL FROM`` parameters, keywords upper-cased (``"SIZE=1234"``).
        chunked: sent with ``BDAT`` (RFC 3030) rather than ``DATA``.
        connection: the number of the connection it came on (1 for the first).
        queue_id: the id in the server's ``250`` reply; ``None`` for dropped messages.
    """

    sender: str
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
    message: EmailMessage = field(repr=False, compare=False)
    auth_user: str | None = None
    auth_mechanism: str | None = None
    tls: bool = False
    mail_options: tuple[str, ...] = ()
    chunked: bool = False
    connection: int = 0
    queue_id: str | None = None

    @property
    def subject(self) -> str | None:
        """The decoded ``Subject`` header, or ``None``."""
        value = self.message["Subject"]
        return None if value is None else str(value)


class Recorder:
    """What every session reports, kept under one lock (implements ``SessionEvents``)."""

    def __init__(self, script: Script) -> None:
        self.lock = threading.Lock()
        self.script = script
        self.outbox: list[SentMessage] = []
        self.dropped: list[SentMessage] = []
        self.attempts: list[AuthAttempt] = []
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.accepted = 0
        self.waited = 0.0  # simulated seconds clients spent waiting for delayed replies

    def take_script(self, phase: Phase, recipient: str | None) -> Scripted | None:
        return self.script.take(phase, recipient)

    def take_delay(self, phase: Phase, recipient: str | None) -> Scripted | None:
        return self.script.take(phase, recipient, delay=True)

    def wait(self, connection: int, seconds: float) -> None:
        with self.lock:
            self.waited += seconds

    def message(self, content: ReceivedContent, *, accepted: bool) -> str:
        parsed = email.message_from_bytes(content.raw, policy=email.policy.default)
        with self.lock:
            queue_id = f"FAKE{self.accepted + 1:04d}" if accepted else None
            sent = SentMessage(
                sender=content.sender,
                recipients=content.recipients,
                raw=content.raw,
                message=parsed,
                auth_user=content.auth_user,
                auth_mechanism=content.auth_mechanism,
                tls=content.tls,
                mail_options=content.mail_options,
                chunked=content.chunked,
                connection=content.connection,
                queue_id=queue_id,
            )
            if accepted:
                self.accepted += 1
                self.outbox.append(sent)
            else:
                self.dropped.append(sent)
        return queue_id or ""

    def auth_attempt(self, mechanism: str, username: str | None, success: bool) -> None:
        with self.lock:
            self.attempts.append(AuthAttempt(mechanism, username, success))

    def transcript(self, connection: int, line: str) -> None:
        with self.lock:
            self.lines.append(line)

    def protocol_error(self, connection: int, text: str) -> None:
        with self.lock:
            self.errors.append(f"connection {connection}: {text}")

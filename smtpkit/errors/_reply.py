"""Errors for failure replies: the server answered a command with "no".

:class:`ReplyError` carries the reply, the phase and command that drew it, the recipient
and the provider; its subclasses name what was refused (the session, STARTTLS, the sender,
recipients, the message, the rate). The login refusals are the same kind of error and live
in :mod:`smtpkit.errors._auth`; which class a reply gets is decided by the rule table in
:mod:`smtpkit.errors._table`, never here.

Invariants:
    * ``is_transient`` is true exactly for 4xx replies.
    * ``RecipientRejected.rejected`` always holds ``recipient`` when one is given.
    * ``from_server`` is False only for replies smtpkit made itself (the SIZE pre-check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict, Unpack

from smtpkit.errors._base import SMTPError
from smtpkit.errors._transport import TLSError
from smtpkit.replies import Phase, Reply

__all__ = [
    "CommandRejected",
    "ConnectionRejected",
    "MessageRejected",
    "MessageTooLarge",
    "RateLimited",
    "RecipientRejected",
    "ReplyError",
    "ReplyErrorOptions",
    "SenderRejected",
    "ServiceUnavailable",
    "TLSUnavailable",
]


class ReplyErrorOptions(TypedDict, total=False):
    """The keyword arguments every :class:`ReplyError` takes (see its attributes)."""

    command: str | None
    recipient: str | None
    provider: str | None
    hint: str | None
    transcript: Sequence[str]
    from_server: bool


class ReplyError(SMTPError):
    """The server answered a command with a failure reply.

    Attributes:
        reply: the server's reply (``.code``, ``.enhanced_code``, ``.lines``, ``.text``).
        phase: the client step that drew it (:class:`smtpkit.Phase`).
        command: the command that drew it, redacted (``"RCPT TO:<a@example.com>"``).
        recipient: the recipient concerned, for RCPT replies.
        provider: the provider recognised from the reply or configuration, if any.
        from_server: False when smtpkit produced the reply itself (e.g. the SIZE pre-check).
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        command: str | None = None,
        recipient: str | None = None,
        provider: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
        from_server: bool = True,
    ) -> None:
        where = f" to {command}" if command else f" during {phase.value.upper()}"
        message = f"{reply}{where}" if from_server else f"{reply} (checked locally)"
        super().__init__(message, hint=hint, transcript=transcript)
        self.reply = reply
        self.phase = phase
        self.command = command
        self.recipient = recipient
        self.provider = provider
        self.from_server = from_server

    @property
    def code(self) -> int:
        """The basic reply code, e.g. ``535``."""
        return self.reply.code

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 enhanced status code, e.g. ``"5.7.8"``, or ``None``."""
        return self.reply.enhanced_code

    @property
    def is_transient(self) -> bool:
        return self.reply.is_transient


class ServiceUnavailable(ReplyError):
    """The server is closing the channel or cannot serve now (421, 45x "try again later")."""


class ConnectionRejected(ReplyError):
    """The server refused the session at the greeting (often a blocklisted IP)."""


class TLSUnavailable(ReplyError, TLSError):
    """The server refused STARTTLS (454 TLS not available)."""


class SenderRejected(ReplyError):
    """The envelope sender (MAIL FROM) was refused."""


class RecipientRejected(ReplyError):
    """Recipients were refused.

    Raised when every recipient is refused (partial refusals are reported in
    :attr:`smtpkit.SendResult.rejected` instead).

    Attributes:
        recipient: the first refused recipient.
        rejected: every refused recipient mapped to the server's reply.
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        rejected: Mapping[str, Reply] | None = None,
        **options: Unpack[ReplyErrorOptions],
    ) -> None:
        super().__init__(reply, phase, **options)
        self.rejected: dict[str, Reply] = dict(rejected or {})
        if self.recipient is not None and self.recipient not in self.rejected:
            self.rejected[self.recipient] = reply


class MessageRejected(ReplyError):
    """The message content was refused after it was sent (or its DATA command was)."""


class MessageTooLarge(MessageRejected):
    """The message exceeds the server's size limit (checked before sending when advertised)."""


class RateLimited(ReplyError):
    """A sending quota or rate limit was hit; the hint says whether it clears soon."""


class CommandRejected(ReplyError):
    """A command was refused for syntax or sequence reasons (500-504)."""

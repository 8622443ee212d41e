"""The outcome of one accepted message, and of a batch that was cut short.

Invariants:
    * A :class:`SendResult` exists only when the server accepted the message with a 2xx
      final reply; every address is either in ``accepted`` or in ``rejected``.
    * Both pickle (so they cross process boundaries, e.g. to a task queue's result store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.errors import SMTPError
from smtpkit.replies import Reply

__all__ = ["BatchInterrupted", "SendResult"]


@dataclass(frozen=True)
class SendResult:
    """What the server said about a message it accepted.

    Attributes:
        message_id: the ``Message-ID`` header of the message sent (added when missing).
        sender: the envelope sender (``MAIL FROM``).
        accepted: recipients the server accepted, in envelope order.
        rejected: recipients the server refused, each mapped to its reply; these will not
            receive the message.
        reply: the server's final reply, e.g. ``250 2.0.0 OK 1700000000 abc123 - gsmtp``
            (its text usually carries the server's queue id).
    """

    message_id: str | None
    sender: str
    accepted: tuple[str, ...]
    rejected: Mapping[str, Reply] = field(default_factory=lambda: MappingProxyType({}))
    reply: Reply = field(default_factory=lambda: Reply(250, ("OK",)))

    def __reduce__(self) -> tuple[type[SendResult], tuple[object, ...]]:
        # A mappingproxy does not pickle: rebuilt from a plain dict (re-wrapped on load).
        rejected = dict(self.rejected)
        return (SendResult, (self.message_id, self.sender, self.accepted, rejected, self.reply))

    def __post_init__(self) -> None:
        if not isinstance(self.rejected, MappingProxyType):
            object.__setattr__(self, "rejected", MappingProxyType(dict(self.rejected)))

    @property
    def partially_rejected(self) -> bool:
        """True when some (not all) recipients were refused."""
        return bool(self.rejected)

    @property
    def queue_id_text(self) -> str:
        """The final reply's text, where servers put their queue id."""
        return self.reply.text


class BatchInterrupted(Exception):
    """``send_many`` stopped early because its ``on_result`` callback raised.

    Once ``on_result`` raises, no further message is started; the messages already on
    their way finish, then this is raised ``from`` the callback's exception (its
    ``__cause__``). It carries every outcome, so that a retry sends only what was not
    sent (a naive retry of the whole batch would deliver the sent ones twice)::

        try:
            outcomes = submitter.send_many(messages, on_result=record)
        except smtpkit.BatchInterrupted as error:
            again = [messages[i] for i in error.not_sent]

    Attributes:
        outcomes: one entry per message, in input order: a ``SendResult`` (accepted: do
            not send it again), the ``SMTPError`` it ended with, or ``None`` when it was
            not sent and may be sent again (never started, or only tried and refused with
            a retryable error before the batch stopped).
    """

    def __init__(self, message: str, outcomes: Sequence[SendResult | SMTPError | None]) -> None:
        super().__init__(message, tuple(outcomes))
        self.message = message
        self.outcomes: tuple[SendResult | SMTPError | None, ...] = tuple(outcomes)

    @property
    def not_sent(self) -> tuple[int, ...]:
        """The indices of the messages that were not sent (outcome ``None``)."""
        return tuple(index for index, outcome in enumerate(self.outcomes) if outcome is None)

    def __str__(self) -> str:
        return self.message


# Pickles (a task queue's result store) name the public path, ``smtpkit.SendResult``: the
# private module may move again, the public name stays.
SendResult.__module__ = BatchInterrupted.__module__ = "smtpkit"

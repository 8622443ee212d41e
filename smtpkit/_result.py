"""The outcome of one accepted message.

Invariants:
    * A :class:`SendResult` exists only when the server accepted the message with a 2xx
      final reply; every address is either in ``accepted`` or in ``rejected``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.replies import Reply

__all__ = ["SendResult"]


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

    @property
    def partially_rejected(self) -> bool:
        """True when some (not all) recipients were refused."""
        return bool(self.rejected)

    @property
    def queue_id_text(self) -> str:
        """The final reply's text, where servers put their queue id."""
        return self.reply.text

"""Matching and describing received messages for ``FakeTransport.assert_sent``.

Job: decide whether a :class:`~smtpkit.testing.SentMessage` matches the criteria a test
gave, and describe the outbox readably when nothing does, so a failing assertion shows
what WAS sent instead of only what was not.

Invariants:
    * Addresses compare case-insensitively; subjects compare exactly after decoding.
    * Descriptions show envelope, subject and size, never the content itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtpkit.testing._fake_record import SentMessage

__all__ = ["describe_outbox", "matches"]


def _texts(message: EmailMessage) -> list[str]:
    """Decoded text of every text/* part, plus every header value."""
    out = [str(value) for value in message.values()]
    for part in message.walk():
        if part.get_content_maintype() != "text" or part.is_multipart():
            continue
        try:
            content = part.get_content() if isinstance(part, EmailMessage) else None
        except (LookupError, ValueError):
            content = None
        if isinstance(content, str):
            out.append(content)
    return out


def matches(
    sent: SentMessage,
    to: str | None,
    subject: str | None,
    sender: str | None,
    contains: str | None,
) -> bool:
    """Whether ``sent`` meets every criterion that is not ``None``."""
    if to is not None and to.casefold() not in {r.casefold() for r in sent.recipients}:
        return False
    if subject is not None and sent.subject != subject:
        return False
    if sender is not None and sent.sender.casefold() != sender.casefold():
        return False
    if contains is not None:
        raw = sent.raw.decode("utf-8", "replace")
        return contains in raw or any(contains in text for text in _texts(sent.message))
    return True


def _line(index: int, sent: SentMessage) -> str:
    to = ", ".join(sent.recipients) or "nobody"
    return (
        f"  {index}. from <{sent.sender}> to [{to}] subject {sent.subject!r} "
        f"({len(sent.raw)} octets, connection {sent.connection})"
    )


def describe_outbox(sent: Sequence[SentMessage], dropped: Sequence[SentMessage]) -> str:
    """A readable list of accepted (and dropped) messages for an assertion message."""
    if not sent:
        lines = ["No message was accepted (fake.outbox is empty)."]
    else:
        lines = [f"{len(sent)} message(s) accepted (fake.outbox):"]
        lines += [_line(i, m) for i, m in enumerate(sent, 1)]
    if dropped:
        lines.append(
            f"{len(dropped)} more received without a final reply (fake.dropped), not counted:"
        )
        lines += [_line(i, m) for i, m in enumerate(dropped, 1)]
    return "\n".join(lines)

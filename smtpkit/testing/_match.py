"""Matching and describing received messages for ``assert_sent`` (both test servers).

Job: decide whether a :class:`~smtpkit.testing.ReceivedMessage` matches the criteria a test
gave, and describe what arrived readably when nothing does, so a failing assertion shows
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
    from smtpkit.testing._record import ReceivedMessage

__all__ = ["describe", "matches"]


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
    sent: ReceivedMessage,
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


def _line(index: int, sent: ReceivedMessage) -> str:
    to = ", ".join(sent.recipients) or "nobody"
    return (
        f"  {index}. from <{sent.sender}> to [{to}] subject {sent.subject!r} "
        f"({len(sent.raw)} octets, connection {sent.connection})"
    )


def describe(
    sent: Sequence[ReceivedMessage], dropped: Sequence[ReceivedMessage], *, name: str
) -> str:
    """A readable list of accepted (and dropped) messages for an assertion message.

    ``name`` is what tests usually call the server (``"fake"``, ``"server"``).
    """
    if not sent:
        lines = [f"No message was accepted ({name}.messages is empty)."]
    else:
        lines = [f"{len(sent)} message(s) accepted ({name}.messages):"]
        lines += [_line(i, m) for i, m in enumerate(sent, 1)]
    if dropped:
        lines.append(
            f"{len(dropped)} more received without a final reply ({name}.dropped), not counted:"
        )
        lines += [_line(i, m) for i, m in enumerate(dropped, 1)]
    return "\n".join(lines)

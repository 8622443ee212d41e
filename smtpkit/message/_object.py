"""The outgoing form of a message object, made without copying the message.

What goes on the wire differs from the caller's message in a few top-level headers only:
``Bcc`` and ``Resent-Bcc`` are removed (RFC 5322 §3.6.3), ``Message-ID`` and ``Date`` are
added when missing (§3.6.4, §3.6.1), and without SMTPUTF8 the address headers are
rewritten to IDNA. :func:`outgoing_copy` makes a shallow copy of the top-level message
whose header list is its own and holds those changes; parts, payloads and header values
are shared and never modified (the generator writes each multipart part from a copy as
well). A ``copy.deepcopy`` of every message cost more than the rest of the send path
together.

Invariants:
    * The caller's message, its parts and its header list are never modified.
    * The copy's headers fold to the same octets as the headers ``message[name] = value``
      would have stored: a value is kept as text instead of a parsed header object only
      when the stock folder writes both the same way (checked by
      ``tests/test_message_fold.py``).
"""

from __future__ import annotations

import copy
import functools
import re
import sys
import time
from datetime import UTC, datetime
from email import headerregistry
from email.message import EmailMessage, Message, MIMEPart
from email.policy import EmailPolicy
from email.utils import format_datetime
from typing import Any

from smtpkit.message._headers import extract_addresses
from smtpkit.message._scan import HeaderScan

__all__ = [
    "current_date",
    "format_date",
    "non_ascii_address_headers",
    "outgoing_copy",
    "outgoing_headers",
    "with_headers",
]

_PLAIN_CLASSES = frozenset({Message, EmailMessage, MIMEPart})
# The values prepare_message generates: make_msgid()'s ids with an IDNA domain, and
# format_datetime()'s dates. Parsing either as a header object and folding it gives back
# the same text, so such a value can be stored as text, unparsed.
_PLAIN_VALUES = {
    "message-id": re.compile(r"<[0-9A-Za-z.!#$%&'*+/=?^_`{|}~-]+@[0-9A-Za-z.-]+>"),
    "date": re.compile(
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
        r"[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}"
    ),
}
_REGISTERED = {
    "message-id": headerregistry.MessageIDHeader,
    "date": headerregistry.UniqueDateHeader,
}


def outgoing_copy(
    message: Message,
    sent: list[tuple[str, Any]],
    *,
    message_id: str | None,
    date: str | None,
) -> Message:
    """The top-level message as it goes out, sharing everything but its header list.

    Args:
        message: the caller's message (not modified).
        sent: its fields without Bcc and Resent-Bcc (:attr:`HeaderScan.sent`); this list
            becomes the copy's.
        message_id: a new Message-ID: every existing (empty) one is dropped and this is
            added after the other headers; ``None`` keeps the headers as they are.
        date: a Date value to add after that, or ``None``.
    """
    return with_headers(message, outgoing_headers(message, sent, message_id=message_id, date=date))


def with_headers(message: Message, headers: list[tuple[str, Any]]) -> Message:
    """A shallow copy of ``message`` whose header list is ``headers`` (see
    :func:`outgoing_copy`); payload, parts and header values are shared."""
    top = _shallow_copy(message)
    top._headers = headers  # type: ignore[attr-defined]
    return top


def outgoing_headers(
    message: Message,
    sent: list[tuple[str, Any]],
    *,
    message_id: str | None,
    date: str | None,
    id_present: bool = True,
) -> list[tuple[str, Any]]:
    """The header list :func:`outgoing_copy` gives its copy (same arguments): ``sent``,
    without any Message-ID when a new one is given, then the new Message-ID and Date.

    ``id_present=False`` says ``sent`` has no Message-ID field (the scan found none), so
    there is none to drop.

    A subclass of ``Message`` with its own ``__setitem__`` (e.g. Django's) needs a message
    to apply its rules: it gets a copy here, which is dropped.
    """
    if message_id is not None and id_present:
        sent = [field for field in sent if field[0].lower() != "message-id"]
    if message_id is None and date is None:
        return sent
    if type(message).__setitem__ is not Message.__setitem__:
        top = _shallow_copy(message)
        top._headers = sent  # type: ignore[attr-defined]
        if message_id is not None:
            top["Message-ID"] = message_id
        if date is not None:
            top["Date"] = date
        return top._headers  # type: ignore[attr-defined, no-any-return]
    policy = message.policy
    if message_id is not None:
        sent.append(_stored(policy, "Message-ID", message_id))
    if date is not None:
        sent.append(_stored(policy, "Date", date))
    return sent


def _shallow_copy(message: Message) -> Message:
    """The same class and attributes; payload, parts and header values are shared."""
    cls = type(message)
    if cls in _PLAIN_CLASSES:  # no __copy__ or __reduce__ of their own: copy the fields
        top = cls.__new__(cls)
        top.__dict__.update(message.__dict__)
        return top
    return copy.copy(message)


def _stored(policy: Any, name: str, value: str) -> tuple[str, Any]:
    """What ``message[name] = value`` stores, as plain text where that folds the same way.

    The header is absent (dropped, or not there), so ``__setitem__``'s count check cannot
    fail; what it stores is ``header_store_parse``'s result.
    """
    if isinstance(policy, EmailPolicy) and _plain(policy, name, value):
        return (name, value)
    stored: tuple[str, Any] = policy.header_store_parse(name, value)
    return stored


def _plain(policy: EmailPolicy, name: str, value: str) -> bool:
    """Whether ``value`` as text folds like the header object EmailPolicy would make."""
    lower = name.lower()
    return (
        _stock_factory(policy, lower)
        and _PLAIN_VALUES[lower].fullmatch(value) is not None
        and len(name) + 2 + len(value) <= (policy.max_line_length or sys.maxsize)
    )


@functools.lru_cache(maxsize=64)
def _stock_factory(policy: EmailPolicy, lower: str) -> bool:
    """The policy makes the standard header class for ``lower`` (policies are immutable)."""
    factory = policy.header_factory
    return (
        isinstance(factory, headerregistry.HeaderRegistry)
        and factory.registry.get(lower) is _REGISTERED[lower]
        and factory.base_class is headerregistry.BaseHeader
    )


# The Date of the current second, as (second, text): a batch formats it once a second, not
# once a message. One tuple, replaced whole, so threads read a consistent pair.
_CURRENT: list[tuple[int, str]] = [(-1, "")]


def current_date() -> str:
    """``format_date(datetime.now(UTC))``: the current time for a Date field (RFC 5322
    §3.3), formatted once per second (the field has no finer resolution)."""
    second = int(time.time())
    current = _CURRENT[0]
    if current[0] == second:
        return current[1]
    text = format_date(datetime.fromtimestamp(second, UTC))
    _CURRENT[0] = (second, text)
    return text


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_date(moment: datetime) -> str:
    """``email.utils.format_datetime(moment)`` (RFC 5322 §3.3) for an aware datetime, in a
    third of the time: one f-string instead of timetuple() and two strftime() calls."""
    offset = moment.utcoffset()
    if offset is None or offset.microseconds or offset.seconds % 60:
        return format_datetime(moment)  # %z would write seconds: the stock code decides
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return (
        f"{_DAYS[moment.weekday()]}, {moment.day:02d} {_MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} "
        f"{sign}{hours:02d}{minutes:02d}"
    )


def non_ascii_address_headers(scan: HeaderScan) -> list[str]:
    """Lower-case names of the sent address headers that name a non-ASCII address."""
    return sorted(
        name
        for name in scan.maybe_non_ascii
        if any(not address.isascii() for address in extract_addresses(scan.values(name)))
    )

"""Line lengths for :mod:`smtpkit.message`: RFC 5322 §2.1.1's limit of 998 octets a line.

A line is what lies between two line breaks once line endings are CRLF: every CR and every
LF ends one, since a bare CR or LF becomes CRLF on the wire (RFC 5321 §2.3.8). The limit
excludes the CRLF itself. Servers may truncate, wrap or refuse longer lines (Exchange and
Postfix both rewrite them), which corrupts the message.

Invariants:
    * The scan holds at most one window of :data:`WINDOW` characters or octets at a time,
      so checking a 50 MB message copies none of it, and it runs at ``bytes.split`` speed
      (a regular expression is two orders of magnitude slower on long inputs).
    * Text (``str``) counts one character as one octet: it is used on payloads that are
      ASCII or surrogate-escaped octets, where that is exact.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["MAX_LINE_OCTETS", "WINDOW", "first_long_line", "line_number"]

#: RFC 5322 §2.1.1: each line MUST be no more than 998 characters, excluding the CRLF.
MAX_LINE_OCTETS = 998
#: Characters (or octets) examined at a time.
WINDOW = 1 << 20

_Text = TypeVar("_Text", str, bytes)


def first_long_line(data: str | bytes, limit: int = MAX_LINE_OCTETS) -> tuple[int, int] | None:
    """``(offset, length)`` of the first line longer than ``limit``, or ``None``.

    ``offset`` is where the line starts in ``data``.
    """
    if len(data) <= limit:
        return None
    if isinstance(data, str):
        return _first(data, "\r", "\n", limit)
    if len(data) <= WINDOW:
        # One window: bytes.splitlines() breaks at CR, LF and CRLF only (str's breaks at
        # more characters, so text takes _first), one pass and one list.
        if max(map(len, data.splitlines())) <= limit:
            return None
        return _locate(data, b"\r", b"\n", limit)
    return _first(data, b"\r", b"\n", limit)


def line_number(data: str | bytes, offset: int) -> int:
    """The 1-based number of the line starting at ``offset`` (CRLF, CR and LF each end one)."""
    if isinstance(data, str):
        return _number(data[:offset], "\r", "\n")
    return _number(data[:offset], b"\r", b"\n")


def _first(data: _Text, cr: _Text, lf: _Text, limit: int) -> tuple[int, int] | None:
    carry = 0  # length of the line that runs into the next window
    for start in range(0, len(data), WINDOW):
        pieces = data[start : start + WINDOW].replace(cr, lf).split(lf)
        if carry + len(pieces[0]) > limit or max(map(len, pieces)) > limit:
            return _locate(data, cr, lf, limit)
        carry = carry + len(pieces[0]) if len(pieces) == 1 else len(pieces[-1])
    return None


def _locate(data: _Text, cr: _Text, lf: _Text, limit: int) -> tuple[int, int]:
    """The slow, exact search behind :func:`first_long_line`, run only when one exists."""
    line_start, length = 0, 0
    for start in range(0, len(data), WINDOW):
        position = start
        for index, piece in enumerate(data[start : start + WINDOW].replace(cr, lf).split(lf)):
            if index:  # a break came before this piece: the line ends, a new one starts
                if length > limit:
                    return line_start, length
                line_start, length = position, 0
            length += len(piece)
            position += len(piece) + 1
    if length > limit:
        return line_start, length
    raise AssertionError("no long line")  # pragma: no cover - _first found one


def _number(head: _Text, cr: _Text, lf: _Text) -> int:
    # Each CRLF is one break; every other CR or LF is one too.
    return head.count(cr) + head.count(lf) - head.count(cr + lf) + 1

"""Envelope rules both test servers enforce: MAIL and RCPT arguments, parameters, content.

Job: decide, like a strict submission server, whether ``MAIL FROM``/``RCPT TO`` arguments
and their ESMTP parameters are acceptable given what the server offers, and whether
received content may be queued. Pure functions over text and bytes; the fake session and
LocalServer's protocol send the replies, so the two servers refuse the same things in the
same words.

Invariants:
    * A parameter is accepted only when the extension that defines it is offered
      (RFC 5321 §4.1.1.11: otherwise ``555``); no parameters at all after ``HELO``.
    * Recorded parameters keep their value as sent; only the keyword is upper-cased
      (RFC 5321 §2.4: keywords are case-insensitive, ``ENVID``/``ORCPT`` values are not).
    * A non-ASCII address needs ``SMTPUTF8`` on ``MAIL`` (RFC 6531 §3.4: otherwise ``553``).
    * A declared or actual size above the offered ``SIZE`` is refused with ``552 5.3.4``
      (RFC 1870 §6).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "TOO_BIG",
    "Offered",
    "Refused",
    "ReplySpec",
    "content_problem",
    "parse_bdat",
    "parse_mail",
    "parse_rcpt",
]

#: (code, enhanced code, text) of a reply the server composes.
ReplySpec = tuple[int, str, str]

#: RFC 3030 §2: ``BDAT`` SP chunk-size [SP end-marker]; chunk-size is 1*DIGIT (at most ten
#: here, so a size always fits what a test can send).
_BDAT_RE = re.compile(r"([0-9]{1,10})(?: +(LAST))?", re.IGNORECASE)


def parse_bdat(arg: str) -> tuple[int, bool] | None:
    """``BDAT`` arguments as ``(size, last)``, or ``None`` when malformed (``501``)."""
    match = _BDAT_RE.fullmatch(arg)  # fullmatch: "5\n" is not a size
    if match is None:
        return None
    return int(match.group(1)), match.group(2) is not None


TOO_BIG: ReplySpec = (552, "5.3.4", "Message size exceeds fixed maximum message size")

_MAIL_RE = re.compile(r"FROM:<([^<>]*)>((?: +\S+)*) *", re.IGNORECASE)
_RCPT_RE = re.compile(r"TO:<([^<>]+)>((?: +\S+)*) *", re.IGNORECASE)
_BARE_RE = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a MAIL or RCPT argument is refused: the reply, and the client's mistake if any."""

    code: int
    enhanced: str
    text: str
    mistake: str | None = None

    @property
    def spec(self) -> ReplySpec:
        """``(code, enhanced, text)``."""
        return (self.code, self.enhanced, self.text)


class Offered(Protocol):
    """The extensions a server offers, as far as envelope rules care."""

    @property
    def size(self) -> int | None:
        """The SIZE limit (``0``: advertised without a limit; ``None``: not offered)."""
        ...

    @property
    def eight_bit_mime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        ...

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        ...

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461)."""
        ...

    @property
    def auth(self) -> tuple[str, ...]:
        """The SASL mechanisms offered (empty: no AUTH)."""
        ...


def _normalise(param: str) -> str:
    """Upper-case a parameter's keyword (RFC 5321 §2.4), keeping its value as sent."""
    key, eq, value = param.partition("=")
    return f"{key.upper()}{eq}{value}"


def _unsupported(command: str, param: str) -> Refused:
    return Refused(
        555,
        "5.5.4",
        f"Unsupported option: {param}",
        mistake=f"{command} parameter {param[:40]!r} of an extension not offered "
        "(RFC 5321 §4.1.1.11)",
    )


def _mail_param(param: str, offered: Offered) -> Refused | None:
    key, eq, value = param.partition("=")
    key = key.upper()
    if key == "SIZE" and offered.size is not None:
        if not eq or not value.isdigit():
            return Refused(501, "5.5.4", "Bad SIZE parameter")
        if offered.size and int(value) > offered.size:
            return Refused(*TOO_BIG)
        return None
    if key == "BODY" and offered.eight_bit_mime and value.upper() in ("7BIT", "8BITMIME"):
        return None
    if key == "SMTPUTF8" and offered.smtputf8 and not eq:
        return None
    if key in ("RET", "ENVID") and offered.dsn and eq and value:
        if key == "RET" and value.upper() not in ("FULL", "HDRS"):
            return Refused(501, "5.5.4", "Bad RET parameter")
        return None
    if key == "AUTH" and offered.auth and eq and value:  # RFC 4954 §5
        return None
    return _unsupported("MAIL", param)


def _non_ascii(address: str, smtputf8: bool) -> Refused | None:
    if not smtputf8 and not address.isascii():
        return Refused(553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
    return None


def parse_mail(arg: str, *, esmtp: bool, offered: Offered) -> tuple[str, tuple[str, ...]] | Refused:
    """``MAIL`` arguments as ``(sender, parameters)``, or why they are refused.

    ``arg`` is everything after ``MAIL `` (``FROM:<a@example.com> SIZE=12``).
    """
    match = _MAIL_RE.fullmatch(arg)
    if match is None:
        return Refused(501, "5.5.4", "Syntax: MAIL FROM:<address>")
    params = match.group(2).split()
    if params and not esmtp:
        return Refused(
            555,
            "5.5.4",
            "Parameters not allowed after HELO",
            mistake="MAIL parameters after HELO (RFC 5321 §4.1.1.11)",
        )
    for param in params:
        error = _mail_param(param, offered)
        if error is not None:
            return error
    options = tuple(_normalise(param) for param in params)
    error = _non_ascii(match.group(1), "SMTPUTF8" in options)
    if error is not None:
        return error
    return match.group(1), options


def parse_rcpt(
    arg: str, *, esmtp: bool, offered: Offered, smtputf8: bool
) -> tuple[str, tuple[str, ...]] | Refused:
    """``RCPT`` arguments as ``(address, parameters)``, or why they are refused.

    ``smtputf8`` says whether the transaction's MAIL carried ``SMTPUTF8``.
    """
    match = _RCPT_RE.fullmatch(arg)
    if match is None:
        return Refused(501, "5.5.4", "Syntax: RCPT TO:<address>")
    address = match.group(1)
    params = match.group(2).split()
    for param in params:
        key, eq, value = param.partition("=")
        if not esmtp or not offered.dsn or key.upper() not in ("NOTIFY", "ORCPT"):
            return _unsupported("RCPT", param)
        if not eq or not value:
            return Refused(501, "5.5.4", f"Bad {key.upper()} parameter")
    error = _non_ascii(address, smtputf8)
    if error is not None:
        return error
    return address, tuple(_normalise(param) for param in params)


def content_problem(
    raw: bytes,
    *,
    offered: Offered,
    mail_options: Sequence[str],
    mistake: Callable[[str], None],
    refuse_bare: bool = True,
) -> ReplySpec | None:
    """The failure reply the content deserves, or ``None`` to queue it.

    Client mistakes found on the way are reported through ``mistake``; a bare CR or LF is
    refused only with ``refuse_bare``.
    """
    if offered.size and len(raw) > offered.size:
        return TOO_BIG
    if _BARE_RE.search(raw):
        mistake("message content holds a bare CR or LF (RFC 5321 §2.3.8)")
        if refuse_bare:
            return (550, "5.6.0", "Message contains bare <CR> or <LF> characters")
    eight_bit = "SMTPUTF8" in mail_options or "BODY=8BITMIME" in mail_options
    if not eight_bit and any(octet > 0x7F for octet in raw):
        # Real servers mostly accept this; it is still a client bug (RFC 6152 §3).
        mistake("8-bit content sent without BODY=8BITMIME or SMTPUTF8 on MAIL")
    return None

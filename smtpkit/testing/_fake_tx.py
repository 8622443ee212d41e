"""The fake server's mail transaction: MAIL and RCPT parsing, and checks on the content.

Job: decide, like a strict submission server, whether ``MAIL FROM``/``RCPT TO`` arguments
and their ESMTP parameters are acceptable, and whether received content may be queued.
Pure functions over text and bytes; :mod:`smtpkit.testing._fake_session` sends the replies.

Invariants:
    * A parameter is accepted only when the extension that defines it was advertised
      (RFC 5321 §4.1.1.11: otherwise ``555``); no parameters at all after ``HELO``.
    * A non-ASCII address needs ``SMTPUTF8`` on ``MAIL`` (RFC 6531 §3.4: otherwise ``553``).
    * A declared or actual size above the advertised ``SIZE`` is refused with ``552 5.3.4``
      (RFC 1870 §6).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smtpkit.testing._fake_wire import ServerConfig

__all__ = ["ReplySpec", "Transaction", "check_mail", "check_rcpt"]

#: (code, enhanced code, text) of a reply the server composes.
ReplySpec = tuple[int, str, str]

_MAIL_RE = re.compile(r"^FROM:<([^<>]*)>((?: +\S+)*) *$", re.IGNORECASE)
_RCPT_RE = re.compile(r"^TO:<([^<>]+)>((?: +\S+)*) *$", re.IGNORECASE)
_BARE_RE = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_TOO_BIG: ReplySpec = (552, "5.3.4", "Message size exceeds fixed maximum message size")


@dataclass
class Transaction:
    """The mail transaction in progress (RFC 5321 §3.3); a fresh one is inactive."""

    active: bool = False
    sender: str = ""
    options: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    content: bytearray = field(default_factory=bytearray)
    chunked: bool = False  # BDAT was used: DATA is no longer allowed (RFC 3030 §3)
    last_chunk: int = 0
    chunk_error: ReplySpec | None = None

    def begin(self, sender: str, options: list[str]) -> None:
        """Open the transaction after an accepted ``MAIL``."""
        self.active, self.sender, self.options = True, sender, options

    @property
    def smtputf8(self) -> bool:
        """Whether MAIL carried ``SMTPUTF8``."""
        return "SMTPUTF8" in self.options

    @property
    def eight_bit(self) -> bool:
        """Whether MAIL declared 8-bit content (``BODY=8BITMIME`` or ``SMTPUTF8``)."""
        return self.smtputf8 or "BODY=8BITMIME" in self.options

    def content_problem(
        self, raw: bytes, config: ServerConfig, mistake: Callable[[str], None]
    ) -> ReplySpec | None:
        """The failure reply the content deserves, or ``None`` to queue it."""
        size = config.capabilities.size
        if size and len(raw) > size:
            return _TOO_BIG
        if _BARE_RE.search(raw):
            mistake("message content holds a bare CR or LF (RFC 5321 §2.3.8)")
            return (550, "5.6.0", "Message contains bare <CR> or <LF> characters")
        if not self.eight_bit and any(octet > 0x7F for octet in raw):
            # Real servers mostly accept this; it is still a client bug (RFC 6152 §3).
            mistake("8-bit content sent without BODY=8BITMIME or SMTPUTF8 on MAIL")
        return None


def _normalise(param: str) -> str:
    """Upper-case a parameter's keyword (RFC 5321 §2.4), keeping its value as sent."""
    key, eq, value = param.partition("=")
    return f"{key.upper()}{eq}{value}"


def _non_ascii(address: str, tx_smtputf8: bool) -> ReplySpec | None:
    if not tx_smtputf8 and not address.isascii():
        return (553, "5.6.7", "Non-ASCII address requires SMTPUTF8")
    return None


def _mail_param(param: str, config: ServerConfig) -> ReplySpec | None:
    caps = config.capabilities
    key, eq, value = param.partition("=")
    key = key.upper()
    if key == "SIZE" and caps.size is not None:
        if not eq or not value.isdigit():
            return (501, "5.5.4", "Bad SIZE parameter")
        if caps.size and int(value) > caps.size:
            return _TOO_BIG
        return None
    if key == "BODY" and caps.eight_bit_mime and value.upper() in ("7BIT", "8BITMIME"):
        return None
    if key == "SMTPUTF8" and caps.smtputf8 and not eq:
        return None
    if key in ("RET", "ENVID") and caps.dsn and eq and value:
        if key == "RET" and value.upper() not in ("FULL", "HDRS"):
            return (501, "5.5.4", "Bad RET parameter")
        return None
    if key == "AUTH" and caps.auth and eq and value:  # RFC 4954 §5
        return None
    return (555, "5.5.4", f"Unsupported option: {param}")


def check_mail(
    arg: str, tx: Transaction, *, helo: str | None, esmtp: bool, config: ServerConfig
) -> tuple[tuple[str, list[str]] | None, ReplySpec | None]:
    """Parse ``MAIL`` arguments: ``((sender, options), None)`` or ``(None, failure)``."""
    if helo is None:
        return None, (503, "5.5.1", "Error: send HELO/EHLO first")
    if tx.active:
        return None, (503, "5.5.1", "Error: nested MAIL command")
    match = _MAIL_RE.match(arg)
    if match is None:
        return None, (501, "5.5.4", "Syntax: MAIL FROM:<address>")
    options = match.group(2).split()
    if options and not esmtp:
        return None, (555, "5.5.4", "Parameters not allowed after HELO")
    for param in options:
        error = _mail_param(param, config)
        if error is not None:
            return None, error
    options = [_normalise(param) for param in options]
    error = _non_ascii(match.group(1), "SMTPUTF8" in options)
    if error is not None:
        return None, error
    return (match.group(1), options), None


def check_rcpt(
    arg: str, tx: Transaction, *, esmtp: bool, config: ServerConfig
) -> tuple[str, ReplySpec | None]:
    """Parse ``RCPT`` arguments: ``(address, None)`` or ``(address or "", failure)``."""
    if not tx.active:
        return "", (503, "5.5.1", "Error: need MAIL command")
    match = _RCPT_RE.match(arg)
    if match is None:
        return "", (501, "5.5.4", "Syntax: RCPT TO:<address>")
    address = match.group(1)
    for param in match.group(2).split():
        key, eq, value = param.partition("=")
        if not esmtp or not config.capabilities.dsn or key.upper() not in ("NOTIFY", "ORCPT"):
            return address, (555, "5.5.4", f"Unsupported option: {param}")
        if not eq or not value:
            return address, (501, "5.5.4", f"Bad {key.upper()} parameter")
    return address, _non_ascii(address, tx.smtputf8)

"""Masking the secrets a client sent in AUTH wherever a server may echo them back.

Servers quote the client's line in errors (``500 5.5.2 Unrecognized command: AUTH PLAIN
<base64>``, ``535 5.7.8 rejected <base64>``). Whatever leaves a connection - an error's
``reply`` and message, its transcript, a DEBUG log line - goes through :class:`Redactor`
first, which masks every form of every secret this connection sent: the base64 payload as
it travelled, its decoded SASL form (``\\0user\\0password``, ``user=..\\x01auth=Bearer ..``),
and each secret field of that form on its own (the password, the token).

Invariants:
    * Only AUTH payloads are recorded (``Command.phase is Phase.AUTH``), never other lines.
    * The user name and the non-secret SASL fields (``user=``, ``a=``, ``host=``, ``port=``)
      are not masked: errors should still say who failed to log in.
    * Secrets shorter than :data:`MIN_SECRET` characters are not masked on their own (they
      would mask ordinary words); the payload that carries them always is.
    * No clock, no I/O; the recorded secrets live as long as the connection's state does.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from smtpkit.protocol import Command
from smtpkit.replies import Phase, Reply

__all__ = ["MASK", "MIN_SECRET", "Redactor"]

#: What a masked secret looks like, as in transcripts (``AUTH PLAIN ****``).
MASK = "****"
#: Shorter pieces are too likely to be ordinary words in a reply.
MIN_SECRET = 4

# SASL messages separate their fields with NUL (PLAIN, RFC 4616 §2), 0x01 (XOAUTH2,
# OAUTHBEARER RFC 7628 §3.1) or "," (the GS2 header of OAUTHBEARER, RFC 5801 §4).
_FIELD_SPLIT = re.compile(r"[\x00\x01,]")
# Fields that name, they do not prove: left readable.
_PUBLIC_KEYS = ("user=", "a=", "host=", "port=")
_BEARER = "auth=Bearer "


def _payload(command: Command) -> str:
    if command.verb == "AUTH":
        parts = command.line.split(" ", 2)
        return parts[2] if len(parts) == 3 else ""
    return command.line  # a continuation line is the payload itself


def _decoded(payload: str) -> str | None:
    try:
        return base64.b64decode(payload, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


class Redactor:
    """The secrets one connection sent in AUTH, and masking of text that may echo them."""

    __slots__ = ("_pattern", "_public", "_secrets")

    def __init__(self, public: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._public = frozenset(p for p in public if p)
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __repr__(self) -> str:
        return f"<Redactor {len(self._secrets)} secret(s)>"

    def record(self, command: Command) -> None:
        """Remember the secrets in ``command`` if it is an AUTH line with a payload."""
        if command.phase is not Phase.AUTH:
            return
        payload = _payload(command)
        if payload in ("", "=", "*"):
            return
        found = {payload}
        decoded = _decoded(payload)
        if decoded:
            found.add(decoded)
            for field in _FIELD_SPLIT.split(decoded):
                value = field
                if field.startswith(_BEARER):
                    found.add(field)
                    value = field[len(_BEARER) :]
                if value.startswith(_PUBLIC_KEYS) or value in self._public:
                    continue
                if len(value) >= MIN_SECRET:
                    found.add(value)
        found = {secret for secret in found if secret and secret not in self._public}
        if not found <= self._secrets:
            self._secrets |= found
            # Longest first, so a payload is masked whole before a field inside it.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def mask(self, text: str) -> str:
        """``text`` with every recorded secret replaced by :data:`MASK`."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def mask_reply(self, reply: Reply) -> Reply:
        """``reply`` with every recorded secret masked in its lines (the same object when
        nothing needed masking)."""
        if self._pattern is None:
            return reply
        lines = tuple(self.mask(line) for line in reply.lines)
        return reply if lines == reply.lines else Reply(reply.code, lines)

    def mask_lines(self, lines: Iterable[str]) -> tuple[str, ...]:
        """Each of ``lines`` masked (transcripts)."""
        if self._pattern is None:
            return tuple(lines)
        return tuple(self.mask(line) for line in lines)

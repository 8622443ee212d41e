"""Masking the client's AUTH secrets in what the server says back.

Servers echo the client's line (``500 5.5.2 Unrecognized command: AUTH PLAIN <base64>``,
``535 5.7.8 rejected <base64>``), some decode it first, some cut it short. A reply to AUTH is
kept in the transcript, logged, and carried by errors (``exc.reply``, ``exc.transcript``,
pickles), so it is masked before it leaves the protocol core. :class:`SecretMask` holds
every secret sent on one connection (the base64 payloads and the raw texts each AUTH
command declares in ``Command.secrets``) and masks:

* every occurrence of each of them, in every line (continuation lines included);
* any run of :data:`MIN_RUN` or more characters that is part of a payload or of a raw
  secret (an echo cut short still carries part of the credentials). SASL messages holding
  control characters (PLAIN's ``\0user\0password``, XOAUTH2's ``user=...\x01auth=...``)
  are masked whole only: their pieces include the user name, which is not a secret, and
  the secret inside them is declared on its own;
* a ``334`` challenge line whose base64 decodes to text holding a secret (a JSON "error
  challenge" quoting the token).

Invariants:
    * Masking changes reply text only, never the code, so the state machine and the
      reply table see the same reply class; the enhanced code stays readable unless a
      secret is written inside it.
    * A secret shorter than :data:`MIN_ANYWHERE` is masked only as a whole word, so a
      short password does not eat the words around it ("word" inside "Password").
    * Nothing here does I/O; it is part of the sans-IO core.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from smtpkit.replies import Reply

__all__ = ["MASK", "SecretMask"]

#: What replaces a secret.
MASK = "****"
#: Secrets shorter than this are not masked as raw text: they would match everywhere.
MIN_SECRET = 4
#: Secrets at least this long are masked wherever they occur; shorter ones as whole words.
MIN_ANYWHERE = 8
#: A run this long that is part of a payload or raw secret is masked (a truncated echo).
#: Long enough that a password made of words does not mask the same word in a reply.
MIN_RUN = 12

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SecretMask:
    """The AUTH secrets sent on one connection, and the masking of replies with them.

    >>> mask = SecretMask()
    >>> mask.add(["AGFsaWNlAHNlY3JldC1wdw==", "secret-pw"])
    >>> mask.text("535 5.7.8 rejected AGFsaWNlAHNlY3JldC1wdw== (secret-pw)")
    '535 5.7.8 rejected **** (****)'
    """

    __slots__ = ("_pattern", "_pieces", "_secrets")

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pieces: list[str] = []  # secrets whose runs are masked too (truncated echoes)
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Remember ``secrets`` (base64 payloads and raw texts) for every later reply."""
        for secret in secrets:
            if len(secret) < MIN_SECRET or secret in self._secrets:
                continue
            self._secrets.add(secret)
            if len(secret) >= MIN_RUN and not _CONTROL.search(secret):
                self._pieces.append(secret)
            self._pattern = None

    def _compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            # Longest first, so a payload is masked whole before a secret inside it.
            parts = []
            for secret in sorted(self._secrets, key=len, reverse=True):
                escaped = re.escape(secret)
                if len(secret) < MIN_ANYWHERE:
                    escaped = rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])"
                parts.append(escaped)
            self._pattern = re.compile("|".join(parts))
        return self._pattern

    def text(self, text: str) -> str:
        """``text`` with every secret, and every piece of a payload sent, masked."""
        if not self._secrets:
            return text
        return self._runs(self._compiled().sub(MASK, text))

    def _runs(self, text: str) -> str:
        """Mask every run of at least MIN_RUN characters that is part of a secret."""
        if not self._pieces or len(text) < MIN_RUN:
            return text
        out: list[str] = []
        done = start = 0
        while start <= len(text) - MIN_RUN:
            window = text[start : start + MIN_RUN]
            owner = next((piece for piece in self._pieces if window in piece), None)
            if owner is None:
                start += 1
                continue
            end = start + MIN_RUN
            while end < len(text) and text[start : end + 1] in owner:
                end += 1
            out += [text[done:start], MASK]
            done = start = end
        out.append(text[done:])
        return "".join(out)

    def _decodes_to_secret(self, line: str) -> bool:
        """Whether ``line`` is base64 of text holding a secret (a 334 challenge)."""
        try:
            decoded = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        text = decoded.decode("utf-8", "replace")
        return self._compiled().search(text) is not None or self.text(text) != text

    def reply(self, reply: Reply) -> Reply:
        """``reply`` with its text masked (the same object when nothing needed it)."""
        if not self._secrets:
            return reply
        lines = []
        for line in reply.lines:
            if reply.code == 334 and self._decodes_to_secret(line):
                lines.append(MASK)
            else:
                lines.append(self.text(line))
        masked = tuple(lines)
        return reply if masked == reply.lines else Reply(reply.code, masked)

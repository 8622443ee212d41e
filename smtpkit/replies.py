"""SMTP reply values: the basic code, the RFC 3463 enhanced status code, and the text.

This is layer 0: plain immutable values with no I/O, imported by everything else.

Invariants:
    * ``Reply.code`` is a three-digit basic code (RFC 5321 §4.2) between 200 and 599.
    * ``Reply.enhanced_code`` is the enhanced status code (RFC 3463 §2) that prefixes the
      reply text, or ``None`` when the server sent none or sent one that is not valid
      (``6.6.0`` has an invalid class and stays part of the text).
    * ``Reply.lines`` holds the text of each line after the code and separator, unchanged
      (enhanced code included), so ``Reply.to_bytes()`` rebuilds what was received.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

__all__ = ["EnhancedStatus", "Phase", "Reply"]

# RFC 3463 §2: class "." subject "." detail, with class in {2, 4, 5}, subject 1-3 digits,
# detail 1-3 digits (RFC 3463 allows 1-3 digits for each; Microsoft's 5.7.139 uses three).
# Some MTAs write the code with a leading "#" (``452 #4.5.3 Too many recipients``, an old
# qmail/sendmail habit); the "#" is accepted and dropped.
# [0-9], not \d: \d would also match non-ASCII digits (Arabic-Indic, Devanagari, ...).
_ENHANCED_RE = re.compile(r"^#?([245])\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|$)")


class Phase(enum.Enum):
    """The client step whose reply is being judged.

    The phase picks the exception class, not the code alone: 550 to RCPT is a refused
    recipient, 550 to MAIL a refused sender, 550 after the content a refused message.
    """

    GREETING = "greeting"
    EHLO = "ehlo"
    STARTTLS = "starttls"
    AUTH = "auth"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"  # the reply to the DATA command itself (354 expected)
    MESSAGE = "message"  # the reply after the content: final "." or BDAT LAST
    RSET = "rset"
    NOOP = "noop"
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code such as ``5.7.8`` or Microsoft's ``5.7.139``."""

    klass: int
    subject: int
    detail: int

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus | None:
        """Parse the enhanced code at the start of ``text``; ``None`` if there is none.

        >>> EnhancedStatus.parse("5.7.139 Authentication unsuccessful")
        EnhancedStatus(klass=5, subject=7, detail=139)
        >>> EnhancedStatus.parse("#4.5.3 Too many recipients")
        EnhancedStatus(klass=4, subject=5, detail=3)
        >>> EnhancedStatus.parse("6.6.0 not a valid class") is None
        True
        """
        match = _ENHANCED_RE.match(text)
        if match is None:
            return None
        return cls(int(match.group(1)), int(match.group(2)), int(match.group(3)))

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete (possibly multi-line) SMTP reply.

    Example::

        S: 250-smtp.example.com at your service
        S: 250-SIZE 35882577
        S: 250 SMTPUTF8

    is ``Reply(250, ("smtp.example.com at your service", "SIZE 35882577", "SMTPUTF8"))``.
    """

    code: int
    lines: tuple[str, ...] = ("",)

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"SMTP reply code must be 200-599, got {self.code}")
        if not self.lines:
            object.__setattr__(self, "lines", ("",))

    @property
    def status(self) -> EnhancedStatus | None:
        """The enhanced status code, when the first line carries a valid one.

        RFC 3463 §2 says the enhanced code's class must match the basic code's first digit;
        a mismatch means the text is not an enhanced code we can trust, so it is ignored.
        """
        status = EnhancedStatus.parse(self.lines[0])
        if status is None or status.klass != self.code // 100:
            return None
        return status

    @property
    def enhanced_code(self) -> str | None:
        """The enhanced status code as text (``"5.7.8"``), or ``None``."""
        status = self.status
        return None if status is None else str(status)

    @property
    def text(self) -> str:
        """The human text: all lines joined by newlines, enhanced-code prefixes removed."""
        status = self.status
        out = []
        for line in self.lines:
            # Match the code as a token: a textual prefix test would cut "5.7.1" out of
            # "5.7.14 ...", and would miss "5.7.01", which is the same code written longer.
            match = _ENHANCED_RE.match(line)
            if status is not None and match is not None and EnhancedStatus.parse(line) == status:
                out.append(line[match.end() :].strip())
            else:
                out.append(line.strip())
        return "\n".join(out)

    @property
    def is_positive(self) -> bool:
        """2xx (completion) and 3xx (intermediate, e.g. ``354`` or ``334``) replies."""
        return self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: the server says the same command may succeed later (RFC 5321 §4.2.1)."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: the server says the same command will fail again."""
        return self.code >= 500

    def to_bytes(self) -> bytes:
        """The reply as it travels, CRLF-terminated."""
        out = []
        last = len(self.lines) - 1
        for index, line in enumerate(self.lines):
            if index == last:
                # A bare "250" when there is no text; otherwise the text is kept as received
                # (trailing spaces included) so that parsing the bytes gives this reply back.
                out.append(f"{self.code} {line}\r\n" if line else f"{self.code}\r\n")
            else:
                out.append(f"{self.code}-{line}\r\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    def __str__(self) -> str:
        # One line for messages and logs: the enhanced code once, not on every line.
        flat = " ".join(part for part in self.text.split("\n") if part)
        enhanced = self.enhanced_code
        head = f"{self.code} {enhanced}" if enhanced else str(self.code)
        return f"{head} {flat}".rstrip()

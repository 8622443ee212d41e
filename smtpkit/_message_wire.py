"""Wire octets for :mod:`smtpkit.message`: the generator call and the header-block reader.

Invariant: :func:`serialise` output has CRLF line endings only (RFC 5321 §2.3.8), is not
dot-stuffed, and never ``>From``-mangled (that is an mbox convention, not SMTP's).
"""

from __future__ import annotations

import io
import re
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import EmailPolicy, Policy
from typing import Any

from smtpkit.errors import MessageError
from smtpkit.protocol import normalize_line_endings

__all__ = ["HEADER_END_RE", "header_block", "read_message_id", "serialise"]

# The end of the header block (RFC 5322 §2.1), once line endings are CRLF.
HEADER_END_RE = re.compile(rb"\r\n\r\n")


def header_block(content: bytes) -> bytes:
    """The header section of ``content`` including the blank line, or all of it."""
    match = HEADER_END_RE.search(content)
    return content if match is None else content[: match.end()]


def read_message_id(content: bytes) -> str | None:
    """Message-ID from the header block only: the body is never parsed."""
    parsed = BytesHeaderParser(policy=email_policy.default).parsebytes(header_block(content))
    value = parsed.get("Message-ID")
    return None if value is None else str(value).strip() or None


def serialise(work: Message, *, utf8: bool, seven_bit: bool) -> bytes:
    """Generate the octets with CRLF endings (RFC 5321 §2.3.8) and no ``>From`` mangling."""
    if isinstance(work.policy, EmailPolicy):
        base = email_policy.SMTPUTF8 if utf8 else email_policy.SMTP
        # Keep the caller's EmailPolicy choices (header_factory, max_line_length, ...).
        gen_policy: Policy[Any] = work.policy.clone(
            linesep=base.linesep, utf8=base.utf8, mangle_from_=False
        )
    else:
        gen_policy = work.policy.clone(linesep="\r\n", mangle_from_=False)
    if seven_bit:
        # RFC 6152 §3: without 8BITMIME, 8-bit parts must be converted to a 7-bit encoding.
        gen_policy = gen_policy.clone(cte_type="7bit")
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, policy=gen_policy).flatten(work, unixfrom=False)
    except (ValueError, TypeError, LookupError, UnicodeError) as exc:
        # HeaderParseError and HeaderWriteError are ValueErrors; a bad charset is LookupError.
        raise MessageError(
            f"cannot serialise the message: {exc}",
            hint="check header values and part charsets",
        ) from exc
    # The generator writes policy.linesep, but a body given with bare LF or CR keeps them.
    return normalize_line_endings(buffer.getvalue())

"""Wire octets for :mod:`smtpkit.message`: the generator call and the header-block reader.

Invariants:
    * :func:`serialise` output has CRLF line endings only (RFC 5321 §2.3.8), is not
      dot-stuffed, and never ``>From``-mangled (that is an mbox convention, not SMTP's).
    * It is a :class:`~smtpkit.message._stream.WireContent`: large payloads are not copied
      into it but produced slice by slice when the content is iterated, and every error is
      raised here, before anything is sent.
    * No line of it is longer than 998 octets (RFC 5322 §2.1.1).
"""

from __future__ import annotations

import functools
import re
from email import errors as email_errors
from email import policy as email_policy
from email.message import Message
from email.policy import EmailPolicy, Policy
from typing import Any

from smtpkit.errors import MessageError
from smtpkit.message._generate import flatten_streaming, simple_content
from smtpkit.message._lines import MAX_LINE_OCTETS, first_long_line
from smtpkit.message._stream import WireContent

__all__ = [
    "HEADER_END_RE",
    "generator_policy",
    "header_block",
    "read_message_id",
    "serialise",
    "serialise_simple",
]

# The end of the header block (RFC 5322 §2.1), once line endings are CRLF.
HEADER_END_RE = re.compile(rb"\r\n\r\n")


def header_block(content: bytes) -> bytes:
    """The header section of ``content`` including the blank line, or all of it."""
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[: end + 4]


# A Message-ID field at the start of a header line, with any folded continuation lines
# (RFC 5322 §2.2.3: folding is CRLF followed by white space). Names are case-insensitive.
_MESSAGE_ID_RE = re.compile(rb"^message-id[ \t]*:((?:[^\r\n]|\r\n[ \t])*)", re.I | re.M)
_FOLD_RE = re.compile(rb"\r\n[ \t]+")


def read_message_id(content: bytes) -> str | None:
    """Message-ID from the header block only: the body is never parsed.

    A regular expression rather than the ``email`` parser: this runs once per raw message
    sent, and parsing every header with ``policy.default`` cost more than the rest of the
    send path together.
    """
    match = _MESSAGE_ID_RE.search(header_block(content))
    if match is None:
        return None
    value = _FOLD_RE.sub(b" ", match.group(1)).strip()
    return value.decode("utf-8", "replace") or None


def generator_policy(work: Message, *, utf8: bool, seven_bit: bool) -> Policy[Any]:
    """The policy the message is generated with: CRLF, no ``>From``, SMTPUTF8 or not."""
    return _generator_policy(work.policy, utf8, seven_bit)


# Policies are immutable and few (policy.default, SMTP, compat32...), and clone() costs more
# than folding a small message's headers: each is derived once. The cache holds the
# policies it was given, so a program that makes a new policy per message keeps 32.
@functools.lru_cache(maxsize=32)
def _generator_policy(policy: Policy[Any], utf8: bool, seven_bit: bool) -> Policy[Any]:
    if isinstance(policy, EmailPolicy):
        base = email_policy.SMTPUTF8 if utf8 else email_policy.SMTP
        # Keep the caller's EmailPolicy choices (header_factory, max_line_length, ...).
        gen_policy: Policy[Any] = policy.clone(
            linesep=base.linesep, utf8=base.utf8, mangle_from_=False
        )
    else:
        gen_policy = policy.clone(linesep="\r\n", mangle_from_=False)
    if seven_bit:
        # RFC 6152 §3: without 8BITMIME, 8-bit parts must be converted to a 7-bit encoding.
        gen_policy = gen_policy.clone(cte_type="7bit")
    return gen_policy


def serialise(work: Message, *, utf8: bool, seven_bit: bool) -> WireContent:
    """Generate the octets with CRLF endings (RFC 5321 §2.3.8) and no ``>From`` mangling.

    The generator runs once, here, and stores nothing on ``work`` or its parts. Every line
    is at most 998 octets (RFC 5322 §2.1.1): a body line that would be longer is re-encoded,
    and anything else that is (a header that cannot be folded, a preamble) is refused.
    """
    gen_policy = _generator_policy(work.policy, utf8, seven_bit)
    try:
        simple = simple_content(work, gen_policy)
        if simple is not None:
            return WireContent([simple])  # its header and body lines are checked
        wire = flatten_streaming(work, gen_policy)
    except MessageError:
        raise
    except _EMAIL_ERRORS as exc:
        raise _cannot_serialise(exc) from exc
    _refuse_long_lines(wire)
    return wire


def serialise_simple(
    message: Message,
    headers: list[tuple[str, Any]],
    *,
    utf8: bool,
    seven_bit: bool,
    maintype: str,
) -> WireContent | None:
    """:func:`serialise` of ``message`` with ``headers`` as its header list, when the
    message is single-part with a small ASCII body (the common case); else ``None``.

    No copy of the message is made to hold the outgoing headers; the octets are those
    :func:`serialise` writes for such a copy.
    """
    gen_policy = _generator_policy(message.policy, utf8, seven_bit)
    try:
        simple = simple_content(message, gen_policy, headers=headers, maintype=maintype)
    except MessageError:
        raise
    except _EMAIL_ERRORS as exc:
        raise _cannot_serialise(exc) from exc
    return None if simple is None else WireContent([simple])


# HeaderParseError (raised by compat32's folder) is an email.errors.MessageError, not a
# ValueError; a bad charset is a LookupError.
_EMAIL_ERRORS = (
    ValueError,
    TypeError,
    LookupError,
    UnicodeError,
    IndexError,
    email_errors.MessageError,
)


def _cannot_serialise(exc: Exception) -> MessageError:
    return MessageError(
        f"cannot serialise the message: {exc}",
        hint="check header values and part charsets",
    )


def _refuse_long_lines(wire: WireContent) -> None:
    """Lines nothing shortened: a preamble or epilogue, a message/* or unparsed body.

    Headers and text bodies were checked (and re-encoded) by the generator, and segments
    are payloads it checked before deferring them.
    """
    for part in wire.parts:
        if isinstance(part, bytes) and (found := first_long_line(part)) is not None:
            offset, length = found
            line = part[offset : offset + 40].decode("ascii", "replace")
            raise MessageError(
                f"the message would have a line of {length} octets ({line!r}...); RFC 5322 "
                f"§2.1.1 allows at most {MAX_LINE_OCTETS}",
                hint="wrap the preamble, epilogue or attached message's long lines",
            )

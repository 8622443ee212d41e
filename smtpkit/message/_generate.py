"""The generator behind :mod:`smtpkit.message`: the stock octets, without touching the message.

:func:`flatten_streaming` runs ``email.generator.BytesGenerator`` once, through a subclass
that:

* writes a short placeholder token instead of a large payload and remembers the payload (a
  :class:`~smtpkit.message._stream.TextSegment`), so a 50 MB attachment is never copied;
* never stores anything on the message it writes. The stock ``flatten`` swaps
  ``msg.policy`` for the duration (visible to another thread preparing the same object), and
  ``_handle_multipart`` stores a generated boundary with ``set_boundary()``; here the policy
  is only the generator's, and a multipart part is written from a shallow copy whose header
  list is its own;
* folds headers with :func:`smtpkit.message._fold.fold_header` (the stock octets, fast) and
  checks each folded header for a line break that is not folding white space, on every
  Python, whatever the ``email`` package version checks itself;
* compiles nothing per message: the placeholder pattern is compiled once per process, and
  a generated boundary is checked against the text with ``bytes.find``;
* re-encodes a part whose body has a line over 998 octets (RFC 5322 §2.1.1) as
  quoted-printable (text) or base64 (anything else), on a copy of the part.

:func:`simple_content` writes a single-part message with a small ASCII body directly, as
the generator would (headers, blank line, body with CRLF line endings).

Invariants:
    * Apart from re-encoded long lines, the output is the stock ``BytesGenerator``'s,
      followed by CRLF normalisation (checked against pinned octets by
      ``tests/test_message_wire_identity.py``).
    * The message given, its parts and their header lists are never modified.
"""

from __future__ import annotations

import copy
import io
import random
import re
import secrets
import sys
from email import base64mime, quoprimime
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Policy
from typing import IO, TYPE_CHECKING, Any

from smtpkit.errors import MessageError
from smtpkit.message import _stream as stream
from smtpkit.message._fold import folder_for
from smtpkit.message._lines import MAX_LINE_OCTETS, first_long_line
from smtpkit.message._stream import Part, TextSegment, WireContent
from smtpkit.protocol import normalize_line_endings

__all__ = ["flatten_streaming", "simple_content"]

# A character that BytesGenerator cannot write: not ASCII and not a surrogate escape of an
# octet (U+DC80..U+DCFF is how the email package keeps undecodable 8-bit octets in a str).
_UNWRITABLE = re.compile("[^\x00-\x7f\udc80-\udcff]")
# Placeholder tokens: random per process and NUL-delimited, so message octets cannot
# imitate them; compiled once.
_TOKEN_PREFIX = b"\x00smtpkit-part-" + secrets.token_hex(8).encode("ascii") + b"-"
_TOKEN_RE = re.compile(re.escape(_TOKEN_PREFIX) + rb"(\d+)\x00")
# The stock boundary: 15 "=", a zero-padded random number, "==".
_BOUNDARY_FORMAT = "%0" + str(len(repr(sys.maxsize - 1))) + "d"

if TYPE_CHECKING:
    _BytesGenerator = BytesGenerator[Any]
else:  # generic only in the type stubs
    _BytesGenerator = BytesGenerator


def _own_copy(msg: Message) -> Message:
    """A shallow copy of ``msg`` with its own header list: changes to it stay on it."""
    clone = copy.copy(msg)
    clone._headers = list(msg._headers)  # type: ignore[attr-defined]
    return clone


class _Deferred:
    """What the generators of one flatten share: the payloads written as tokens."""

    def __init__(self) -> None:
        self.segments: list[TextSegment] = []

    def add(self, segment: TextSegment) -> bytes:
        self.segments.append(segment)
        return _TOKEN_PREFIX + str(len(self.segments) - 1).encode("ascii") + b"\x00"


class _Generator(_BytesGenerator):
    """``BytesGenerator`` that defers large payloads and leaves the message untouched."""

    def __init__(self, outfp: IO[bytes], *, policy: Policy[Any], deferred: _Deferred) -> None:
        super().__init__(outfp, False, None, policy=policy)
        self._deferred = deferred
        self._new_cte: str | None = None

    def flatten(self, msg: Message, unixfrom: bool = False, linesep: str | None = None) -> None:
        """The stock flatten without storing the policy on ``msg`` or cloning it per part."""
        policy = self.policy
        assert policy is not None
        if linesep is not None and linesep != policy.linesep:  # pragma: no cover - clones
            policy = self.policy = policy.clone(linesep=linesep)
        self._NL = policy.linesep
        self._encoded_NL = self._NL.encode("ascii")
        self._EMPTY = ""
        self._encoded_EMPTY = b""
        self._write(msg)

    def clone(self, fp: Any) -> _Generator:
        assert self.policy is not None
        return _Generator(fp, policy=self.policy, deferred=self._deferred)

    def _write(self, msg: Message) -> None:
        """The stock _write, on a copy of a part the handlers may change."""
        if isinstance(msg._payload, list):  # type: ignore[attr-defined]
            msg = _own_copy(msg)  # _handle_multipart may store a boundary
        oldfp = self._fp  # type: ignore[has-type]
        try:
            self._munge_cte = None
            self._new_cte = None
            self._fp = sfp = io.BytesIO()
            self._dispatch(msg)  # type: ignore[attr-defined]
        finally:
            self._fp = oldfp
            munge_cte = self._munge_cte
            new_cte = self._new_cte
            del self._munge_cte
        if munge_cte:
            # The stock path for 8-bit text re-encoded for a 7-bit policy.
            msg = copy.deepcopy(msg)
            if msg.get("content-transfer-encoding") is None:
                msg["Content-Transfer-Encoding"] = munge_cte[0]
            else:
                msg.replace_header("content-transfer-encoding", munge_cte[0])
            msg.replace_header("content-type", munge_cte[1])
        elif new_cte is not None:
            msg = _own_copy(msg)
            if msg.get("content-transfer-encoding") is None:
                msg["Content-Transfer-Encoding"] = new_cte
            else:
                msg.replace_header("content-transfer-encoding", new_cte)
        meth = getattr(msg, "_write_headers", None)
        if meth is None:
            self._write_headers(msg)
        else:  # pragma: no cover - a Message subclass that writes its own headers
            meth(self)
        self._fp.write(sfp.getvalue())

    def _write_headers(self, msg: Message) -> None:
        assert self.policy is not None
        self._fp.write(folder_for(self.policy).head(msg._headers))  # type: ignore[attr-defined]
        self.write(self._NL)

    def _handle_text(self, msg: Message) -> None:
        payload = msg._payload  # type: ignore[attr-defined]
        if isinstance(payload, str) and first_long_line(payload) is not None:
            self._reencode(msg)
            return
        segment = self._deferrable(msg)
        if segment is None:
            BytesGenerator._handle_text(self, msg)  # type: ignore[attr-defined]
        else:
            self._fp.write(self._deferred.add(segment))

    # Non-text leaf parts (application/*, image/*, ...) use the same handler.
    _writeBody = _handle_text

    def _reencode(self, msg: Message) -> None:
        """RFC 5322 §2.1.1: a body line over 998 octets goes out re-encoded, not broken.

        Text becomes quoted-printable (still readable, lines of at most 76), anything else
        base64; the decoded octets, the charset and the Content-Type are unchanged.
        """
        data = msg.get_payload(decode=True)
        if not isinstance(data, bytes):  # pragma: no cover - a str payload decodes to bytes
            raise MessageError("cannot re-encode a part with long lines")
        if msg.get_content_maintype() == "text":
            lines = data.splitlines()
            body = b"\n".join(lines) + (b"\n" if data.endswith((b"\n", b"\r")) else b"")
            encoded = quoprimime.body_encode(body.decode("latin-1"))
            self._new_cte = "quoted-printable"
        else:
            encoded = base64mime.body_encode(data)
            self._new_cte = "base64"
        self._write_lines(encoded)  # type: ignore[attr-defined]

    def _deferrable(self, msg: Message) -> TextSegment | None:
        """A segment when the payload is big and its octets are certain, else None.

        Reads ``msg._payload`` directly: ``get_payload()`` would test for surrogates by
        encoding the whole payload, a transient copy as big as the attachment.
        """
        payload = getattr(msg, "_payload", None)
        if not isinstance(payload, str) or len(payload) < stream.DEFER_MIN:
            return None
        if payload.isascii():  # O(1) for str
            return TextSegment(payload, eight_bit=False)
        assert self.policy is not None
        if self.policy.cte_type == "7bit" or _UNWRITABLE.search(payload) is not None:
            # 8-bit octets to re-encode, or a character the stock code refuses: let it.
            return None
        return TextSegment(payload, eight_bit=True)

    def _make_boundary(self, text: bytes | None = None) -> str:
        """The stock boundary choice without a regex per message; avoids deferred text."""
        while True:
            boundary = _stock_boundary(text)
            needle = "--" + boundary
            if not any(s.contains(needle) for s in self._deferred.segments):
                return boundary


def _stock_boundary(text: bytes | None) -> str:
    """``BytesGenerator._make_boundary``: one random draw, then ".0", ".1"... while the
    text has a line ``--boundary`` or ``--boundary--`` (its ``^...(--)?$`` multiline
    regex, which it compiles for every call)."""
    # The stock draw, from the same generator: a boundary needs to be unlikely, not secret,
    # and drawing as the stock code does keeps seeded runs (the tests) reproducible.
    token = random.randrange(sys.maxsize)  # noqa: S311
    boundary = ("=" * 15) + (_BOUNDARY_FORMAT % token) + "=="
    if text is None:
        return boundary
    candidate, counter = boundary, 0
    while _has_delimiter_line(text, ("--" + candidate).encode("ascii")):
        candidate = f"{boundary}.{counter}"
        counter += 1
    return candidate


def _has_delimiter_line(text: bytes, needle: bytes) -> bool:
    """Whether ``re.search(b"^" + needle + b"(--)?$", text, re.M)`` would match."""
    start = text.find(needle)
    while start >= 0:
        end = start + len(needle)
        if start == 0 or text[start - 1] == 0x0A:
            if end == len(text) or text[end] == 0x0A:
                return True
            if text.startswith(b"--", end) and (end + 2 == len(text) or text[end + 2] == 0x0A):
                return True
        start = text.find(needle, start + 1)
    return False


def flatten_streaming(message: Message, policy: Policy[Any]) -> WireContent:
    """Run the generator once and split its output into wire parts.

    Raises whatever the generator raises; no octets are produced later that could fail.
    """
    deferred = _Deferred()
    buffer = io.BytesIO()
    _Generator(buffer, policy=policy, deferred=deferred).flatten(message, unixfrom=False)
    skeleton = buffer.getvalue()
    del buffer
    if not deferred.segments:
        return WireContent([normalize_line_endings(skeleton)])
    pieces = _TOKEN_RE.split(skeleton)
    parts: list[Part] = []
    # re.split with one group: text, index, text, index, ..., text.
    for position, piece in enumerate(pieces):
        if position % 2:
            parts.append(deferred.segments[int(piece)])
        else:
            # A segment's octets start and end at a line-break boundary of their own (a
            # trailing CR is written as CRLF), so normalising the pieces one by one gives
            # the same octets as normalising the whole output.
            parts.append(normalize_line_endings(piece))
    return WireContent(parts)


def simple_content(
    message: Message,
    policy: Policy[Any],
    *,
    headers: list[tuple[str, Any]] | None = None,
    maintype: str | None = None,
) -> bytes | None:
    """The generator's octets for a single-part message with a small ASCII body, or None.

    For such a message the generator writes the folded headers, an empty line and the
    payload with CRLF line endings (its text handler changes nothing else in ASCII text),
    so that is written here without the generator's machinery.

    ``headers`` stands for the message's header list (the fields as they go out, without
    a copy of the message to hold them); ``maintype`` is its
    ``get_content_maintype()`` when the caller knows it already.
    """
    payload = message._payload  # type: ignore[attr-defined]
    if payload is None:
        body = b""
    elif isinstance(payload, str) and payload.isascii() and len(payload) < stream.DEFER_MIN:
        if len(payload) > MAX_LINE_OCTETS and first_long_line(payload) is not None:
            return None  # re-encoded by the generator
        body = normalize_line_endings(payload.encode("ascii"))
    else:
        return None
    if getattr(message, "_write_headers", None) is not None:  # pragma: no cover
        return None
    if maintype is None:
        maintype = message.get_content_maintype()
    if maintype in ("multipart", "message"):
        return None
    if headers is None:
        headers = message._headers  # type: ignore[attr-defined]
    head = folder_for(policy).head(headers)
    return b"".join((head, b"\r\n", body))

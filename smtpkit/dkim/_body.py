"""The DKIM body hash, computed over content that arrives in chunks (RFC 6376 §3.4, §3.7).

Job: :class:`ContentHasher` is fed the wire content of a prepared message chunk by chunk,
splits off the header block (kept: it is small, and dkimpy signs it), and hashes the body
in its canonical form without ever holding it whole: a 50 MB attachment costs one chunk
of memory, not a copy of the message. dkimpy's own ``sign`` needs the whole message in one
``bytes``, so this module is what lets :mod:`smtpkit.dkim` stream.

Canonicalization, line by line (content is CRLF-only, RFC 5321 §2.3.8):

* ``simple`` (§3.4.3): the body as is, except that empty lines at its end are dropped and
  an empty body is one CRLF;
* ``relaxed`` (§3.4.4): white space at the end of each line is removed, every other run of
  spaces and tabs becomes one space, empty lines at the end are dropped, and an empty body
  stays empty.

Invariants:
    * ``digest`` equals ``sha256(dkim.canonicalization.<Algorithm>.canonicalize_body(body))``
      for every CRLF-terminated body, however it is cut into chunks (checked against
      dkimpy by ``tests/test_dkim_body.py``).
    * Empty lines are held back as a count, never as data, so a body of a million empty
      lines costs no memory; a partial line is carried between chunks (at most one line:
      lines are at most 998 octets, RFC 5322 §2.1.1).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["ContentHasher"]

_HEADER_END = b"\r\n\r\n"
_CRLF = b"\r\n"
# Relaxed body (RFC 6376 §3.4.4): WSP before a line end goes, other WSP runs become " ".
_TRAILING_WSP = re.compile(rb"[ \t]+\r\n")
_WSP_RUN = re.compile(rb"[ \t]+")


class ContentHasher:
    """Split wire content into its header block and a running body hash.

    Usage::

        hasher = ContentHasher(relaxed=True)
        for chunk in prepared.iter_content():
            hasher.feed(chunk)
        head, body_hash = hasher.finish()   # head ends with the empty line

    ``finish`` hashes the body as if it ended with CRLF: smtpkit sends such a body with a
    CRLF added (:meth:`ends_with_crlf` says whether one is needed).
    """

    __slots__ = ("_blank", "_carry", "_emitted", "_hash", "_head", "_in_body", "_relaxed")

    def __init__(self, *, relaxed: bool) -> None:
        self._relaxed = relaxed
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._in_body = False
        self._carry = b""  # a partial line (or a CR whose LF is in the next chunk)
        self._blank = 0  # empty canonical lines held back: they count only if text follows
        self._emitted = False  # some line of the body went into the hash

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of content."""
        if not self._in_body:
            start = max(0, len(self._head) - 3)
            self._head += chunk
            if self._head.startswith(_CRLF):
                split = 0  # an empty line first: no header fields at all (RFC 5322 §2.1)
            else:
                found = self._head.find(_HEADER_END, start)
                if found < 0:
                    return
                split = found + len(_CRLF)  # the last field keeps its CRLF
            chunk = bytes(self._head[split + len(_CRLF) :])  # after the empty line
            del self._head[split:]
            self._in_body = True
        self._lines(chunk)

    def _lines(self, chunk: bytes) -> None:
        data = self._carry + chunk if self._carry else chunk
        end = data.rfind(_CRLF)
        if end < 0:
            self._carry = data
            return
        cut = end + len(_CRLF)
        self._carry = data[cut:]
        self._complete(data[:cut])

    def _complete(self, lines: bytes) -> None:
        """Hash whole lines (``lines`` ends with CRLF), holding back trailing empty ones."""
        # Base64 (most of a large body) has no white space: two finds beat two regex scans.
        if self._relaxed and (b" " in lines or b"\t" in lines):
            lines = _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(_CRLF, lines))
        update = self._hash.update
        if lines != _CRLF and not lines.endswith(b"\n\r\n"):  # the last line has text
            if self._blank:
                update(_CRLF * self._blank)
                self._blank = 0
            update(lines)
            self._emitted = True
            return
        text = lines.rstrip(_CRLF)  # canonical lines hold no bare CR or LF
        if not text:
            self._blank += len(lines) // 2
            return
        if self._blank:
            update(_CRLF * self._blank)
        update(text)
        update(_CRLF)
        self._blank = (len(lines) - len(text)) // 2 - 1
        self._emitted = True

    def ends_with_crlf(self) -> bool:
        """Whether the content fed so far ends with a line break."""
        if not self._in_body:
            return self._head.endswith(_CRLF)
        return not self._carry

    def finish(self) -> tuple[bytes, bytes]:
        """The header block (with the empty line after it) and the body hash (sha256)."""
        if not self._in_body:
            # No empty line: all of it is the header block (dkimpy reads it the same way),
            # and the body is empty.
            head = bytes(self._head)
            if head and not head.endswith(_CRLF):
                head += _CRLF  # sent with a CRLF added
            return head + _CRLF, self._empty_body()
        if self._carry:
            self._complete(self._carry + _CRLF)  # sent with a CRLF added
            self._carry = b""
        head = bytes(self._head) + _CRLF
        return head, self._hash.digest() if self._emitted else self._empty_body()

    def _empty_body(self) -> bytes:
        # RFC 6376 §3.4.3: an empty simple body is one CRLF; §3.4.4: a relaxed one is empty.
        return hashlib.sha256(b"" if self._relaxed else _CRLF).digest()

"""Streaming wire content for :mod:`smtpkit.message`: big bodies are never held twice.

:class:`WireContent` is the content of a prepared message as a sequence of *parts*: small
``bytes`` (headers, boundaries, small bodies, already in wire form) and lazy
*segments* that hold a reference to a large payload the caller's message already keeps
(a base64 ``str`` of an attachment, or the raw ``bytes`` given to ``prepare_message``) and
turn it into wire octets slice by slice when iterated. Sending a 50 MB attachment then costs
a few slices of memory, not several copies of the message.

:mod:`smtpkit.message._generate` runs the stock generator once and builds the parts (this
was chosen over running the push-based generator in a thread, a thread per send whose
errors surface late, or re-running it per chunk, which is slow): Message-ID, Date and
generated boundaries are fixed at prepare time, every error is raised by
``prepare_message``, and iteration is deterministic and repeatable.

Invariants:
    * ``b"".join(content.iter_chunks(n))`` is the same for every ``n`` and every call, and
      equals what ``BytesGenerator`` writes followed by line-ending normalisation: CRLF
      only (RFC 5321 §2.3.8), not dot-stuffed, no end-of-data terminator.
    * ``size`` and ``eight_bit`` are exact and known without producing the octets: they are
      computed from counts over the payloads, which allocates nothing large.
    * A segment is made only for a payload whose octets are certain: ASCII text, or
      surrogate-escaped 8-bit text when the policy keeps 8-bit (``cte_type="8bit"``).
    * A CR at the end of one slice and an LF at the start of the next make one line break.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from smtpkit.protocol import normalize_line_endings

__all__ = [
    "DEFER_MIN",
    "SLICE",
    "Part",
    "RawSegment",
    "TextSegment",
    "WireContent",
]

#: Payloads shorter than this are written inline by the generator (a small message stays
#: one ``bytes``, so ``content`` costs nothing); longer ones become lazy segments, which are
#: also faster to produce than the generator's line-by-line writing (no list of lines).
DEFER_MIN = 64 * 1024

#: Characters (or octets) of a payload turned into wire octets at a time while iterating.
SLICE = 256 * 1024

_HEADER_END = b"\r\n\r\n"


def _normalised_growth(count_cr: int, count_lf: int, count_crlf: int) -> int:
    """Octets that CRLF normalisation adds: one for each bare CR and each bare LF."""
    return (count_cr - count_crlf) + (count_lf - count_crlf)


@dataclass(frozen=True, eq=False)
class TextSegment:
    """A large payload ``str`` from the message, written out lazily.

    Each character is one octet (ASCII, or U+DC80..U+DCFF for octets 0x80..0xFF), so the
    size is the length plus one octet for every bare CR or LF that becomes CRLF.
    """

    text: str
    eight_bit: bool

    @property
    def size(self) -> int:
        text = self.text
        crlf = text.count("\r\n")
        return len(text) + _normalised_growth(text.count("\r"), text.count("\n"), crlf)

    def contains(self, needle: str) -> bool:
        return needle in self.text

    def iter_bytes(self, step: int | None = None) -> Iterator[bytes]:
        """Wire octets (CRLF line endings) in pieces of about ``step`` (:data:`SLICE`)."""
        step = step or SLICE
        text = self.text
        carry = ""
        for start in range(0, len(text), step):
            piece = carry + text[start : start + step]
            carry = ""
            if piece.endswith("\r"):
                # Maybe the first half of a CRLF that the next slice completes.
                piece, carry = piece[:-1], "\r"
            if piece:
                yield normalize_line_endings(piece.encode("ascii", "surrogateescape"))
        if carry:
            yield b"\r\n"


@dataclass(frozen=True, eq=False)
class RawSegment:
    """Raw message octets with bare CR or LF, normalised to CRLF slice by slice."""

    data: bytes

    @property
    def size(self) -> int:
        data = self.data
        crlf = data.count(b"\r\n")
        return len(data) + _normalised_growth(data.count(b"\r"), data.count(b"\n"), crlf)

    def iter_bytes(self, step: int | None = None) -> Iterator[bytes]:
        """Wire octets (CRLF line endings) in pieces of about ``step`` (:data:`SLICE`)."""
        step = step or SLICE
        view = memoryview(self.data)
        carry = b""
        for start in range(0, len(view), step):
            piece = carry + bytes(view[start : start + step])
            carry = b""
            if piece.endswith(b"\r"):
                piece, carry = piece[:-1], b"\r"
            if piece:
                yield normalize_line_endings(piece)
        if carry:
            yield b"\r\n"


Part = bytes | TextSegment | RawSegment


class WireContent:
    """Message content as wire-ready parts; see the module docstring.

    Immutable once built: ``parts``, ``size`` and ``eight_bit`` never change, and iterating
    never consumes anything, so a message can be sent again on a new connection.
    """

    __slots__ = ("_parts", "eight_bit", "size")

    def __init__(self, parts: Iterable[Part]) -> None:
        if type(parts) is list and len(parts) == 1 and type(parts[0]) is bytes:
            # One bytes part, the common small message: the loop below, written out.
            only: bytes = parts[0]
            self._parts: tuple[Part, ...] = (only,) if only else ()
            self.size: int = len(only)
            self.eight_bit: bool = not only.isascii()
            return
        self._parts = tuple(p for p in parts if not isinstance(p, bytes) or p)
        size = 0
        eight_bit = False
        for part in self._parts:
            if isinstance(part, bytes):
                size += len(part)
                eight_bit = eight_bit or not part.isascii()
            elif isinstance(part, TextSegment):
                size += part.size
                eight_bit = eight_bit or part.eight_bit
            else:
                size += part.size
                eight_bit = eight_bit or not part.data.isascii()
        #: Exact number of octets :meth:`iter_chunks` yields in total.
        self.size = size
        #: True when any octet is above 0x7F.
        self.eight_bit = eight_bit

    def __eq__(self, other: object) -> bool:
        """Equal when the octets are equal (compared chunk by chunk, not materialised)."""
        if not isinstance(other, WireContent):
            return NotImplemented
        if self is other:
            return True
        if self.size != other.size:
            return False
        step = 1 << 16
        return all(
            a == b for a, b in zip(self.iter_chunks(step), other.iter_chunks(step), strict=True)
        )

    def __hash__(self) -> int:
        return hash((self.size, next(self.iter_chunks(4096))))

    @classmethod
    def from_bytes(cls, data: bytes) -> WireContent:
        """Raw octets: kept as they are when already CRLF-only, else normalised lazily.

        No copy of ``data`` is made here; one that is already canonical (every CR is
        followed by LF and every LF preceded by CR) is even sent from the same buffer.
        """
        crlf = data.count(b"\r\n")
        if data.count(b"\r") == crlf and data.count(b"\n") == crlf:
            return cls([data])
        return cls([RawSegment(data)])

    @property
    def parts(self) -> tuple[Part, ...]:
        return self._parts

    @property
    def streamed(self) -> bool:
        """True when some part is produced lazily (the message was large)."""
        return any(not isinstance(p, bytes) for p in self._parts)

    def _pieces(self) -> Iterator[bytes]:
        for part in self._parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from part.iter_bytes()

    def iter_chunks(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The octets in chunks of exactly ``chunk_size`` (the last may be shorter).

        Yields at least one chunk: a single ``b""`` when the content is empty.

        Raises:
            ValueError: at once (not on the first ``next``) when ``chunk_size`` < 1.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, not {chunk_size}")
        if self.size == 0:
            return iter((b"",))
        first = self._parts[0] if len(self._parts) == 1 else None
        if isinstance(first, bytes) and len(first) <= chunk_size:
            return iter((first,))  # the common small message: no generator machinery
        return _rechunk(self._pieces(), chunk_size)

    def tobytes(self) -> bytes:
        """All the octets in one ``bytes``: a full copy for a streamed message."""
        if len(self._parts) == 1 and isinstance(self._parts[0], bytes):
            return self._parts[0]
        return b"".join(self._pieces())

    def head(self) -> bytes:
        """The header section including the blank line that ends it, or all the content.

        Reads only as far as the first CRLF CRLF, which for a message object is always in
        the first part (the top-level headers come before any body). Content that starts
        with an empty line has no header fields (RFC 5322 §2.1): its head is that CRLF.
        """
        first = self._parts[0] if self._parts else b""
        if isinstance(first, bytes):  # the top-level headers are always in the first part
            if first.startswith(b"\r\n"):
                return b"\r\n"
            end = first.find(_HEADER_END)
            if end >= 0:
                return first[: end + len(_HEADER_END)]
        buffer = bytearray()
        for piece in self._pieces():
            start = max(0, len(buffer) - 3)
            buffer += piece
            if buffer.startswith(b"\r\n"):
                return b"\r\n"
            end = buffer.find(_HEADER_END, start)
            if end >= 0:
                return bytes(buffer[: end + len(_HEADER_END)])
        return bytes(buffer)


def _rechunk(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Regroup ``pieces`` into chunks of exactly ``size`` octets, the last one shorter."""
    buffer = bytearray()
    for piece in pieces:
        if not buffer and len(piece) == size:
            yield piece
            continue
        view = memoryview(piece)
        if buffer:
            take = size - len(buffer)
            buffer += view[:take]
            view = view[take:]
            if len(buffer) < size:
                continue
            yield bytes(buffer)
            buffer.clear()
        while len(view) >= size:
            yield bytes(view[:size])
            view = view[size:]
        if view:
            buffer += view
    if buffer:
        yield bytes(buffer)

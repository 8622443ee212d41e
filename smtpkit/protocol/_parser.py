"""Incremental SMTP reply parser: bytes in, :class:`~smtpkit.replies.Reply` values out.

Invariants:
    * Memory is bounded: a line longer than :data:`MAX_REPLY_LINE` or a reply larger than
      :data:`MAX_REPLY_BYTES` raises :class:`~smtpkit.errors.RemoteProtocolError` at once,
      without waiting for more data.
    * Any malformed input raises ``RemoteProtocolError`` and nothing else.
    * The parser never blocks: with an incomplete reply it returns ``None`` and waits for
      more bytes from its driver.
    * A one-line reply whose octets repeat one already parsed on this parser (``250 2.1.0
      Ok`` to every MAIL and RCPT, ``354`` to every DATA) is the same immutable ``Reply``
      object: a small per-connection cache, bounded, so a server cannot grow it.
"""

from __future__ import annotations

from smtpkit.errors import RemoteProtocolError
from smtpkit.replies import Reply

__all__ = ["MAX_REPLY_BYTES", "MAX_REPLY_LINE", "ReplyParser"]

#: RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets, but real servers exceed it (long
#: EHLO AUTH lists, URLs in error text). We accept 8x that and no more.
MAX_REPLY_LINE = 4096
#: A whole multi-line reply (RFC 5321 §4.2.1): generous for EHLO lists and verbose errors,
#: small enough that a hostile server cannot make the client buffer without bound.
MAX_REPLY_BYTES = 65536
#: One-line replies remembered per parser. A steady stream of messages draws the same few
#: replies over and over; past this many distinct ones (queue ids in every final reply)
#: the cache is emptied and starts again, so its memory stays bounded.
_REPEATS_KEPT = 32


class ReplyParser:
    """Split a byte stream into replies (RFC 5321 §4.2).

    Example::

        >>> parser = ReplyParser()
        >>> parser.feed(b"250-smtp.example.com\\r\\n250 SIZE 1000\\r\\n")
        >>> parser.next_reply()
        Reply(code=250, lines=('smtp.example.com', 'SIZE 1000'))
    """

    __slots__ = ("_buffer", "_code", "_lines", "_repeats", "_reply_bytes")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []
        self._reply_bytes = 0
        # Octets of a one-line reply (CRLF excluded) -> its Reply (immutable, so shared).
        self._repeats: dict[bytes, Reply] = {}

    @property
    def buffered(self) -> int:
        """How many bytes are held: unparsed data plus an incomplete reply."""
        return len(self._buffer) + self._reply_bytes

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buffer += data
        size = len(self._buffer)
        if size <= MAX_REPLY_LINE:
            return
        # Check the first line and the unterminated tail: the tail is what grows when the
        # driver feeds again before draining, so it alone must be bounded here.
        if (
            self._buffer.find(b"\n", 0, MAX_REPLY_LINE + 1) < 0
            or self._buffer.rfind(b"\n", size - MAX_REPLY_LINE - 1) < 0
        ):
            raise RemoteProtocolError(
                f"the server sent a reply line longer than {MAX_REPLY_LINE} octets"
            )

    def discard(self) -> int:
        """Drop everything buffered (RFC 3207 §4.2 after STARTTLS); return the byte count."""
        dropped = self.buffered
        self._buffer.clear()
        self._code = None
        self._lines = []
        self._reply_bytes = 0
        self._repeats.clear()
        return dropped

    def next_reply(self, *, remember: bool = True) -> Reply | None:
        """The next complete reply, or ``None`` when more data is needed.

        ``remember=False`` keeps the reply out of the repeat cache (a reply to AUTH may echo
        a secret: it is masked by the caller and must not be kept).
        """
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_REPLY_LINE:
                    raise RemoteProtocolError(
                        f"the server sent a reply line longer than {MAX_REPLY_LINE} octets"
                    )
                return None
            if end > MAX_REPLY_LINE:
                raise RemoteProtocolError(
                    f"the server sent a reply line longer than {MAX_REPLY_LINE} octets"
                )
            stop = end - 1 if end and buffer[end - 1] == 0x0D else end
            if (
                self._code is None
                and stop > 3
                and buffer[3] == 0x20
                and 0x32 <= buffer[0] <= 0x35
                and 0x30 <= buffer[1] <= 0x35
                and 0x30 <= buffer[2] <= 0x39
            ):
                # Fast path, the common case: a complete one-line reply "250 text".
                line = bytes(buffer[:stop])
                del buffer[: end + 1]
                repeats = self._repeats
                reply = repeats.get(line)
                if reply is None:
                    code = (line[0] - 48) * 100 + (line[1] - 48) * 10 + (line[2] - 48)
                    reply = Reply(code, (line[4:].decode("utf-8", "replace"),))
                    if remember:
                        if len(repeats) >= _REPEATS_KEPT:
                            repeats.clear()
                        repeats[line] = reply
                return reply
            raw = bytes(buffer[:stop])
            del buffer[: end + 1]
            self._reply_bytes += end + 1
            if self._reply_bytes > MAX_REPLY_BYTES:
                raise RemoteProtocolError(
                    f"the server sent a reply larger than {MAX_REPLY_BYTES} octets"
                )
            reply = self._take_line(raw)
            if reply is not None:
                return reply

    def _take_line(self, raw: bytes) -> Reply | None:
        # Reply-line = *( Code "-" [ textstring ] CRLF ) Code [ SP textstring ] CRLF
        # (RFC 5321 §4.2). Some servers omit the SP on a bare last line: "250".
        if len(raw) < 3 or not raw[:3].isdigit():
            raise RemoteProtocolError(f"malformed reply line {_show(raw)}: no 3-digit code")
        code = int(raw[:3])
        if not (200 <= code <= 599) or raw[1:2] not in b"012345":
            raise RemoteProtocolError(f"malformed reply line {_show(raw)}: invalid code")
        separator = raw[3:4]
        if separator not in (b"", b" ", b"-"):
            raise RemoteProtocolError(f"malformed reply line {_show(raw)}: bad separator")
        if self._code is not None and code != self._code:
            # RFC 5321 §4.2.1: every line of a multi-line reply carries the same code.
            raise RemoteProtocolError(
                f"multi-line reply changed its code from {self._code} to {code}"
            )
        self._code = code
        self._lines.append(raw[4:].decode("utf-8", "replace"))
        if separator == b"-":
            return None
        reply = Reply(code, tuple(self._lines))
        self._code = None
        self._lines = []
        self._reply_bytes = 0
        return reply


def _show(raw: bytes) -> str:
    return repr(raw[:60]) + ("..." if len(raw) > 60 else "")

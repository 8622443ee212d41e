"""Message content on the wire: CRLF normalisation, dot-stuffing and the terminator.

Invariants:
    * Output contains no bare CR or LF: every line ends in CRLF (RFC 5321 §2.3.8).
    * Every line starting with "." gets one more "." (RFC 5321 §4.5.2), across chunk
      boundaries too, so no content can end the DATA phase early ("SMTP smuggling").
    * ``finish()`` always emits ``CRLF.CRLF`` on a line of its own.
"""

from __future__ import annotations

__all__ = ["ContentEncoder", "encode_content", "normalize_line_endings"]


def normalize_line_endings(data: bytes) -> bytes:
    """Turn CRLF, lone CR and lone LF into CRLF.

    >>> normalize_line_endings(b"a\\nb\\rc\\r\\n")
    b'a\\r\\nb\\r\\nc\\r\\n'
    """
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


class ContentEncoder:
    """Encode message content for DATA in chunks of any size.

    Example::

        >>> encoder = ContentEncoder()
        >>> head = encoder.encode(b"Subject: x\\n\\n.hidden\\r")
        >>> head + encoder.encode(b"\\nend") + encoder.finish()
        b'Subject: x\\r\\n\\r\\n..hidden\\r\\nend\\r\\n.\\r\\n'
    """

    __slots__ = ("_at_line_start", "_octets", "_pending_cr")

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False
        self._octets = 0

    @property
    def octets(self) -> int:
        """Content octets produced so far (before the terminator)."""
        return self._octets

    def encode(self, chunk: bytes) -> bytes:
        """Encode the next chunk; the result may be empty."""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            # The CR may be the first half of a CRLF split across chunks: decide later.
            chunk = chunk[:-1]
            self._pending_cr = True
        if not chunk:
            return b""
        data = normalize_line_endings(chunk)
        if self._at_line_start and data.startswith(b"."):
            data = b"." + data
        data = data.replace(b"\r\n.", b"\r\n..")
        self._at_line_start = data.endswith(b"\r\n")
        self._octets += len(data)
        return data

    def finish(self) -> bytes:
        """The end of the content: a closing CRLF when needed, then ``.`` CRLF."""
        tail = b""
        if self._pending_cr or not self._at_line_start:
            tail = b"\r\n"
        self._pending_cr = False
        self._at_line_start = True
        self._octets += len(tail)
        return tail + b".\r\n"


def encode_content(data: bytes) -> bytes:
    """Encode a whole message for DATA, terminator included."""
    encoder = ContentEncoder()
    return encoder.encode(data) + encoder.finish()

"""What message preparation produces: the envelope, the body type and the prepared message.

Values only: :func:`smtpkit.message.prepare_message` builds them (``_prepare``), the engine
reads them. A :class:`PreparedMessage` holds its content as a
:class:`~smtpkit.message._stream.WireContent`, so large payloads are streamed, not copied.

Invariants:
    * Every value is frozen; :meth:`PreparedMessage.with_field` returns a copy that shares
      the content parts.
    * An :class:`Envelope` holds only valid addresses and at least one recipient, each once
      (RFC 5321 §2.4: the domain compares case-insensitively, the local part exactly).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from smtpkit.errors import MessageError
from smtpkit.message._headers import split_address
from smtpkit.message._lines import MAX_LINE_OCTETS
from smtpkit.message._stream import WireContent
from smtpkit.protocol import validate_address

__all__ = ["BodyType", "Envelope", "PreparedMessage"]


class BodyType(enum.Enum):
    """The ``BODY=`` value for ``MAIL FROM``; values are the keywords on the wire."""

    #: Only 7-bit octets: no ``BODY`` parameter needed (RFC 5321).
    SEVEN_BIT = "7BIT"
    #: Octets above 0x7F in lines of text (RFC 6152): needs the 8BITMIME extension.
    EIGHT_BIT_MIME = "8BITMIME"
    #: Arbitrary octets, BDAT only (RFC 3030 §3). Reserved: prepare_message never picks it.
    BINARYMIME = "BINARYMIME"


@dataclass(frozen=True)
class Envelope:
    """The SMTP envelope: who the message is from and whom it is delivered to.

    The envelope, not the headers, decides delivery (RFC 5321 §2.3.1): Bcc recipients appear
    here and nowhere in the content.

    Construction validates every address (no control characters, spaces or angle brackets;
    ``user@domain`` form) and removes repeated recipients, keeping the first spelling. Two
    recipients are the same when the local parts are equal and the domains are equal ignoring
    case: RFC 5321 §2.4 makes only the domain case-insensitive.

    Attributes:
        sender: the reverse-path for ``MAIL FROM``; ``""`` is the null sender (RFC 5321
            §4.5.5), used for bounces and auto-replies.
        recipients: the forward-paths for ``RCPT TO``, at least one.

    Raises:
        MessageError: an address is invalid, or there is no recipient.
    """

    sender: str
    recipients: tuple[str, ...]

    def __post_init__(self) -> None:
        validate_address(self.sender, what="sender")
        if isinstance(self.recipients, str):
            raise MessageError(
                "recipients must be a sequence of addresses, not one str",
                hint='pass recipients=["user@example.com"]',
            )
        recipients = self.recipients
        if type(recipients) is tuple and len(recipients) == 1:
            # One recipient, the common case: the loop below without the repeat check.
            (only,) = recipients
            validate_address(only, what="recipient")
            if only == "":
                raise MessageError("a recipient address is empty")
            return
        seen: set[tuple[str, str]] = set()
        unique: list[str] = []
        for recipient in recipients:
            validate_address(recipient, what="recipient")
            if recipient == "":
                raise MessageError("a recipient address is empty")
            local, domain = split_address(recipient)
            key = (local, domain.lower())
            if key not in seen:
                seen.add(key)
                unique.append(recipient)
        if not unique:
            raise MessageError(
                "the message has no recipients",
                hint="add To, Cc or Bcc headers, or pass recipients=[...]",
            )
        object.__setattr__(self, "recipients", tuple(unique))

    @property
    def needs_smtputf8(self) -> bool:
        """True when any address has a non-ASCII character (RFC 6531 §3.3)."""
        return not (self.sender.isascii() and all(r.isascii() for r in self.recipients))


@dataclass(frozen=True)
class PreparedMessage:
    """A message ready for the wire.

    Built by :func:`prepare_message`. The content octets (CRLF line endings, not
    dot-stuffed, without the end-of-data terminator) are read with :meth:`iter_content`,
    which streams large messages, or all at once with :attr:`content`.

    Attributes:
        envelope: sender and recipients for ``MAIL FROM`` / ``RCPT TO``.
        message_id: the ``Message-ID`` header value (added when missing), or ``None`` for
            raw bytes without one.
        body_type: :attr:`BodyType.EIGHT_BIT_MIME` when any octet of the content is above
            0x7F, else :attr:`BodyType.SEVEN_BIT`.
        needs_smtputf8: the envelope or the headers hold non-ASCII addresses, so ``MAIL
            FROM`` must carry ``SMTPUTF8`` (RFC 6531 §3.4).
    """

    envelope: Envelope
    _wire: WireContent = field(repr=False)
    message_id: str | None
    body_type: BodyType
    needs_smtputf8: bool

    @property
    def size(self) -> int:
        """Exact octets of content, for the ``SIZE=`` parameter (RFC 1870 §3).

        Known without producing the content; equals the total length of
        :meth:`iter_content`'s chunks.
        """
        return self._wire.size

    def iter_content(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The content octets in chunks of ``chunk_size`` (the last one may be shorter).

        The octets are produced as they are consumed, so a large message never exists
        whole in memory. Every call yields the same octets: a message can be sent again,
        e.g. on a new connection. At least one chunk is yielded (``b""`` for an empty
        content).

        Raises:
            ValueError: ``chunk_size`` is below 1.
        """
        return self._wire.iter_chunks(chunk_size)

    @property
    def content(self) -> bytes:
        """All the content octets in one ``bytes``.

        Cheap for a small message (the octets are kept as one object), but for a large one
        this builds a full copy on every access: send with :meth:`iter_content` instead.
        """
        return self._wire.tobytes()

    def with_field(self, field: bytes, *, final_crlf: bool = False) -> PreparedMessage:
        """A copy whose content starts with ``field``; the rest is shared, not copied.

        For a field computed from the prepared content, such as ``DKIM-Signature`` (RFC
        6376 §5.6 puts it before the fields it signs).

        Args:
            field: one complete header field in wire form: ASCII, CRLF line endings
                (folded lines included), ending with CRLF, no line over 998 octets.
            final_crlf: also end the content with CRLF (for a content whose last line has
                none: what a signature covered must be what is sent).

        Raises:
            MessageError: ``field`` is not such a field.
        """
        lines = field.split(b"\r\n")
        if (
            not field.isascii()
            or lines[-1] != b""
            or b"\r" in field.replace(b"\r\n", b"")
            or b"\n" in field.replace(b"\r\n", b"")
            or any(len(line) > MAX_LINE_OCTETS for line in lines)
            or any(line[:1] not in (b" ", b"\t") for line in lines[1:-1])
        ):
            raise MessageError(
                "a field added to a prepared message must be one ASCII header field with "
                "CRLF line endings, ending with CRLF"
            )
        tail = (b"\r\n",) if final_crlf else ()
        wire = WireContent((field, *self._wire.parts, *tail))
        return dataclasses.replace(self, _wire=wire)

"""Envelope extraction and wire serialisation of messages (no I/O).

:func:`prepare_message` turns an :class:`email.message.EmailMessage` (or raw bytes) into a
:class:`PreparedMessage`: the SMTP envelope (``MAIL FROM`` / ``RCPT TO`` addresses), the
content octets for ``DATA`` or ``BDAT``, and the facts the driver needs to pick ESMTP
parameters: ``BODY=`` (RFC 6152), ``SMTPUTF8`` (RFC 6531) and ``SIZE=`` (RFC 1870).

Invariants:
    * The caller's message object is never modified, not even for a moment (another thread
      may be preparing it too): Bcc removal, ``Message-ID`` and ``Date`` go into a shallow
      copy of the top-level message with a header list of its own, and the generator
      writes multipart parts from copies. Nothing is deep-copied and no header is parsed
      again (see :mod:`smtpkit.message._object`).
    * ``Bcc`` and ``Resent-Bcc`` never appear in ``content`` (RFC 5322 §3.6.3: their
      recipients must not be disclosed to the others).
    * The content uses CRLF line endings only (RFC 5321 §2.3.8), is not dot-stuffed and has
      no end-of-data terminator: the protocol layer adds both.
    * The content is generated once, in :func:`prepare_message` (Message-ID, Date and MIME
      boundaries are fixed there, and every serialisation error is raised there), but large
      payloads are not copied: :meth:`PreparedMessage.iter_content` produces them slice by
      slice from the strings the message already holds, so sending a big attachment adds
      only a few slices of memory. ``size`` is exact before anything is sent.
    * No header can be injected: a CR or LF in a header value that is not folding white space,
      and any other character the ``email`` folder may turn into a line break (VT, FF, FS,
      GS, RS, NEL, U+2028, U+2029: what ``str.splitlines()`` breaks at), in any header of any
      part, raw bytes included, is refused with :class:`~smtpkit.errors.MessageError`, as are
      control characters in envelope addresses. No exception of the ``email`` package
      escapes: each becomes a ``MessageError``.
    * ``body_type`` is decided from the bytes produced, not from declared encodings.
    * No line of the content exceeds 998 octets (RFC 5322 §2.1.1): a part of a message
      object with a longer line is sent re-encoded (quoted-printable for text, else
      base64); a header the policy cannot fold that short is refused.
    * Raw ``bytes`` input is sent as given, except for line endings: no header is added or
      removed. It needs SMTPUTF8 when the envelope or the header block holds non-ASCII
      (which must be UTF-8, RFC 6532), and no line may exceed 998 octets (RFC 5322
      §2.1.1): raw bytes cannot be re-encoded, so both are refused, never sent broken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors as email_errors
from email.message import Message
from email.policy import EmailPolicy
from email.utils import make_msgid

from smtpkit.errors import MessageError
from smtpkit.message._headers import (
    check_header_injection,
    check_raw_header_breaks,
    extract_addresses,
    idna_domain,
    punycode_header_addresses,
    split_address,
)
from smtpkit.message._lines import MAX_LINE_OCTETS, first_long_line, line_number
from smtpkit.message._object import format_date, non_ascii_address_headers, outgoing_copy
from smtpkit.message._scan import header_recipients, header_sender, scan_headers
from smtpkit.message._stream import WireContent
from smtpkit.message._wire import read_message_id, serialise
from smtpkit.protocol import normalize_line_endings, validate_address

__all__ = [
    "BodyType",
    "Envelope",
    "PreparedMessage",
    "extract_addresses",
    "make_message_id",
    "normalize_line_endings",
    "prepare_message",
]

#: Message-ID domain when neither the sender nor ``local_hostname`` gives one. Passing a
#: domain to ``make_msgid`` always matters: without one it calls ``socket.getfqdn()``, a
#: DNS lookup that can block for seconds.
DEFAULT_MSGID_DOMAIN = "localhost"


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
        seen: set[tuple[str, str]] = set()
        unique: list[str] = []
        for recipient in self.recipients:
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


def prepare_message(
    message: Message | bytes,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    local_hostname: str | None = None,
    now: datetime | None = None,
    utf8_allowed: bool = True,
    eight_bit_allowed: bool = True,
) -> PreparedMessage:
    """Work out the envelope of ``message`` and serialise it for the wire.

    For a message object, the envelope comes from the headers unless given:

    * sender: ``sender``, else the ``Sender`` address, else the single ``From`` address;
    * recipients: ``recipients``, else every address in ``To``, ``Cc`` and ``Bcc``;
    * when ``Resent-*`` fields are present (RFC 5322 §3.6.6) the newest (topmost) block is
      used instead: ``Resent-Sender`` / ``Resent-From`` and ``Resent-To`` / ``Cc`` / ``Bcc``.

    The message as sent gets ``Message-ID`` and ``Date`` when they are missing (RFC 5322
    §3.6.1 requires Date; §3.6.4 says Message-ID SHOULD be present) and loses ``Bcc`` and
    ``Resent-Bcc``; the caller's object is not changed. It is serialised with
    ``policy.SMTP`` (``policy.SMTPUTF8`` when headers hold non-ASCII addresses), or with the
    message's own ``compat32`` policy and CRLF. A part with a line over 998 octets is
    re-encoded (quoted-printable for text, base64 otherwise).

    Raw ``bytes`` are sent as given apart from line endings normalised to CRLF; they need an
    explicit ``sender`` and ``recipients``, UTF-8 header text needs ``utf8_allowed``, and a
    line over 998 octets is refused.

    Args:
        message: an ``EmailMessage`` (any ``email.message.Message``) or the raw octets.
        sender: envelope sender; ``""`` for the null sender.
        recipients: envelope recipients (bare addresses); repeats are dropped.
        local_hostname: Message-ID domain when the sender has no domain.
        now: time for a missing ``Date`` header (timezone-aware); default: the current time.
        utf8_allowed: whether the server offers SMTPUTF8. When false, non-ASCII domains are
            converted to IDNA (punycode) and a non-ASCII local part is an error.
        eight_bit_allowed: whether the server offers 8BITMIME. When false, 8-bit MIME parts
            are re-encoded to quoted-printable or base64 (RFC 6152 §3); raw bytes cannot be.

    Returns:
        The envelope, content octets and ESMTP facts.

    Raises:
        MessageError: no sender or recipients can be found, an address is invalid, a header
            would inject a line, a line is too long and cannot be re-encoded, the ``email``
            package cannot read or write the message, or the content needs an extension
            the server lacks.

    Example::

        >>> from email.message import EmailMessage
        >>> msg = EmailMessage()
        >>> msg["From"], msg["To"] = "a@example.com", "Bob <b@example.com>"
        >>> msg["Message-ID"], msg["Date"] = "<1@example.com>", "Thu, 1 Jan 2026 00:00:00 +0000"
        >>> msg.set_content("hi")
        >>> prepared = prepare_message(msg)
        >>> prepared.envelope
        Envelope(sender='a@example.com', recipients=('b@example.com',))
        >>> prepared.content.splitlines()[1]
        b'To: Bob <b@example.com>'
    """
    if isinstance(message, bytes | bytearray | memoryview):
        return _prepare_bytes(
            bytes(message),
            sender=sender,
            recipients=recipients,
            utf8_allowed=utf8_allowed,
            eight_bit_allowed=eight_bit_allowed,
        )
    if not isinstance(message, Message):
        raise MessageError(
            f"cannot send a {type(message).__name__}",
            hint="pass an email.message.EmailMessage or the message as bytes",
        )
    try:
        return _prepare_object(
            message,
            sender=sender,
            recipients=recipients,
            local_hostname=local_hostname,
            now=now,
            utf8_allowed=utf8_allowed,
            eight_bit_allowed=eight_bit_allowed,
        )
    except MessageError:
        raise
    except (
        email_errors.MessageError,
        ValueError,
        TypeError,
        LookupError,
        UnicodeError,
        IndexError,
        AttributeError,
    ) as exc:
        # The email package raises all of these on malformed input (HeaderParseError is not
        # a ValueError; parsing "To: . <b@example.com>" raises AttributeError on 3.11).
        raise MessageError(
            f"the email package cannot read this message: {type(exc).__name__}: {exc}",
            hint="check the header values (addresses, encoded-words) and part charsets, or "
            "build the message with EmailMessage and email.policy.default",
        ) from exc


def _envelope(sender: str, recipients: Sequence[str], *, utf8_allowed: bool) -> Envelope:
    """Build the envelope; without SMTPUTF8, punycode domains and refuse non-ASCII locals."""
    if isinstance(recipients, str):
        raise MessageError(
            "recipients must be a sequence of addresses, not one str",
            hint='pass recipients=["user@example.com"]',
        )
    envelope = Envelope(sender, tuple(recipients))
    if utf8_allowed or not envelope.needs_smtputf8:
        return envelope
    return Envelope(
        _ascii_address(envelope.sender), tuple(map(_ascii_address, envelope.recipients))
    )


def _ascii_address(address: str) -> str:
    if address.isascii():
        return address
    local, domain = split_address(address)
    if not local.isascii():
        raise MessageError(
            f"the address {address!r} has a non-ASCII local part",
            hint="the server does not offer SMTPUTF8 (RFC 6531); use an ASCII address "
            "or a server that supports internationalized email",
        )
    return f"{local}@{idna_domain(domain)}"


def _prepare_bytes(
    data: bytes,
    *,
    sender: str | None,
    recipients: Sequence[str] | None,
    utf8_allowed: bool,
    eight_bit_allowed: bool,
) -> PreparedMessage:
    if sender is None or recipients is None:
        raise MessageError(
            "raw bytes need an explicit envelope: headers are not read for sending",
            hint="pass sender= and recipients=, or pass an email.message.EmailMessage",
        )
    envelope = _envelope(sender, recipients, utf8_allowed=utf8_allowed)
    wire = WireContent.from_bytes(data)  # no copy: line endings are normalised lazily
    head = wire.head()
    check_raw_header_breaks(head)
    raw_utf8_headers = not head.isascii()
    if raw_utf8_headers:
        _require_utf8(head)
        if not utf8_allowed:
            raise MessageError(
                "the headers hold raw 8-bit (UTF-8) text but the server does not offer "
                "SMTPUTF8 (RFC 6531)",
                hint="encode non-ASCII header text with RFC 2047 encoded-words (or pass an "
                "EmailMessage, which does), or use a server that offers SMTPUTF8",
            )
    _refuse_long_lines(data)
    eight_bit = wire.eight_bit
    if eight_bit and not eight_bit_allowed:
        raise MessageError(
            "the message has 8-bit octets but the server does not offer 8BITMIME",
            hint="encode the body as quoted-printable or base64 (RFC 6152 §3), or pass an "
            "EmailMessage so smtpkit can re-encode it",
        )
    return PreparedMessage(
        envelope=envelope,
        _wire=wire,
        message_id=read_message_id(head),
        body_type=BodyType.EIGHT_BIT_MIME if eight_bit else BodyType.SEVEN_BIT,
        # RFC 6532 §3: UTF-8 header text is only allowed in an SMTPUTF8 transaction.
        needs_smtputf8=envelope.needs_smtputf8 or raw_utf8_headers,
    )


def _refuse_long_lines(data: bytes) -> None:
    """RFC 5322 §2.1.1: a line is at most 998 octets; raw bytes cannot be re-encoded."""
    found = first_long_line(data)
    if found is not None:
        offset, length = found
        raise MessageError(
            f"line {line_number(data, offset)} of the message is {length} octets long; "
            f"RFC 5322 §2.1.1 allows at most {MAX_LINE_OCTETS}",
            hint="wrap long lines, or encode the body as quoted-printable or base64 (or "
            "pass an EmailMessage: smtpkit re-encodes such parts)",
        )


def _prepare_object(
    message: Message,
    *,
    sender: str | None,
    recipients: Sequence[str] | None,
    local_hostname: str | None,
    now: datetime | None,
    utf8_allowed: bool,
    eight_bit_allowed: bool,
) -> PreparedMessage:
    scan = scan_headers(message)  # also refuses injected lines in the top-level fields
    if isinstance(message._payload, list):  # type: ignore[attr-defined]
        for part in message.walk():
            if part is not message:
                check_header_injection(part)
    if sender is None:
        sender = header_sender(scan)
    if recipients is None:
        recipients = header_recipients(scan)
    envelope = _envelope(sender, recipients, utf8_allowed=utf8_allowed)

    ids = scan.values("message-id")[:1]
    new_id: str | None = None
    if ids and str(ids[0]).strip():
        message_id = str(ids[0]).strip()
    else:  # missing or empty: a new one replaces it
        message_id = new_id = make_message_id(
            message, sender=envelope.sender, local_hostname=local_hostname
        )
    date = None if scan.has("date") else format_date(_aware(now))
    # Nothing below changes the caller's message: the copy has its own header list.
    top = outgoing_copy(message, scan.sent, message_id=new_id, date=date)

    non_ascii = non_ascii_address_headers(scan)
    use_utf8 = bool(non_ascii) and utf8_allowed and isinstance(top.policy, EmailPolicy)
    if non_ascii and not use_utf8:
        # Without SMTPUTF8 an addr-spec must be ASCII (RFC 2047 §5 forbids encoded-words
        # there): punycode the domains, refuse non-ASCII local parts.
        punycode_header_addresses(top, non_ascii)

    wire = serialise(top, utf8=use_utf8, seven_bit=not eight_bit_allowed)
    eight_bit = wire.eight_bit
    raw_utf8_headers = eight_bit and not wire.head().isascii()
    if raw_utf8_headers:
        _require_utf8(wire.head())
    if raw_utf8_headers and not utf8_allowed:
        raise MessageError(
            "the headers hold raw 8-bit text but the server does not offer SMTPUTF8",
            hint="use RFC 2047 encoded-words (build the message with EmailMessage) or a "
            "server that offers SMTPUTF8 (RFC 6531)",
        )
    if eight_bit and not eight_bit_allowed:
        raise MessageError(
            "the message has 8-bit octets that cannot be re-encoded, and the server does "
            "not offer 8BITMIME",
            hint="give 8-bit text parts a charset, or use a server that offers 8BITMIME",
        )
    return PreparedMessage(
        envelope=envelope,
        _wire=wire,
        message_id=message_id,
        body_type=BodyType.EIGHT_BIT_MIME if eight_bit else BodyType.SEVEN_BIT,
        needs_smtputf8=envelope.needs_smtputf8 or use_utf8 or raw_utf8_headers,
    )


def _require_utf8(head: bytes) -> None:
    """RFC 6532 §3.1: 8-bit header text must be UTF-8; any other charset is unreadable."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError(
            "the headers hold 8-bit bytes that are not UTF-8",
            hint="encode non-ASCII header text as UTF-8 (RFC 6532) or with RFC 2047",
        ) from None


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise MessageError(
            "now must be a timezone-aware datetime",
            hint="pass datetime.now(timezone.utc) or leave now unset",
        )
    return now


def make_message_id(
    message: Message, *, sender: str = "", local_hostname: str | None = None
) -> str:
    """A new ``Message-ID`` value for ``message`` (not added to it), with no DNS lookup.

    RFC 5322 §3.6.4: the right side names the generating domain: that of ``sender``, else
    of the ``From`` address, else ``local_hostname``, else :data:`DEFAULT_MSGID_DOMAIN`
    (never ``socket.getfqdn()``, which can block for seconds)::

        >>> msg = Message()
        >>> msg["From"] = "Alice <alice@example.com>"
        >>> make_message_id(msg).endswith("@example.com>")
        True
    """
    return make_msgid(domain=_msgid_domain(message, sender, local_hostname))


def _msgid_domain(work: Message, sender: str, local_hostname: str | None) -> str:
    """RFC 5322 §3.6.4: the right side of a msg-id should name the generating domain."""
    for address in _msgid_candidates(work, sender):
        domain = split_address(address)[1]
        if domain:
            try:
                return idna_domain(domain)
            except MessageError:
                continue
    if local_hostname:
        return idna_domain(local_hostname)
    return DEFAULT_MSGID_DOMAIN


def _msgid_candidates(work: Message, sender: str) -> Iterator[str]:
    """The sender, then the From addresses, which are parsed only if the sender has no
    usable domain (the null sender, or a local name)."""
    yield sender
    with contextlib.suppress(MessageError):  # an unparsable From just gives no candidate
        yield from extract_addresses(work.get_all("From", []))

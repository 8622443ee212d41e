"""``prepare_message``: a message object or raw bytes turned into a :class:`PreparedMessage`.

The steps, each in its own module: one pass over the top-level fields (``_scan``), the
outgoing copy with Bcc removed and Message-ID/Date added (``_object``), the wire octets
(``_wire``, ``_generate``, ``_fold``), then the facts the driver needs (``BODY=``,
``SMTPUTF8``, ``SIZE=``). The invariants are those of :mod:`smtpkit.message`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email import errors as email_errors
from email.message import Message
from email.policy import EmailPolicy

from smtpkit.errors import ExtensionNotOffered, MessageError
from smtpkit.message._headers import (
    check_header_injection,
    check_raw_header_breaks,
    idna_domain,
    punycode_header_addresses,
    split_address,
)
from smtpkit.message._lines import MAX_LINE_OCTETS, first_long_line, line_number
from smtpkit.message._msgid import make_message_id
from smtpkit.message._object import (
    current_date,
    format_date,
    non_ascii_address_headers,
    outgoing_headers,
    with_headers,
)
from smtpkit.message._prepared import BodyType, Envelope, PreparedMessage
from smtpkit.message._scan import (
    content_maintype,
    header_recipients,
    header_sender,
    scan_headers,
)
from smtpkit.message._stream import WireContent
from smtpkit.message._wire import read_message_id, serialise, serialise_simple

__all__ = ["prepare_message"]


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
            the server lacks (``ExtensionNotOffered``, naming it: SMTPUTF8 or 8BITMIME).

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
        raise ExtensionNotOffered(
            f"the address {address!r} has a non-ASCII local part",
            extension="SMTPUTF8",
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
            raise ExtensionNotOffered(
                "the headers hold raw 8-bit (UTF-8) text but the server does not offer "
                "SMTPUTF8 (RFC 6531)",
                extension="SMTPUTF8",
                hint="encode non-ASCII header text with RFC 2047 encoded-words (or pass an "
                "EmailMessage, which does), or use a server that offers SMTPUTF8",
            )
    _refuse_long_lines(data)
    eight_bit = wire.eight_bit
    if eight_bit and not eight_bit_allowed:
        raise ExtensionNotOffered(
            "the message has 8-bit octets but the server does not offer 8BITMIME",
            extension="8BITMIME",
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
    date: str | None = None
    if not scan.has("date"):
        date = current_date() if now is None else format_date(_aware(now))
    # Nothing below changes the caller's message: the outgoing fields are a list of their
    # own, and a copy of the message that holds them is made only when one is needed.
    headers = outgoing_headers(
        message, scan.sent, message_id=new_id, date=date, id_present=scan.has("message-id")
    )

    non_ascii = non_ascii_address_headers(scan)
    use_utf8 = bool(non_ascii) and utf8_allowed and isinstance(message.policy, EmailPolicy)
    seven_bit = not eight_bit_allowed
    wire = None
    if not non_ascii or use_utf8:
        # The common case (one part, a small ASCII body) is written without a copy.
        maintype = content_maintype(scan)
        wire = serialise_simple(
            message, headers, utf8=use_utf8, seven_bit=seven_bit, maintype=maintype
        )
    if wire is None:
        top = with_headers(message, headers)
        if non_ascii and not use_utf8:
            # Without SMTPUTF8 an addr-spec must be ASCII (RFC 2047 §5 forbids encoded-words
            # there): punycode the domains, refuse non-ASCII local parts.
            try:
                punycode_header_addresses(top, non_ascii)
            except ExtensionNotOffered as exc:
                if not utf8_allowed:
                    raise
                # SMTPUTF8 is offered, but a compat32 message cannot be written with it:
                # the server lacks nothing, so this is not an ExtensionNotOffered.
                raise MessageError(exc.message, hint=exc.hint) from None
        wire = serialise(top, utf8=use_utf8, seven_bit=seven_bit)
    eight_bit = wire.eight_bit
    raw_utf8_headers = eight_bit and not wire.head().isascii()
    if raw_utf8_headers:
        _require_utf8(wire.head())
    if raw_utf8_headers and not utf8_allowed:
        raise ExtensionNotOffered(
            "the headers hold raw 8-bit text but the server does not offer SMTPUTF8",
            extension="SMTPUTF8",
            hint="use RFC 2047 encoded-words (build the message with EmailMessage) or a "
            "server that offers SMTPUTF8 (RFC 6531)",
        )
    if eight_bit and not eight_bit_allowed:
        raise ExtensionNotOffered(
            "the message has 8-bit octets that cannot be re-encoded, and the server does "
            "not offer 8BITMIME",
            extension="8BITMIME",
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

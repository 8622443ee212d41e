"""One pass over a message's top-level header list: checks, the fields read, the envelope.

:func:`scan_headers` reads every top-level field once: it refuses injected line breaks
(:func:`~smtpkit.message._headers.check_field`), keeps the fields preparation reads (the
envelope's, Message-ID and Date) by lower-case name, finds the newest Resent block (RFC
5322 §3.6.6) and notes the address headers that may name a non-ASCII address. ``get_all``
would scan the list once per name, and ``raw_items()`` copies it each time.

Invariants:
    * Nothing is modified; stored values are parsed (``header_fetch_parse``) only when a
      field is read, exactly as ``message.get_all(name)`` would return them.
    * The envelope found is the one ``message.get_all`` and ``getaddresses`` would give.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from typing import Any

from smtpkit.errors import MessageError
from smtpkit.message._headers import (
    ADDRESS_HEADERS,
    KNOWN_FIELD_NAMES,
    check_field,
    check_value,
    extract_addresses,
    first_address,
    parsed_addresses,
)

__all__ = [
    "HeaderScan",
    "content_maintype",
    "header_recipients",
    "header_sender",
    "scan_headers",
]

#: The top-level fields a scan keeps: every address header (RFC 5322 §3.6.2, §3.6.3,
#: §3.6.6), since a non-ASCII address in any of them (Reply-To, Resent-*, ...) must be
#: read to be punycoded, refused or sent with SMTPUTF8 (RFC 2047 §5: no encoded-word in an
#: addr-spec), and the fields preparation reads.
_KEPT = frozenset(ADDRESS_HEADERS) | {"message-id", "date", "content-type"}
# Bcc and Resent-Bcc never go out, so their addresses need no SMTPUTF8.
_NOT_SENT = frozenset({"bcc", "resent-bcc"})
_SENT_ADDRESS_HEADERS = frozenset(ADDRESS_HEADERS) - _NOT_SENT


@dataclass(frozen=True)
class HeaderScan:
    """What one pass over the top-level fields found."""

    message: Message
    #: Lower-case name -> the ``(name, stored value)`` pairs of that field, in order.
    fields: dict[str, list[tuple[str, Any]]]
    #: The newest Resent block as ``{lower-case name: [text]}``, or ``None``.
    resent: dict[str, list[str]] | None
    #: Lower-case names of sent address headers whose text is not plain ASCII (or holds an
    #: encoded-word, which the parser decodes even in a local part).
    maybe_non_ascii: frozenset[str]
    #: The fields that go out, in order: all but Bcc and Resent-Bcc (RFC 5322 §3.6.3).
    sent: list[tuple[str, Any]]

    def values(self, lower: str) -> list[object]:
        """``message.get_all(lower)``: each value as the policy returns it."""
        found = self.fields.get(lower)
        if not found:
            return []
        fetch = self.message.policy.header_fetch_parse
        return [fetch(name, value) for name, value in found]

    def has(self, lower: str) -> bool:
        return lower in self.fields


def scan_headers(message: Message) -> HeaderScan:
    """Check and read the top-level fields of ``message`` in one pass.

    Raises:
        MessageError: a field name or value would inject a header line.
    """
    fields: dict[str, list[tuple[str, Any]]] = {}
    resent: dict[str, list[str]] = {}
    resent_done = False
    suspects: set[str] = set()
    sent: list[tuple[str, Any]] = []
    known = KNOWN_FIELD_NAMES
    for field in message._headers:  # type: ignore[attr-defined]
        name, value = field
        # check_field, written out for a name already found valid: the value's text (a
        # header object is a str of what the folder writes) is checked for line breaks.
        text = value if isinstance(value, str) else str(value)
        lower = known.get(name) if type(name) is str else None
        if lower is None:
            lower = check_field(name, value)
        elif not text.isprintable():
            check_value(name, value)
        if lower not in _NOT_SENT:
            sent.append(field)
        if lower in _KEPT:
            fields.setdefault(lower, []).append((name, value))
        if lower in _SENT_ADDRESS_HEADERS and (not text.isascii() or "=?" in text):
            suspects.add(lower)
        # RFC 5322 §3.6.6: the first block of Resent-* fields is the newest. It ends at the
        # first other field (a trace field separates blocks, §3.6.7) or where a field
        # repeats, since each appears at most once per block.
        if not resent_done:
            if lower.startswith("resent-") and lower not in resent:
                resent[lower] = [str(value)]
            elif resent:
                resent_done = True
    return HeaderScan(message, fields, resent or None, frozenset(suspects), sent)


def _header_values(scan: HeaderScan, name: str, resent: bool) -> list[object]:
    """Values of ``name``, or of ``Resent-name`` from the newest Resent block (§3.6.6)."""
    if not resent or scan.resent is None:
        return scan.values(name.lower())
    return list(scan.resent.get(f"resent-{name.lower()}", []))


def _quick_addresses(scan: HeaderScan, names: tuple[str, ...]) -> list[str] | None:
    """The addresses of the fields ``names`` when every value is a header object that
    parsed cleanly (:func:`~smtpkit.message._headers.parsed_addresses`), else ``None``.

    What :func:`~smtpkit.message._headers.extract_addresses` gives for the same values,
    without the generator and list of values in between: the envelope is read from these
    fields once a message.
    """
    fields = scan.fields
    fetch = None
    addresses: list[str] = []
    for lower in names:
        found = fields.get(lower)
        if not found:
            continue
        if fetch is None:
            fetch = scan.message.policy.header_fetch_parse
        for name, value in found:
            parsed = parsed_addresses(fetch(name, value))
            if parsed is None:
                return None
            addresses += parsed
    return addresses


_FROM = ("from",)
_RECIPIENTS = ("to", "cc", "bcc")


def header_sender(scan: HeaderScan) -> str:
    """``Sender``, else the single ``From`` address (of the newest Resent block if any)."""
    if scan.resent is None and "sender" not in scan.fields:
        quick = _quick_addresses(scan, _FROM)
        if quick is not None and len(quick) == 1:
            return quick[0]  # else the path below says what is wrong, or reads text
    resent = scan.resent is not None
    prefix = "Resent-" if resent else ""
    for name in ("Sender", "From"):
        address = first_address(_header_values(scan, name, resent), prefix + name)
        if address is not None:
            return address
    raise MessageError(
        f"cannot tell who the message is from: no {prefix}From header",
        hint=f"add a {prefix}From header or pass sender=",
    )


def header_recipients(scan: HeaderScan) -> list[str]:
    """Every ``To``, ``Cc`` and ``Bcc`` address (of the newest Resent block if any)."""
    if scan.resent is None:
        quick = _quick_addresses(scan, _RECIPIENTS)
        if quick is not None:
            return quick
    resent = scan.resent is not None
    return extract_addresses(
        value for name in ("To", "Cc", "Bcc") for value in _header_values(scan, name, resent)
    )


def content_maintype(scan: HeaderScan) -> str:
    """``message.get_content_maintype()``, read from the scan instead of the header list.

    The stock rules (``Message.get_content_type``): the first Content-Type field, its value
    up to ``;``, lower-cased, ``text/plain`` unless it has exactly one ``/``; without the
    field, the message's default type. A class that reads its type its own way is asked.
    """
    message = scan.message
    kind = type(message)
    if (
        kind.get_content_maintype is not Message.get_content_maintype
        or kind.get_content_type is not Message.get_content_type
        or kind.get is not Message.get
    ):
        return message.get_content_maintype()
    values = scan.values("content-type")
    if not values:
        ctype = message.get_default_type()
    else:
        ctype = str(values[0]).partition(";")[0].strip().lower()
        if ctype.count("/") != 1:
            ctype = "text/plain"
    return ctype.split("/")[0]

"""Header helpers behind :mod:`smtpkit.message`: addresses, Resent blocks, injection checks.

Everything here reads or rewrites header *values*; nothing touches the wire or the body.
The functions never mutate a message they did not create: callers hand in the private
copy that :func:`smtpkit.message.prepare_message` works on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from email import _header_value_parser as value_parser
from email.header import Header
from email.headerregistry import AddressHeader, Group, HeaderRegistry
from email.message import Message
from email.utils import formataddr, getaddresses

from smtpkit.errors import ExtensionNotOffered, MessageError

__all__ = [
    "ADDRESS_HEADERS",
    "KNOWN_FIELD_NAMES",
    "LINE_BREAK_CHARACTERS",
    "check_field",
    "check_header_injection",
    "check_raw_header_breaks",
    "check_value",
    "extract_addresses",
    "first_address",
    "header_recipients",
    "header_sender",
    "idna_domain",
    "parsed_addresses",
    "punycode_header_addresses",
    "split_address",
    "topmost_resent_block",
]

#: Headers whose values are address lists (RFC 5322 §3.6.2, §3.6.3, §3.6.6). These are the
#: headers whose addr-specs cannot be RFC 2047-encoded (RFC 2047 §5 forbids encoded-words in
#: an addr-spec), so a non-ASCII mailbox in any of them needs SMTPUTF8 (RFC 6532 §3.2).
ADDRESS_HEADERS = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
)

#: Every character that some supported Python's ``email`` folder may turn into a line
#: break: CR and LF, and the others ``str.splitlines()`` breaks at (VT, FF, FS, GS, RS, NEL,
#: LINE SEPARATOR, PARAGRAPH SEPARATOR). ``EmailPolicy`` folds a parsed header value with
#: ``splitlines()`` and joins the pieces with CRLF, so on Python 3.11 a ``\x0b`` in a parsed
#: Subject became a new header line on the wire.
LINE_BREAK_CHARACTERS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# RFC 5322 §2.2: a field name is printable US-ASCII except ":" (ftext). Used with fullmatch:
# "$" would also match before a final "\n".
_FIELD_NAME_RE = re.compile(r"[\x21-\x39\x3b-\x7e]+")
# A line break (CRLF, lone CR or lone LF) not followed by folding white space (RFC 5322
# §2.2.3) would start a new header line, that is, inject a header; the other splitlines()
# breaks are never folding white space, so any of them is refused.
_INJECTION_RE = re.compile(
    r"\r\n(?![ \t])|\r(?![\n \t])|(?<!\r)\n(?![ \t])|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]"
)
#: The same characters as octets in a raw header block (NEL, LS and PS in UTF-8, RFC 6532).
RAW_BREAK_RE = re.compile(rb"[\x0b\x0c\x1c-\x1e]|\xc2\x85|\xe2\x80[\xa8\xa9]")
LINE_BREAK_HINT = (
    "remove line breaks from header values: CR, LF and VT, FF, FS, GS, RS, NEL, U+2028 and "
    "U+2029, which Python's email package folds as line breaks, could inject headers"
)
# Lone surrogates U+DC80..U+DCFF: how the email package keeps undecodable 8-bit header bytes.
_SURROGATE_RE = re.compile(r"[\udc80-\udcff]")
# Field names already found valid, with their lower-case form: a few dozen names cover
# nearly every message, and checking one costs a regex match. Bounded, so names made up
# per message cannot grow it without end (past the bound they are checked each time).
_NAMES: dict[str, str] = {}
_NAMES_KEPT = 512
#: :data:`_NAMES` for the header scan, which checks the value itself when a name is known.
KNOWN_FIELD_NAMES: dict[str, str] = _NAMES
_REGISTRY = HeaderRegistry()
# The characters whose presence makes Address.addr_spec quote a local part.
_DOT_ATOM_ENDS: frozenset[str] = frozenset(value_parser.DOT_ATOM_ENDS)


def _unescape(value: str) -> str:
    """Recover UTF-8 text from a header value parsed out of raw 8-bit bytes (RFC 6532 §3)."""
    if _SURROGATE_RE.search(value) is None:
        return value
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        raise MessageError(
            f"header value {value!r} holds 8-bit bytes that are not UTF-8",
            hint="encode non-ASCII header text as UTF-8 (RFC 6532) or with RFC 2047",
        ) from None


def extract_addresses(header_values: Iterable[object]) -> list[str]:
    """Return the bare addr-specs named in some address header values, in order.

    Accepts any RFC 5322 form: ``"Alice <a@example.com>"``, comments, groups such as
    ``"Team: a@example.com, b@example.com;"`` and empty groups such as
    ``"undisclosed-recipients:;"`` (which name nobody).

    Args:
        header_values: header values (``str``, ``email.header.Header`` or header objects
            from ``email.headerregistry``); text is parsed, and a header object without
            parse defects gives the addresses it holds.

    Raises:
        MessageError: a value holds a phrase with no address, so it cannot be parsed.

    Example::

        >>> extract_addresses(["Alice <a@example.com>, Team: b@example.com;"])
        ['a@example.com', 'b@example.com']
    """
    addresses: list[str] = []
    texts: list[str] = []
    for value in header_values:
        parsed = _parsed_addresses(value)
        if parsed is None:
            texts.append(_unescape(str(value)))
        else:
            addresses += _from_text(texts) + parsed
            texts = []
    return addresses + _from_text(texts)


def _parsed_addresses(value: object) -> list[str] | None:
    """The addresses of a header object that ``email.headerregistry`` parsed cleanly.

    Its groups hold what its text says, so reading them is the same as parsing ``str()``
    of it again, without the cost. ``None`` for text, or for a header with defects.
    """
    groups = getattr(value, "groups", None)
    if groups is None or getattr(value, "_defects", True):  # `defects` copies the list
        return None
    addresses: list[str] = []
    for group in groups:
        for address in group.addresses:
            username, domain = address.username, address.domain
            if not username or not domain:
                return None  # the text path says what is wrong with it
            # Address.addr_spec, without reading both properties again: a local part
            # with none of the characters that end a dot-atom is written unquoted.
            if _DOT_ATOM_ENDS.isdisjoint(username):
                addresses.append(f"{username}@{domain}")
            else:
                addresses.append(address.addr_spec)
    return addresses


#: The public name of :func:`_parsed_addresses`, for the scan's quick envelope.
parsed_addresses = _parsed_addresses


def _from_text(values: list[str]) -> list[str]:
    if not values:
        return []
    addresses: list[str] = []
    for name, addr in getaddresses(values):
        if not addr:
            if name:
                raise MessageError(
                    f"cannot find an address in {name!r}",
                    hint='write addresses as "Name <user@example.com>" or user@example.com',
                )
            continue  # an empty group or an empty list element names nobody
        if "@" not in addr:
            # getaddresses() turns "just words" into "just": refuse, do not guess.
            raise MessageError(
                f"cannot find an address in {addr!r}",
                hint='write addresses as "Name <user@example.com>" or user@example.com',
            )
        addresses.append(addr)
    return addresses


def split_address(address: str) -> tuple[str, str]:
    """Split ``local@domain`` at the last ``@`` (RFC 5321 §4.1.2: the domain has no ``@``)."""
    local, _, domain = address.rpartition("@")
    return local, domain


def idna_domain(domain: str) -> str:
    """Return ``domain`` as ASCII, punycoding non-ASCII labels (IDNA, RFC 5890/5891).

    Raises:
        MessageError: the domain cannot be IDNA-encoded.
    """
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise MessageError(
            f"domain {domain!r} cannot be converted to an ASCII (IDNA) domain name",
            hint="check the domain for typos, or send through a server that offers SMTPUTF8",
        ) from None


def check_header_injection(message: Message) -> None:
    """Refuse header names and values that would add header lines of their own.

    The email package checks values set through ``EmailMessage`` with ``policy.default``,
    but not values in ``compat32`` messages nor those set some other way; and Python before
    3.12.5 does not verify generated headers. A value such as ``"x\\r\\nBcc: a@b"`` would put
    a header the sender never meant on the wire, so every part of the message is checked.
    Values of parsed messages are never checked by the email package, and its folder splits
    them with ``str.splitlines()``, so VT, FF, FS, GS, RS, NEL, U+2028 and U+2029 are line
    breaks too (:data:`LINE_BREAK_CHARACTERS`).

    Raises:
        MessageError: a header name is not RFC 5322 ftext, or a value holds a CR or LF that
            is not folding white space, or any other of :data:`LINE_BREAK_CHARACTERS`.
    """
    for part in message.walk():
        for name, value in part._headers:  # type: ignore[attr-defined] # raw_items() copies
            check_field(name, value)


def check_field(name: str, value: object) -> str:
    """:func:`check_header_injection` for one field; returns the lower-case name."""
    lower = _NAMES.get(name) if type(name) is str else None
    if lower is None:
        if not _FIELD_NAME_RE.fullmatch(name):
            raise MessageError(
                f"invalid header name {name!r}",
                hint="header names are printable ASCII without spaces or colons (RFC 5322 §2.2)",
            )
        lower = name.lower()
        if type(name) is str and len(_NAMES) < _NAMES_KEPT:
            _NAMES[name] = lower
    check_value(name, value)
    return lower


def check_value(name: str, value: object) -> None:
    """The value half of :func:`check_field`."""
    # A header object is a str of its decoded text, which is what the folder writes; the
    # common case holds none of the break characters (isprintable).
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return
    if _INJECTION_RE.search(text.rstrip(" \t")) is not None or text.endswith(("\r", "\n")):
        raise MessageError(
            f"header {name!r} has a line break in its value {text!r}",
            hint=LINE_BREAK_HINT,
        )


def check_raw_header_breaks(head: bytes) -> None:
    """Refuse raw header octets that a Python ``email`` folder downstream would split at.

    ``head`` is the header block of raw ``bytes`` input (CRLF line endings). CR and LF there
    are line endings of their own, so only the other break characters are looked for.

    Raises:
        MessageError: the header block holds VT, FF, FS, GS, RS, or NEL, U+2028 or U+2029 in
            UTF-8.
    """
    match = RAW_BREAK_RE.search(head)
    if match is not None:
        start = head.rfind(b"\n", 0, match.start()) + 1
        name = head[start : head.find(b":", start)].decode("ascii", "replace")
        raise MessageError(
            f"header {name!r} of the raw message holds a line break character {match.group()!r}",
            hint=LINE_BREAK_HINT,
        )


def topmost_resent_block(message: Message) -> dict[str, list[str]] | None:
    """Return the newest Resent block as ``{lowercase name: [values]}``, or ``None``.

    RFC 5322 §3.6.6: each time a message is reintroduced, a new block of ``Resent-*`` fields
    is added at the top, so the first block in header order is the newest. A block ends at
    the first field that is not ``Resent-*`` (a trace field separates blocks, §3.6.7), or
    where a field repeats, since each field appears at most once per block.
    """
    block: dict[str, list[str]] = {}
    for name, value in message._headers:  # type: ignore[attr-defined]
        lower = name.lower()
        if not lower.startswith("resent-"):
            if block:
                break
            continue
        if lower in block:
            break
        block[lower] = [str(value)]
    return block or None


def _encode_phrase(phrase: str) -> str:
    """An ASCII display name: RFC 2047-encoded when needed (RFC 2047 §5 (3))."""
    if phrase.isascii():
        return str(Group(phrase, ())).removesuffix(":;")
    return Header(phrase, "utf-8").encode()


def _punycode_value(name: str, value: str) -> str:
    header = _REGISTRY(name, _unescape(value))
    if not isinstance(header, AddressHeader):  # pragma: no cover - registry maps all names
        return value
    parts: list[str] = []
    for group in header.groups:
        mailboxes = []
        for address in group.addresses:
            if not address.username.isascii():
                raise ExtensionNotOffered(
                    f"the address {address.addr_spec!r} in {name} has a non-ASCII local part, "
                    "which needs SMTPUTF8 (RFC 6531)",
                    extension="SMTPUTF8",
                    hint="use an ASCII address; if the server offers SMTPUTF8, build the "
                    "message with EmailMessage and policy.default",
                )
            # addr_spec quotes the local part where needed ("john smith"@...): username
            # alone would drop the quotes.
            local = address.addr_spec.rpartition("@")[0]
            addr = f"{local}@{idna_domain(address.domain)}"
            mailboxes.append(formataddr((address.display_name, addr), charset="utf-8"))
        if group.display_name is None:
            parts.extend(mailboxes)
        else:
            parts.append(f"{_encode_phrase(group.display_name)}: {', '.join(mailboxes)};")
    return ", ".join(parts)


def punycode_header_addresses(message: Message, names: Sequence[str]) -> None:
    """Rewrite non-ASCII domains in the address headers ``names`` of ``message`` to IDNA.

    The result is pure ASCII, so it is valid without SMTPUTF8. Header order is kept: every
    header is removed and added back in its place, since the email package has no public
    way to replace the n-th occurrence of a field.

    Raises:
        ExtensionNotOffered: an address has a non-ASCII local part, which only SMTPUTF8 can
            carry (a MessageError).
    """
    wanted = {name.lower() for name in names}
    # items() (not raw_items()) gives values the policy can store again: header objects for
    # EmailPolicy, which refuses raw folded strings on assignment.
    items = message.items()
    rewritten = [
        (name, _punycode_value(name, str(value)) if name.lower() in wanted else value)
        for name, value in items
    ]
    for name in {name.lower() for name, _ in items}:
        del message[name]
    try:
        for name, value in rewritten:
            message[name] = value
    except ValueError as exc:  # e.g. two To fields, which RFC 5322 §3.6 forbids
        raise MessageError(f"cannot rewrite the message headers: {exc}") from None


def first_address(values: list[object], what: str) -> str | None:
    """The one address in ``values`` (``None`` if none); several are an error."""
    if not values:
        return None  # the field is absent (Sender, mostly): nothing to parse
    addresses = extract_addresses(values)
    if not addresses:
        return None
    if len(addresses) > 1:
        # RFC 5322 §3.6.2: several authors require a Sender field naming the one who sent.
        raise MessageError(
            f"the {what} header names {len(addresses)} addresses; the envelope needs one",
            hint=f"add a {what.replace('From', 'Sender')} header or pass sender=",
        )
    return addresses[0]


def _header_values(message: Message, name: str, block: dict[str, list[str]] | None) -> list[object]:
    """Values of ``name``, or of ``Resent-name`` from the newest Resent block (§3.6.6)."""
    if block is None:
        return list(message.get_all(name, []))
    return list(block.get(f"resent-{name.lower()}", []))


def header_sender(message: Message, block: dict[str, list[str]] | None) -> str:
    """``Sender``, else the single ``From`` address (of ``block`` when given).

    :func:`smtpkit.message._scan.header_sender` gives the same from one scan of the fields.
    """
    prefix = "" if block is None else "Resent-"
    for name in ("Sender", "From"):
        address = first_address(_header_values(message, name, block), prefix + name)
        if address is not None:
            return address
    raise MessageError(
        f"cannot tell who the message is from: no {prefix}From header",
        hint=f"add a {prefix}From header or pass sender=",
    )


def header_recipients(message: Message, block: dict[str, list[str]] | None) -> list[str]:
    """Every ``To``, ``Cc`` and ``Bcc`` address (of ``block`` when given)."""
    names = ("To", "Cc", "Bcc")
    return extract_addresses(v for name in names for v in _header_values(message, name, block))

"""Read the names and dates out of a DER certificate, to say *which* certificate failed.

When verification fails, Python's ``ssl`` module hands back the certificate only as DER
bytes (``getpeercert()`` is empty for an unverified peer). This module decodes just enough
X.509 (RFC 5280 §4.1) to name it: subject, issuer, validity and subjectAltName.

Invariants:
    * Pure functions over bytes; malformed input gives ``None``, never an exception.
    * Lengths are checked before every slice; nesting depth is bounded by the fixed walk.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CertificateInfo", "parse_certificate"]

# DER tags (X.690 §8): universal SEQUENCE/SET/OID/strings/times, and context tags.
_SEQUENCE = 0x30
_SET = 0x31
_OID = 0x06
_OCTET_STRING = 0x04
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_VERSION = 0xA0
_EXTENSIONS = 0xA3
_DNS_NAME = 0x82
_IP_ADDRESS = 0x87

# Attribute types (RFC 5280 Appendix A) as DER OID bodies, and their short names.
_NAMES = {
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C",
}
_SUBJECT_ALT_NAME = bytes.fromhex("551d11")


@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says about itself.

    Attributes:
        subject, issuer: distinguished names as ``"CN=..., O=..."`` (empty when absent).
        not_before, not_after: the validity period (aware UTC), if decodable.
        names: subjectAltName DNS names and IP addresses.
    """

    subject: str
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    names: tuple[str, ...]

    @property
    def self_signed(self) -> bool:
        """Whether subject and issuer are the same name."""
        return bool(self.subject) and self.subject == self.issuer


def _read(data: bytes, offset: int) -> tuple[int, bytes, int] | None:
    """One TLV at ``offset``: ``(tag, value, next offset)``, or ``None`` if malformed."""
    if offset + 2 > len(data):
        return None
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            return None
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if offset + length > len(data):
        return None
    return tag, data[offset : offset + length], offset + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    items: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        item = _read(data, offset)
        if item is None:
            return items
        tag, value, offset = item
        items.append((tag, value))
    return items


def _name(data: bytes) -> str:
    parts: list[str] = []
    for tag, rdn in _children(data):
        if tag != _SET:
            continue
        for _, attribute in _children(rdn):
            pair = _children(attribute)
            if len(pair) == 2 and pair[0][0] == _OID and pair[0][1] in _NAMES:
                text = pair[1][1].decode("utf-8", "replace")
                parts.append(f"{_NAMES[pair[0][1]]}={text}")
    return ", ".join(parts)


def _time(tag: int, value: bytes) -> datetime | None:
    text = value.decode("ascii", "replace")
    try:
        if tag == _UTC_TIME:
            # RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY.
            parsed = datetime.strptime(text, "%y%m%d%H%M%SZ")
        elif tag == _GENERALIZED_TIME:
            parsed = datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            return None
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC)


def _alt_names(extensions: bytes) -> tuple[str, ...]:
    names: list[str] = []
    for _, sequence in _children(extensions):
        for _, extension in _children(sequence):
            parts = _children(extension)
            if not parts or parts[0] != (_OID, _SUBJECT_ALT_NAME):
                continue
            value = next((v for t, v in parts[1:] if t == _OCTET_STRING), b"")
            for _, general_names in _children(value):
                for tag, name in _children(general_names):
                    if tag == _DNS_NAME:
                        names.append(name.decode("ascii", "replace"))
                    elif tag == _IP_ADDRESS and len(name) in (4, 16):
                        names.append(str(ipaddress.ip_address(name)))
    return tuple(names)


def parse_certificate(der: bytes) -> CertificateInfo | None:
    """Decode subject, issuer, validity and subjectAltName from a DER certificate.

    Returns ``None`` when ``der`` is not a certificate this decoder understands.
    """
    outer = _read(der, 0)
    if outer is None or outer[0] != _SEQUENCE:
        return None
    certificate = _children(outer[1])
    if not certificate or certificate[0][0] != _SEQUENCE:
        return None
    fields = _children(certificate[0][1])
    if fields and fields[0][0] == _EXPLICIT_VERSION:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    if len(fields) < 6:
        return None
    issuer, validity, subject = fields[2][1], fields[3][1], fields[4][1]
    times = _children(validity)
    not_before = _time(*times[0]) if len(times) == 2 else None
    not_after = _time(*times[1]) if len(times) == 2 else None
    extensions = next((v for t, v in fields[6:] if t == _EXTENSIONS), b"")
    return CertificateInfo(
        subject=_name(subject),
        issuer=_name(issuer),
        not_before=not_before,
        not_after=not_after,
        names=_alt_names(extensions),
    )

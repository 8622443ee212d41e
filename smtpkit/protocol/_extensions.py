"""EHLO capabilities (RFC 5321 §4.1.1.1): what the server says it supports.

Invariants:
    * Keywords are case-insensitive (RFC 5321 §2.4) and stored upper-case.
    * Parsing never fails on an unknown or odd keyword: servers advertise many private
      extensions, and a malformed optional parameter only disables that extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from smtpkit.replies import Reply

__all__ = ["Extensions"]


@dataclass(frozen=True)
class Extensions:
    """The server's EHLO capabilities.

    Example (Gmail after STARTTLS)::

        S: 250-smtp.gmail.com at your service, [203.0.113.5]
        S: 250-SIZE 35882577
        S: 250-8BITMIME
        S: 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH
        S: 250-ENHANCEDSTATUSCODES
        S: 250-PIPELINING
        S: 250-CHUNKING
        S: 250 SMTPUTF8

    Attributes:
        server_name: the first line of the reply (the server's greeting text).
        keywords: each advertised keyword mapped to its parameter text.
        auth_mechanisms: SASL mechanisms from ``AUTH`` (and the pre-standard ``AUTH=``).
        max_size: the ``SIZE`` limit in octets (RFC 1870 §4), ``None`` if none declared.
    """

    server_name: str = ""
    keywords: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    auth_mechanisms: frozenset[str] = frozenset()
    max_size: int | None = None

    @classmethod
    def from_reply(cls, reply: Reply) -> Extensions:
        """Parse the reply to EHLO."""
        keywords: dict[str, str] = {}
        mechanisms: set[str] = set()
        for line in reply.lines[1:]:
            keyword, _, params = line.strip().partition(" ")
            keyword = keyword.upper()
            if not keyword:
                continue
            if keyword.startswith("AUTH="):
                # Pre-RFC 2554 servers (old Outlook/Exchange) wrote "AUTH=LOGIN PLAIN".
                params = f"{keyword[5:]} {params}"
                keyword = "AUTH"
            if keyword == "AUTH":
                mechanisms.update(m.upper() for m in params.split())
                params = " ".join(sorted(mechanisms))
            keywords[keyword] = params.strip()
        return cls(
            server_name=reply.lines[0].strip(),
            keywords=MappingProxyType(keywords),
            auth_mechanisms=frozenset(mechanisms),
            max_size=_parse_size(keywords.get("SIZE")),
        )

    def supports(self, keyword: str) -> bool:
        """Whether ``keyword`` (any case) was advertised."""
        return keyword.upper() in self.keywords

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self.keywords

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self.keywords

    @property
    def chunking(self) -> bool:
        """CHUNKING, i.e. BDAT (RFC 3030)."""
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030 §3); only usable together with CHUNKING."""
        return "BINARYMIME" in self.keywords

    @property
    def eight_bit_mime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8BITMIME" in self.keywords

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self.keywords

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461)."""
        return "DSN" in self.keywords

    @property
    def size_declared(self) -> bool:
        """Whether SIZE was advertised at all (``SIZE`` with no number means no fixed limit)."""
        return "SIZE" in self.keywords


def _parse_size(params: str | None) -> int | None:
    # RFC 1870 §4: "SIZE" [SP number]; 0 or no number means no fixed maximum.
    if not params:
        return None
    token = params.split()[0]
    # isascii(): str.isdigit() also accepts digits such as "²" that int() refuses.
    if not (token.isascii() and token.isdigit()):
        return None
    size = int(token)
    return size or None

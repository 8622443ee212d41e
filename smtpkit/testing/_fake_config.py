"""What the fake server offers and how it is set up: capabilities, TLS behaviour, settings.

Job: the values a test passes to :class:`~smtpkit.testing.FakeTransport` to shape the server
(:class:`FakeCapabilities`, :class:`FakeTLS`) and the frozen :class:`ServerConfig` every
connection of one fake reads.

Invariants:
    * Every value here is checked when it is built, so a session never meets a bad one.
    * ``ServerConfig`` is frozen: scripting changes behaviour through the script, never here.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from smtpkit.errors import ConfigurationError
from smtpkit.testing._arguments import check_flag

__all__ = ["DEFAULT_MAX_SIZE", "FakeCapabilities", "FakeTLS", "ServerConfig"]

#: The SIZE the fake advertises by default (RFC 1870): 10 MiB, a common submission limit.
DEFAULT_MAX_SIZE = 10_485_760

#: The fields that are on or off.
_FLAGS = (
    "starttls",
    "pipelining",
    "eight_bit_mime",
    "smtputf8",
    "enhanced_status_codes",
    "chunking",
    "dsn",
)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MECHANISM_RE = re.compile(r"[A-Z0-9_-]{1,20}")


class FakeTLS(enum.Enum):
    """How TLS behaves on the fake server.

    * ``OK``: STARTTLS and implicit TLS succeed; the stream reports ``is_encrypted``.
    * ``UNTRUSTED_CERTIFICATE``: the handshake fails the way a certificate verification
      failure does: ``start_tls`` (or ``connect`` for implicit TLS) raises ``TLSError``,
      unless the client's context disables verification (``CERT_NONE``), exactly as with a
      real self-signed certificate.
    * ``UNAVAILABLE``: the server has no TLS: ``STARTTLS`` is answered
      ``454 4.7.0 TLS not available`` and implicit TLS fails with ``TLSModeMismatch``.
    """

    OK = "ok"
    UNTRUSTED_CERTIFICATE = "untrusted_certificate"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class FakeCapabilities:
    """The ESMTP extensions the fake server advertises in its EHLO reply.

    The defaults resemble a typical submission server. ``STARTTLS`` is not advertised once the
    link is encrypted; ``AUTH`` is not advertised before TLS when the transport's
    ``auth_requires_tls`` is true (as at Gmail).

    Attributes:
        starttls: advertise ``STARTTLS`` (RFC 3207).
        auth: SASL mechanisms for ``AUTH``; supported: PLAIN, LOGIN, XOAUTH2, OAUTHBEARER.
            Empty means no AUTH at all.
        pipelining: ``PIPELINING`` (RFC 2920). Without it, every command is synchronising.
        eight_bit_mime: ``8BITMIME`` (RFC 6152).
        smtputf8: ``SMTPUTF8`` (RFC 6531).
        enhanced_status_codes: ``ENHANCEDSTATUSCODES`` (RFC 2034); without it the server's
            own replies carry no enhanced codes.
        size: the ``SIZE`` limit in octets (RFC 1870); ``0`` advertises no fixed limit,
            ``None`` does not advertise SIZE (and enforces nothing).
        chunking: ``CHUNKING`` (RFC 3030): ``BDAT`` is accepted only when true.
        dsn: ``DSN`` (RFC 3461): ``RET``/``ENVID``/``NOTIFY``/``ORCPT`` accepted only when true.
        extra: further EHLO lines, advertised verbatim (e.g. ``"VRFY"``).
    """

    starttls: bool = True
    auth: tuple[str, ...] = ("PLAIN", "LOGIN")
    pipelining: bool = True
    eight_bit_mime: bool = True
    smtputf8: bool = True
    enhanced_status_codes: bool = True
    size: int | None = DEFAULT_MAX_SIZE
    chunking: bool = False
    dsn: bool = True
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in _FLAGS:
            check_flag(name, getattr(self, name))
        if isinstance(self.auth, str | bytes) or not isinstance(self.auth, tuple | list):
            raise ConfigurationError(
                f"FakeCapabilities.auth is a tuple of mechanisms, got {self.auth!r}",
                hint="pass e.g. auth=('PLAIN', 'LOGIN'), or () for no AUTH",
            )
        for mechanism in self.auth:
            # fullmatch: "PLAIN\n" would end the AUTH line of the EHLO reply early.
            if not isinstance(mechanism, str) or not _MECHANISM_RE.fullmatch(mechanism):
                raise ConfigurationError(
                    f"invalid SASL mechanism name {mechanism!r}",
                    hint="mechanism names are upper-case letters, digits, '-' and '_', "
                    "e.g. 'XOAUTH2'",
                )
        if self.size is not None and (
            isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0
        ):
            raise ConfigurationError(
                f"size must be an int >= 0 or None, got {self.size!r}",
                hint="pass size=0 to advertise SIZE without a limit, None to leave it out",
            )
        if isinstance(self.extra, str | bytes) or not isinstance(self.extra, tuple | list):
            raise ConfigurationError(
                f"FakeCapabilities.extra is a tuple of EHLO lines, got {self.extra!r}",
                hint="pass e.g. extra=('VRFY',)",
            )
        for line in self.extra:
            if not isinstance(line, str) or not line or _CONTROL_RE.search(line):
                raise ConfigurationError(
                    f"invalid extra EHLO line {line!r}",
                    hint="each extra line is one keyword line without CR, LF or controls",
                )

    @classmethod
    def gmail(cls) -> FakeCapabilities:
        """What ``smtp.gmail.com`` advertises (SIZE as seen in 2025; CHUNKING on)."""
        return cls(
            auth=("LOGIN", "PLAIN", "XOAUTH2", "OAUTHBEARER"),
            size=35_882_577,
            chunking=True,
            dsn=False,
        )

    def keywords(self, *, encrypted: bool, auth_allowed: bool) -> list[str]:
        """The EHLO lines after the greeting line, in the order Gmail uses."""
        lines: list[str] = []
        if self.size is not None:
            lines.append(f"SIZE {self.size}")
        if self.eight_bit_mime:
            lines.append("8BITMIME")
        if self.starttls and not encrypted:
            lines.append("STARTTLS")
        if self.auth and auth_allowed:
            lines.append("AUTH " + " ".join(self.auth))
        if self.enhanced_status_codes:
            lines.append("ENHANCEDSTATUSCODES")
        if self.pipelining:
            lines.append("PIPELINING")
        if self.chunking:
            lines.append("CHUNKING")
        if self.smtputf8:
            lines.append("SMTPUTF8")
        if self.dsn:
            lines.append("DSN")
        lines.extend(self.extra)
        return lines


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The fake server's fixed settings (see :class:`~smtpkit.testing.FakeTransport`)."""

    hostname: str
    capabilities: FakeCapabilities
    credentials: dict[str, str] | None
    require_auth: bool
    auth_requires_tls: bool
    tls: FakeTLS
    max_recipients: int | None

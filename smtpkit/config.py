"""Connection configuration as immutable values: the security mode, timeouts and endpoint.

Invariants:
    * Every value here is a frozen dataclass or an enum; variants are enum members, never
      combinations of booleans (DESIGN rule 6).
    * Every timeout is finite and positive by default (DESIGN rule 7).
"""

from __future__ import annotations

import enum
import ipaddress
import math
import ssl
from dataclasses import dataclass, field, replace

from smtpkit.errors import ConfigurationError

__all__ = ["Endpoint", "Security", "Timeouts", "is_loopback"]


class Security(enum.Enum):
    """How the connection is protected.

    * ``TLS``: implicit TLS from the first byte (RFC 8314 §3.3, port 465). Recommended.
    * ``STARTTLS``: plaintext greeting, then ``STARTTLS`` (RFC 3207, port 587). Required:
      if the server does not offer it, smtpkit raises and sends nothing else.
    * ``NONE``: plaintext throughout. AUTH is refused unless the host is a loopback address
      or the caller explicitly opts in.
    """

    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"

    @property
    def default_port(self) -> int:
        """465 for implicit TLS, 587 (submission, RFC 6409) otherwise."""
        return 465 if self is Security.TLS else 587


#: Default seconds for TCP connect plus the TLS handshake.
DEFAULT_CONNECT_TIMEOUT = 15.0
#: Default seconds for each command's reply.
DEFAULT_COMMAND_TIMEOUT = 60.0
#: RFC 5321 §4.5.3.2.6 asks clients to wait 10 minutes for the reply after the content.
DEFAULT_FINAL_REPLY_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Finite timeouts, in seconds.

    Attributes:
        connect: TCP connect plus TLS handshake.
        command: each reply to a command (greeting, EHLO, AUTH, MAIL, RCPT, DATA), as a
            whole: a reply that arrives a byte at a time must still be complete in time.
        final_reply: the reply after the message content. RFC 5321 §4.5.3.2.6 asks clients to
            wait 10 minutes here: the server may be scanning the message, and giving up early
            leaves the delivery's outcome unknown.
    """

    connect: float = DEFAULT_CONNECT_TIMEOUT
    command: float = DEFAULT_COMMAND_TIMEOUT
    final_reply: float = DEFAULT_FINAL_REPLY_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("connect", "command", "final_reply"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigurationError(
                    f"Timeouts.{name} must be a finite number of seconds > 0, got {value!r}"
                )

    @classmethod
    def coerce(cls, value: float | Timeouts | None) -> Timeouts:
        """A ``Timeouts`` from one number (used for every step, final reply too), or defaults."""
        if value is None:
            return cls()
        if isinstance(value, Timeouts):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(
                f"timeout must be a number of seconds or a Timeouts value, got {value!r}"
            )
        return cls(connect=value, command=value, final_reply=value)

    def with_connect(self, seconds: float) -> Timeouts:
        """A copy with another connect timeout."""
        return replace(self, connect=seconds)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """Where and how a transport connects.

    Attributes:
        host, port: the server.
        security: the :class:`Security` mode; with ``TLS`` the transport wraps at connect.
        tls_context: the context for TLS (implicit or STARTTLS).
        connect_timeout: seconds for TCP connect plus, for implicit TLS, the handshake.
        source_address: optional local ``(host, port)`` to bind.
    """

    host: str
    port: int
    security: Security = Security.STARTTLS
    tls_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    source_address: tuple[str, int] | None = None

    @property
    def server_hostname(self) -> str:
        """The name the certificate must match (the host, without IPv6 brackets)."""
        return self.host.strip("[]")

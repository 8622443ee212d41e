"""Connection configuration as immutable values: the security mode, timeouts and endpoint.

The bottom of :mod:`smtpkit.config`: transports, the engine, providers and the testing kit
import these values, so this module imports nothing of smtpkit but the errors.

Invariants:
    * Every value here is a frozen dataclass or an enum; variants are enum members, never
      combinations of booleans (DESIGN rule 6).
    * Every timeout is finite and positive by default (DESIGN rule 7).
    * :func:`check_host` and :func:`check_ehlo_name` refuse a name holding whitespace or a
      control character (a CR or LF would end a command line early and inject another
      one), and otherwise anything that is not a domain name or an address (RFC 5321
      §4.1.2 ``Domain`` / ``address-literal``); each refusal is a ``ConfigurationError``
      with a hint.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import ssl
from dataclasses import dataclass, field, replace

from smtpkit.errors import ConfigurationError

__all__ = [
    "Endpoint",
    "Security",
    "Timeouts",
    "check_ehlo_name",
    "check_host",
    "is_loopback",
    "is_loopback_peer",
]


class Security(enum.Enum):
    """How the connection is protected.

    * ``TLS``: implicit TLS from the first byte (RFC 8314 §3.3, port 465). Recommended.
    * ``STARTTLS``: plaintext greeting, then ``STARTTLS`` (RFC 3207, port 587). Required:
      if the server does not offer it, smtpkit raises and sends nothing else.
    * ``NONE``: plaintext throughout. AUTH is refused unless the address the connection
      reached is loopback (the host name does not decide) or the caller explicitly opts in.
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
            if (
                isinstance(value, bool)  # an int to Python, never a number of seconds
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ConfigurationError(
                    f"Timeouts.{name} must be a finite number of seconds > 0, got {value!r}",
                    hint="e.g. Timeouts(connect=15, command=60, final_reply=600), or timeout=30",
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
                f"timeout must be a number of seconds or a Timeouts value, got {value!r}",
                hint="e.g. timeout=30, or timeout=Timeouts(connect=15, command=60)",
            )
        return cls(connect=value, command=value, final_reply=value)

    def with_connect(self, seconds: float) -> Timeouts:
        """A copy with another connect timeout."""
        return replace(self, connect=seconds)


def is_loopback_peer(address: str | None) -> bool:
    """Whether ``address`` (the IP address a connection reached) is a loopback address.

    Only an address can be: 127.0.0.0/8, ``::1`` and IPv4-mapped ``::ffff:127.x.y.z``. A
    name (``localhost``, ``evil.localhost``), an empty string or ``None`` (a stream that
    cannot tell) is not: names may resolve anywhere.

    >>> is_loopback_peer("127.0.0.1"), is_loopback_peer("::ffff:127.0.0.1")
    (True, True)
    >>> is_loopback_peer("evil.localhost"), is_loopback_peer(None)
    (False, False)
    """
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False  # a name: never trusted as loopback
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


# -- host and EHLO names ---------------------------------------------------------------------

# RFC 1035 §2.3.1 labels (letters, digits, hyphens inside), plus "_" (see check_ehlo_name).
_LABEL_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
# Whitespace and controls: C0, DEL, C1, and the Unicode line and paragraph separators.
_UNSAFE_RE = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")
_MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2: at most 255 octets


def _domain_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a domain name, or ``None`` (``name`` is ASCII)."""
    body = name[:-1] if name.endswith(".") else name  # a final dot: the root, allowed
    if len(body) > _MAX_DOMAIN - 2:
        return "is longer than a domain name may be (253 characters)"
    for label in body.split("."):
        if not _LABEL_RE.fullmatch(label):
            if not label:
                return "has an empty label (two dots in a row, or a leading dot)"
            return (
                f"has an invalid label {label!r}: labels are 1 to 63 letters, digits and "
                "hyphens, not starting or ending with a hyphen"
            )
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check_host(host: object) -> str:
    """The server host without surrounding whitespace, or ``ConfigurationError``.

    Accepted: a domain name (IDNA names too), an IPv4 address, an IPv6 address with or
    without brackets.
    """
    if not isinstance(host, str):
        raise ConfigurationError(
            f"host must be a str (a server name or address), got {type(host).__name__}",
            hint="e.g. Submitter('smtp.example.com'), or Submitter.from_url(url) for a URL",
        )
    name = host.strip()
    if not name:
        raise ConfigurationError(
            "host is empty", hint="pass the server's name, e.g. Submitter('smtp.example.com')"
        )
    if "://" in name:
        raise ConfigurationError(
            f"host {name!r} is a URL, not a host name",
            hint="build from a URL with Submitter.from_url(url)",
        )
    if _UNSAFE_RE.search(name):
        raise ConfigurationError(
            f"host {name!r} contains whitespace or a control character (CR, LF, NUL, tab...)",
            hint="pass the bare server name, e.g. 'smtp.example.com'; a value read from a "
            "file or the environment may carry a stray line break",
        )
    if "@" in name:
        raise ConfigurationError(
            f"host {name!r} contains '@': it looks like an address, not a server name",
            hint="the server is e.g. 'smtp.gmail.com'; the account name goes in auth=",
        )
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if ":" in bare:
        if _is_ip(bare):
            return name
        head, _, tail = name.rpartition(":")
        hint = (
            f"pass the port separately: Submitter({head!r}, {tail})"
            if tail.isdigit()
            else "an IPv6 address is written like '::1' or '[2001:db8::1]'"
        )
        raise ConfigurationError(f"host {name!r} is not a host name or address", hint=hint)
    ascii_name = name
    if not name.isascii():
        try:
            ascii_name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ConfigurationError(
                f"host {name!r} is not a valid internationalised domain name",
                hint="check the spelling, or pass the A-label form (xn--...)",
            ) from None
    problem = _domain_problem(ascii_name)
    if problem is not None:
        raise ConfigurationError(
            f"host {name!r} {problem}", hint="pass the server's name, e.g. 'smtp.example.com'"
        )
    return name


def check_ehlo_name(name: object) -> str | None:
    """``name`` if it may follow EHLO (RFC 5321 §4.1.1.1), ``None`` for ``None``.

    A domain name in ASCII, or an address literal (RFC 5321 §4.1.3): ``[192.0.2.1]``,
    ``[IPv6:2001:db8::1]``. Underscores are tolerated in labels: machine names carry them,
    and submission servers do not check the EHLO name (RFC 6409 §6.1).
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise ConfigurationError(
            f"local_hostname must be a str or None, got {type(name).__name__}",
            hint="e.g. local_hostname='client.example.com'; None sends this machine's name",
        )
    if not name.strip():
        raise ConfigurationError(
            "local_hostname is empty",
            hint="pass None (the default) to send this machine's name in EHLO",
        )
    if _UNSAFE_RE.search(name):
        # A CR or LF would end the EHLO line and start a command of the caller's choosing.
        raise ConfigurationError(
            f"local_hostname {name!r} contains whitespace or a control character "
            "(CR, LF, NUL, tab...): EHLO takes one domain name (RFC 5321 §4.1.1.1)",
            hint="pass a bare name such as 'client.example.com', or None for the default",
        )
    if name.startswith("[") and name.endswith("]"):
        inner = name[1:-1]
        if inner[:5].upper() == "IPV6:":
            valid = _is_ip(inner[5:]) and ":" in inner[5:]
        else:
            valid = _is_ip(inner) and ":" not in inner
        if valid:
            return name
        raise ConfigurationError(
            f"local_hostname {name!r} is not an address literal (RFC 5321 §4.1.3)",
            hint="write '[192.0.2.1]' or '[IPv6:2001:db8::1]'",
        )
    if ":" in name and _is_ip(name):
        raise ConfigurationError(
            f"local_hostname {name!r} is a bare IPv6 address",
            hint=f"write it as an address literal: '[IPv6:{name}]' (RFC 5321 §4.1.3)",
        )
    if not name.isascii():
        try:
            a_label = name.encode("idna").decode("ascii")
        except UnicodeError:
            hint = "EHLO takes an ASCII name: pass the A-label form (xn--...)"
        else:
            hint = f"EHLO takes an ASCII name: pass the A-label form {a_label!r}"
        raise ConfigurationError(f"local_hostname {name!r} is not ASCII", hint=hint)
    problem = _domain_problem(name)
    if problem is not None:
        raise ConfigurationError(
            f"local_hostname {name!r} {problem}",
            hint="pass a name such as 'client.example.com', or None for this machine's name",
        )
    return name


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

"""Client commands as values, and the writer that turns them into safe wire bytes.

Invariants:
    * No argument can smuggle a second command: CR, LF, NUL and every other control
      character are refused before any byte is produced (the "SMTP smuggling" and header
      injection family). Addresses may not contain ``<``, ``>`` or spaces (a space only
      inside a quoted local part, RFC 5321 §4.1.2).
    * A command line, CRLF included, never exceeds :data:`MAX_COMMAND_LINE` octets except AUTH
      continuation lines, which RFC 4954 §4 lets grow to 12288 octets, and MAIL/RCPT lines
      carrying DSN parameters, which RFC 3461 §4 lets grow by :data:`DSN_LINE_EXTRA`.
    * ``Command.redacted`` is what transcripts and errors show: AUTH payloads never appear.
    * Commands are immutable values: the ``MAIL`` and ``RCPT`` commands built for an address
      and its parameters are kept (a bounded table) and given out again, so a sender used
      for every message is validated and encoded once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from smtpkit.errors import MessageError
from smtpkit.replies import Phase

__all__ = [
    "MAX_AUTH_LINE",
    "MAX_COMMAND_LINE",
    "Command",
    "validate_address",
]

#: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
#: RFC 3461 §4 (DSN) lets a RCPT line grow by 500 characters for NOTIFY and ORCPT, and a MAIL
#: line by 112 for RET and ENVID (an ENVID is at most 100 characters). Other lines keep 512.
DSN_LINE_EXTRA = {"MAIL": 112, "RCPT": 500}
_DSN_KEYWORDS = {"MAIL": ("RET=", "ENVID="), "RCPT": ("NOTIFY=", "ORCPT=")}
#: RFC 4954 §4: servers must accept AUTH continuation lines of at least 12288 octets.
MAX_AUTH_LINE = 12288

# C0 controls, DEL and the C1 controls: none may appear in a command argument.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# These patterns are used with fullmatch(): "$" alone would also accept a trailing "\n",
# which would let an AUTH argument end the command line early.
# ESMTP parameter: keyword=value (RFC 5321 §4.1.2 esmtp-param), printable, no spaces or "=".
_PARAM_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_PARAM_VALUE_RE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_MECHANISM_RE = re.compile(r"[A-Z0-9_-]{1,20}")  # RFC 4422 §3.1 sasl-mech
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_DOMAIN_LITERAL_RE = re.compile(r"\[[^\[\]\\]+\]")
# Addresses that matched _PLAIN_ADDRESS_RE (plain str only): a sender is checked once, not
# once per message. Bounded like _ENVELOPE below.
_PLAIN_KNOWN: set[str] = set()
_PLAIN_KEPT = 1024
# Envelope commands already built: (verb, address, parameters) -> Command. Bounded: past
# _ENVELOPE_KEPT entries it is emptied and refilled, so addresses made up per message cannot
# grow it without end. Only commands that passed every check are kept.
_ENVELOPE: dict[tuple[str, str, tuple[str, ...]], Command] = {}
_ENVELOPE_KEPT = 256
# RFC 5321 §4.1.2: a Quoted-string local part (qtextSMTP, quoted-pairSMTP; RFC 6531 §3.3
# adds UTF-8) is the one place an address may hold a space. "<" and ">" stay refused even
# there: a server that finds the path's end by the first ">" would read the rest as params.
_QUOTED_ADDRESS_RE = re.compile(
    r'"(?:[^"\\<>\x00-\x1f\x7f-\x9f]|\\[\x20-\x3b\x3d\x3f-\x7e])*"@[^ <>@]+'
)
# The common case, checked in one step: a printable-ASCII dot-atom local part (RFC 5322
# §3.2.3 atext) of at most 64 octets, "@", and dot-separated domain labels. Anything else
# (quoted local parts, UTF-8, literals, errors) takes the detailed checks below.
_PLAIN_ADDRESS_RE = re.compile(
    r"(?=[^@]{1,64}@)[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def _refuse_controls(what: str, value: str) -> None:
    match = _CONTROL_RE.search(value)
    if match is not None:
        raise MessageError(
            f"{what} contains the control character {match.group()!r}; CR, LF and other "
            "control characters are refused because they could inject SMTP commands",
            hint="remove line breaks and control characters from addresses and arguments",
        )


def validate_address(address: str, *, what: str = "address") -> str:
    """Check an envelope address (the part inside ``<...>``) and return it unchanged.

    The empty reverse-path ``""`` (null sender, RFC 5321 §4.5.5) is allowed.

    Raises:
        MessageError: the address has control characters, spaces (outside a quoted local
            part), angle brackets, or no single ``@`` between a local part and a domain.
    """
    if type(address) is str and address in _PLAIN_KNOWN:
        return address
    if not isinstance(address, str):
        raise MessageError(f"{what} must be a str, got {type(address).__name__}")
    if _PLAIN_ADDRESS_RE.fullmatch(address):
        if type(address) is str:
            if len(_PLAIN_KNOWN) >= _PLAIN_KEPT:
                _PLAIN_KNOWN.clear()
            _PLAIN_KNOWN.add(address)
        return address
    _refuse_controls(what, address)
    if address == "":
        return address
    if any(ch in address for ch in " <>") and not _QUOTED_ADDRESS_RE.fullmatch(address):
        raise MessageError(
            f"{what} {address!r} must be a bare address like user@example.com "
            "(no display name, spaces or angle brackets)"
        )
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise MessageError(f"{what} {address!r} is not an address of the form user@domain")
    if not _DOMAIN_LITERAL_RE.fullmatch(domain) and (
        domain.startswith(".") or domain.endswith(".") or ".." in domain
    ):
        raise MessageError(f"{what} {address!r} has an invalid domain {domain!r}")
    if len(local.encode("utf-8")) > 64 or len(domain.encode("utf-8")) > 255:
        # RFC 5321 §4.5.3.1.1-2: local part <= 64 octets, domain <= 255 octets.
        raise MessageError(f"{what} {address!r} is longer than RFC 5321 §4.5.3.1 allows")
    return address


def _validate_params(params: Sequence[str]) -> tuple[str, ...]:
    out = []
    for param in params:
        _refuse_controls("ESMTP parameter", param)
        key, eq, value = param.partition("=")
        if not _PARAM_KEY_RE.fullmatch(key) or (eq and not _PARAM_VALUE_RE.fullmatch(value)):
            raise MessageError(f"invalid ESMTP parameter {param!r} (RFC 5321 §4.1.2)")
        out.append(param)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Command:
    """One client command line (without its CRLF).

    Build commands with the class methods, which validate their arguments::

        >>> Command.mail("a@example.com", ["SIZE=120"]).to_bytes()
        b'MAIL FROM:<a@example.com> SIZE=120\\r\\n'

    Attributes:
        verb: the SMTP verb (``"MAIL"``) or ``""`` for an AUTH continuation line.
        line: the full command line as sent, without CRLF.
        phase: the phase whose reply this command draws.
        redacted: the line as shown in transcripts and errors.
        address: the envelope address for MAIL and RCPT.
        secrets: for AUTH lines, what the server's replies must never show: the base64
            payload and the raw texts the strategy declared (the SASL message, the
            password or token). The protocol core masks them in every reply to AUTH.
    """

    verb: str
    line: str
    phase: Phase
    redacted: str
    address: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)
    #: :meth:`to_bytes`, encoded once (commands are immutable, and MAIL, RCPT and DATA are
    #: given out again for every message).
    wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "wire", self.line.encode("utf-8") + b"\r\n")

    def to_bytes(self) -> bytes:
        """The command as it travels, CRLF-terminated, UTF-8 (RFC 6531 §3.3 when SMTPUTF8)."""
        return self.wire

    @classmethod
    def _plain(
        cls,
        verb: str,
        line: str,
        phase: Phase,
        address: str | None = None,
        params: Sequence[str] = (),
    ) -> Command:
        _refuse_controls(f"{verb} command", line)
        size = len(line.encode("utf-8")) + 2
        if size > MAX_COMMAND_LINE:
            dsn = _DSN_KEYWORDS.get(verb, ())
            if dsn and any(p.upper().startswith(dsn) for p in params):
                limit = MAX_COMMAND_LINE + DSN_LINE_EXTRA[verb]
                if size > limit:
                    raise MessageError(
                        f"{verb} command would be {size} octets; with DSN parameters "
                        f"RFC 3461 §4 allows {limit} including CRLF",
                        hint="shorten the ORCPT or ENVID value, or the other parameters",
                    )
            else:
                raise MessageError(
                    f"{verb} command would be {size} octets; RFC 5321 §4.5.3.1.4 allows "
                    f"{MAX_COMMAND_LINE} including CRLF"
                )
        return cls(verb, line, phase, line, address)

    @classmethod
    def ehlo(cls, hostname: str) -> Command:
        """``EHLO hostname`` (RFC 5321 §4.1.1.1)."""
        return cls._plain("EHLO", f"EHLO {_client_name(hostname)}", Phase.EHLO)

    @classmethod
    def helo(cls, hostname: str) -> Command:
        """``HELO hostname``, the pre-ESMTP greeting."""
        return cls._plain("HELO", f"HELO {_client_name(hostname)}", Phase.EHLO)

    @classmethod
    def starttls(cls) -> Command:
        """``STARTTLS`` (RFC 3207 §4)."""
        return cls._plain("STARTTLS", "STARTTLS", Phase.STARTTLS)

    @classmethod
    def mail(cls, sender: str, params: Sequence[str] = ()) -> Command:
        """``MAIL FROM:<sender> [params]`` (RFC 5321 §4.1.1.2)."""
        params = tuple(params)  # read once: an iterator would be empty the second time
        key = ("MAIL", sender, params)
        known = _known(key) if cls is Command else None
        if known is not None:
            return known
        validate_address(sender, what="sender")
        tail = "".join(f" {p}" for p in _validate_params(params))
        command = cls._plain("MAIL", f"MAIL FROM:<{sender}>{tail}", Phase.MAIL, sender, params)
        return _keep(key, command)

    @classmethod
    def rcpt(cls, recipient: str, params: Sequence[str] = ()) -> Command:
        """``RCPT TO:<recipient> [params]`` (RFC 5321 §4.1.1.3)."""
        params = tuple(params)  # read once: an iterator would be empty the second time
        key = ("RCPT", recipient, params)
        known = _known(key) if cls is Command else None
        if known is not None:
            return known
        if recipient == "":
            raise MessageError("a recipient address cannot be empty")
        validate_address(recipient, what="recipient")
        tail = "".join(f" {p}" for p in _validate_params(params))
        command = cls._plain("RCPT", f"RCPT TO:<{recipient}>{tail}", Phase.RCPT, recipient, params)
        return _keep(key, command)

    @classmethod
    def data(cls) -> Command:
        """``DATA`` (RFC 5321 §4.1.1.4); the content follows a ``354`` reply."""
        return cls._plain("DATA", "DATA", Phase.DATA)

    @classmethod
    def bdat(cls, size: int, *, last: bool) -> Command:
        """``BDAT size [LAST]`` (RFC 3030 §2); ``size`` octets of content follow at once."""
        if size < 0:
            raise ValueError("BDAT size must be >= 0")
        line = f"BDAT {size} LAST" if last else f"BDAT {size}"
        phase = Phase.MESSAGE if last else Phase.DATA
        return cls._plain("BDAT", line, phase)

    @classmethod
    def rset(cls) -> Command:
        """``RSET`` (RFC 5321 §4.1.1.5): abort the current transaction."""
        return cls._plain("RSET", "RSET", Phase.RSET)

    @classmethod
    def noop(cls) -> Command:
        """``NOOP`` (RFC 5321 §4.1.1.9): a cheap liveness check."""
        return cls._plain("NOOP", "NOOP", Phase.NOOP)

    @classmethod
    def quit(cls) -> Command:
        """``QUIT`` (RFC 5321 §4.1.1.10)."""
        return cls._plain("QUIT", "QUIT", Phase.QUIT)

    @classmethod
    def auth(
        cls,
        mechanism: str,
        initial_response: str | None = None,
        *,
        secrets: Sequence[str] = (),
    ) -> Command:
        """``AUTH mechanism [initial-response]`` (RFC 4954 §4), redacted in transcripts.

        Args:
            mechanism: the SASL mechanism name, e.g. ``"PLAIN"``.
            initial_response: base64 text, or ``"="`` (or ``""``) for an empty response;
                ``None`` to wait for the server's ``334`` challenge instead.
            secrets: raw texts the replies must not show (the decoded SASL message, the
                password); the initial response itself is always one.

        Raises:
            MessageError: a malformed mechanism or response, or a line over 512 octets
                (callers must then send the response after a ``334``: RFC 4954 §4).
        """
        if not _MECHANISM_RE.fullmatch(mechanism):
            raise MessageError(f"invalid SASL mechanism name {mechanism!r} (RFC 4422 §3.1)")
        if initial_response is None:
            line = f"AUTH {mechanism}"
            return cls._plain("AUTH", line, Phase.AUTH)
        if initial_response == "":
            # RFC 4954 §4: a zero-length initial response is sent as a single "=".
            initial_response = "="
        if initial_response != "=" and not _BASE64_RE.fullmatch(initial_response):
            raise MessageError("an AUTH initial response must be base64 text")
        line = f"AUTH {mechanism} {initial_response}"
        if len(line) + 2 > MAX_COMMAND_LINE:
            raise MessageError(
                f"AUTH {mechanism} with its initial response exceeds {MAX_COMMAND_LINE} octets; "
                "send the response after the 334 challenge instead (RFC 4954 §4)"
            )
        return cls(
            "AUTH",
            line,
            Phase.AUTH,
            f"AUTH {mechanism} ****",
            secrets=_auth_secrets(initial_response, secrets),
        )

    @classmethod
    def auth_response(cls, response: str, *, secrets: Sequence[str] = ()) -> Command:
        """A SASL continuation line answering a ``334``; redacted in transcripts.

        ``"*"`` cancels the exchange (RFC 4954 §4); ``""`` is an empty response.
        ``secrets`` are raw texts the replies must not show (see :meth:`auth`); the
        response itself is always one.
        """
        if response != "*" and not _BASE64_RE.fullmatch(response):
            raise MessageError("an AUTH continuation must be base64 text (or '*' to cancel)")
        if len(response) + 2 > MAX_AUTH_LINE:
            raise MessageError(f"AUTH continuation exceeds {MAX_AUTH_LINE} octets (RFC 4954 §4)")
        shown = response if response in ("", "*") else "****"
        return cls("", response, Phase.AUTH, shown, secrets=_auth_secrets(response, secrets))

    def __repr__(self) -> str:
        return f"Command({self.redacted!r})"


def _known(key: tuple[str, str, tuple[str, ...]]) -> Command | None:
    """The command kept for ``key``, if any (wrong-typed arguments are not looked up: the
    checks say what is wrong with them)."""
    if type(key[1]) is not str:
        return None
    try:
        return _ENVELOPE.get(key)
    except TypeError:  # an unhashable parameter
        return None


def _keep(key: tuple[str, str, tuple[str, ...]], command: Command) -> Command:
    """Remember a checked envelope command (only plain ``str`` keys: a subclass could
    compare equal to a different text)."""
    if type(command) is Command and all(type(part) is str for part in key[2]):
        if len(_ENVELOPE) >= _ENVELOPE_KEPT:
            _ENVELOPE.clear()
        _ENVELOPE[key] = command
    return command


def _auth_secrets(payload: str, extra: Sequence[str]) -> tuple[str, ...]:
    """The payload (unless it says nothing: ``=``, ``*``, empty) and the declared secrets."""
    if isinstance(extra, str):
        raise TypeError("secrets must be a sequence of str, not one str")
    found = [payload] if payload not in ("", "=", "*") else []
    return (*found, *(secret for secret in extra if secret))


def _client_name(hostname: str) -> str:
    """Validate the EHLO argument: a domain or an address literal (RFC 5321 §4.1.3)."""
    if not hostname or any(ch in hostname for ch in " \t<>") or _CONTROL_RE.search(hostname):
        raise MessageError(f"invalid local hostname {hostname!r} for EHLO")
    return hostname

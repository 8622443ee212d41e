"""The authentication contract: context, strategy protocol, SASL helpers and secret wrapper.

An authentication strategy turns credentials into SMTP ``AUTH`` commands. It does no I/O:
its :meth:`~AuthStrategy.flow` is a generator that yields :class:`~smtpkit.protocol.Command`
values and receives the server's :class:`~smtpkit.replies.Reply` for each one. The driver
(the Submitter) owns the socket::

    flow = strategy.flow(context)
    command = next(flow)                  # C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
    while True:
        reply = exchange(command)         # S: 235 2.7.0 Accepted
        try:
            command = flow.send(reply)
        except StopIteration as stop:
            details = stop.value
            break

Invariants:
    * A flow yields the ``AUTH`` command first. After each reply it yields another command
      only if the reply was ``334`` (RFC 4954 §4) and it has something more to say; for any
      other reply it returns at once, never yields again, and never retries or falls back to
      another mechanism (repeated logins trip limits such as Gmail's ``454 4.7.0 Too many
      login attempts``).
    * Secrets live in :class:`Secret`, whose ``repr``/``str`` are masked and which refuses to
      pickle; strategies refuse to pickle too. No error message holds a secret.
    * This package imports only :mod:`smtpkit.replies`, :mod:`smtpkit.errors` and
      :mod:`smtpkit.protocol`: no sockets, TLS, clocks, threads or logging.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeAlias, runtime_checkable

from smtpkit.errors import (
    ConfigurationError,
    CredentialKind,
    LocalProtocolError,
    RemoteProtocolError,
)
from smtpkit.protocol import Command
from smtpkit.replies import Reply

__all__ = [
    "AuthContext",
    "AuthFlow",
    "AuthStrategy",
    "NoCommonMechanism",
    "SaslExchange",
    "Secret",
    "b64decode_challenge",
    "b64encode_text",
]

#: What a strategy's ``flow()`` returns: yields commands, receives replies, and finally returns
#: optional details about a failure (e.g. the decoded JSON of an OAuth2 error challenge).
AuthFlow: TypeAlias = Generator[Command, Reply, Mapping[str, str] | None]

#: What ``SaslMechanismStrategy.exchange()`` returns: yields the client's SASL messages as
#: text (the first may be ``None``: "no initial response") and receives each ``334`` reply.
SaslExchange: TypeAlias = Generator[str | None, Reply, None]

#: The reply code of an AUTH continuation (RFC 4954 §4: "334 <base64 challenge>").
CONTINUE = 334

# Mechanisms that carry an OAuth2 bearer token instead of a password.
_OAUTH_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER", "XOAUTH"})
# How much of a malformed challenge an error message quotes.
_QUOTE_LIMIT = 60


class Secret:
    """A string that does not show itself: masked ``repr``/``str``, refuses to pickle.

    >>> token = Secret("hunter2")
    >>> token
    Secret('***')
    >>> f"{token}"
    '***'
    >>> token.reveal()
    'hunter2'

    Copies (``copy.copy``/``copy.deepcopy``) return the same object: it is immutable.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret text. Call it only where the value goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "credentials are not picklable; rebuild the strategy from configuration in each process"
        )

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self


@dataclass(frozen=True)
class AuthContext:
    """What a strategy may know about the session when it chooses and runs a mechanism.

    Attributes:
        mechanisms: the mechanism names the server advertised in its EHLO ``AUTH`` line
            (RFC 4954 §3), upper-cased; empty when the server offered no AUTH.
        host: the server host name (OAUTHBEARER puts it in its message, RFC 7628 §3.1).
        port: the server port.
        encrypted: whether TLS is active on the connection.
    """

    mechanisms: frozenset[str]
    host: str
    port: int
    encrypted: bool

    def __post_init__(self) -> None:
        # RFC 4954 §3 lists mechanism names in upper case; some servers send lower case.
        upper = frozenset(name.upper() for name in self.mechanisms)
        object.__setattr__(self, "mechanisms", upper)


@runtime_checkable
class AuthStrategy(Protocol):
    """Anything that can log in over SMTP AUTH without doing I/O itself."""

    @property
    def username(self) -> str:
        """The account name sent to the server (shown in errors; never secret)."""
        ...

    @property
    def credential_kind(self) -> CredentialKind:
        """What kind of secret this is; it shapes the hints on authentication errors."""
        ...

    def choose_mechanism(self, context: AuthContext) -> str:
        """The mechanism this strategy will use with this server.

        Raises:
            NoCommonMechanism: the server offers none of the strategy's mechanisms.
        """
        ...

    def flow(self, context: AuthContext) -> AuthFlow:
        """A generator of AUTH commands answering the server's replies (see the module doc)."""
        ...


class NoCommonMechanism(ConfigurationError):
    """The server offers no AUTH mechanism that the strategy can use.

    Raised before anything is sent, so it costs no login attempt.

    Attributes:
        offered: the mechanisms the server advertised, sorted (empty when it offered none).
        supported: the mechanisms the strategy would use, in its preference order.
        strategy: the strategy's class name.
    """

    def __init__(
        self,
        *,
        offered: Iterable[str],
        supported: Sequence[str],
        strategy: str,
        encrypted: bool,
        hint: str | None = None,
    ) -> None:
        self.offered: tuple[str, ...] = tuple(sorted(offered))
        self.supported: tuple[str, ...] = tuple(supported)
        self.strategy = strategy
        wanted = ", ".join(self.supported) or "nothing"
        if self.offered:
            message = (
                f"no AUTH mechanism in common: the server offers {' '.join(self.offered)}; "
                f"{strategy} supports {wanted}"
            )
        else:
            message = (
                f"the server advertised no AUTH mechanisms (no AUTH in its EHLO reply); "
                f"{strategy} supports {wanted}"
            )
        if hint is None:
            hint = _default_hint(self.offered, encrypted)
        super().__init__(message, hint=hint)


def _default_hint(offered: Sequence[str], encrypted: bool) -> str:
    if not offered and not encrypted:
        # Gmail, Microsoft 365 and most submission servers advertise AUTH only after TLS
        # (RFC 3207 §4.2: the client must discard what it learnt before STARTTLS).
        return "the server offers AUTH only after TLS; use Security.STARTTLS or Security.TLS"
    if not offered:
        return (
            "check the host and port: submission is port 587 (STARTTLS) or 465 (TLS); "
            "port 25 relays between servers and often offers no AUTH"
        )
    if set(offered) <= _OAUTH_MECHANISMS:
        return "this server accepts only OAuth2 here; use an OAuth2 strategy (docs/oauth.md)"
    return f"use a strategy for one of the offered mechanisms: {', '.join(offered)}"


def b64encode_text(text: str) -> str:
    """Base64 of the UTF-8 bytes of ``text``, as SASL responses travel (RFC 4954 §4).

    >>> b64encode_text("\\0alice\\0secret")
    'AGFsaWNlAHNlY3JldA=='
    """
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def b64decode_challenge(reply: Reply) -> bytes:
    """Decode the base64 challenge of a ``334`` reply (RFC 4954 §4).

    ::

        S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+

    gives ``b"<1896.697170952@postoffice.reston.mci.net>"``. A bare ``334`` gives ``b""``.

    Raises:
        LocalProtocolError: ``reply`` is not a ``334``.
        RemoteProtocolError: the challenge is not valid base64.
    """
    if reply.code != CONTINUE:
        raise LocalProtocolError(f"b64decode_challenge() expects a 334 reply, got {reply.code}")
    text = "".join(line.strip() for line in reply.lines)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        quoted = text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "..."
        raise RemoteProtocolError(
            f"the server's 334 challenge {quoted!r} is not valid base64 (RFC 4954 §4)"
        ) from None


def check_credential(what: str, value: str | Secret) -> str:
    """Validate a username or secret given by the caller; never echo the value back.

    Raises:
        ConfigurationError: not a str, empty, or containing NUL (the message names ``what``
            only, never the value).
    """
    if isinstance(value, Secret):
        value = value.reveal()
    if not isinstance(value, str):
        raise ConfigurationError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ConfigurationError(f"{what} is empty")
    if "\0" in value:
        # RFC 4616 §2: PLAIN separates its fields with NUL, so no field may contain one.
        raise ConfigurationError(f"{what} contains a NUL character, which SASL cannot carry")
    return value

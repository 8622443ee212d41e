"""The authentication contract: context, strategy protocol, SASL helpers and secret wrapper.

An authentication strategy turns credentials into SMTP ``AUTH`` commands. It does no I/O:
its :meth:`~AuthStrategy.flow` is a generator that yields :class:`~smtpkit.protocol.Command`
values and receives the server's :class:`~smtpkit.replies.Reply` for each one. The driver
(the Submitter, the doctor) owns the socket and hands :func:`drive_flow` its one-command
exchange::

    reply, details = drive_flow(strategy.flow(context), exchange)
    # C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
    # S: 235 2.7.0 Accepted          -> reply; details: what the flow returned (or None)

Invariants:
    * A flow yields the ``AUTH`` command first. After each reply it yields another command
      only if the reply was ``334`` (RFC 4954 §4) and it has something more to say; for any
      other reply it returns at once, never yields again, and never retries or falls back to
      another mechanism (repeated logins trip limits such as Gmail's ``454 4.7.0 Too many
      login attempts``).
    * Secrets live in :class:`Secret`, whose ``repr``/``str`` are masked and which refuses to
      pickle; strategies refuse to pickle too. No error message holds a secret.
    * :func:`drive_flow` leaves no exchange half-open: a flow that stops (or fails) on a
      ``334`` challenge is cancelled with ``*`` (RFC 4954 §4), so the server answers it with
      a final reply and the connection can go on (or QUIT) cleanly.
    * This package imports only :mod:`smtpkit.replies`, :mod:`smtpkit.errors` and
      :mod:`smtpkit.protocol`: no sockets, TLS, clocks, threads or logging.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeAlias, TypeVar, runtime_checkable

from smtpkit.errors import (
    ConfigurationError,
    CredentialKind,
    LocalProtocolError,
    NoCommonMechanism,
    RemoteProtocolError,
    SMTPError,
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
    "drive_flow",
    "flow_exchanges",
]

#: What a strategy's ``flow()`` returns: yields commands, receives replies, and finally returns
#: optional details about a failure (e.g. the decoded JSON of an OAuth2 error challenge).
AuthFlow: TypeAlias = Generator[Command, Reply, Mapping[str, str] | None]

#: What ``SaslMechanismStrategy.exchange()`` returns: yields the client's SASL messages as
#: text (the first may be ``None``: "no initial response") and receives each ``334`` reply.
SaslExchange: TypeAlias = Generator[str | None, Reply, None]

#: The reply code of an AUTH continuation (RFC 4954 §4: "334 <base64 challenge>").
CONTINUE = 334

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


def drive_flow(
    flow: AuthFlow, exchange: Callable[[Command], Reply]
) -> tuple[Reply, Mapping[str, str] | None]:
    """Run an AUTH flow to its final reply through ``exchange`` (RFC 4954 §4).

    ``exchange(command)`` sends one command and returns the server's reply; this function
    does no I/O of its own. It sends the flow's first command, feeds each reply back, and
    stops when the flow returns. If the flow stopped on a ``334`` (it had nothing more to
    say to a challenge), the exchange is cancelled with ``*`` and the server's answer to that
    becomes the reply (``501`` from most servers)::

        C: AUTH XOAUTH2 dXNlcj1...
        S: 334 eyJzdGF0dXMiOiI0MDAi...     <- an error challenge: the flow returns its details
        C: *
        S: 535 5.7.8 Username and Password not accepted

    Args:
        flow: a strategy's generator (``strategy.flow(context)`` or ``token_flow(...)``).
        exchange: sends one command and returns its reply.

    Returns:
        The final reply (``235`` on success) and what the flow returned (e.g. the decoded
        OAuth2 error challenge), or ``None``.

    Raises:
        SMTPError: whatever the flow raises (its first ``next()`` raises
            :class:`~smtpkit.errors.NoCommonMechanism` before anything is sent; an
            unreadable challenge raises after the exchange is cancelled with ``*``), and
            whatever ``exchange`` raises.
    """

    def at_once(command: Command) -> Generator[NoReturn, object, Reply]:
        yield from ()  # a step that never waits: ``exchange`` answers at once
        return exchange(command)

    steps = flow_exchanges(flow, at_once)
    try:
        next(steps)
    except StopIteration as done:
        result: tuple[Reply, Mapping[str, str] | None] = done.value
        return result
    raise AssertionError("an exchange that answers at once never waits")  # pragma: no cover


Y = TypeVar("Y")


def flow_exchanges(
    flow: AuthFlow, exchange: Callable[[Command], Generator[Y, object, Reply]]
) -> Generator[Y, object, tuple[Reply, Mapping[str, str] | None]]:
    """The AUTH exchanges of ``flow``, the cancel with ``*`` included (RFC 4954 §4).

    The one statement of the rules :func:`drive_flow` follows, for a driver whose exchange
    is itself a step that yields (the send engine's ``link.exchange`` yields its I/O):
    ``exchange(command)`` is a generator that returns the reply; what it yields is passed
    through.
    """
    command = next(flow)
    while True:
        reply = yield from exchange(command)
        try:
            command = flow.send(reply)
        except StopIteration as stop:
            details: Mapping[str, str] | None = stop.value
            break
        except SMTPError:
            if reply.code == CONTINUE:
                # The flow could not answer the challenge: cancel, then report why. A
                # failure of the cancel itself must not hide that reason.
                with contextlib.suppress(SMTPError):
                    yield from exchange(Command.auth_response("*"))
            raise
    if reply.code == CONTINUE:
        # The flow gave up mid-exchange: cancel it so the server sends a final reply.
        reply = yield from exchange(Command.auth_response("*"))
    return reply, details


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
        ConfigurationError: not a str, empty, containing NUL, or not encodable as UTF-8 (a
            lone surrogate); the message names ``what`` only, never the value.
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
    if not _encodes_as_utf8(value):
        # Raised here, outside the except block: the UnicodeEncodeError holds the value.
        raise ConfigurationError(
            f"{what} is not valid UTF-8 text: it holds a lone surrogate, what Python makes of "
            "a byte that is not UTF-8 (e.g. Latin-1) read from the environment or a file",
            hint="set the variable as UTF-8, or decode the bytes with their real encoding "
            "(e.g. raw.decode('latin-1')) and pass the text",
        )
    return value


def _encodes_as_utf8(text: str) -> bool:
    """Whether ``text`` can go on the wire as UTF-8 (RFC 4616 §2), i.e. has no surrogate."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

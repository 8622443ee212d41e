"""Effects: what the engine asks its driver to do, and what the driver answers.

Every engine step is a generator of type :data:`Steps` ``[R]``: it yields effect objects,
receives each effect's answer through ``send()``, and returns its result ``R``. A driver is
one loop that performs effects::

    answer, failure = None, None
    while True:
        try:
            effect = steps.throw(failure) if failure else steps.send(answer)
        except StopIteration as done:
            return done.value
        answer, failure = None, None
        try:
            answer = perform(effect)          # socket, asyncio stream, token provider...
        except TransportError as error:       # (any SMTPError) the effect failed:
            failure = error                   # raised inside the engine at the yield

==================  ==========================================  ==============================
effect              the driver does                             and answers
==================  ==========================================  ==============================
``Connect``         open a stream (TCP; implicit TLS: the       :class:`Connected` (the peer
                    handshake too) by ``deadline``              address actually connected to)
``Write``           send all of ``data`` (``timeout`` s)        ``None``
``Receive``         read what arrives, by ``deadline``          ``bytes``; ``b""`` at EOF
``StartTLS``        upgrade the stream (after ``220``)          ``None``
``FetchToken``      ``provider.get_token(...)``                 an ``AccessToken``
``TakeNext``        hand out the next job *if it is ready now*  a job, or ``None``
``Report``          record ``job``'s outcome (never waits)      ``None``
``Close``           close the stream (no QUIT: the engine       ``None``
                    sent it when it should)
``Log``             log ``text`` (``WIRE``: ``smtpkit.wire``)   ``None``
==================  ==========================================  ==============================

A failed effect is answered by throwing the ``SMTPError`` into the generator: a timeout as
``OperationTimeout``, a lost connection as ``ServerDisconnected``, a bad certificate as
``TLSError``, a token failure as ``TokenRefreshError``.

Invariants:
    * Effects are values nobody changes once yielded; the engine never holds a socket, a
      clock or a lock. The three made for every message (``Write``, ``Receive``,
      ``Report``) are plain slotted dataclasses rather than frozen ones: a frozen
      dataclass sets each field through ``object.__setattr__``, three times slower, and
      the threaded driver must cost no more CPU per message than the code it replaced.
    * Deadlines are absolute values of the clock the driver gave the engine: a deadline
      bounds a whole step (one reply, one handshake), however many reads it takes.
    * ``TakeNext`` and ``Report`` are answered at once: the driver never waits inside an
      open transaction (rate limits, backoffs and callbacks happen between transactions).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar

from smtpkit.auth import AccessToken, TokenProvider
from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError

__all__ = [
    "CLOSE",
    "TAKE_NEXT",
    "Close",
    "Connect",
    "Connected",
    "Effect",
    "FetchToken",
    "Log",
    "LogLevel",
    "Receive",
    "Report",
    "StartTLS",
    "Steps",
    "TakeNext",
    "Write",
]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Connect:
    """Open a new stream to the configured endpoint by ``deadline`` (implicit TLS included)."""

    deadline: float


@dataclass(frozen=True, slots=True)
class Connected:
    """The answer to :class:`Connect`.

    Attributes:
        peer: the address of the socket actually connected to (``getpeername()``), or, for
            an in-memory stream, the host it stands for. The plaintext-AUTH rule is decided
            on this, never on the configured host name.
        encrypted: TLS is already up (implicit TLS).
    """

    peer: str | None
    encrypted: bool


@dataclass(slots=True)  # not frozen: made for every message (see the module doc)
class Write:
    """Send all of ``data``; give up (``OperationTimeout``) after ``timeout`` seconds."""

    data: bytes
    timeout: float


@dataclass(slots=True)  # not frozen: made for every message (see the module doc)
class Receive:
    """Read the next bytes (at least one), or ``b""`` at end of stream, by ``deadline``.

    One reply may take several ``Receive`` effects: they all carry the same deadline, so a
    server dripping a reply byte by byte still times out when the reply is due.
    """

    deadline: float


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Run the TLS handshake (after ``220`` to STARTTLS) by ``deadline``, verifying the
    certificate for ``server_hostname`` with the driver's TLS context."""

    server_hostname: str
    deadline: float


@dataclass(frozen=True, slots=True)
class FetchToken:
    """Ask ``provider`` for an OAuth2 access token (``get_token(force_refresh=, rejected=)``)."""

    provider: TokenProvider
    force_refresh: bool = False
    rejected: AccessToken | None = None


class TakeNext:
    """Answer with the next job if one may start *now* (no rate-limit wait), else ``None``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TakeNext()"


class Close:
    """Close the stream without a word (the engine already sent QUIT where it should)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Close()"


#: The one instance of each effect that carries no data.
TAKE_NEXT: Final = TakeNext()
CLOSE: Final = Close()


@dataclass(slots=True)  # not frozen: made for every message (see the module doc)
class Report:
    """``job`` has its outcome: a :class:`~smtpkit.SendResult` or the error it ended with.

    The outcome is final for this connection. Errors that say the message was certainly not
    accepted (``ConnectionStale``) may be sent again on another connection.
    """

    job: object
    result: SendResult | SMTPError


class LogLevel(enum.Enum):
    """Where a :class:`Log` effect goes."""

    WIRE = "wire"  # DEBUG on logger "smtpkit.wire": one redacted C:/S: line
    DEBUG = "debug"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the driver's logger; never holds a secret (AUTH lines are redacted)."""

    level: LogLevel
    text: str


Effect: TypeAlias = (
    Connect | Write | Receive | StartTLS | FetchToken | TakeNext | Report | Close | Log
)

#: An engine step: yields effects, receives their answers, returns ``R``.
Steps: TypeAlias = Generator[Effect, object, R]

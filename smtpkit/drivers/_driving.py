"""What both driver loops share: the connection they hold, the engine steps they run, and
the effects that do no I/O.

A driver resumes the engine's generator with each effect's answer (or throws the effect's
``SMTPError`` into it) until the step returns; see :mod:`smtpkit.engine._effects`. The
effects that touch a stream or a token provider are each driver's own methods, found
through one table (:meth:`DriverBase.handlers`): ``connect``, ``write``, ``receive``,
``start_tls``, ``fetch_token`` and ``close``. ``TakeNext``, ``Report`` and ``Log`` are
answered here, at once, the same way for both (:meth:`DriverBase.local`).

Invariants:
    * ``TakeNext`` and ``Report`` call back synchronously and never wait: nothing waits
      inside an open transaction.
    * A stopped run (an exception in the driver, a cancelled task) reports every message
      still open - unknown after its final ``.``, else stale - and its connection is
      aborted, never handed back mid-transaction (:meth:`DriverBase.abandon`).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Generic, TypeVar

from smtpkit.config import Endpoint
from smtpkit.engine import (
    DEADLINE_PASSED,
    Close,
    Connect,
    FetchToken,
    Link,
    LinkSettings,
    Log,
    LogLevel,
    Receive,
    Report,
    StartTLS,
    Steps,
    Submission,
    TakeNext,
    Transactions,
    Write,
    close_link,
    open_link,
    probe_link,
)
from smtpkit.engine._result import SendResult
from smtpkit.errors import (
    ConnectionStale,
    DeliveryUnknown,
    LocalProtocolError,
    OperationTimeout,
    SMTPError,
)

__all__ = ["AnyReporter", "Connection", "DriverBase", "Reporter", "Taker"]

logger = logging.getLogger("smtpkit")
wire_logger = logging.getLogger("smtpkit.wire")

_LOG_LEVELS = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO}

#: The driver method that performs each effect with I/O (each driver defines them all).
_HANDLERS: dict[type, str] = {
    Write: "write",
    Receive: "receive",
    Connect: "connect",
    StartTLS: "start_tls",
    FetchToken: "fetch_token",
    Close: "close",
}

J = TypeVar("J", bound=Submission)
S = TypeVar("S")
TR = TypeVar("TR")  # a driver's transport
#: The engine's ``TakeNext``: a job that may start now, or ``None``.
Taker = Callable[[], object]
#: Where a ``Report`` goes: ``report(job, outcome)``.
Reporter = Callable[[J, SendResult | SMTPError], None]
#: A ``Report`` consumer for any job type.
AnyReporter = Callable[[object, SendResult | SMTPError], None]


class Connection(Generic[S]):
    """A link and the stream under it, as a pool holds them."""

    __slots__ = ("generation", "link", "stream", "timeout")

    def __init__(self, generation: int = 0) -> None:
        self.stream: S | None = None
        self.link: Link | None = None
        self.generation = generation
        #: The timeout last given to a synchronous stream (``None``: not set yet).
        self.timeout: float | None = None

    def open_stream(self) -> S:
        """The stream, for an effect that needs one (the engine never asks without)."""
        if self.stream is None:
            raise LocalProtocolError("an effect needs a stream and none is open")
        return self.stream

    def abort(self) -> None:
        """Close the stream at once (no QUIT); the link is dead."""
        if self.link is not None:
            self.link.mark_dead()
        stream, self.stream = self.stream, None
        if stream is not None:
            self.drop(stream)

    def drop(self, stream: S) -> None:
        """Close ``stream`` without a word (a driver's connection class says how)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Connection {self.link!r}>"


class DriverBase(Generic[TR]):
    """The clock, the engine's steps, and the effects every driver answers the same way.

    Attributes:
        transport: what ``Connect`` opens a stream with.
        settings: what the engine negotiates each connection with.
        endpoint: where ``Connect`` connects to.
        tls_context: the context for ``StartTLS`` (``None``: the system's CAs).
        clock: monotonic seconds; every deadline the engine yields is a value of it.
    """

    def __init__(
        self,
        transport: TR,
        settings: LinkSettings,
        endpoint: Endpoint,
        tls_context: ssl.SSLContext | None,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.settings = settings
        self.endpoint = endpoint
        self.tls_context = tls_context
        self.clock = clock
        self._handlers = self.handlers()

    def context(self) -> ssl.SSLContext:
        """The TLS context for ``StartTLS``."""
        return self.tls_context or ssl.create_default_context()

    def handlers(self) -> dict[type, Callable[..., object]]:
        """The driver's method for each effect that does I/O: ``method(effect, conn)``."""
        return {kind: getattr(self, name) for kind, name in _HANDLERS.items()}

    def left(self, deadline: float) -> float:
        """Seconds until ``deadline``; ``OperationTimeout`` once it has passed."""
        left = deadline - self.clock()
        if left <= 0:
            raise OperationTimeout(DEADLINE_PASSED)
        return left

    # -- the engine's steps --------------------------------------------------------------

    def opening(self) -> Steps[Link]:
        """Connect, negotiate and log in (with ``Log(WIRE)`` lines if that logger is on)."""
        trace = wire_logger.isEnabledFor(logging.DEBUG)
        return open_link(self.settings, clock=self.clock, trace=trace)

    @staticmethod
    def closing(link: Link) -> Steps[None]:
        """QUIT (when still usable) and close."""
        return close_link(link)

    def closing_by(self, link: Link, deadline: float) -> Steps[None]:
        """:meth:`closing`, with every wait ending by ``deadline`` at the latest.

        For shutdown: several connections share one budget for their QUIT replies
        (RFC 5321 §4.1.1.10: the client SHOULD wait for the reply to QUIT, but an
        application that is closing must not hang on a server that never sends it). A
        wait cut short is an ``OperationTimeout``, which closing swallows like any other.
        """
        steps = self.closing(link)
        effect = steps.send(None)
        try:
            while True:
                if type(effect) is Receive and effect.deadline > deadline:
                    effect = Receive(deadline)
                elif type(effect) is Write:
                    # Never 0: a zero socket timeout means non-blocking, not "no time left".
                    left = max(deadline - self.clock(), 0.001)
                    effect = Write(effect.data, min(effect.timeout, left))
                try:
                    answer = yield effect
                except SMTPError as error:
                    effect = steps.throw(error)
                else:
                    effect = steps.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()

    @staticmethod
    def probing(link: Link) -> Steps[bool]:
        """NOOP before reusing an idle link."""
        return probe_link(link)

    @staticmethod
    def transactions(link: Link, first: J) -> Transactions[J]:
        """The run of messages on ``link``: ``first``, then what ``TakeNext`` gives."""
        return Transactions(link, first)

    # -- effects without I/O -------------------------------------------------------------

    @staticmethod
    def local(effect: object, take: Taker | None, report: AnyReporter | None) -> object:
        """Answer ``TakeNext``, ``Report`` or ``Log`` (anything else is a bug)."""
        kind = type(effect)
        if kind is TakeNext:
            return take() if take is not None else None
        if kind is Report:
            assert isinstance(effect, Report)
            if report is None:
                raise LocalProtocolError("a Report with no one to report to")
            report(effect.job, effect.result)
        elif kind is Log:
            assert isinstance(effect, Log)
            if effect.level is LogLevel.WIRE:
                wire_logger.debug("%s", effect.text)
            else:
                logger.log(_LOG_LEVELS[effect.level], "%s", effect.text)
        else:
            raise LocalProtocolError(f"cannot perform {effect!r}")
        return None

    @staticmethod
    def abandon(run: Transactions[J], error: BaseException, report: Reporter[J]) -> None:
        """Report every message ``run`` left open when it stopped with ``error``.

        Unknown after the final ``.`` (with a WARNING naming the Message-ID: it may have
        been delivered), otherwise not accepted. A driver's own failure (an ``SMTPError``
        the engine did not turn into outcomes) is each open message's outcome as it is, so
        a local fault is not resent as if the connection had merely dropped.
        """
        for job, left_open in run.abandoned(error):
            outcome: SMTPError = left_open
            if isinstance(left_open, DeliveryUnknown):
                logger.warning(
                    "send stopped after the message was sent, before the server "
                    "answered; it may have been delivered: message_id=%s",
                    left_open.message_id,
                )
            elif isinstance(left_open, ConnectionStale) and isinstance(error, SMTPError):
                outcome = error
            report(job, outcome)

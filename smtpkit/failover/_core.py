"""What :class:`~smtpkit.Failover` and :class:`~smtpkit.AsyncFailover` share, with no I/O.

Job: outcomes that name their server (:class:`FailoverResult`, :func:`annotate`), the checks
on the list of servers, the configuration both drivers hold (:class:`FailoverBase`), and the
bookkeeping of one ``send_many`` call (:class:`BatchBook`): where each message goes next and
what its final outcome is. The drivers only send and call back.

Invariants:
    * An error is never changed in place: :func:`annotate` returns a copy (a batch may hand
      the same error object to every message a refused login stopped).
    * Annotations are JSON-safe (``str``, tuples of ``str``), so an annotated error still
      pickles and is still rebuilt by ``type(error)(*error.args)``.
    * :class:`BatchBook` gives each message one final outcome; after :meth:`BatchBook.stop`
      a message that met only server failures has none (``None``: not sent, may be sent
      again), as ``BatchInterrupted`` documents.
    * A message that needed an extension no server left to try offers ends with the last
      ``ExtensionNotOffered``, whose hint (on the copy) names the extension and the server
      (:func:`exhausted`); :class:`Route` and :class:`BatchBook` both end that way.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeAlias, TypeVar

from smtpkit import BatchInterrupted, SendResult
from smtpkit.errors import ConfigurationError, DeliveryUnknown, ExtensionNotOffered, SMTPError
from smtpkit.failover._board import (
    Board,
    FailoverStrategy,
    check_cooldown,
    is_server_failure,
    may_move,
)

__all__ = [
    "BatchBook",
    "FailoverBase",
    "FailoverResult",
    "Route",
    "annotate",
    "exhausted",
    "handled_by",
    "server_labels",
]

logger = logging.getLogger("smtpkit.failover")

#: Seconds a server that failed is skipped by default: long enough not to hammer a server
#: that is down or throttling, short enough that a primary comes back within a minute.
DEFAULT_COOLDOWN = 30.0

Outcome: TypeAlias = SendResult | SMTPError
S = TypeVar("S")


@dataclass(frozen=True)
class FailoverResult(SendResult):
    """A :class:`~smtpkit.SendResult` that also says which server accepted the message.

    Attributes:
        server: the server that accepted it, as ``host:port`` (see :func:`server_labels`).
        servers_tried: every server tried for it, in order; the last is ``server``.
    """

    server: str = ""
    servers_tried: tuple[str, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # SendResult's own __reduce__ would rebuild a plain SendResult; a mappingproxy does
        # not pickle, so the fields travel as a plain dict.
        values = _result_fields(self)
        values["rejected"] = dict(self.rejected)
        return (_rebuild_result, (values, self.server, self.servers_tried))


def _result_fields(result: SendResult) -> dict[str, Any]:
    # Every field SendResult has, whatever it gains later.
    return {f.name: getattr(result, f.name) for f in fields(SendResult) if f.init}


def _rebuild_result(values: dict[str, Any], server: str, tried: tuple[str, ...]) -> FailoverResult:
    return FailoverResult(**values, server=server, servers_tried=tried)


def handled_by(outcome: SendResult | BaseException) -> str | None:
    """The server (``host:port``) that gave a Failover outcome, or ``None`` for any other."""
    server = getattr(outcome, "server", None)
    return server if isinstance(server, str) else None


def server_labels(submitters: Sequence[Any]) -> tuple[str, ...]:
    """How outcomes name each server: ``host:port`` (``[::1]:587`` for IPv6), made unique
    with ``#2``, ``#3`` when two submitters reach the same server (two accounts, say)."""
    labels: list[str] = []
    for submitter in submitters:
        host = str(submitter.host)
        host = f"[{host}]" if ":" in host else host
        label = base = f"{host}:{submitter.port}"
        number = 1
        while label in labels:
            number += 1
            label = f"{base}#{number}"
        labels.append(label)
    return tuple(labels)


def annotate(error: SMTPError, server: str, tried: Sequence[str]) -> SMTPError:
    """A copy of ``error`` that names the server that gave it and every server tried."""
    routed = copy.copy(error)  # SMTPError.__reduce__: same class, same attributes
    routed.server = server  # type: ignore[attr-defined]
    routed.servers_tried = tuple(tried)  # type: ignore[attr-defined]
    routed.__cause__ = error.__cause__
    routed.__suppress_context__ = error.__suppress_context__
    return routed.with_traceback(error.__traceback__)


def exhausted(error: SMTPError) -> SMTPError:
    """The outcome of a message that may move on but has no server left to try.

    ``error`` is an :func:`annotate` copy. For an ``ExtensionNotOffered`` its hint says
    what would take the message: a server that offers the extension (the refusal's own
    hint, e.g. "use an ASCII address", follows). Any other error is returned as it is.
    """
    if not isinstance(error, ExtensionNotOffered):
        return error
    server = getattr(error, "server", "the server")
    tried = getattr(error, "servers_tried", ())
    extension = error.extension or "the extension it needs"
    hint = f"{server}, the last server tried, does not offer {extension}; list a server that "
    hint += f"offers {extension} among the failover's servers"
    if len(tried) > 1:
        hint += f" (tried: {', '.join(tried)})"
    error.hint = f"{hint}; or: {error.hint}" if error.hint else hint
    return error


class FailoverBase(Generic[S]):
    """The configuration and the decisions a Failover driver holds; ``S`` its submitters."""

    _kind: type[object]
    _twin: str

    def __init__(
        self,
        submitters: Sequence[S],
        *,
        strategy: FailoverStrategy | str,
        cooldown: float,
        clock: Callable[[], float],
    ) -> None:
        self._submitters: tuple[S, ...] = _check_submitters(submitters, self._kind, self._twin)
        self._strategy = FailoverStrategy.coerce(strategy)
        self._cooldown = check_cooldown(cooldown)
        if not callable(clock):
            raise ConfigurationError("clock must be a function returning seconds")
        self._labels = server_labels(self._submitters)
        self._board = Board(
            len(self._submitters), self._strategy, cooldown=self._cooldown, clock=clock
        )

    @property
    def submitters(self) -> tuple[S, ...]:
        """The submitters, in the order given."""
        return self._submitters

    @property
    def servers(self) -> tuple[str, ...]:
        """How outcomes name each server (``host:port``), in the order given."""
        return self._labels

    @property
    def strategy(self) -> FailoverStrategy:
        """How servers are ordered for each message."""
        return self._strategy

    @property
    def cooldown(self) -> float:
        """Seconds a failing server is skipped."""
        return self._cooldown

    def cooling_down(self) -> dict[str, float]:
        """The servers skipped now, each with the seconds left of its cool-down."""
        return {self._labels[index]: left for index, left in self._board.cooling().items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self._labels)}, strategy={self._strategy.value})"

    def _route(self) -> Route:
        """A new message's way through the servers, for a driver's ``send`` loop."""
        return Route(self._board, self._judge, self._routed)

    def _routed(self, result: SendResult, tried: Sequence[int]) -> FailoverResult:
        return FailoverResult(
            **_result_fields(result),
            server=self._labels[tried[-1]],
            servers_tried=tuple(self._labels[server] for server in tried),
        )

    def _judge(self, server: int, error: SMTPError, tried: Sequence[int]) -> SMTPError:
        """Cool ``server`` down if ``error`` was its fault; the error, naming the server."""
        label = self._labels[server]
        broke = is_server_failure(error) or isinstance(error, DeliveryUnknown)
        if broke and self._board.failed(server):
            # Once per cool-down, not per message: a batch may fail a hundred at once. The
            # class and code only: an error's text may name addresses.
            code = getattr(error, "code", None)
            logger.warning(
                "server %s failed (%s%s); skipped for %gs",
                label,
                type(error).__name__,
                f" {code}" if isinstance(code, int) else "",
                self._cooldown,
            )
        return annotate(error, label, [self._labels[index] for index in tried])


class Route:
    """One message's way through the servers; both drivers' ``send`` loops drive it.

    Iterating gives the servers to try, in order; the loop reports a failure with
    :meth:`failed` (which ends the iteration when the error must not move on, see
    :func:`~smtpkit.failover._board.may_move`) and an acceptance with :meth:`accepted`.
    The loop sends (``Failover.send``, ``AsyncFailover.send``); this holds no connection
    and does no I/O.
    """

    def __init__(
        self,
        board: Board,
        judge: Callable[[int, SMTPError, Sequence[int]], SMTPError],
        routed: Callable[[SendResult, Sequence[int]], FailoverResult],
    ) -> None:
        self._board = board
        self._judge = judge
        self._routed = routed
        [self._order] = board.orders(1)
        self._tried: list[int] = []
        self._failure: SMTPError | None = None
        self._stopped = False

    def __iter__(self) -> Iterator[int]:
        while not self._stopped:
            server = self._board.pick(self._order, self._tried)
            if server is None:
                if self._failure is not None:
                    self._failure = exhausted(self._failure)
                return
            self._tried.append(server)
            yield server

    def failed(self, error: SMTPError) -> None:
        """The server just tried raised ``error``: cool it down if it was its fault."""
        self._failure = self._judge(self._tried[-1], error, self._tried)
        self._stopped = not may_move(error)

    def accepted(self, result: SendResult) -> FailoverResult:
        """The server just tried accepted the message: the result, naming the servers."""
        return self._routed(result, self._tried)

    def failure(self) -> SMTPError:
        """The error to raise once no server is left (or one must not be left for another)."""
        assert self._failure is not None  # the first pick always finds a server
        return self._failure


def _check_submitters(submitters: object, kind: type[object], twin: str) -> tuple[Any, ...]:
    """``submitters`` as a tuple of ``kind`` instances, each once, or ConfigurationError."""
    name = kind.__name__
    if isinstance(submitters, str | bytes) or not isinstance(submitters, Sequence):
        raise ConfigurationError(
            f"{twin} takes a list of {name} objects, got {submitters!r}",
            hint=f"e.g. {twin}([{name}(...), {name}(...)])",
        )
    items = tuple(submitters)
    if not items:
        raise ConfigurationError(
            f"{twin} needs at least one server", hint=f"pass a list of {name} objects"
        )
    for item in items:
        if not isinstance(item, kind):
            other = type(item).__name__
            fits = "AsyncFailover" if other.startswith("Async") else "Failover"
            raise ConfigurationError(
                f"{twin} takes {name} objects, got {other}",
                hint=f"for {other} objects use {fits}"
                if other.endswith("Submitter")
                else f"build each server with smtpkit.{name}(...)",
            )
    if len({id(item) for item in items}) != len(items):
        raise ConfigurationError(
            f"the same {name} appears twice in {twin}'s list",
            hint="list each one once; a message is tried on each server at most once",
        )
    return items


class BatchBook:
    """One ``send_many`` call's bookkeeping, shared by the drivers' server batches.

    Messages are numbered by input position. Each round, :meth:`take_round` groups the
    messages due by server; a driver sends each group with that server's ``send_many`` and
    passes every outcome to :meth:`settle`, which says whether it is final (and reports
    it) or where the message goes next round. Safe across threads: a message belongs to
    one server batch at a time, and the shared flags are under a lock.
    """

    def __init__(self, failover: FailoverBase[Any], count: int) -> None:
        self._failover = failover
        board = failover._board
        self._board = board
        self._orders = board.orders(count)
        self._tried: list[list[int]] = [[] for _ in range(count)]
        self._next: list[int | None] = [board.pick(order, ()) for order in self._orders]
        self.outcomes: list[Outcome | None] = [None] * count
        self._lock = threading.Lock()
        self.stopped = False
        self.callback_error: BaseException | None = None
        self.crash: BaseException | None = None

    @property
    def waiting(self) -> bool:
        """Whether messages are due for another round (and the batch was not stopped)."""
        return not self.stopped and any(server is not None for server in self._next)

    def take_round(self) -> list[tuple[int, list[int]]]:
        """The messages due now, grouped by server (in server order)."""
        groups: dict[int, list[int]] = {}
        for index, server in enumerate(self._next):
            if server is not None:
                groups.setdefault(server, []).append(index)
                self._next[index] = None
        return sorted(groups.items())

    def settle(self, server: int, index: int, outcome: Outcome) -> Outcome | None:
        """Record message ``index``'s ``outcome`` on ``server``.

        Returns:
            Its final outcome (annotated), or ``None`` when it goes on to another server
            next round, or ends unsent because the batch was stopped.
        """
        failover = self._failover
        tried = self._tried[index]
        tried.append(server)
        if isinstance(outcome, SendResult):
            final: Outcome | None = failover._routed(outcome, tried)
        else:
            final = failover._judge(server, outcome, tried)
            if may_move(outcome):
                if self.stopped:
                    final = None  # accepted nowhere: it may be sent again
                else:
                    following = self._board.pick(self._orders[index], tried)
                    if following is not None:
                        self._next[index] = following
                        return None
                    final = exhausted(final)
        self.outcomes[index] = final
        return final

    def stop(self, callback_error: BaseException | None = None) -> None:
        """No further message starts: ``on_result`` raised ``callback_error``."""
        with self._lock:
            self.stopped = True
            if callback_error is not None and self.callback_error is None:
                self.callback_error = callback_error

    def crashed(self, error: BaseException) -> None:
        """A server batch raised something unexpected: the batch stops and re-raises it."""
        with self._lock:
            self.stopped = True
            if self.crash is None:
                self.crash = error

    def interrupted(
        self,
        server: int,
        group: Sequence[int],
        interrupted: BatchInterrupted,
        reported: set[int],
    ) -> None:
        """A server batch raised ``interrupted`` (its ``on_result`` stopped it): settle the
        outcomes it had but never reported; ``reported`` holds the positions it did."""
        if not self.stopped:  # pragma: no cover - only the batch's on_result raises in there
            self.crashed(interrupted)
            return
        for local, outcome in enumerate(interrupted.outcomes):
            if outcome is not None and local not in reported:
                self.settle(server, group[local], outcome)

    def finish(self) -> list[Outcome]:
        """Every outcome in input order, or BatchInterrupted (or the crash) to raise."""
        if self.crash is not None:
            raise self.crash
        if self.callback_error is not None:
            not_sent = sum(outcome is None for outcome in self.outcomes)
            raise BatchInterrupted(
                f"on_result raised {type(self.callback_error).__name__}; no further message "
                f"was started ({len(self.outcomes) - not_sent} finished, {not_sent} not "
                "sent); the outcomes are in .outcomes",
                self.outcomes,
            ) from self.callback_error
        finished = [outcome for outcome in self.outcomes if outcome is not None]
        if len(finished) != len(self.outcomes):  # pragma: no cover - a bug guard
            raise AssertionError("a message ended without an outcome")
        return finished

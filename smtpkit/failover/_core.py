"""What :class:`~smtpkit.Failover` and :class:`~smtpkit.AsyncFailover` share, with no I/O.

Job: outcomes that name their server (:class:`FailoverResult`, :func:`annotate`), the checks
on the list of servers, the configuration both drivers hold (:class:`FailoverBase`), and one
message's way through the servers in ``send`` (:class:`Route`). The bookkeeping of one
``send_many`` call is :class:`smtpkit.failover._batch.BatchBook`. The drivers only send and
call back.

Invariants:
    * An error is never changed in place: :func:`annotate` returns a copy (a batch may hand
      the same error object to every message a refused login stopped).
    * Annotations are JSON-safe (``str``, tuples of ``str``), so an annotated error still
      pickles and is still rebuilt by ``type(error)(*error.args)``.
    * A message that needed an extension no server left to try offers ends with the last
      ``ExtensionNotOffered``, whose hint (on the copy) names the extension, the server and
      any server skipped because it was cooling down (:func:`exhausted`); :class:`Route`
      and ``BatchBook`` both end that way, and both let a message refused only for missing
      extensions try a cooling server (``Board.pick(retry_cooling=True)``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeAlias, TypeVar

from smtpkit import SendResult
from smtpkit.errors import ConfigurationError, DeliveryUnknown, ExtensionNotOffered, SMTPError
from smtpkit.failover._board import (
    Board,
    FailoverStrategy,
    check_cooldown,
    is_server_failure,
    lacks_extension,
    may_move,
)

__all__ = [
    "FailoverBase",
    "FailoverResult",
    "Outcome",
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


def exhausted(error: SMTPError, cooling: Sequence[str] = ()) -> SMTPError:
    """The outcome of a message that may move on but has no server left to try.

    ``error`` is an :func:`annotate` copy; ``cooling`` the servers it skipped because they
    were cooling down. For an ``ExtensionNotOffered`` its hint says what would take the
    message: one of those once it is back, or a server that offers the extension (the
    refusal's own hint, e.g. "use an ASCII address", follows). Any other error is returned
    as it is.
    """
    if not isinstance(error, ExtensionNotOffered):
        return error
    server = getattr(error, "server", "the server")
    tried = getattr(error, "servers_tried", ())
    extension = error.extension or "the extension it needs"
    hint = f"{server}, the last server tried, does not offer {extension}"
    if cooling:
        skipped = ", ".join(f"{label} (cooling down)" for label in cooling)
        hint += f"; not tried: {skipped}: send it again once that is back, or list a "
    else:
        hint += "; list a "
    hint += f"server that offers {extension} among the failover's servers"
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
        return Route(self._board, self._judge, self._routed, self._exhausted)

    def _exhausted(self, error: SMTPError, tried: Sequence[int]) -> SMTPError:
        """``error`` as the final outcome of a message with no server left (:func:`exhausted`)."""
        untried = [server for server in range(len(self._labels)) if server not in tried]
        cooling = [self._labels[server] for server in self._board.cooling_among(untried)]
        return exhausted(error, cooling)

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
        ended: Callable[[SMTPError, Sequence[int]], SMTPError],
    ) -> None:
        self._board = board
        self._judge = judge
        self._routed = routed
        self._ended = ended
        [self._order] = board.orders(1)
        self._tried: list[int] = []
        self._failure: SMTPError | None = None
        self._stopped = False
        self._only_lacking = True  # every try so far lacked an extension: none could take it

    def __iter__(self) -> Iterator[int]:
        while not self._stopped:
            server = self._board.pick(self._order, self._tried, retry_cooling=self._only_lacking)
            if server is None:
                if self._failure is not None:
                    self._failure = self._ended(self._failure, self._tried)
                return
            self._tried.append(server)
            yield server

    def failed(self, error: SMTPError) -> None:
        """The server just tried raised ``error``: cool it down if it was its fault."""
        self._failure = self._judge(self._tried[-1], error, self._tried)
        self._stopped = not may_move(error)
        self._only_lacking = self._only_lacking and lacks_extension(error)

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

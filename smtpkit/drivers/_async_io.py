"""The asyncio driver loop: perform the engine's effects on an ``AsyncStream``.

:meth:`AsyncDriver.run` is the whole driver: it resumes the engine's generator with each
effect's answer, or throws the effect's ``SMTPError`` into it, until the step returns. The
stream lives in a :class:`Connection` next to the engine's :class:`~smtpkit.engine.Link`;
``Connect`` fills it, ``Close`` empties it.

Token providers: a synchronous ``TokenProvider`` runs in a worker thread
(``asyncio.to_thread``) so a slow token endpoint never blocks the loop; an
:class:`AsyncTokenProvider` (``async def get_token``) is awaited. Either way concurrent
requests for the same token share one call (single flight), whatever task asks.

Invariants:
    * No SMTP decision here: every byte written and every reply judged is the engine's.
    * A step that raises, or is cancelled, leaves its generator closed; the caller then
      aborts the stream (``Connection.abort``) unless the link is still usable.
    * ``TakeNext`` and ``Report`` call back synchronously and never await: nothing waits
      inside an open transaction.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from smtpkit._result import SendResult
from smtpkit.auth import AccessToken
from smtpkit.config import Endpoint
from smtpkit.engine import (
    Close,
    Connect,
    Connected,
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
from smtpkit.errors import DeliveryUnknown, LocalProtocolError, OperationTimeout, SMTPError
from smtpkit.transports._asyncio import AsyncStream, AsyncTransport

__all__ = ["AsyncDriver", "AsyncTokenProvider", "Connection", "TokenFetcher"]

R = TypeVar("R")
J = TypeVar("J", bound=Submission)

logger = logging.getLogger("smtpkit")
wire_logger = logging.getLogger("smtpkit.wire")

_LOG_LEVELS = {LogLevel.DEBUG: logging.DEBUG, LogLevel.INFO: logging.INFO}


@runtime_checkable
class AsyncTokenProvider(Protocol):
    """A token provider for asyncio code: ``get_token`` is a coroutine.

    Same contract as :class:`smtpkit.auth.TokenProvider` (``force_refresh=`` refreshes,
    ``rejected=`` names a refused token so only the first caller refreshes), awaited by
    :class:`smtpkit.AsyncSubmitter` instead of being run in a thread.
    """

    async def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        """A valid access token."""
        ...


class Connection:
    """A link and the stream under it, as a pool holds them."""

    __slots__ = ("generation", "link", "stream")

    def __init__(self, generation: int = 0) -> None:
        self.stream: AsyncStream | None = None
        self.link: Link | None = None
        self.generation = generation

    def abort(self) -> None:
        """Close the stream at once (no QUIT); the link is dead."""
        if self.link is not None:
            self.link.mark_dead()
        if self.stream is not None:
            self.stream.abort()
            self.stream = None

    def __repr__(self) -> str:
        return f"<Connection {self.link!r}>"


class TokenFetcher:
    """Single-flight token requests shared by every task of one submitter."""

    def __init__(self) -> None:
        self._inflight: dict[tuple[int, bool, AccessToken | None], asyncio.Task[AccessToken]] = {}

    async def fetch(self, effect: FetchToken) -> AccessToken:
        key = (id(effect.provider), effect.force_refresh, effect.rejected)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._call(effect))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one task being cancelled must not cancel the request the others share.
        return await asyncio.shield(task)

    def _forget(
        self, key: tuple[int, bool, AccessToken | None], task: asyncio.Task[AccessToken]
    ) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure nobody awaited any more is not logged

    @staticmethod
    async def _call(effect: FetchToken) -> AccessToken:
        provider = effect.provider
        get = provider.get_token
        if inspect.iscoroutinefunction(get):
            result: object = await get(force_refresh=effect.force_refresh, rejected=effect.rejected)
        else:
            result = await asyncio.to_thread(
                get, force_refresh=effect.force_refresh, rejected=effect.rejected
            )
        if not isinstance(result, AccessToken):
            raise LocalProtocolError(
                f"{type(provider).__name__}.get_token() returned {type(result).__name__}, "
                "not an AccessToken"
            )
        return result


class AsyncDriver:
    """Performs engine effects with asyncio for one submitter's connections."""

    def __init__(
        self,
        transport: AsyncTransport,
        endpoint: Endpoint,
        tls_context: ssl.SSLContext | None,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.tls_context = tls_context
        self.clock = clock
        self.tokens = TokenFetcher()

    def _left(self, deadline: float) -> float:
        left = deadline - self.clock()
        if left <= 0:
            raise OperationTimeout("the deadline passed before the step could start")
        return left

    async def run(
        self,
        steps: Steps[R],
        conn: Connection,
        *,
        take: Callable[[], object] | None = None,
        report: Callable[[object, SendResult | SMTPError], None] | None = None,
    ) -> R:
        """Drive ``steps`` to its end on ``conn``; its result, or what it raised."""
        answer: object = None
        failure: SMTPError | None = None
        try:
            while True:
                try:
                    effect = steps.throw(failure) if failure is not None else steps.send(answer)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                answer, failure = None, None
                try:
                    answer = await self._perform(effect, conn, take, report)
                except SMTPError as error:
                    failure = error
        finally:
            steps.close()  # a no-op after StopIteration; after a cancel, ends the step

    async def _perform(
        self,
        effect: object,
        conn: Connection,
        take: Callable[[], object] | None,
        report: Callable[[object, SendResult | SMTPError], None] | None,
    ) -> object:
        kind = type(effect)
        stream = conn.stream
        if kind is Write and stream is not None:
            assert isinstance(effect, Write)
            await stream.send(effect.data, effect.timeout)
        elif kind is Receive and stream is not None:
            assert isinstance(effect, Receive)
            return await stream.receive(self._left(effect.deadline))
        elif kind is TakeNext:
            return take() if take is not None else None
        elif kind is Report:
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
        elif kind is Connect:
            conn.abort()
            conn.stream = stream = await self.transport.connect(self.endpoint)
            return Connected(stream.peer_address, stream.is_encrypted)
        elif kind is StartTLS and stream is not None:
            assert isinstance(effect, StartTLS)
            context = self.tls_context or ssl.create_default_context()
            await stream.start_tls(context, effect.server_hostname, self._left(effect.deadline))
        elif kind is FetchToken:
            assert isinstance(effect, FetchToken)
            return await self.tokens.fetch(effect)
        elif kind is Close:
            if stream is not None:
                stream.abort()
                conn.stream = None
        else:
            raise LocalProtocolError(f"cannot perform {effect!r} (no stream open)")
        return None

    # -- the engine's steps on one connection ------------------------------------------

    async def open_connection(self, settings: LinkSettings, generation: int) -> Connection:
        """A new connection, negotiated and logged in (``open_link``)."""
        conn = Connection(generation)
        trace = wire_logger.isEnabledFor(logging.DEBUG)
        try:
            conn.link = await self.run(open_link(settings, clock=self.clock, trace=trace), conn)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def close_connection(self, conn: Connection) -> None:
        """QUIT and close (``close_link``); never raises an ``SMTPError``."""
        try:
            if conn.link is not None and conn.stream is not None:
                await self.run(close_link(conn.link), conn)
        except SMTPError:
            pass  # closing never fails: the stream is aborted below
        finally:
            conn.abort()

    async def probe_connection(self, conn: Connection) -> bool:
        """NOOP before reusing an idle connection (``probe_link``)."""
        assert conn.link is not None
        return await self.run(probe_link(conn.link), conn)

    async def transact(
        self,
        conn: Connection,
        first: J,
        take: Callable[[], J | None] | None,
        report: Callable[[J, SendResult | SMTPError], None],
        *,
        discard: Callable[[Connection], None],
    ) -> None:
        """Run the engine's transactions on ``conn``, ``first`` then what ``take`` gives.

        On any exception (a cancel included) ``discard`` aborts the connection - it never
        goes back to a pool mid-transaction - and every open message is reported first:
        unknown after its final ``.``, stale before it.
        """
        assert conn.link is not None
        run = Transactions(conn.link, first)
        try:
            await self.run(
                run.steps(),
                conn,
                take=take,
                report=report,  # type: ignore[arg-type]  # jobs come back as handed out
            )
        except BaseException as error:
            discard(conn)
            for job, outcome in run.abandoned(error):
                if isinstance(outcome, DeliveryUnknown):
                    logger.warning(
                        "send stopped after the message was sent, before the server "
                        "answered; it may have been delivered: message_id=%s",
                        outcome.message_id,
                    )
                report(job, outcome)
            raise


async def maybe_await(value: object) -> None:
    """Await ``value`` if a callback returned an awaitable (an ``async def`` callback)."""
    if inspect.isawaitable(value):
        await value

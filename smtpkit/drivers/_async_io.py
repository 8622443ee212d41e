"""The asyncio driver loop: perform the engine's effects on an ``AsyncStream``.

:meth:`AsyncDriver.run` is the whole driver: it resumes the engine's generator with each
effect's answer, or throws the effect's ``SMTPError`` into it, until the step returns. The
stream lives in an :class:`AsyncConnection` next to the engine's :class:`~smtpkit.engine.Link`;
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
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from smtpkit.auth import AccessToken
from smtpkit.drivers._driving import AnyReporter, Connection, DriverBase, Reporter, Taker
from smtpkit.engine import Connected, Steps, Submission
from smtpkit.errors import LocalProtocolError, SMTPError
from smtpkit.transports._asyncio import AsyncStream, AsyncTransport

if TYPE_CHECKING:
    from smtpkit.engine import Close, Connect, FetchToken, Receive, StartTLS, Write

__all__ = ["AsyncConnection", "AsyncDriver", "AsyncTokenProvider", "TokenFetcher"]

R = TypeVar("R")
J = TypeVar("J", bound=Submission)


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


class AsyncConnection(Connection[AsyncStream]):
    """A link and its asyncio stream."""

    __slots__ = ()

    def drop(self, stream: AsyncStream) -> None:
        stream.abort()


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


class AsyncDriver(DriverBase[AsyncTransport]):
    """Performs engine effects with asyncio for one submitter's connections."""

    @functools.cached_property
    def tokens(self) -> TokenFetcher:
        """Single-flight token requests for this driver's connections."""
        return TokenFetcher()

    async def run(
        self,
        steps: Steps[R],
        conn: AsyncConnection,
        take: Taker | None = None,
        report: AnyReporter | None = None,
    ) -> R:
        """Drive ``steps`` to its end on ``conn``; its result, or what it raised."""
        handlers = self._handlers
        answer: object = None
        failure: SMTPError | None = None
        try:
            while True:
                effect = steps.send(answer) if failure is None else steps.throw(failure)
                answer, failure = None, None
                handler = handlers.get(type(effect))
                if handler is None:  # TakeNext, Report, Log: answered at once
                    answer = self.local(effect, take, report)
                    continue
                try:
                    answer = await handler(effect, conn)  # type: ignore[misc]
                except SMTPError as error:  # thrown into the step where it asked
                    failure = error
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()  # a no-op after StopIteration; after a cancel, ends the step

    # -- the effects that do I/O ---------------------------------------------------------

    async def write(self, effect: Write, conn: AsyncConnection) -> None:
        await conn.open_stream().send(effect.data, effect.timeout)

    async def receive(self, effect: Receive, conn: AsyncConnection) -> bytes:
        return await conn.open_stream().receive(self.left(effect.deadline))

    async def connect(self, effect: Connect, conn: AsyncConnection) -> Connected:
        conn.abort()
        conn.stream = stream = await self.transport.connect(self.endpoint)
        return Connected(stream.peer_address, stream.is_encrypted)

    async def start_tls(self, effect: StartTLS, conn: AsyncConnection) -> None:
        stream = conn.open_stream()
        await stream.start_tls(self.context(), effect.server_hostname, self.left(effect.deadline))

    async def fetch_token(self, effect: FetchToken, conn: AsyncConnection) -> AccessToken:
        return await self.tokens.fetch(effect)

    async def close(self, effect: Close, conn: AsyncConnection) -> None:
        conn.abort()

    # -- the engine's steps on one connection ------------------------------------------

    async def open_connection(self, generation: int) -> AsyncConnection:
        """A new connection, negotiated and logged in (``open_link``)."""
        conn = AsyncConnection(generation)
        try:
            conn.link = await self.run(self.opening(), conn)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def close_connection(self, conn: AsyncConnection, *, by: float | None = None) -> None:
        """QUIT and close (``close_link``); never raises an ``SMTPError``.

        With ``by`` (a value of :attr:`clock`) every wait ends by then at the latest, and
        once it has passed the connection is closed without QUIT (a shared shutdown budget).
        """
        try:
            if conn.link is not None and conn.stream is not None:
                if by is None:
                    await self.run(self.closing(conn.link), conn)
                elif self.clock() < by:
                    await self.run(self.closing_by(conn.link, by), conn)
        except SMTPError:
            pass  # closing never fails: the stream is aborted below
        finally:
            conn.abort()

    async def probe_connection(self, conn: AsyncConnection) -> bool:
        """NOOP before reusing an idle connection (``probe_link``)."""
        assert conn.link is not None
        return await self.run(self.probing(conn.link), conn)

    async def transact(
        self,
        conn: AsyncConnection,
        first: J,
        take: Callable[[], J | None] | None,
        report: Reporter[J],
        *,
        discard: Callable[[AsyncConnection], None],
    ) -> None:
        """Run the engine's transactions on ``conn``, ``first`` then what ``take`` gives.

        On any exception (a cancel included) ``discard`` aborts the connection - it never
        goes back to a pool mid-transaction - and every open message is reported first:
        unknown after its final ``.``, stale before it. An ``SMTPError`` the engine did not
        turn into outcomes is the outcome of the messages open, and is not raised.
        """
        assert conn.link is not None
        run = self.transactions(conn.link, first)
        try:
            await self.run(run.steps(), conn, take, report)  # type: ignore[arg-type]  # jobs come back as handed out
        except BaseException as error:
            discard(conn)
            self.abandon(run, error, report)
            if not isinstance(error, SMTPError):
                raise


async def maybe_await(value: object) -> None:
    """Await ``value`` if a callback returned an awaitable (an ``async def`` callback)."""
    if inspect.isawaitable(value):
        await value

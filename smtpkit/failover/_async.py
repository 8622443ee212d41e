"""The asyncio twin of :class:`smtpkit.Failover`: the same decisions over AsyncSubmitters.

Job: :class:`AsyncFailover` performs, with ``await``, what :class:`~smtpkit.Failover` does
with threads. What moves a message, which server comes next, the cool-downs and a batch's
bookkeeping are the shared code of :mod:`smtpkit.failover._board`,
:mod:`smtpkit.failover._core` and :mod:`smtpkit.failover._batch`, so both drivers behave
alike.

Invariants:
    * Built on the public AsyncSubmitter API only (``send``, ``send_many``, ``aclose``).
    * The same as Failover's: a message moves only on a server failure before the server
      could have accepted it; ``DeliveryUnknown`` stays as it is; outcomes name their
      server; ``send_many`` keeps input order and calls ``on_result`` once per message,
      one call at a time.
    * The board's lock is a ``threading.Lock`` held for a few dictionary look-ups, never
      across an ``await``, so it never blocks the event loop for long.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from email.message import Message
from types import TracebackType
from typing import Any, TypeAlias

from smtpkit import BatchInterrupted, Outgoing, SendResult
from smtpkit.dkim import DKIMSigner
from smtpkit.drivers import AsyncSubmitter
from smtpkit.dsn import DSN, ESMTPParams
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.failover._batch import BatchBook
from smtpkit.failover._board import FailoverStrategy
from smtpkit.failover._core import DEFAULT_COOLDOWN, FailoverBase, FailoverResult

__all__ = ["AsyncFailover"]

OnResult: TypeAlias = Callable[[int, SendResult | SMTPError], object | Awaitable[object]]


class AsyncFailover(FailoverBase[AsyncSubmitter]):
    """:class:`~smtpkit.Failover` for :class:`~smtpkit.AsyncSubmitter` objects, with ``await``.

    Example::

        async with smtpkit.AsyncFailover([primary, backup], cooldown=60) as mail:
            result = await mail.send(message)
            print(result.server)

    Args: as for :class:`~smtpkit.Failover`, with AsyncSubmitter objects.

    Raises:
        ConfigurationError: as for Failover.
    """

    _kind = AsyncSubmitter
    _twin = "AsyncFailover"

    def __init__(
        self,
        submitters: Sequence[AsyncSubmitter],
        *,
        strategy: FailoverStrategy | str = FailoverStrategy.FAILOVER,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(submitters, strategy=strategy, cooldown=cooldown, clock=clock)

    async def __aenter__(self) -> AsyncFailover:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every AsyncSubmitter's kept connections (``aclose``). Never raises."""
        for submitter in self._submitters:
            await submitter.aclose()

    async def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        params: ESMTPParams | None = None,
        dkim: DKIMSigner | None = None,
    ) -> FailoverResult:
        """Send one message through the first server that takes it; see ``Failover.send``
        (``dsn``, ``params`` and ``dkim`` as for :meth:`smtpkit.AsyncSubmitter.send`)."""
        route = self._route()
        for server in route:
            submitter = self._submitters[server]
            try:
                result = await submitter.send(
                    message, sender=sender, recipients=recipients, dsn=dsn, params=params, dkim=dkim
                )
            except SMTPError as error:
                route.failed(error)
                continue
            return route.accepted(result)
        raise route.failure()

    async def send_many(
        self,
        messages: Iterable[Message | Outgoing] | AsyncIterable[Message | Outgoing],
        *,
        concurrency: int | None = None,
        on_result: OnResult | None = None,
        max_per_second: float | None = None,
        max_per_connection: int | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages; each goes where :meth:`send` would send it.

        As ``Failover.send_many``, with the servers' shares sent concurrently as tasks.
        ``messages`` may be an async iterable (read to the end first: a message that moves
        to another server is sent again from the list); ``on_result`` may be an
        ``async def``. ``concurrency`` is capped by each server's ``max_connections``.

        Raises:
            BatchInterrupted: ``on_result`` raised; as for ``Failover.send_many``.
        """
        if max_per_second is not None and max_per_second <= 0:
            raise ConfigurationError("max_per_second must be a positive number of messages/s")
        if isinstance(messages, AsyncIterable):
            items = [item async for item in messages]
        else:
            items = list(messages)
        book = BatchBook(self, len(items))
        share = _Share(items, book, on_result, asyncio.Lock())
        while book.waiting:  # bounded: each round tries every message on one more server
            await asyncio.gather(
                *(
                    share.run(
                        self._submitters[server],
                        server,
                        group,
                        concurrency=concurrency,
                        max_per_second=max_per_second,
                        max_per_connection=max_per_connection,
                    )
                    for server, group in book.take_round()
                )
            )
        return book.finish()


class _Share:
    """Sends one round's share of a batch through one server, and reports its outcomes."""

    def __init__(
        self,
        items: list[Message | Outgoing],
        book: BatchBook,
        on_result: OnResult | None,
        calls: asyncio.Lock,
    ) -> None:
        self._items = items
        self._book = book
        self._on_result = on_result
        self._calls = calls  # on_result: one call at a time, across server batches

    async def run(
        self,
        submitter: AsyncSubmitter,
        server: int,
        group: list[int],
        *,
        concurrency: int | None,
        **options: Any,
    ) -> None:
        book = self._book
        reported: set[int] = set()

        async def report(local: int, outcome: SendResult | SMTPError) -> None:
            reported.add(local)
            index = group[local]
            final = book.settle(server, index, outcome)
            if book.stopped:
                raise _Stopped  # stop this server's batch too: no further message starts
            if final is None or self._on_result is None:
                return
            async with self._calls:
                if book.stopped:
                    raise _Stopped
                try:
                    answer = self._on_result(index, final)
                    if inspect.isawaitable(answer):
                        await answer
                except BaseException as error:
                    book.stop(error)
                    raise

        limit = submitter.pool_limits.max_connections
        try:
            await submitter.send_many(
                [self._items[index] for index in group],
                on_result=report,
                concurrency=None if concurrency is None else min(concurrency, limit),
                **options,
            )
        except BatchInterrupted as interrupted:
            book.interrupted(server, group, interrupted, reported)
        except Exception as error:  # bad arguments or a bug: send_many re-raises it
            book.crashed(error)


class _Stopped(Exception):
    """Raised from a server batch's ``on_result`` to stop it once the caller's raised."""

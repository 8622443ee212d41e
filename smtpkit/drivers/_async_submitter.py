"""``AsyncSubmitter``: the asyncio driver of the send engine.

Same constructor, class methods, errors, hooks and logging as :class:`smtpkit.Submitter`
(both are :class:`~smtpkit.drivers._client.SubmitterBase`); the SMTP logic is the engine's
(:mod:`smtpkit.engine`), this module only performs it with asyncio: a pool of
authenticated connections shared by tasks, ``asyncio.sleep`` for retry backoffs and the
rate limit (between transactions only), and cancellation that never hands a connection
back mid-transaction.

Invariants:
    * ``send`` returns a ``SendResult`` only for a message the server accepted; anything
      else raises the typed error the message ended with.
    * A cancelled ``send`` aborts its connection (no QUIT, never reused). Cancelled after
      the final ``.`` / ``BDAT LAST`` was written, the message may have been delivered: a
      WARNING on logger ``smtpkit`` names its Message-ID (see docs/async.md).
    * A cancelled ``send_many`` starts no further message, lets its open transactions end
      (within the command timeout, else they end unknown) and reports every outcome to
      ``on_result`` (else in a note on the ``CancelledError``) before it propagates.
    * Connections are kept for reuse across calls (idle ones close after
      ``idle_timeout``); ``aclose()`` or ``async with`` closes them, waiting for the QUIT
      replies within one budget for all connections together (the command timeout, at
      most 5 s). An AsyncSubmitter garbage-collected with connections still open (never
      closed, or left open when its event loop closed) closes their sockets without QUIT
      or any wait, from whatever thread the collector runs on, and emits a
      ``ResourceWarning`` naming ``aclose()``, as asyncio does for an unclosed transport.
      ``repr()`` shows no secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
import weakref
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from email.message import Message
from types import TracebackType

from smtpkit.dkim import DKIMSigner
from smtpkit.drivers._async_batch import AsyncBatch, OnResult
from smtpkit.drivers._async_io import AsyncConnection, AsyncDriver
from smtpkit.drivers._async_pool import AsyncPool
from smtpkit.drivers._async_quota import admit, quota_settled
from smtpkit.drivers._batch_results import interrupt_note
from smtpkit.drivers._client import SubmitterBase, no_prepare
from smtpkit.drivers._common import Job, Outcome, Outgoing, check_batch_options
from smtpkit.dsn import DSN, ESMTPParams
from smtpkit.engine import Pacing, SendOptions
from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError
from smtpkit.transports import Transport
from smtpkit.transports._asyncio import AsyncTransport, async_transport

__all__ = ["AsyncSubmitter"]


class AsyncSubmitter(SubmitterBase[AsyncTransport]):
    """Send messages through one SMTP submission server from asyncio code.

    Example::

        async with smtpkit.AsyncSubmitter(
            "smtp.gmail.com", auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop")
        ) as submitter:
            result = await submitter.send(msg)

    Keep one for the application's lifetime (e.g. a FastAPI lifespan): connections are
    logged in once and shared by every task, up to ``max_connections``.

    The arguments are those of :class:`smtpkit.Submitter`; ``transport`` may also be an
    :class:`~smtpkit.transports.AsyncTransport`, and a synchronous in-memory transport
    (``smtpkit.testing.FakeTransport``) works unchanged. A ``quota`` whose store does I/O
    (SQLite, Redis) is asked in a worker thread, never on the event loop.
    """

    _quota_threads = False  # asks ahead on its loop's executor: smtpkit.drivers._async_quota

    def _start(self, transport: Transport | AsyncTransport | None) -> None:
        self._pacing = Pacing(self._rate_limit)  # shared by every send(), as in Submitter
        self._driver = driver = AsyncDriver(
            async_transport(transport),
            self._settings,
            self._endpoint,
            self._tls_context,
            self._clock,
        )
        self._pool = AsyncPool(self._pool_state(AsyncConnection), driver)
        # Not closed with aclose(): garbage collection (or interpreter exit) closes the
        # sockets without QUIT - the collector may run on any thread, or after the loop
        # closed, where no QUIT can be sent - and warns, naming the cure.
        weakref.finalize(self, _abandoned, self._pool, repr(self))

    async def _transact(
        self,
        conn: AsyncConnection,
        first: Job,
        take: Callable[[], Job | None] | None,
        report: Callable[[Job, Outcome], None],
    ) -> None:
        await self._driver.transact(conn, first, take, report, discard=self._pool.discard)

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> AsyncSubmitter:
        """Connect and log in now (fail early), keeping the connection for later sends."""
        conn = await self._pool.acquire()
        await self._pool.release(conn)
        return self

    async def aclose(self) -> None:
        """QUIT and close every kept connection; those in use close when their send ends.

        The submitter stays usable: a later send opens new connections. Never raises.
        """
        await self._pool.aclose()

    async def __aenter__(self) -> AsyncSubmitter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending -------------------------------------------------------------------------

    async def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        params: ESMTPParams | None = None,
        dkim: DKIMSigner | None = None,
    ) -> SendResult:
        """Send one message and return what the server said.

        Args: as :meth:`smtpkit.Submitter.send`.

        Raises:
            RecipientRejected: every recipient was refused.
            DeliveryUnknown: the connection failed after the content was sent.
            SMTPError: any other failure, typed (see :mod:`smtpkit.errors`).
        """
        tracker = self._tracker(None, per_message=False)
        start = tracker.prepare(no_prepare)
        state, outcomes = self._one(message, sender, recipients, SendOptions.of(dsn, params, dkim))
        while (got := state.next_job()) is not None:  # one job: a try at a time
            job, wait = got
            if wait > 0:
                await asyncio.sleep(wait)  # a backoff or the rate limit, no connection held
            if not await admit(state, job):
                continue  # refused by the quota: that is its outcome
            try:
                conn = await self._pool.acquire()
            except SMTPError as error:
                state.opening_failed(job, error)
                continue
            start(job, conn)
            await self._transact(conn, job, None, state.settle)
            await self._pool.release(conn)
        await quota_settled(state)
        return self._answer(state, outcomes, tracker)

    async def send_many(
        self,
        messages: Iterable[Message | Outgoing] | AsyncIterable[Message | Outgoing],
        *,
        concurrency: int | None = None,
        on_result: OnResult | None = None,
        max_per_second: float | None = None,
        max_per_connection: int | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages over pooled, pipelined connections.

        On each connection the end of one message travels with the next one's envelope
        (RFC 2920 §3.1), so a steady stream costs about one round trip per message.

        Args:
            messages: ``EmailMessage`` objects or :class:`~smtpkit.Outgoing` values, from
                an iterable or an async iterable (read a few messages ahead at most).
            concurrency: connections to use (default: ``max_connections``; more is a
                ``ConfigurationError``).
            on_result: ``on_result(index, outcome)`` as each message finishes (a plain
                function or an ``async def``), from a reporting task, one call at a time,
                never inside an open transaction.
            max_per_second: at most this many messages per second (default: the
                submitter's ``rate_limit``).
            max_per_connection: open a new connection after this many messages.

        Returns:
            One outcome per message in input order: a ``SendResult`` or the ``SMTPError``
            that message ended with (nothing is raised for a single message's failure).

        Raises:
            BatchInterrupted: ``on_result`` raised. No further message is started, the
                messages already on their way finish, and the error carries every outcome
                (``None`` for a message not sent), raised from the callback's exception.
                From a generator, messages it had not yet given are not listed: it stays
                where it stopped.
            ConfigurationError: a wrong option (nothing is sent).
            asyncio.CancelledError: the calling task was cancelled, raised as it is once
                no transaction is open (within the command timeout; a message still
                waiting for its reply then ends ``DeliveryUnknown``) and every outcome went
                to ``on_result``; without ``on_result`` a note on it counts the messages
                accepted, unknown and not sent. No message starts after the cancellation.
        """
        limit = self._limits.max_connections
        workers = check_batch_options(
            concurrency, max_per_second, max_per_connection, on_result, limit
        )
        batch: AsyncBatch | None = None
        state = self._batch(
            lambda index, outcome: batch.report(index, outcome) if batch else None,
            pacing=Pacing(max_per_second) if max_per_second else None,
            per_connection=max_per_connection,
        )
        batch = AsyncBatch(
            state,
            messages,
            pool=self._pool,
            transact=self._transact,
            tracker=self._tracker(None),
            on_result=on_result,
            read_ahead=2 * workers,
            deadline=self._driver.settings.timeouts.command,
        )
        try:
            await batch.run(workers)
        except asyncio.CancelledError as error:
            # Raised as it is; every outcome went to on_result first, else the note says
            # what was accepted, unknown and not sent (a cancelled batch hides nothing).
            reported = on_result is not None and not batch.unreported
            if not reported:
                count = max(state.created, state.total or 0)
                error.add_note(interrupt_note(state.outcomes, count, reported=False))
                if on_result is not None:
                    error.add_note(
                        "a second cancellation stopped send_many before every "
                        "outcome reached on_result"
                    )
            with contextlib.suppress(asyncio.CancelledError):
                await quota_settled(state)  # places asked for messages that never started
            raise
        await quota_settled(state)
        return state.results(batch.callback_error)


def _abandoned(pool: AsyncPool, name: str) -> None:
    """The finalizer of an AsyncSubmitter: release what ``aclose()`` should have closed."""
    if count := pool.abandon():
        warnings.warn(
            f"{name} was never closed: {count} open connection(s) closed without QUIT when "
            "it was garbage-collected (or at exit); close it with 'await submitter.aclose()' "
            "or 'async with'",
            ResourceWarning,
            stacklevel=2,
        )

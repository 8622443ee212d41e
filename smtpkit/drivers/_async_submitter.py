"""``AsyncSubmitter``: the asyncio driver of the send engine.

Same constructor, class methods, errors, hooks and logging as :class:`smtpkit.Submitter`;
the SMTP logic is the engine's (:mod:`smtpkit.engine`), this module only performs it with
asyncio: a pool of authenticated connections shared by tasks, ``asyncio.sleep`` for retry
backoffs and the rate limit (between transactions only), and cancellation that never hands
a connection back mid-transaction.

Invariants:
    * ``send`` returns a ``SendResult`` only for a message the server accepted; anything
      else raises the typed error the message ended with.
    * A cancelled ``send`` aborts its connection (no QUIT, never reused). Cancelled after
      the final ``.`` / ``BDAT LAST`` was written, the message may have been delivered: a
      WARNING on logger ``smtpkit`` names its Message-ID (see docs/async.md).
    * Connections are kept for reuse across calls (idle ones close after
      ``idle_timeout``); ``aclose()`` or ``async with`` closes them. ``repr()`` shows no
      secret.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from types import TracebackType
from typing import Unpack

from smtpkit._checks import check_submitter_options
from smtpkit._configure import (
    SubmitterOptions,
    options_for_provider,
    options_from_env,
    options_from_url,
)
from smtpkit._pool import PoolLimits
from smtpkit._result import BatchInterrupted, SendResult
from smtpkit._submitter import TOKEN_EXPIRY_MARGIN, Outgoing, default_local_hostname
from smtpkit.auth import AuthStrategy
from smtpkit.config import Endpoint, Security, Timeouts
from smtpkit.drivers._async_batch import Batch, BatchJob
from smtpkit.drivers._async_io import AsyncDriver, Connection
from smtpkit.drivers._async_many import BatchRun, OnResult, batch_workers
from smtpkit.drivers._async_pool import AsyncPool
from smtpkit.engine import (
    Attempts,
    LinkSettings,
    Pacing,
    ReusePolicy,
)
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.hooks import SendTracker
from smtpkit.retry import Retry
from smtpkit.transports import Transport
from smtpkit.transports._asyncio import AsyncTransport, async_transport

__all__ = ["AsyncSubmitter"]

logger = logging.getLogger("smtpkit")
wire_logger = logging.getLogger("smtpkit.wire")

Outcome = SendResult | SMTPError


def _no_prepare(job: object, conn: object) -> None:
    """What the hooks' start wrapper wraps: the engine prepares the message itself."""


class AsyncSubmitter:
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
    (``smtpkit.testing.FakeTransport``) works unchanged.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security = Security.STARTTLS,
        auth: AuthStrategy | None = None,
        timeout: float | Timeouts | None = None,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        transport: Transport | AsyncTransport | None = None,
        allow_unencrypted_auth: bool = False,
        provider: str | None = None,
        retry: Retry | None = None,
        max_connections: int = 4,
        max_messages_per_connection: int | None = 100,
        idle_timeout: float = 60.0,
        rate_limit: float | None = None,
        use_chunking: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        check_submitter_options(
            host,
            port,
            security=security,
            auth=auth,
            timeout=timeout,
            tls_context=tls_context,
            local_hostname=local_hostname,
            transport=transport,
            allow_unencrypted_auth=allow_unencrypted_auth,
            provider=provider,
            retry=retry,
            max_connections=max_connections,
            max_messages_per_connection=max_messages_per_connection,
            idle_timeout=idle_timeout,
            rate_limit=rate_limit,
            use_chunking=use_chunking,
            clock=clock,
            wall_clock=wall_clock,
        )
        port = security.default_port if port is None else port
        timeouts = Timeouts.coerce(timeout)
        self._settings = LinkSettings(
            host=host.strip(),
            port=port,
            security=security,
            timeouts=timeouts,
            local_hostname=local_hostname or default_local_hostname(),
            auth=auth,
            allow_unencrypted_auth=allow_unencrypted_auth,
            provider=provider,
            chunking=use_chunking,
        )
        endpoint = Endpoint(host.strip(), port, security, tls_context, timeouts.connect)
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._retry = retry or Retry.never()
        self._rate_limit = rate_limit
        self._pacing = Pacing(rate_limit)  # shared by every send(), as the sync limiter is
        self._driver = AsyncDriver(async_transport(transport), endpoint, tls_context, clock)
        limits = PoolLimits(
            max_connections=max_connections,
            max_messages_per_connection=max_messages_per_connection,
            idle_timeout=idle_timeout,
        )
        self._pool = AsyncPool(
            limits=limits,
            policy=ReusePolicy(
                max_messages_per_connection=max_messages_per_connection,
                idle_timeout=idle_timeout,
                health_check_after=limits.health_check_after,
                token_expiry_margin=TOKEN_EXPIRY_MARGIN,
            ),
            open_connection=lambda generation: self._driver.open_connection(
                self._settings, generation
            ),
            close_connection=self._driver.close_connection,
            probe_connection=self._driver.probe_connection,
            clock=clock,
            wall_clock=self._wall_clock,
            login_gate=auth is not None,
        )

    # -- other ways to build one ---------------------------------------------------------

    @classmethod
    def from_url(
        cls, url: str, *, password: str | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> AsyncSubmitter:
        """An AsyncSubmitter from a server URL; see :meth:`smtpkit.Submitter.from_url`."""
        return cls(**options_from_url(url, password=password, **overrides))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> AsyncSubmitter:
        """An AsyncSubmitter from ``SMTPKIT_URL`` (and ``SMTPKIT_PASSWORD``).

        Raises:
            ConfigurationError: ``SMTPKIT_URL`` is not set or invalid.
        """
        options = options_from_env(os.environ if environ is None else environ, **overrides)
        if options is None:
            raise ConfigurationError(
                "SMTPKIT_URL is not set",
                hint="export SMTPKIT_URL='smtp+starttls://user%40example.com@host:587'",
            )
        return cls(**options)

    @classmethod
    def for_provider(cls, name: str, **overrides: Unpack[SubmitterOptions]) -> AsyncSubmitter:
        """An AsyncSubmitter with a provider preset's settings (``"gmail"``...)."""
        return cls(**options_for_provider(name, **overrides))

    # -- configuration -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server host."""
        return self._settings.host

    @property
    def port(self) -> int:
        """The server port."""
        return self._settings.port

    @property
    def security(self) -> Security:
        """The security mode."""
        return self._settings.security

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts in force."""
        return self._settings.timeouts

    @property
    def auth(self) -> AuthStrategy | None:
        """The authentication strategy, if any."""
        return self._settings.auth

    @property
    def provider(self) -> str | None:
        """The provider preset name, if known."""
        return self._settings.provider

    @property
    def pool_limits(self) -> PoolLimits:
        """The connection pool's limits."""
        return self._pool.limits

    @property
    def rate_limit(self) -> float | None:
        """At most this many messages per second (``None``: no limit)."""
        return self._rate_limit

    async def _transact(
        self,
        conn: Connection,
        first: BatchJob,
        take: Callable[[], BatchJob | None] | None,
        report: Callable[[BatchJob, Outcome], None],
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

    def _tracker(self, *, per_message: bool) -> SendTracker:
        return SendTracker(
            self.host,
            self.port,
            clock=self._clock,
            log=self._log,
            on_result=None,
            per_message=per_message,
        )

    async def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> SendResult:
        """Send one message and return what the server said.

        Args: as :meth:`smtpkit.Submitter.send`.

        Raises:
            RecipientRejected: every recipient was refused.
            DeliveryUnknown: the connection failed after the content was sent.
            SMTPError: any other failure, typed (see :mod:`smtpkit.errors`).
        """
        # `is not None`: an empty list means "no recipients" (an error), never "use the headers".
        envelope = None if recipients is None else tuple(recipients)
        job = BatchJob(0, message, sender, envelope, Attempts(self._retry))
        tracker = self._tracker(per_message=False)
        start = tracker.prepare(_no_prepare)
        while True:
            wait = self._pacing.reserve(self._clock())
            if wait > 0:
                await asyncio.sleep(wait)  # between transactions: no connection held
            outcome = await self._attempt(job, start)
            if isinstance(outcome, SendResult):
                break
            delay = job.attempts.next_try(outcome)
            if delay is None:
                break
            if delay > 0:
                await asyncio.sleep(delay)  # the backoff, with no connection held
        tracker.finished(0, outcome)
        if isinstance(outcome, SMTPError):
            raise outcome
        return outcome

    async def _attempt(self, job: BatchJob, start: Callable[[BatchJob, object], None]) -> Outcome:
        try:
            conn = await self._pool.acquire()
        except SMTPError as error:
            return error
        outcomes: list[Outcome] = []
        start(job, conn)
        await self._transact(conn, job, None, lambda _job, outcome: outcomes.append(outcome))
        await self._pool.release(conn)
        return outcomes[0]

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
        """
        limit = self._pool.limits.max_connections
        workers = batch_workers(concurrency, max_per_second, max_per_connection, limit)
        pacing = self._pacing if max_per_second is None else Pacing(max_per_second)
        batch = Batch(
            messages, retry=self._retry, pacing=pacing, clock=self._clock, read_ahead=2 * workers
        )
        tracker = self._tracker(per_message=True)
        run = BatchRun(
            batch,
            pool=self._pool,
            transact=self._transact,
            tracker=tracker,
            on_result=on_result,
            per_connection=max_per_connection,
        )
        await run.run(workers)
        if batch.crash is not None:
            raise batch.crash
        outcomes = batch.final_outcomes()
        if run.callback_error is not None:
            not_sent = sum(outcome is None for outcome in outcomes)
            raise BatchInterrupted(
                f"on_result raised {type(run.callback_error).__name__}; no further message was "
                f"started ({len(outcomes) - not_sent} finished, {not_sent} not sent); the "
                "outcomes are in .outcomes",
                outcomes,
            ) from run.callback_error
        finished = [outcome for outcome in outcomes if outcome is not None]
        if len(finished) != len(outcomes):  # pragma: no cover - a bug guard
            raise AssertionError("a message ended without an outcome")
        return finished

    def _log(self, result: SendResult, elapsed: float) -> None:
        # Checked first: formatting the reply costs more than the rest of a message's
        # bookkeeping, and most production loggers run at WARNING.
        if not logger.isEnabledFor(logging.INFO):
            return
        logger.info(
            "sent message_id=%s recipients=%d rejected=%d reply=%r elapsed=%.3fs",
            result.message_id,
            len(result.accepted),
            len(result.rejected),
            str(result.reply),
            elapsed,
        )

    def __repr__(self) -> str:
        auth = ""
        if self._settings.auth is not None:
            auth = f", auth={type(self._settings.auth).__name__}({self._settings.auth.username!r})"
        return (
            f"AsyncSubmitter({self.host!r}, {self.port}, "
            f"security=Security.{self.security.name}{auth})"
        )

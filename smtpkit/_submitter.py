"""The Submitter: the one class applications use to send mail.

Invariants:
    * ``send`` returns a :class:`~smtpkit.SendResult` only for a message the server accepted.
    * Connections are kept across calls, as ``httpx.Client`` keeps them: one login per
      connection, reused by later ``send``/``send_many`` calls until idle longer than
      ``idle_timeout``, ``close()`` (or the end of a ``with`` block), garbage collection of
      the Submitter, or interpreter exit, each of which sends QUIT. A forked child never
      uses its parent's connections.
    * A reused connection the server closed while idle is replaced transparently, but only
      when the server had not accepted anything of the message (so no message is ever sent
      twice).
    * ``repr()`` shows no secret. ``send`` and ``send_many`` are safe to call from many
      threads: connections come from a pool, each used by one thread at a time, with one
      login per connection.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from types import TracebackType
from typing import Unpack

from smtpkit import providers
from smtpkit._bulk import Job, RateLimiter, deliver, recipient_cap_error
from smtpkit._checks import check_count, check_submitter_options
from smtpkit._configure import (
    SubmitterOptions,
    options_for_provider,
    options_from_env,
    options_from_url,
)
from smtpkit._pool import PoolLimits, SessionPool
from smtpkit._proxy import Proxy, with_proxy
from smtpkit._result import BatchInterrupted, SendResult
from smtpkit._session import Session, SessionSettings
from smtpkit._transaction import Outcome
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security, Timeouts
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.hooks import SendTracker
from smtpkit.message import PreparedMessage, prepare_message
from smtpkit.retry import Retry
from smtpkit.transports import SocketTransport, Transport

__all__ = ["Outgoing", "Submitter"]

#: Replace a kept OAuth2 session this many seconds before its token expires: Gmail ends
#: OAuth2 sessions at token expiry, and a send that starts just before would be cut off.
TOKEN_EXPIRY_MARGIN = 60.0

logger = logging.getLogger("smtpkit")


def default_local_hostname() -> str:
    """The name sent in EHLO: this host's name when it is fully qualified, else localhost.

    ``socket.getfqdn()`` is avoided on purpose: it does a reverse DNS lookup that can block
    for seconds. Submission servers (RFC 6409 §6.1) do not verify the EHLO name.
    """
    name = socket.gethostname()
    return name if "." in name and name.isascii() else "localhost"


@dataclass(frozen=True)
class Outgoing:
    """A message for :meth:`Submitter.send_many` with an explicit envelope.

    Plain ``EmailMessage`` objects can be passed to ``send_many`` directly; wrap a message
    in ``Outgoing`` to give its envelope (required for raw bytes).
    """

    message: Message | bytes
    sender: str | None = None
    recipients: Sequence[str] | None = None


def _check_batch_options(
    concurrency: object,
    max_per_second: object,
    max_per_connection: object,
    on_result: object,
    max_connections: int,
) -> None:
    """Refuse ``send_many`` options of the wrong kind before anything is sent.

    A ``concurrency`` above ``max_connections`` is refused rather than silently capped (the
    caller asked for more connections than will be used) or obeyed (the pool size is often
    a provider's limit: Microsoft 365 allows 3 connections per mailbox).
    """
    check_count("concurrency", concurrency, optional=True)
    if isinstance(concurrency, int) and concurrency > max_connections:
        raise ConfigurationError(
            f"concurrency={concurrency} is more than the Submitter's "
            f"max_connections={max_connections} (its pool size)",
            hint=(
                f"build the Submitter with max_connections={concurrency} if the server allows "
                f"that many connections, or pass concurrency={max_connections} or less"
            ),
        )
    check_count("max_per_connection", max_per_connection, example=100, optional=True)
    if max_per_second is not None and not (
        isinstance(max_per_second, int | float)
        and not isinstance(max_per_second, bool)
        and math.isfinite(max_per_second)
        and max_per_second > 0
    ):
        raise ConfigurationError(
            f"max_per_second must be a finite number of messages per second > 0, or None; "
            f"got {max_per_second!r}",
            hint="e.g. max_per_second=0.5 for 30 messages a minute",
        )
    if on_result is not None and not callable(on_result):
        raise ConfigurationError(
            f"on_result must be a function (index, outcome) -> None, got {on_result!r}"
        )


class Submitter:
    """Send messages through one SMTP submission server.

    Example::

        from email.message import EmailMessage
        import smtpkit
        from smtpkit.auth import AppPasswordAuth

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@gmail.com", "you@example.com", "Hi"
        msg.set_content("Hello!")

        submitter = smtpkit.Submitter(
            "smtp.gmail.com", auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop")
        )
        result = submitter.send(msg)
        print(result.message_id, result.reply)

    It keeps its authenticated connections between calls (one login per connection;
    logging in per message trips Gmail's "454 4.7.0 Too many login attempts"), so a
    long-lived Submitter, such as a module-level one in a web app, logs in once and reuses
    the connection. A kept connection idle longer than ``idle_timeout`` is closed the next
    time the Submitter is used; ``close()`` closes them all, and so does the end of a
    ``with`` block, the Submitter being garbage-collected, or interpreter exit.

    Args:
        host: the server's host name or address.
        port: defaults to 465 for ``Security.TLS`` and 587 otherwise.
        security: ``Security.STARTTLS`` (default; required, never downgraded),
            ``Security.TLS`` (implicit TLS) or ``Security.NONE``.
        auth: an authentication strategy from :mod:`smtpkit.auth`, or ``None``.
        timeout: seconds for every step, or a :class:`~smtpkit.Timeouts`.
        tls_context: an ``ssl.SSLContext``; default ``ssl.create_default_context()``.
        local_hostname: the name to send in EHLO.
        transport: how to open connections; default a socket transport. Tests pass
            :class:`smtpkit.testing.FakeTransport`.
        proxy: connect through a SOCKS5, SOCKS4 or HTTP CONNECT proxy: a
            :class:`smtpkit.Proxy`, a proxy URL (``"socks5h://user:pw@host:1080"``) or
            ``"env"`` for ``ALL_PROXY``/``HTTPS_PROXY``. Needs ``smtpkit[proxy]``; TLS still
            runs end to end with the mail server (docs/proxies.md).
        allow_unencrypted_auth: send credentials over plaintext to a non-loopback host.
            Dangerous: anyone on the path can read them.
        provider: a provider name (e.g. ``"gmail"``) that sharpens error hints; set by
            :meth:`for_provider` and :meth:`from_url`.
        retry: a :class:`~smtpkit.Retry` policy for transient failures before the server
            could have accepted a message. Default: no retry (a connection found closed
            while idle is still replaced once, transparently).
        max_connections: connections open at once (the pool size).
        max_messages_per_connection: replace a connection after this many messages.
        idle_timeout: close kept connections idle this long instead of reusing them
            (seconds; checked whenever the Submitter is used).
        rate_limit: at most this many messages per second (all threads together).
        use_chunking: send with BDAT (RFC 3030) when the server offers CHUNKING.
        clock, wall_clock: monotonic and UTC clocks, injectable for tests.
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
        transport: Transport | None = None,
        proxy: Proxy | str | None = None,
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
        transport = with_proxy(transport, proxy, host=host)  # smtpkit._proxy
        # Every value checked before anything is built or connected (smtpkit._checks).
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
        if port is None:
            port = security.default_port
        self._settings = SessionSettings(
            host=host.strip(),
            port=port,
            security=security,
            timeouts=Timeouts.coerce(timeout),
            local_hostname=local_hostname or default_local_hostname(),
            tls_context=tls_context,
            auth=auth,
            allow_unencrypted_auth=allow_unencrypted_auth,
            provider=provider,
            chunking=use_chunking,
        )
        self._transport: Transport = transport if transport is not None else SocketTransport()
        self._preset = providers.find(provider)
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._retry = retry or Retry.never()
        self._rate_limit = rate_limit
        # One limiter for the Submitter's life, so that separate send() calls share the rate.
        self._limiter = RateLimiter(rate_limit, clock=clock)
        settings, transport, wall = self._settings, self._transport, self._wall_clock

        # The pool must not refer back to the Submitter, so that the finalizer below can
        # close it when the Submitter is collected.
        def open_session() -> Session:
            return Session.open(settings, transport, clock=clock)

        def token_expiring(session: Session) -> bool:
            return session.token_expires_within(TOKEN_EXPIRY_MARGIN, wall())

        self._pool = SessionPool(
            open_session,
            PoolLimits(
                max_connections=max_connections,
                max_messages_per_connection=max_messages_per_connection,
                idle_timeout=idle_timeout,
            ),
            clock=clock,
            expires=token_expiring,
            # Until a login succeeds, one connection logs in at a time: a wrong password
            # costs one AUTH, not one per thread.
            login_gate=auth is not None,
        )
        self._keep_lock = threading.Lock()
        self._keep_open = 0  # nesting depth of with-blocks / open() calls
        # Kept connections live as long as the Submitter: QUIT when it is garbage-collected
        # or, at the latest, at interpreter exit (weakref.finalize runs at exit).
        self._finalizer = weakref.finalize(self, self._pool.close)

    # -- other ways to build one ---------------------------------------------------------

    @classmethod
    def from_url(
        cls, url: str, *, password: str | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> Submitter:
        """A Submitter from a server URL such as ``smtp+starttls://user:pw@host:587``.

        Schemes: ``smtp+starttls://`` (587), ``smtps://`` (465, implicit TLS), ``smtp://``
        (plaintext; to a non-loopback host only with ``?allow_plaintext=true``). User and
        password are percent-encoded. Query options: ``timeout`` (seconds), ``auth``
        (``password``, ``plain``, ``login``, ``app_password``, ``xoauth2``, ``oauthbearer``),
        ``token_store`` (an OAuth2 token store file), ``local_hostname``, ``provider`` (a
        preset name; also recognised from the host), ``allow_plaintext``.

        Args:
            url: the server URL.
            password: used when the URL names a user but carries no password.
            **overrides: any other Submitter keyword; these win over the URL.

        Raises:
            ConfigurationError: what is wrong with the URL (the password shown as ``***``).
        """
        return cls(**options_from_url(url, password=password, **overrides))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> Submitter:
        """A Submitter from ``SMTPKIT_URL`` (and ``SMTPKIT_PASSWORD``); see :meth:`from_url`.

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
    def for_provider(cls, name: str, **overrides: Unpack[SubmitterOptions]) -> Submitter:
        """A Submitter with a provider preset's settings (``"gmail"``, ``"microsoft365"``...).

        Example::

            Submitter.for_provider("gmail", auth=AppPasswordAuth("me@gmail.com", "..."))
        """
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

    # -- connections ---------------------------------------------------------------------

    def open(self) -> Submitter:
        """Connect and log in now (the connection is then kept for later sends).

        Pair it with :meth:`close`; ``open()``/``close()`` pairs and ``with`` blocks nest,
        and the outermost one closes the connections.
        """
        with self._keep_lock:
            self._keep_open += 1
        try:
            session = self._pool.acquire()
        except BaseException:
            self.close()  # a failed open() keeps nothing
            raise
        self._pool.release(session)
        return self

    def close(self) -> None:
        """Send QUIT on every kept connection and close them. Never raises.

        Connections other threads are using are closed when they finish with them. The
        Submitter stays usable: a later send opens a new connection.
        """
        with self._keep_lock:
            self._keep_open = max(0, self._keep_open - 1)
            last = self._keep_open == 0
        if last:
            self._pool.close()

    def __enter__(self) -> Submitter:
        with self._keep_lock:
            self._keep_open += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> SendResult:
        """Send one message and return what the server said.

        Args:
            message: an ``email.message.EmailMessage``, or the raw message as ``bytes``
                (then ``sender`` and ``recipients`` are required).
            sender: the envelope sender; default: the Sender or From header.
            recipients: the envelope recipients; default: To, Cc and Bcc (Bcc is never
                transmitted in the headers).

        Returns:
            A :class:`~smtpkit.SendResult`. Recipients the server refused while others were
            accepted are listed in ``result.rejected``.

        Raises:
            RecipientRejected: every recipient was refused.
            DeliveryUnknown: the connection failed after the content was sent.
            SMTPError: any other failure, typed (see :mod:`smtpkit.errors`).
        """
        # `is not None`: an empty list means "no recipients" (an error), never "use the headers".
        envelope = None if recipients is None else tuple(recipients)
        job = Job(0, message, sender, envelope, self._retry)
        [outcome] = self._deliver([job], workers=1, on_result=None, per_connection=None)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def send_many(
        self,
        messages: Iterable[Message | Outgoing],
        *,
        concurrency: int | None = None,
        on_result: Callable[[int, SendResult | SMTPError], None] | None = None,
        max_per_second: float | None = None,
        max_per_connection: int | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages over pooled, pipelined connections.

        Messages stream over up to ``concurrency`` connections; on each, the end of one
        message travels with the next one's envelope (RFC 2920 §3.1), so a steady stream
        costs about one round trip per message.

        A refused login is not repeated for each message: until a login has succeeded,
        connections log in one at a time, and once the server refuses one (an
        ``AuthenticationError``, a failure reply to AUTH such as ``454 4.7.0 Too many login
        attempts``, or a ``ConfigurationError``) the batch opens no new connection: every
        message not yet started ends with that same error, without a retry. The next call
        tries again.

        Args:
            messages: ``EmailMessage`` objects, or :class:`Outgoing` for an explicit
                envelope or raw bytes.
            concurrency: connections to use at most (default: ``max_connections``). More
                than ``max_connections`` (the pool size, often a provider's limit) is a
                ``ConfigurationError``: raise ``max_connections`` on the Submitter instead.
            on_result: called as ``on_result(index, outcome)`` as each message finishes,
                from a reporting thread of the batch, one call at a time; never inside an
                open SMTP transaction. ``send_many`` returns after the last call.
            max_per_second: at most this many messages per second (default: the
                Submitter's ``rate_limit``).
            max_per_connection: open a new connection after this many messages.

        Returns:
            One outcome per message in input order: a ``SendResult``, or the ``SMTPError``
            that message ended with (nothing is raised for a single message's failure).

        Raises:
            BatchInterrupted: ``on_result`` raised. No further message is started, the
                messages already on their way finish, and the error carries every outcome
                (``None`` for a message not sent), raised from the callback's exception.
                Resend only ``error.not_sent``: the others were sent or failed for good.
        """
        limit = self._pool.limits.max_connections
        _check_batch_options(concurrency, max_per_second, max_per_connection, on_result, limit)
        jobs = []
        for index, item in enumerate(messages):
            if isinstance(item, Outgoing):
                recipients = None if item.recipients is None else tuple(item.recipients)
                jobs.append(Job(index, item.message, item.sender, recipients, self._retry))
            else:
                jobs.append(Job(index, item, retry=self._retry))
        if not jobs:
            return []
        workers = min(concurrency or limit, len(jobs))
        return self._deliver(
            jobs,
            workers=workers,
            on_result=on_result,
            per_connection=max_per_connection,
            rate=max_per_second,
        )

    def _deliver(
        self,
        jobs: list[Job],
        *,
        workers: int,
        on_result: Callable[[int, Outcome], None] | None,
        per_connection: int | None,
        rate: float | None = None,
    ) -> list[Outcome]:
        # One INFO line and the smtpkit.hooks callbacks per message, for send and send_many;
        # in a batch they run on a reporting thread, never inside an open transaction.
        tracker = SendTracker(
            self.host,
            self.port,
            clock=self._clock,
            log=self._log,
            on_result=on_result,
            per_message=len(jobs) > 1,
            background=len(jobs) > 1,
            log_enabled=lambda: logger.isEnabledFor(logging.INFO),
        )
        try:
            outcomes = deliver(
                jobs,
                pool=self._pool,
                prepare=tracker.prepare(self._prepare),
                workers=workers,
                limiter=RateLimiter(rate, clock=self._clock) if rate else self._limiter,
                per_connection=per_connection,
                on_result=tracker.finished,
                cancelled=lambda: tracker.failed,
                precheck=self._precheck,
                sleep=self._retry.sleep,
            )
        finally:
            tracker.close()
        if tracker.error is not None:
            not_sent = sum(outcome is None for outcome in outcomes)
            raise BatchInterrupted(
                f"on_result raised {type(tracker.error).__name__}; no further message was "
                f"started ({len(outcomes) - not_sent} finished, {not_sent} not sent); "
                "the outcomes are in .outcomes",
                outcomes,
            ) from tracker.error
        finished = [outcome for outcome in outcomes if outcome is not None]
        if len(finished) != len(outcomes):  # pragma: no cover - a bug guard
            raise AssertionError("a message ended without an outcome")
        return finished

    def _precheck(self, job: Job) -> SMTPError | None:
        # What can be refused before connecting: a preset's recipients-per-message cap.
        return recipient_cap_error(job, self._preset)

    def _prepare(self, job: Job, session: Session) -> PreparedMessage:
        extensions = session.extensions
        return prepare_message(
            job.message,
            sender=job.sender,
            recipients=job.recipients,
            local_hostname=self._settings.local_hostname,
            utf8_allowed=extensions.smtputf8,
            eight_bit_allowed=extensions.eight_bit_mime,
        )

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
            f"Submitter({self.host!r}, {self.port}, security=Security.{self.security.name}{auth})"
        )

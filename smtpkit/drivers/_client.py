"""What ``Submitter`` and ``AsyncSubmitter`` share: options, settings, constructors.

:class:`SubmitterBase` checks every option before anything is built (``smtpkit.config._checks``),
turns them into the engine's :class:`~smtpkit.engine.LinkSettings`, the transport
:class:`~smtpkit.config.Endpoint`, the pool's limits and reuse policy, and offers the
class methods (``from_url``, ``from_env``, ``for_provider``), the read-only properties and a
``repr`` without secrets. A driver subclass adds its I/O: it builds its pool and pacing
in :meth:`SubmitterBase._start` from what is here.

Invariants:
    * Configuration is immutable once built; a wrong value raises ``ConfigurationError``
      with a hint before any connection is attempted.
    * ``repr()`` shows no secret.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from typing import ClassVar, Generic, Literal, Self, TypeVar, Unpack

from smtpkit import providers
from smtpkit.auth import AuthStrategy
from smtpkit.config import Endpoint, Security, Timeouts
from smtpkit.config._checks import check_submitter_options
from smtpkit.config._configure import (
    SubmitterOptions,
    options_for_provider,
    options_from_env,
    options_from_url,
)
from smtpkit.config._proxy import Proxy, with_proxy
from smtpkit.dkim import DKIMSigner
from smtpkit.drivers._batch_state import BatchState
from smtpkit.drivers._common import (
    TOKEN_EXPIRY_MARGIN,
    Job,
    Outcome,
    PoolLimits,
    default_local_hostname,
    info_enabled,
    log_sent,
)
from smtpkit.drivers._pool_state import Pooled, PoolState
from smtpkit.drivers._quota_gate import QuotaGate, submitter_quota
from smtpkit.drivers._tracker import SendTracker
from smtpkit.engine import LinkSettings, Pacing, ReusePolicy, SendOptions
from smtpkit.engine._result import SendResult
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.quotas import Quota
from smtpkit.retry import Retry
from smtpkit.transports import Transport

__all__ = ["DEFAULT_WINDOW", "SubmitterBase"]

#: Whole BDAT transactions in flight per connection when the server offers PIPELINING and
#: CHUNKING (see docs/performance.md, "The BDAT window", for the measurement behind it).
DEFAULT_WINDOW = 16

C = TypeVar("C", bound=Pooled)
T = TypeVar("T")  # the transports a driver accepts besides a synchronous Transport


def no_prepare(job: object, conn: object) -> None:
    """What the hooks' start wrapper wraps: the engine prepares the message itself."""


class SubmitterBase(Generic[T]):
    """The options of a submitter; see :class:`smtpkit.Submitter` for each argument."""

    _pacing: Pacing  # the rate limit shared by every call (a driver's _start sets it)
    #: Whether a quota gate asks ahead in threads of its own (the threaded driver); the
    #: asyncio driver uses its loop's executor (smtpkit.drivers._async_quota).
    _quota_threads: ClassVar[bool] = True

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
        transport: Transport | T | None = None,
        proxy: Proxy | str | None = None,
        dkim: DKIMSigner | None = None,
        allow_unencrypted_auth: bool = False,
        provider: str | None = None,
        retry: Retry | None = None,
        max_connections: int = 4,
        max_messages_per_connection: int | None = 100,
        idle_timeout: float = 60.0,
        rate_limit: float | None = None,
        use_chunking: bool = True,
        window: int = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] | None = None,
        quota: Quota | Literal[False] | None = None,
    ) -> None:
        transport = with_proxy(transport, proxy, host=host)  # smtpkit.config._proxy
        # Every value checked before anything is built or connected (smtpkit.config._checks).
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
            window=window,
            clock=clock,
            wall_clock=wall_clock,
        )
        SendOptions.of(dkim=dkim)  # a wrong type is a ConfigurationError now
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
            dkim=dkim,
            chunking=use_chunking,
            window=window,
        )
        self._endpoint = Endpoint(host.strip(), port, security, tls_context, timeouts.connect)
        self._tls_context = tls_context
        self._preset = providers.find(provider)
        # What the hooks report as the provider: the preset's name, named or recognised
        # from the host, else the name given (a family no preset covers, such as "qq").
        known = self._preset or providers.for_host(host)
        self._hook_provider = known.name if known is not None else provider
        self._quota = submitter_quota(
            quota, self._preset, auth.username if auth is not None else None, host.strip()
        )
        self._clock = clock
        self._wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._retry = retry or Retry.never()
        self._rate_limit = rate_limit
        self._limits = PoolLimits(
            max_connections=max_connections,
            max_messages_per_connection=max_messages_per_connection,
            idle_timeout=idle_timeout,
        )
        self._policy = ReusePolicy(
            max_messages_per_connection=max_messages_per_connection,
            idle_timeout=idle_timeout,
            health_check_after=self._limits.health_check_after,
            token_expiry_margin=TOKEN_EXPIRY_MARGIN,
        )
        self._start(transport)

    def _start(self, transport: Transport | T | None) -> None:
        """Build the driver, its pool and :attr:`_pacing` (the subclass's I/O)."""
        raise NotImplementedError

    def _pool_state(self, kind: type[C]) -> PoolState[C]:
        """The bookkeeping of this submitter's pool of ``kind`` connections."""
        return PoolState(
            self._limits,
            self._policy,
            clock=self._clock,
            wall_clock=self._wall_clock,
            # Until a login succeeds, one connection logs in at a time: a wrong password
            # costs one AUTH, not one per thread or task.
            login_gate=self._settings.auth is not None,
        )

    # -- per call ------------------------------------------------------------------------

    def _tracker(
        self,
        on_result: Callable[[int, Outcome], object] | None,
        *,
        per_message: bool = True,
        background: bool = False,
    ) -> SendTracker:
        """The hooks and the INFO line of one ``send`` (``per_message=False``) or batch."""
        return SendTracker(
            self.host,
            self.port,
            clock=self._clock,
            log=log_sent,
            on_result=on_result,  # type: ignore[arg-type]  # its result is ignored
            per_message=per_message,
            background=background,
            log_enabled=info_enabled,
            provider=self._hook_provider,
        )

    def _batch(
        self,
        report: Callable[[int, Outcome], None],
        *,
        pacing: Pacing | None = None,
        per_connection: int | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> BatchState:
        """The bookkeeping of one call; ``report(index, outcome)`` gets each final one."""
        return BatchState(
            retry=self._retry,
            pacing=pacing or self._pacing,
            clock=self._clock,
            report=report,
            preset=self._preset,
            per_connection=per_connection,
            cancelled=cancelled,
            quota=None if self._quota is None else self._quota_gate(self._quota),
        )

    def _one(
        self,
        message: Message | bytes,
        sender: str | None,
        recipients: Sequence[str] | None,
        options: SendOptions | None,
    ) -> tuple[BatchState, list[Outcome]]:
        """``send``'s batch of one: its job queued, and the list its outcome arrives in."""
        # `is not None`: an empty list means "no recipients" (an error), never "use the headers".
        envelope = None if recipients is None else tuple(recipients)
        outcomes: list[Outcome] = []
        state = self._batch(lambda _index, outcome: outcomes.append(outcome))
        state.add_job(Job(0, message, sender, envelope, self._retry, options=options))
        return state, outcomes

    @staticmethod
    def _answer(state: BatchState, outcomes: list[Outcome], tracker: SendTracker) -> SendResult:
        """``send``'s answer once its run is over: the hooks run, then the result is
        returned or the error raised."""
        [outcome] = outcomes
        outcomes.clear()  # nothing else holds the outcome: no cycle through its traceback
        state.outcomes.clear()
        tracker.finished(0, outcome)
        if isinstance(outcome, SMTPError):
            try:
                raise outcome
            finally:
                # Its traceback holds this frame: without the name, no cycle keeps the
                # frame (and the submitter, whose connections then stay open) alive.
                del outcome
        return outcome

    def _quota_gate(self, quota: Quota) -> QuotaGate:
        """The quota's calls for one ``send``/``send_many`` call."""
        family = self._preset.family if self._preset is not None else None
        fast = QuotaGate.fast(quota)
        connections = self._limits.max_connections
        # One thread: the places asked ahead reach the store in message order, so a later
        # message never takes the place an earlier one asked for first (a store call that
        # does I/O is serialised by the store anyway: SQLite's write lock, one Redis script).
        threads = 1 if self._quota_threads and not fast else 0
        return QuotaGate(quota, provider=family, inline=fast, threads=threads, depth=connections)

    # -- other ways to build one ---------------------------------------------------------

    @classmethod
    def from_url(
        cls, url: str, *, password: str | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> Self:
        """A submitter from a server URL such as ``smtp+starttls://user:pw@host:587``.

        Schemes: ``smtp+starttls://`` (587), ``smtps://`` (465, implicit TLS), ``smtp://``
        (plaintext; to a non-loopback host only with ``?allow_plaintext=true``). User and
        password are percent-encoded. Query options: ``timeout`` (seconds), ``auth``
        (``password``, ``plain``, ``login``, ``app_password``, ``xoauth2``, ``oauthbearer``),
        ``token_store`` (an OAuth2 token store file), ``local_hostname``, ``provider`` (a
        preset name; also recognised from the host), ``allow_plaintext``, ``cafile``,
        ``proxy``, ``window`` (the BDAT window, 1 to 256), ``quota`` (a quota store URL,
        ``sqlite:///path`` or ``redis://...``: ``quota=Quota(store)``).

        Args:
            url: the server URL.
            password: used when the URL names a user but carries no password.
            **overrides: any other constructor keyword; these win over the URL.

        Raises:
            ConfigurationError: what is wrong with the URL (the password shown as ``***``).
        """
        return cls(**options_from_url(url, password=password, **overrides))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[SubmitterOptions]
    ) -> Self:
        """A submitter from ``SMTPKIT_URL`` (and ``SMTPKIT_PASSWORD``); see :meth:`from_url`.

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
    def for_provider(cls, name: str, **overrides: Unpack[SubmitterOptions]) -> Self:
        """A submitter with a provider preset's settings (``"gmail"``, ``"microsoft365"``...).

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
    def dkim(self) -> DKIMSigner | None:
        """The DKIM signer every message is signed with (``None``: not signed)."""
        return self._settings.dkim

    @property
    def pool_limits(self) -> PoolLimits:
        """The connection pool's limits."""
        return self._limits

    @property
    def quota(self) -> Quota | None:
        """The quota each message is counted in before it is sent (``None``: none)."""
        return self._quota

    @property
    def window(self) -> int:
        """Whole BDAT transactions kept in flight per connection (PIPELINING and CHUNKING)."""
        return self._settings.window

    @property
    def rate_limit(self) -> float | None:
        """At most this many messages per second (``None``: no limit)."""
        return self._rate_limit

    def __repr__(self) -> str:
        auth = self._settings.auth
        shown = "" if auth is None else f", auth={type(auth).__name__}({auth.username!r})"
        return (
            f"{type(self).__name__}({self.host!r}, {self.port}, "
            f"security=Security.{self.security.name}{shown})"
        )

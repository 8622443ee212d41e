"""What both drivers share that is not I/O: values, jobs, ``send_many``'s options, logging.

:class:`Outgoing` (a message with its envelope) and :class:`PoolLimits` are public values;
:class:`Job` is one message of a batch (it satisfies the engine's ``Submission``);
:func:`ends_logins` says which failures to open a connection end a batch's logins;
:func:`check_batch_options` refuses wrong ``send_many`` options before anything is sent;
:func:`log_sent` writes the one INFO line per accepted message.

Invariants:
    * Nothing here does I/O, waits or takes a lock: the threaded and the asyncio driver
      call it the same way.
    * A ``concurrency`` above ``max_connections`` is refused, not silently capped (the
      caller asked for connections that will not be used) nor obeyed (the pool size is
      often a provider's limit: Microsoft 365 allows 3 connections per mailbox).
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message

from smtpkit.config._checks import check_count, check_pool_limits
from smtpkit.dkim import DKIMSigner
from smtpkit.dsn import DSN, ESMTPParams
from smtpkit.engine import Attempts, SendOptions
from smtpkit.engine._result import SendResult
from smtpkit.errors import AuthenticationError, ConfigurationError, ReplyError, SMTPError
from smtpkit.replies import Phase
from smtpkit.retry import Retry

__all__ = [
    "TOKEN_EXPIRY_MARGIN",
    "Item",
    "Job",
    "Outcome",
    "Outgoing",
    "PoolLimits",
    "check_batch_options",
    "default_local_hostname",
    "ends_logins",
    "info_enabled",
    "log_sent",
]

logger = logging.getLogger("smtpkit")

#: Replace a kept OAuth2 connection this many seconds before its token expires: Gmail ends
#: OAuth2 sessions at token expiry, and a send that starts just before would be cut off.
TOKEN_EXPIRY_MARGIN = 60.0


def default_local_hostname() -> str:
    """The name sent in EHLO: this host's name when it is fully qualified, else localhost.

    ``socket.getfqdn()`` is avoided on purpose: it does a reverse DNS lookup that can block
    for seconds. Submission servers (RFC 6409 §6.1) do not verify the EHLO name.
    """
    name = socket.gethostname()
    return name if "." in name and name.isascii() else "localhost"


@dataclass(frozen=True)
class Outgoing:
    """A message for ``send_many`` with an explicit envelope or options of its own.

    Plain ``EmailMessage`` objects can be passed to ``send_many`` directly; wrap a message
    in ``Outgoing`` to give its envelope (required for raw bytes), or the options ``send``
    takes: ``dsn`` (:class:`~smtpkit.dsn.DSN`), ``params``
    (:class:`~smtpkit.dsn.ESMTPParams`) and ``dkim`` (:class:`~smtpkit.dkim.DKIMSigner`,
    instead of the submitter's). See docs/dsn.md and docs/dkim.md.

    Raises:
        ConfigurationError: ``dsn``, ``params`` or ``dkim`` of the wrong type.
    """

    message: Message | bytes
    sender: str | None = None
    recipients: Sequence[str] | None = None
    dsn: DSN | None = None
    params: ESMTPParams | None = None
    dkim: DKIMSigner | None = None

    def __post_init__(self) -> None:
        SendOptions.of(self.dsn, self.params, self.dkim)  # wrong types fail here, not later


@dataclass(frozen=True)
class PoolLimits:
    """Connection pool limits.

    Attributes:
        max_connections: connections open at once. Microsoft 365 allows 3 per mailbox.
        max_messages_per_connection: close a connection after this many messages
            (``None``: no cap). Some servers limit messages per connection (Postfix's
            default is 100 per client in a burst; Exchange closes after a few hundred).
        idle_timeout: close connections idle this long instead of reusing them. Servers
            close idle sessions after a few minutes (RFC 5321 §4.5.3.2.7 suggests 5).
        health_check_after: send NOOP before reusing a connection idle this long.
        acquire_timeout: how long a caller waits for a free connection.
    """

    max_connections: int = 4
    max_messages_per_connection: int | None = 100
    idle_timeout: float = 60.0
    health_check_after: float = 10.0
    acquire_timeout: float = 120.0

    def __post_init__(self) -> None:
        # Types too (max_connections="4", idle_timeout=nan), as ConfigurationError.
        check_pool_limits(
            max_connections=self.max_connections,
            max_messages_per_connection=self.max_messages_per_connection,
            idle_timeout=self.idle_timeout,
            health_check_after=self.health_check_after,
            acquire_timeout=self.acquire_timeout,
        )


def ends_logins(error: BaseException) -> bool:
    """Whether a failure to open a connection would repeat on every new one at once.

    True for a refused login (an ``AuthenticationError``, including a token still refused
    after the forced refresh, or any other failure reply to AUTH such as Gmail's ``454 4.7.0
    Too many login attempts``) and for a ``ConfigurationError``: logging in again only
    prolongs a provider's lockout. A ``TokenRefreshError`` (the token endpoint failed) is
    not one: it never reached the server.
    """
    if isinstance(error, (AuthenticationError, ConfigurationError)):
        return True
    return isinstance(error, ReplyError) and error.phase is Phase.AUTH


#: What a message ends with: accepted, or the typed error it failed with.
Outcome = SendResult | SMTPError
#: What ``send_many`` accepts per message.
Item = Message | Outgoing


class Job:
    """One message to send, with its tries (identity-compared: each job is one message).

    Attributes:
        index: the message's position in the batch (0 for ``send``).
        message, sender, recipients: what to send (the engine's ``Submission``).
        options: its DSN, ESMTP parameters and DKIM signer, or ``None``.
        retry: the ``Retry`` policy its tries follow (after the free resend on
            ``ConnectionStale``; :meth:`next_try`).
        started: it took its rate-limit slot (on the first try; retries need none).
        last_error: the error of its last try, while it waits to be tried again.
        wait: seconds to wait before its next try (a ``Retry`` backoff), with no
            connection held.
    """

    __slots__ = (
        "_attempts",
        "index",
        "last_error",
        "message",
        "options",
        "recipients",
        "retry",
        "sender",
        "started",
        "wait",
    )

    def __init__(
        self,
        index: int,
        message: Message | bytes,
        sender: str | None = None,
        recipients: tuple[str, ...] | None = None,
        retry: Retry | None = None,
        *,
        options: SendOptions | None = None,
    ) -> None:
        self.index = index
        self.message = message
        self.sender = sender
        self.recipients = recipients
        self.options = options
        self.retry = retry
        self.started = False
        self.last_error: SMTPError | None = None
        self.wait = 0.0
        self._attempts: Attempts | None = None  # made at the first failure: most never fail

    @classmethod
    def of(cls, index: int, item: Item, retry: Retry) -> Job:
        """The job for a ``send_many`` item (a message, or an :class:`Outgoing`)."""
        if isinstance(item, Outgoing):
            recipients = None if item.recipients is None else tuple(item.recipients)
            options = SendOptions.of(item.dsn, item.params, item.dkim)
            return cls(index, item.message, item.sender, recipients, retry, options=options)
        return cls(index, item, None, None, retry)

    def next_try(self, error: SMTPError) -> float | None:
        """Seconds to wait before trying again after ``error``, or ``None`` if it is final
        (the engine's :class:`~smtpkit.engine.Attempts`)."""
        attempts = self._attempts
        if attempts is None:
            attempts = self._attempts = Attempts(self.retry or Retry.never())
        return attempts.next_try(error)

    def __repr__(self) -> str:
        return f"<Job {self.index}>"


def check_batch_options(
    concurrency: object,
    max_per_second: object,
    max_per_connection: object,
    on_result: object,
    max_connections: int,
) -> int:
    """Refuse ``send_many`` options of the wrong kind; the number of connections to use."""
    check_count("concurrency", concurrency, optional=True)
    if isinstance(concurrency, int) and concurrency > max_connections:
        raise ConfigurationError(
            f"concurrency={concurrency} is more than the submitter's "
            f"max_connections={max_connections} (its pool size)",
            hint=(
                f"build the submitter with max_connections={concurrency} if the server allows "
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
    return concurrency if isinstance(concurrency, int) else max_connections


def info_enabled() -> bool:
    """Whether the INFO line would be written (else nothing is queued to write it)."""
    return logger.isEnabledFor(logging.INFO)


def log_sent(result: SendResult, elapsed: float) -> None:
    """The INFO line for an accepted message (on logger ``smtpkit``)."""
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

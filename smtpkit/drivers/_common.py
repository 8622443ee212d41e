"""What both drivers share that is not I/O: jobs, ``send_many``'s options, the INFO line.

:class:`Job` is one message of a batch (it satisfies the engine's ``Submission``);
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
from dataclasses import dataclass, field
from email.message import Message

from smtpkit._checks import check_count
from smtpkit._pool import PoolLimits, ends_logins
from smtpkit._result import SendResult
from smtpkit._submitter import TOKEN_EXPIRY_MARGIN, Outgoing, default_local_hostname
from smtpkit.engine import Attempts
from smtpkit.errors import ConfigurationError, SMTPError
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
    "log_sent",
]

logger = logging.getLogger("smtpkit")

#: What a message ends with: accepted, or the typed error it failed with.
Outcome = SendResult | SMTPError
#: What ``send_many`` accepts per message.
Item = Message | Outgoing


@dataclass(eq=False)
class Job:
    """One message to send, with its tries (identity-compared: each job is one message).

    Attributes:
        index: the message's position in the batch (0 for ``send``).
        attempts: the free resend after ``ConnectionStale``, then the ``Retry`` policy.
        started: it took its rate-limit slot (on the first try; retries need none).
        last_error: the error of its last try, while it waits to be tried again.
        wait: seconds to wait before its next try (a ``Retry`` backoff), with no
            connection held.
    """

    index: int
    message: Message | bytes
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    attempts: Attempts = field(default_factory=Attempts)
    started: bool = False
    last_error: SMTPError | None = None
    wait: float = 0.0

    @classmethod
    def of(cls, index: int, item: Item, retry: Retry) -> Job:
        """The job for a ``send_many`` item (a message, or an :class:`Outgoing`)."""
        if isinstance(item, Outgoing):
            recipients = None if item.recipients is None else tuple(item.recipients)
            return cls(index, item.message, item.sender, recipients, Attempts(retry))
        return cls(index, item, attempts=Attempts(retry))


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

"""The decisions behind :class:`smtpkit.Failover`: what moves a message, and where it goes.

Job: with no I/O, decide (1) whether a failure leaves a message certainly not accepted and
is the server's doing, so the message may move to the next server, and (2) which server a
message tries next, given the strategy and each server's cool-down. The sync
:class:`~smtpkit.Failover` (and an asyncio twin) only perform these decisions.

Invariants:
    * Nothing the server may have accepted moves: ``DeliveryUnknown`` (the connection
      failed after the final ``.``) never does, and no reply after the content does except
      a quota or rate limit (``RateLimited``), which is a definite refusal (RFC 5321
      §4.1.1.4: a failure reply to the final ``.`` means the server did not take the
      message) about the account, not the message.
    * A quota refusal (``QuotaExceeded``, ``QuotaStoreUnavailable``) moves: nothing was
      sent, and it is about the account of that server, not the message.
    * A 5xx refusal of the sender, a recipient or the message is the message's own
      outcome: another server would refuse it too (and a second refusal teaches nothing).
    * A message that needs an extension the server does not offer moves too
      (:func:`lacks_extension`): ``SMTPUTF8`` for a non-ASCII address, ``8BITMIME`` for
      8-bit content that cannot be re-encoded, ``DSN`` asked for with
      ``IfUnsupported.REFUSE``. The refusal (``ExtensionNotOffered``) comes before ``MAIL``,
      so nothing was sent, and another server may offer the extension. That server is not
      cooled down: it is healthy and still takes messages that do not need it.
    * A message is tried on each server at most once.
    * A server that failed is skipped until its cool-down ends. When every server is
      cooling down, a message's *first* try goes to the server whose cool-down ends first
      (ties: strategy order): refusing to try at all would turn a short outage of every
      server into certain failure, while one try costs one connection attempt.
    * A refusal for a missing extension is not a try in that sense: while every server a
      message tried lacked an extension it needs, it has met no server that could take it,
      so its next try may go to a cooling server (``retry_cooling``), as a first try does.
      Otherwise the only servers that offer the extension cooling down after a blip would
      end it with a permanent-looking ``ExtensionNotOffered`` instead of a try.
    * Thread-safe: one lock guards the cool-downs and the round-robin counter; the clock
      is injected.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Callable, Sequence

from smtpkit.errors import (
    AuthenticationError,
    AuthenticationRequired,
    ConfigurationError,
    DeliveryUnknown,
    DSNNotOffered,
    ExtensionNotOffered,
    InsecureAuthRefused,
    NoCommonMechanism,
    QuotaExceeded,
    QuotaStoreUnavailable,
    RateLimited,
    RecipientRejected,
    ReplyError,
    TokenRefreshError,
    TransportError,
)
from smtpkit.replies import Phase

__all__ = [
    "Board",
    "FailoverStrategy",
    "check_cooldown",
    "is_server_failure",
    "lacks_dsn",
    "lacks_extension",
    "may_move",
]

#: Phases before any transaction: a failure there is about the server or the login, never
#: about a message (RFC 5321 §3.1-3.2, RFC 3207, RFC 4954). RSET and NOOP run between
#: messages, so a failure there is about the session too.
_SESSION_PHASES = frozenset(
    {Phase.GREETING, Phase.EHLO, Phase.STARTTLS, Phase.AUTH, Phase.RSET, Phase.NOOP, Phase.QUIT}
)


class FailoverStrategy(enum.Enum):
    """How :class:`~smtpkit.Failover` orders its servers for each message.

    Attributes:
        FAILOVER: always the first server that is not cooling down, in the order given
            (a primary and its backups).
        ROUND_ROBIN: each message starts at the next server in turn, so the load spreads
            evenly; on a failure it moves on in the same circular order.
    """

    FAILOVER = "failover"
    ROUND_ROBIN = "round_robin"

    @classmethod
    def coerce(cls, value: FailoverStrategy | str) -> FailoverStrategy:
        """A member from itself or its value (``"failover"``, ``"round_robin"``).

        Raises:
            ConfigurationError: anything else.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            wanted = value.strip().lower().replace("-", "_")
            for member in cls:
                if member.value == wanted:
                    return member
        choices = ", ".join(repr(member.value) for member in cls)
        raise ConfigurationError(
            f"strategy must be a FailoverStrategy or one of {choices}, got {value!r}",
            hint="use FailoverStrategy.FAILOVER (a primary and backups) or "
            "FailoverStrategy.ROUND_ROBIN (spread the load)",
        )


def is_server_failure(error: BaseException) -> bool:
    """Whether ``error`` leaves the message certainly not accepted, for a reason of the server.

    Such a message may move to the next server. True for: connection, TLS and timeout
    failures before the content (every ``TransportError`` but ``DeliveryUnknown``), a
    connection found closed (``ConnectionStale``), any failure reply before a transaction
    (greeting, EHLO, STARTTLS, AUTH: ``421``, ``ConnectionRejected``, ``TLSUnavailable``,
    every ``AuthenticationError``), an OAuth2 token that could not be had, no common AUTH
    mechanism or a link that may not carry credentials, a ``4xx`` to MAIL, RCPT or DATA
    (for refused recipients: when every refusal is a ``4xx``), ``530`` "authentication
    required" to MAIL, ``RateLimited`` at any step, and a refusal of the Submitter's own
    quota (``QuotaExceeded``, ``QuotaStoreUnavailable``: nothing was sent).

    False for ``DeliveryUnknown``, for every other reply after the content, for ``5xx``
    refusals of the sender, recipients or message, for a message that cannot be sent as
    given (``MessageError``) and for anything that is not an ``SMTPError``.
    """
    if isinstance(error, DeliveryUnknown):
        return False
    if isinstance(error, TransportError | TokenRefreshError | NoCommonMechanism):
        return True
    if isinstance(error, QuotaExceeded | QuotaStoreUnavailable):
        return True  # refused before anything was sent: that account's quota, not the message
    if isinstance(error, InsecureAuthRefused):
        return True
    if not isinstance(error, ReplyError):
        return False
    if isinstance(error, RateLimited):
        return True
    if error.phase is Phase.MESSAGE:
        return False  # the server judged the whole message: its answer stands
    if error.phase in _SESSION_PHASES:
        return True
    if isinstance(error, AuthenticationError | AuthenticationRequired):
        return True
    if isinstance(error, RecipientRejected) and error.rejected:
        return all(reply.is_transient for reply in error.rejected.values())
    return error.is_transient


def lacks_extension(error: BaseException) -> bool:
    """Whether ``error`` is a message refused because the server lacks an extension it needs.

    ``ExtensionNotOffered`` (``SMTPUTF8``, RFC 6531 §3.4; ``8BITMIME``, RFC 6152 §3;
    ``DSN``, RFC 3461 §3) is raised before ``MAIL``, so nothing was sent; another server
    may offer the extension. Recognised by class, never by wording.
    """
    return isinstance(error, ExtensionNotOffered)


def lacks_dsn(error: BaseException) -> bool:
    """Whether ``error`` is the refusal of a DSN request by a server that does not offer DSN
    (:func:`lacks_extension` for ``DSN``)."""
    return isinstance(error, DSNNotOffered)


def may_move(error: BaseException) -> bool:
    """Whether a message that ended with ``error`` may go on to another server.

    True for a server failure (:func:`is_server_failure`, which also cools the server
    down) and for a message that needs an extension the server does not offer
    (:func:`lacks_extension`, which does not: the server is healthy and takes messages
    that do not need it).
    """
    return is_server_failure(error) or lacks_extension(error)


def check_cooldown(cooldown: object) -> float:
    """``cooldown`` as seconds, or ConfigurationError."""
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, int | float)
        or not math.isfinite(cooldown)
        or cooldown < 0
    ):
        raise ConfigurationError(
            f"cooldown must be a finite number of seconds >= 0, got {cooldown!r}",
            hint="e.g. cooldown=30.0; 0 never skips a failing server",
        )
    return float(cooldown)


class Board:
    """Each server's cool-down and the round-robin turn, shared by every thread.

    Servers are numbered by their position in the list given to ``Failover``. A message's
    *order* is the sequence it walks on failures (:meth:`orders`); :meth:`pick` chooses its
    next server from that order.
    """

    def __init__(
        self,
        count: int,
        strategy: FailoverStrategy,
        *,
        cooldown: float,
        clock: Callable[[], float],
    ) -> None:
        self._count = count
        self._strategy = strategy
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._until = [-math.inf] * count  # the clock time each server's cool-down ends
        self._turn = 0

    def orders(self, messages: int) -> list[tuple[int, ...]]:
        """The order each of the next ``messages`` messages walks, in input order."""
        servers = range(self._count)
        if self._strategy is FailoverStrategy.FAILOVER:
            return [tuple(servers)] * messages
        with self._lock:
            first = self._turn
            self._turn = (first + messages) % self._count
        return [
            tuple((first + offset + step) % self._count for step in servers)
            for offset in range(messages)
        ]

    def pick(
        self, order: Sequence[int], tried: Sequence[int], *, retry_cooling: bool = False
    ) -> int | None:
        """The server a message tries next, or ``None`` when it has nowhere left to go.

        The first server of ``order`` not yet ``tried`` and not cooling down; for a
        message not tried anywhere yet (or, with ``retry_cooling``, tried only where an
        extension it needs was lacking) while every server left cools down, the one whose
        cool-down ends first.
        """
        with self._lock:
            now = self._clock()
            for server in order:
                if server not in tried and self._until[server] <= now:
                    return server
            if tried and not retry_cooling:
                return None
            left = [server for server in order if server not in tried]
            # Stable: among equal ends, the earlier in the order wins.
            return min(left, key=lambda server: self._until[server]) if left else None

    def cooling_among(self, servers: Sequence[int]) -> list[int]:
        """Those of ``servers`` cooling down now, in the order given."""
        with self._lock:
            now = self._clock()
            return [server for server in servers if self._until[server] > now]

    def failed(self, server: int) -> bool:
        """Start (or extend) ``server``'s cool-down from now; True if it was not cooling."""
        with self._lock:
            now = self._clock()
            fresh = self._until[server] <= now
            self._until[server] = max(self._until[server], now + self._cooldown)
            return fresh

    def cooling(self) -> dict[int, float]:
        """Seconds left of each server's cool-down, for those cooling down now."""
        with self._lock:
            now = self._clock()
            return {server: until - now for server, until in enumerate(self._until) if until > now}

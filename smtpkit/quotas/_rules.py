"""What a quota counts: rules from a preset's limits, and the values stores exchange.

A :class:`Rule` is one limit (``messages_per_day = 500``) with the unit it counts and the
length of its window. Stores see rules grouped by window (:class:`WindowLimits`), because one
record per reservation serves every limit of the same window: ``messages_per_day`` and
``recipients_per_day`` share the 24-hour window.

Every window is counted *rolling*: a reservation counts against a limit until ``window``
seconds after the store recorded it. That is what Gmail, Google Workspace, Microsoft 365 and
Amazon SES document for their daily limits (``day_window = "rolling"`` in the preset data),
and it is never looser than a calendar day: the current day is always inside the last 24
hours, so whatever a rolling count allows, a count reset at midnight allows too.

Invariants:
    * Values here are frozen and hold no I/O; stores and the :class:`~smtpkit.quotas.Quota`
      exchange only these.
    * A store grants a request only when, for every window, ``used + requested <= allowed``
      for each unit that window limits.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from smtpkit.errors import ConfigurationError
from smtpkit.providers import Limits

__all__ = [
    "DAY",
    "MINUTE",
    "SECOND",
    "CountsLost",
    "Decision",
    "Exhausted",
    "Granted",
    "OverLimit",
    "Request",
    "Rule",
    "StoreUsage",
    "Unit",
    "WindowLimits",
    "check_key",
    "group",
    "retry_after",
    "rules_from_limits",
]

#: Window lengths in seconds.
DAY = 86_400.0
MINUTE = 60.0
SECOND = 1.0

#: The longest key a quota accepts: account keys are an address and a host name.
MAX_KEY_LENGTH = 512
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Unit(enum.Enum):
    """What a limit counts."""

    MESSAGES = "messages"
    RECIPIENTS = "recipients"


@dataclass(frozen=True, slots=True)
class Rule:
    """One counted limit.

    Attributes:
        name: the :class:`~smtpkit.providers.Limits` field (``"messages_per_day"``).
        unit: what it counts.
        allowed: how many fit in one window.
        window: the window's length in seconds (counted rolling).
    """

    name: str
    unit: Unit
    allowed: int
    window: float


# The Limits fields a quota counts, in the order reports list them.
_COUNTED: tuple[tuple[str, Unit, float], ...] = (
    ("messages_per_day", Unit.MESSAGES, DAY),
    ("recipients_per_day", Unit.RECIPIENTS, DAY),
    ("messages_per_minute", Unit.MESSAGES, MINUTE),
    ("messages_per_second", Unit.MESSAGES, SECOND),
)


def rules_from_limits(limits: Limits) -> tuple[Rule, ...]:
    """The rules for the counted fields of ``limits`` that are set.

    ``concurrent_connections``, ``recipients_per_message`` and ``message_size`` are not
    quotas over time; the Submitter applies them per connection and per message.
    """
    rules: list[Rule] = []
    for name, unit, window in _COUNTED:
        allowed = getattr(limits, name)
        if allowed is not None:
            rules.append(Rule(name, unit, allowed, window))
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class WindowLimits:
    """The limits that share one window (``None``: that unit is not limited here)."""

    seconds: float
    messages: int | None = None
    recipients: int | None = None

    def allowed(self, unit: Unit) -> int | None:
        """The limit on ``unit`` in this window, or ``None``."""
        return self.messages if unit is Unit.MESSAGES else self.recipients


def group(rules: Iterable[Rule]) -> tuple[WindowLimits, ...]:
    """Rules grouped by window, longest window first; the tightest rule wins on a clash."""
    by_window: dict[float, dict[Unit, int]] = {}
    for rule in rules:
        units = by_window.setdefault(rule.window, {})
        units[rule.unit] = min(rule.allowed, units.get(rule.unit, rule.allowed))
    return tuple(
        WindowLimits(seconds, units.get(Unit.MESSAGES), units.get(Unit.RECIPIENTS))
        for seconds, units in sorted(by_window.items(), reverse=True)
    )


def check_key(key: str) -> str:
    """``key`` if it can name an account in every store.

    Raises:
        ConfigurationError: empty, too long, or holding control characters.
    """
    if not isinstance(key, str) or not key.strip():
        raise ConfigurationError(
            "a quota key must be a non-empty string",
            hint="pass key='user@example.com@smtp.example.com' or let the Submitter set it",
        )
    if len(key) > MAX_KEY_LENGTH or _CONTROL_RE.search(key):
        raise ConfigurationError(
            f"a quota key must be at most {MAX_KEY_LENGTH} printable characters",
            hint="use the account's user name and host, e.g. 'me@gmail.com@smtp.gmail.com'",
        )
    return key


# -- what a reservation asks and what a store answers -----------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """One reservation as a store sees it.

    Attributes:
        windows: the limits to respect, grouped by window (may be empty: then only an
            exhaustion mark can refuse).
        messages, recipients: what the reservation counts.
        now: the caller's clock, in seconds since the epoch.
        entry: a unique id for the record; the same id twice records once.
        count_when_lost: when the store knows it lost its counts, record anyway (the
            caller chose to send when the store cannot vouch for the count).
    """

    windows: tuple[WindowLimits, ...]
    messages: int
    recipients: int
    now: float
    entry: str
    count_when_lost: bool = False


@dataclass(frozen=True, slots=True)
class Granted:
    """Recorded; ``at`` is the time the store counted it at (never before its last record)."""

    at: float


@dataclass(frozen=True, slots=True)
class OverLimit:
    """Refused: ``window``'s limit on ``unit`` would be crossed.

    ``retry_after`` is how long until enough of the window has freed up for this request.
    """

    window: float
    unit: Unit
    used: int
    allowed: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Refused: the provider said the quota is used up, until ``until``."""

    until: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class CountsLost:
    """Refused: the store lost its counts (restarted empty, flushed) ``retry_after`` ago."""

    retry_after: float


Decision = Granted | OverLimit | Exhausted | CountsLost


@dataclass(frozen=True, slots=True)
class StoreUsage:
    """What a store counts for one account at ``at``.

    Attributes:
        at: the store's time for the account (never before its last record).
        used: ``(window, unit)`` to the count in that window.
        exhausted_until: the end of an exhaustion mark still in force, or ``None``.
    """

    at: float
    used: dict[tuple[float, Unit], int]
    exhausted_until: float | None


def retry_after(
    oldest_first: Iterable[tuple[float, int]], need: int, window: float, now: float
) -> float:
    """Seconds until ``need`` units have left a rolling window.

    Args:
        oldest_first: ``(recorded at, units)`` of the records in the window, oldest first.
        need: how many units must leave (``used + requested - allowed``, at least 1).
        window: the window's length in seconds.
        now: the store's time.

    A record leaves the window ``window`` seconds after it was recorded, so the answer is
    the time the record that frees the last needed unit leaves.
    """
    freed = 0
    at = now
    for recorded, units in oldest_first:
        freed += units
        at = recorded + window
        if freed >= need:
            break
    return max(at - now, 0.0)

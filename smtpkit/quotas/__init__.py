"""Sending quotas that hold across threads, processes and machines.

Providers limit an account, not a process: Gmail 500 messages a day, Microsoft 365 30
messages a minute and 10,000 recipients a day. A :class:`Quota` counts each message in a
store every worker of the account shares, *before* the message is sent, and refuses with
:class:`~smtpkit.errors.QuotaExceeded` (nothing sent, ``retry_after`` seconds to wait) when
a limit would be crossed::

    from smtpkit.quotas import Quota, RedisQuotaStore

    quota = Quota(RedisQuotaStore("redis://127.0.0.1:6379/0"), key="smtp.gmail.com/me@gmail.com",
                  limits=Limits(messages_per_day=500))
    with quota.reserve(recipients=3):      # raises QuotaExceeded when over
        send(message)                      # kept on success, given back on a refusal

Stores: :class:`MemoryQuotaStore` (one process), :class:`SQLiteQuotaStore` (the processes
of one machine), :class:`RedisQuotaStore` (a fleet; ``pip install 'smtpkit[redis]'``).
``docs/quotas.md`` explains windows, failures and what a driver calls.
"""

from smtpkit.quotas._memory import MemoryQuotaStore
from smtpkit.quotas._quota import LimitUsage, OnStoreError, Quota, QuotaUsage, account_key
from smtpkit.quotas._redis import RedisQuotaStore
from smtpkit.quotas._replies import quota_reply_window
from smtpkit.quotas._reservation import Reservation, ReservationState
from smtpkit.quotas._rules import Rule, Unit
from smtpkit.quotas._sqlite import SQLiteQuotaStore
from smtpkit.quotas._store import QuotaStore

__all__ = [
    "LimitUsage",
    "MemoryQuotaStore",
    "OnStoreError",
    "Quota",
    "QuotaStore",
    "QuotaUsage",
    "RedisQuotaStore",
    "Reservation",
    "ReservationState",
    "Rule",
    "SQLiteQuotaStore",
    "Unit",
    "account_key",
    "quota_reply_window",
]

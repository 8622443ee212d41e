"""The account's sending quota for ``smtpkit check`` and ``smtpkit quota``: used and left.

A quota store is named by a URL; the one read is, first found (:func:`choose_store`):

1. the command line's ``--store`` / ``--quota-store`` (what was asked for just now);
2. the target URL's ``quota=`` option (the store a Submitter built from that URL counts
   in: showing another by default would show counts its senders never touch);
3. ``SMTPKIT_QUOTA_STORE`` (a default for targets that name none: addresses, presets,
   URLs without ``quota=``).

Store URLs::

    redis://[:password@]host:6379/0     RedisQuotaStore (rediss:// for TLS)
    sqlite:///var/lib/app/quota.db      SQLiteQuotaStore (an absolute path; sqlite:////var/...
                                        too, as SQLAlchemy writes it; sqlite:rel/path.db)

The account and its limits are the ones a Submitter built from the same target would
count (``Submitter(**options, quota=Quota(store)).quota``): the preset's limits, keyed by
user name and host. Reading the counts takes one store call and sends nothing.

Invariants:
    * A store URL is never repeated in output or errors (it may hold a password); stores
      describe themselves without credentials (``redis 127.0.0.1:6379/0``).
    * Reading the usage reserves nothing and changes no count.
    * An SQLite store that SQLite could not put in WAL mode still counts exactly; the step
      says which mode it runs in and warns (``journal_mode`` in the details).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from smtpkit.config._configure import SubmitterOptions
from smtpkit.doctor._report import Finding, Status
from smtpkit.drivers import Submitter
from smtpkit.errors import ConfigurationError, QuotaStoreUnavailable
from smtpkit.quotas import Quota, QuotaStore, QuotaUsage, SQLiteQuotaStore
from smtpkit.quotas._url import store_from_url

__all__ = [
    "ENV_QUOTA_STORE",
    "AccountQuota",
    "account_quota",
    "choose_store",
    "journal_mode",
    "journal_note",
    "quota_finding",
    "quota_lines",
    "store_from_url",
]

#: The environment variable naming the quota store for ``smtpkit check`` and ``quota``.
ENV_QUOTA_STORE = "SMTPKIT_QUOTA_STORE"

_WINDOWS = {86_400.0: "rolling 24 hours", 60.0: "rolling minute", 1.0: "rolling second"}


@dataclass(frozen=True)
class AccountQuota:
    """The quota a Submitter for the target would count, and where."""

    quota: Quota
    store: str  # the store, described without credentials


def account_quota(options: SubmitterOptions, store: QuotaStore) -> AccountQuota | None:
    """The quota for the account ``options`` describe, in ``store``; ``None`` when no
    limit is known (no preset with limits: pass ``provider``). No I/O."""
    with_quota: SubmitterOptions = {**options, "quota": Quota(store)}
    try:
        built = Submitter(**with_quota)
    except ConfigurationError as error:
        if "counts no limit" in error.message:
            return None
        raise
    assert built.quota is not None
    return AccountQuota(built.quota, repr(store))


def choose_store(
    given: str | QuotaStore | None, options: SubmitterOptions, environ: Mapping[str, str]
) -> QuotaStore | None:
    """The store to read for ``options``: ``given``, else the URL's ``quota=`` store, else
    ``SMTPKIT_QUOTA_STORE`` in ``environ``; ``None`` when none is named.

    Takes the URL's store out of ``options`` (closed when not chosen). The caller closes
    the store returned unless it is ``given`` itself. Building a store does no I/O.

    Raises:
        ConfigurationError: a store URL that cannot be understood (it is not repeated).
    """
    from_url = options.pop("quota", None)
    url_store = from_url.store if isinstance(from_url, Quota) else None
    if given is not None or url_store is None:
        if url_store is not None:
            url_store.close()
        named = given if given is not None else environ.get(ENV_QUOTA_STORE, "").strip()
        if not named:
            return None
        return store_from_url(named) if isinstance(named, str) else named
    return url_store


def journal_mode(store: QuotaStore) -> str | None:
    """The journal mode of an SQLite store that has been used (``"wal"``, ``"delete"``...);
    ``None`` for other stores and before the first operation."""
    return store.journal_mode if isinstance(store, SQLiteQuotaStore) else None


def journal_note(store: QuotaStore) -> str | None:
    """Why an SQLite store that could not get WAL mode is slower (``None`` when in WAL)."""
    mode = journal_mode(store)
    if mode is None or mode == "wal":
        return None
    return (
        f"the SQLite file runs in journal_mode={mode}, not WAL (no shared memory for WAL "
        "here): counts stay exact, but processes take turns, readers included"
    )


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def quota_lines(usage: QuotaUsage) -> list[str]:
    """One line per counted limit (``messages_per_day: 312 of 500 used, 188 left``), and
    the provider's exhaustion mark when there is one."""
    lines = [
        f"{limit.name}: {limit.used:,} of {limit.allowed:,} used, {limit.left:,} left "
        f"({_WINDOWS.get(limit.window, f'{limit.window:g} s')})"
        for limit in usage.limits
    ]
    if usage.exhausted_until is not None and usage.exhausted_until > usage.at:
        lines.append(
            f"exhausted until {_when(usage.exhausted_until)}: the provider refused a message "
            "for its quota"
        )
    return lines


def quota_finding(account: AccountQuota | None) -> Finding:
    """The ``quota`` step of ``smtpkit check``: used and left, or why it cannot say."""
    if account is None:
        return Finding(
            "quota",
            Status.SKIP,
            "no sending limits known for this server",
            advice="name the provider (--provider gmail) to count its limits",
        )
    try:
        usage = account.quota.usage()
    except QuotaStoreUnavailable as error:
        return Finding(
            "quota",
            Status.FAIL,
            f"the quota store ({account.store}) cannot be asked: {error.message}",
            advice="a Submitter with this quota refuses to send until it can be asked "
            "(or counts nothing with on_store_error='send'); check the store",
        )
    store = account.quota.store
    note = journal_note(store)
    lines = [*quota_lines(usage), *([note] if note else [])]
    details: dict[str, object] = {
        "key": usage.key,
        "store": account.store,
        "limits": [
            {"name": u.name, "used": u.used, "allowed": u.allowed, "left": u.left}
            for u in usage.limits
        ],
        "exhausted_until": usage.exhausted_until,
    }
    if isinstance(store, SQLiteQuotaStore):
        details["journal_mode"] = store.journal_mode
    observed = f"{usage.key}: " + "; ".join(lines)
    blocked = usage.exhausted_until is not None and usage.exhausted_until > usage.at
    if blocked or any(limit.left == 0 for limit in usage.limits):
        return Finding(
            "quota",
            Status.FAIL,
            observed,
            advice="the account is out of quota: messages are refused (QuotaExceeded) "
            "until the window frees up; nothing more can be sent now",
            details=details,
        )
    if note is not None:
        return Finding(
            "quota",
            Status.WARN,
            observed,
            advice="put the quota file on a local disk, where SQLite can use WAL (SQLite's "
            "locks and shared memory are not reliable on network file systems)",
            details=details,
        )
    return Finding("quota", Status.OK, observed, details=details)

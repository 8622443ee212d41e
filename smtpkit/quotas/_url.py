"""A quota store named by a URL: ``redis://``, ``rediss://`` or ``sqlite:``.

Used by ``smtpkit check --quota-store``, ``smtpkit quota`` (and ``SMTPKIT_QUOTA_STORE``)
and by a server URL's ``?quota=`` option::

    redis://[:password@]host:6379/0     RedisQuotaStore (rediss:// for TLS)
    sqlite:///var/lib/app/quota.db      SQLiteQuotaStore (an absolute path; sqlite:////var/...
                                        too, as SQLAlchemy writes it; sqlite:rel/path.db;
                                        never an in-memory database: sqlite://, :memory:)

Invariant: the URL is never repeated in an error (it may hold a password). Building a
store does no I/O: a file or server that cannot be reached shows at the first reservation.
"""

from __future__ import annotations

from smtpkit.errors import ConfigurationError
from smtpkit.quotas._redis import RedisQuotaStore
from smtpkit.quotas._sqlite import SQLiteQuotaStore
from smtpkit.quotas._store import QuotaStore

__all__ = ["store_from_url"]


def store_from_url(url: str) -> QuotaStore:
    """The quota store a URL names (``redis://``, ``rediss://``, ``sqlite:``).

    Raises:
        ConfigurationError: another scheme, or no path (the URL is not repeated).
    """
    text = url.strip()
    scheme = text.partition(":")[0].lower()
    if scheme in ("redis", "rediss"):
        return RedisQuotaStore(text)
    if scheme == "sqlite":
        path = text[len("sqlite:") :]
        if path.startswith("//"):
            # sqlite:///abs/path, and SQLAlchemy's sqlite:////abs/path: both absolute.
            path = "/" + path.lstrip("/")
        if path.lstrip("/") == ":memory:":
            path = ":memory:"  # SQLAlchemy's sqlite:///:memory: too: refused by the store
        if path.strip("/") == "":
            # SQLAlchemy reads sqlite:// as an in-memory database: no file, nothing shared.
            raise ConfigurationError(
                "a sqlite: quota store URL needs a file path",
                hint="e.g. sqlite:///var/lib/app/quota.db (an in-memory database, as "
                "sqlite:// names in SQLAlchemy, is shared by no other process)",
            )
        return SQLiteQuotaStore(path)
    raise ConfigurationError(
        "a quota store URL starts with redis://, rediss:// or sqlite: "
        "(the URL is not repeated here: it may hold a password)",
        hint="e.g. redis://127.0.0.1:6379/0 or sqlite:///var/lib/app/quota.db",
    )

"""A quota store in Redis: every worker of a fleet shares one count per account.

Each operation is one ``EVALSHA`` of the script in :mod:`smtpkit.quotas._redis_script`
(``EVAL`` once when the server does not have it cached yet, e.g. after a restart): one
round trip per reservation, atomic across every client of the server.

Why redis-py: it is the client the Redis project maintains, its connection pool is
thread-safe and re-creates its connections after a fork (Celery's prefork workers), and it
ships its own type hints.

Invariants:
    * Operations are idempotent (a reservation carries its own id; release, marks and
      reads are naturally so), so the client may retry once after a dropped connection
      without counting a message twice.
    * Errors never show the URL: it may hold a password. The store describes itself as
      ``redis <host>:<port>/<db>``.
    * Every key of an account shares one hash tag; the log and state expire one
      retention (24 hours) plus a margin after the account's last write, an exhaustion
      mark when it ends; only the tiny epoch hash stays, so a lost count can be noticed.
"""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from smtpkit.errors import ConfigurationError, QuotaStoreUnavailable
from smtpkit.quotas._ledger import RETENTION
from smtpkit.quotas._redis_script import SCRIPT, SHA1
from smtpkit.quotas._rules import (
    CountsLost,
    Decision,
    Exhausted,
    Granted,
    OverLimit,
    Request,
    StoreUsage,
    Unit,
    WindowLimits,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisQuotaStore"]

#: Seconds a key outlives what it must remember, for clocks that differ between machines.
KEY_MARGIN = 300.0
#: The default connect and command timeout, in seconds: a reservation is one short script.
DEFAULT_TIMEOUT = 2.0

_UNITS = {b"m": Unit.MESSAGES, b"r": Unit.RECIPIENTS}


def _number(value: float) -> str:
    # repr() round-trips a double exactly, like the script's %.17g.
    return repr(float(value))


def _window(seconds: float) -> str:
    return f"{seconds:g}"


class RedisQuotaStore:
    """Counts in Redis, shared by every process on every machine that can reach it.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]`` or ``rediss://`` for TLS (what
            redis-py's ``Redis.from_url`` takes).
        prefix: prepended to every key.
        timeout: connect and command timeout in seconds.

    Redis should keep its data across restarts (``appendonly yes``): a restart that loses
    the counts is noticed by running workers, which then refuse to send until every lost
    count would have expired (``docs/quotas.md``).

    Raises:
        ConfigurationError: the ``redis`` package is missing (``pip install 'smtpkit[redis]'``)
            or the URL is not a Redis URL.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "smtpkit:quota:",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        try:
            import redis  # noqa: PLC0415 - optional dependency
            from redis.backoff import NoBackoff  # noqa: PLC0415
            from redis.retry import Retry  # noqa: PLC0415
        except ImportError:
            raise ConfigurationError(
                "RedisQuotaStore needs the redis package",
                hint="pip install 'smtpkit[redis]'",
            ) from None
        try:
            client = redis.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # One immediate retry on a dropped connection (e.g. a pooled one the server
                # closed): safe because every operation is idempotent.
                retry=Retry(NoBackoff(), 1),
            )
        except ValueError:
            raise ConfigurationError(
                "not a Redis URL (the text is not repeated here: it may hold a password)",
                hint="use redis://host:port/db or rediss://host:port/db",
            ) from None
        self._init(client, prefix, _describe(url))

    @classmethod
    def from_client(cls, client: redis.Redis, *, prefix: str = "smtpkit:quota:") -> RedisQuotaStore:
        """A store on a client you configured (TLS, Sentinel, credentials provider).

        Give the client finite ``socket_timeout`` and ``socket_connect_timeout``.
        """
        store = cls.__new__(cls)
        kwargs = client.connection_pool.connection_kwargs
        where = f"redis {kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        store._init(client, prefix, where)
        return store

    def _init(self, client: redis.Redis, prefix: str, where: str) -> None:
        self._client = client
        self._prefix = prefix
        self._where = where
        self._lock = threading.Lock()
        self._epochs: dict[str, bytes] = {}

    # -- one script call ------------------------------------------------------------------

    def _keys(self, key: str) -> list[str]:
        # Quoting keeps braces out of the hash tag and the separators out of the account.
        tag = f"{self._prefix}{{{urllib.parse.quote(key, safe='@./+-_')}}}"
        return [f"{tag}:log", f"{tag}:state", f"{tag}:epoch", f"{tag}:exhausted"]

    def _run(
        self,
        op: str,
        key: str,
        *,
        now: float = 0.0,
        member: str = "",
        messages: int = 0,
        recipients: int = 0,
        until: float = 0.0,
        windows: Sequence[WindowLimits] = (),
        count_when_lost: bool = False,
    ) -> list[object]:
        with self._lock:
            known = self._epochs.get(key, b"")
        args: list[str | bytes] = [
            op,
            _number(now),
            known,
            uuid.uuid4().hex,
            "1" if count_when_lost else "0",
            member,
            str(messages),
            str(recipients),
            _number(RETENTION),
            _number(KEY_MARGIN),
            _number(until),
            str(len(windows)),
        ]
        for limits in windows:
            args += [
                _window(limits.seconds),
                "" if limits.messages is None else str(limits.messages),
                "" if limits.recipients is None else str(limits.recipients),
            ]
        keys = self._keys(key)
        import redis  # noqa: PLC0415 - optional dependency, imported by __init__ already

        try:
            try:
                reply = self._client.evalsha(SHA1, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                reply = self._client.eval(SCRIPT, len(keys), *keys, *args)
        except redis.exceptions.RedisError as error:
            raise QuotaStoreUnavailable(
                f"the Redis quota store ({self._where}) cannot be used: "
                f"{type(error).__name__}: {error}",
                store=self._where,
                hint="check that Redis is running and reachable; a reservation is refused "
                "while it is not (on_store_error='send' sends uncounted instead)",
            ) from error
        # Bytes whatever the client decodes (from_client may be given decode_responses=True).
        result = [item.encode() if isinstance(item, str) else item for item in reply]
        if len(result) > 1 and isinstance(result[1], bytes):
            with self._lock:
                self._epochs[key] = result[1]
        return result

    # -- the store operations -------------------------------------------------------------

    def reserve(self, key: str, request: Request) -> Decision:
        reply = self._run(
            "reserve",
            key,
            now=request.now,
            member=_member(request),
            messages=request.messages,
            recipients=request.recipients,
            windows=request.windows,
            count_when_lost=request.count_when_lost,
        )
        kind = reply[0]
        if kind == b"granted":
            return Granted(_float(reply[2]))
        if kind == b"over":
            return OverLimit(
                window=_float(reply[2]),
                unit=_UNITS[_bytes(reply[3])],
                used=_int(reply[4]),
                allowed=_int(reply[5]),
                retry_after=_float(reply[6]),
            )
        if kind == b"exhausted":
            return Exhausted(until=_float(reply[2]), retry_after=_float(reply[3]))
        if kind == b"lost":
            return CountsLost(retry_after=_float(reply[2]))
        raise QuotaStoreUnavailable(f"unexpected reply from the quota script: {kind!r}")

    def release(self, key: str, request: Request) -> None:
        # The member carries the weights, so the script subtracts them with no lookup.
        self._run("release", key, member=_member(request))

    def mark_exhausted(self, key: str, until: float, *, now: float | None = None) -> None:
        import time  # noqa: PLC0415

        self._run("exhaust", key, now=time.time() if now is None else now, until=until)

    def usage(self, key: str, windows: Sequence[WindowLimits], now: float) -> StoreUsage:
        reply = self._run("usage", key, now=now, windows=windows)
        used: dict[tuple[float, Unit], int] = {}
        for index, limits in enumerate(windows):
            used[(limits.seconds, Unit.MESSAGES)] = _int(reply[4 + 2 * index])
            used[(limits.seconds, Unit.RECIPIENTS)] = _int(reply[5 + 2 * index])
        until = _bytes(reply[3])
        return StoreUsage(_float(reply[2]), used, float(until) if until else None)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisQuotaStore({self._where!r})"


def _member(request: Request) -> str:
    return f"{request.entry}|{request.messages}|{request.recipients}"


def _describe(url: str) -> str:
    """``redis 127.0.0.1:6379/0``: where, never who (the URL may hold a password)."""
    parts = urllib.parse.urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme or 'redis'} {parts.hostname or '?'}:{parts.port or 6379}/{db}"


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _float(value: object) -> float:
    return float(_bytes(value))


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else int(_bytes(value))

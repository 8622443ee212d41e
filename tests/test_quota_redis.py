"""RedisQuotaStore against a real redis-server on 127.0.0.1: round trips, keys, failures.

One EVALSHA per operation (watched with MONITOR), EVAL when the script cache is empty,
keys that expire with their window, lost counts noticed, errors that never show the URL.
"""

from __future__ import annotations

import pickle
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpkit.errors import ConfigurationError, QuotaExceeded, QuotaStoreUnavailable
from smtpkit.providers import Limits
from smtpkit.quotas import Quota
from tests.quota_redis import RedisServer, unavailable_reason

T0 = 1_700_000_000.0
DAY = 86_400.0

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as running:
        yield running


@pytest.fixture
def client(server: RedisServer) -> Iterator[Any]:
    import redis  # noqa: PLC0415

    connection = redis.Redis.from_url(server.url, socket_timeout=5)
    yield connection
    connection.close()


def store(url: str, prefix: str | None = None, **options: Any) -> Any:
    from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

    return RedisQuotaStore(url, prefix=prefix or f"t{uuid.uuid4().hex[:8]}:", **options)


def test_one_round_trip_per_reservation(server: RedisServer, client: Any) -> None:
    quota = Quota(
        store(server.url), Limits(messages_per_day=1000, messages_per_minute=100), key="acct"
    )
    quota.reserve(now=T0)  # connects (and says hello) before we start counting
    seen: list[dict[str, Any]] = []
    with client.monitor() as monitor:
        done = threading.Event()

        def listen() -> None:
            while not done.is_set():
                command = monitor.next_command()
                if command["command"] == "ECHO end-of-test":
                    done.set()
                else:
                    seen.append(command)

        reader = threading.Thread(target=listen, daemon=True)
        reader.start()
        client.ping()  # MONITOR is live once its own connection answered
        for step in range(10):
            reservation = quota.reserve(now=T0 + step)
            if step % 2:
                reservation.release()
        client.echo("end-of-test")
        reader.join(timeout=10)
    assert done.is_set()
    # The test's own connection (HELLO, PING) is not the store's.
    ours = {c["client_port"] for c in seen if c["command"] == "PING"}
    from_clients = [
        c["command"].split()[0]
        for c in seen
        if c.get("client_type") != "lua" and c["client_port"] not in ours
    ]
    # 10 reservations and 5 releases: one EVALSHA each, nothing else.
    assert from_clients == ["EVALSHA"] * 15
    assert any(c.get("client_type") == "lua" for c in seen)  # the work ran inside the script


def test_eval_when_the_script_cache_is_empty(server: RedisServer, client: Any) -> None:
    quota = Quota(store(server.url), Limits(messages_per_day=2), key="acct")
    quota.reserve(now=T0)
    client.script_flush()  # what a restart does to the cache
    before = client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
    quota.reserve(now=T0 + 1)
    with pytest.raises(QuotaExceeded):
        quota.reserve(now=T0 + 2)
    after = client.info("commandstats").get("cmdstat_eval", {}).get("calls", 0)
    assert after - before == 1  # EVAL once; it cached the script for the next EVALSHA


def test_keys_expire_with_their_window(server: RedisServer, client: Any) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    quota = Quota(store(server.url, prefix), Limits(messages_per_day=5), key="me@x.com")
    quota.reserve(now=T0)
    quota.exhaust(T0 + 3600, now=T0)
    keys = sorted(k.decode() for k in client.keys(f"{prefix}*"))
    tag = f"{prefix}{{me@x.com}}"
    assert keys == [f"{tag}:{n}" for n in ("epoch", "exhausted", "log", "state")]
    for name in ("log", "state"):  # a day plus a margin for clocks that differ
        assert DAY * 1000 < client.pttl(f"{tag}:{name}") <= (DAY + 300) * 1000
    assert 3600 * 1000 < client.pttl(f"{tag}:exhausted") <= 3900 * 1000
    assert client.pttl(f"{tag}:epoch") == -1  # tiny, and must outlive the counts


def test_accounts_with_braces_do_not_share_a_count(server: RedisServer) -> None:
    shared = store(server.url)
    one = Quota(shared, Limits(messages_per_day=1), key="a}b")
    two = Quota(shared, Limits(messages_per_day=1), key="a}c")
    one.reserve(now=T0)
    two.reserve(now=T0)
    with pytest.raises(QuotaExceeded):
        one.reserve(now=T0)


def test_lost_counts_are_noticed_and_refused(server: RedisServer, client: Any) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    limits = Limits(messages_per_day=3)
    quota = Quota(store(server.url, prefix), limits, key="acct")
    quota.reserve(now=T0)
    quota.reserve(now=T0 + 1)
    for key in client.keys(f"{prefix}*"):  # what a restart without persistence does
        client.delete(key)
    with pytest.raises(QuotaStoreUnavailable, match="lost the counts") as caught:
        quota.reserve(now=T0 + 2)
    assert caught.value.hint
    assert "appendonly" in caught.value.hint
    # A worker started after the loss is refused too, once any worker noticed it.
    newcomer = Quota(store(server.url, prefix), limits, key="acct")
    with pytest.raises(QuotaStoreUnavailable):
        newcomer.reserve(now=T0 + 3)
    # Sending anyway is the same opt-in as for an unreachable store: counted from now on.
    brave = Quota(store(server.url, prefix), limits, key="acct", on_store_error="send")
    assert brave.reserve(now=T0 + 4).recorded is True
    # Once every lost count would have expired, the counts are whole again.
    quota.reserve(now=T0 + 2 + DAY)
    quota.reserve(now=T0 + 2 + DAY)
    with pytest.raises(QuotaExceeded):
        quota.reserve(now=T0 + 2 + DAY)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_redis_refuses_and_never_shows_the_password() -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{_closed_port()}/3"
    unreachable = store(url, timeout=0.5)
    quota = Quota(unreachable, Limits(messages_per_day=5), key="acct")
    with pytest.raises(QuotaStoreUnavailable) as caught:
        quota.reserve()
    error = caught.value
    assert error.store is not None
    assert error.store.startswith("redis 127.0.0.1:")
    assert error.store.endswith("/3")
    for text in (
        str(error),
        repr(error),
        repr(unreachable),
        str(pickle.dumps(error)),
        str(error.args),
    ):
        assert "hunter2secret" not in text
    sent = Quota(unreachable, Limits(messages_per_day=5), key="acct", on_store_error="send")
    assert sent.reserve().recorded is False


def test_not_a_redis_url() -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL") as caught:
        store("http://user:pw@example.com/")
    assert "pw" not in str(caught.value)


def test_from_client(server: RedisServer, client: Any) -> None:
    from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

    own = RedisQuotaStore.from_client(client, prefix=f"t{uuid.uuid4().hex[:8]}:")
    assert repr(own) == f"RedisQuotaStore('redis 127.0.0.1:{server.port}/0')"
    quota = Quota(own, Limits(messages_per_day=1), key="acct")
    quota.reserve(now=T0)
    with pytest.raises(QuotaExceeded):
        quota.reserve(now=T0)


def test_the_redis_server_fixture_cleans_up(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as temporary:
        port = temporary.port
        assert temporary._ping()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        pass


def test_a_client_that_decodes_replies(server: RedisServer) -> None:
    import redis  # noqa: PLC0415

    from smtpkit.quotas import RedisQuotaStore  # noqa: PLC0415

    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=5)
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    quota = Quota(
        RedisQuotaStore.from_client(client, prefix=prefix), Limits(messages_per_day=1), key="acct"
    )
    quota.reserve(now=T0)
    with pytest.raises(QuotaExceeded) as caught:
        quota.reserve(now=T0 + 1)
    assert caught.value.retry_after == DAY - 1
    client.delete(*client.keys(f"{prefix}*"))  # the counts vanish: still noticed
    with pytest.raises(QuotaStoreUnavailable, match="lost the counts"):
        quota.reserve(now=T0 + 2)
    client.close()

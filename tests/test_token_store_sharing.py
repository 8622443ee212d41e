"""One token store shared by several processes, against a real endpoint that rotates tokens.

Processes are real (``multiprocessing`` with ``spawn``: nothing inherited but the arguments);
the token endpoint is :class:`oauth_endpoint.TokenEndpoint` on 127.0.0.1 with ``rotate=True``,
which refuses every refresh token but the latest, as Microsoft does.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import stat
import threading
import time
from collections.abc import Iterator
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest
import requests
from oauth_endpoint import TokenEndpoint

import smtpkit.oauth._refresh
from smtpkit.auth import Secret
from smtpkit.errors import TokenRefreshError
from smtpkit.oauth import (
    MICROSOFT_DELEGATED_SCOPES,
    FileTokenStore,
    RefreshTokenProvider,
    StoredGrant,
    provider_from_store,
)

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.name != "posix", reason="the cross-process lock needs fcntl.flock"),
]

CLIENT = "client-123"
USER = "bob@contoso.test"
FIRST = "rt-initial-0001"
ROUNDS = 10
#: Seconds any barrier, queue or join waits before the test fails instead of hanging.
WAIT = 20.0


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(rotate=True, refresh_token=FIRST) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    http = requests.Session()
    http.trust_env = False
    yield http
    http.close()


@pytest.fixture
def spawn() -> SpawnContext:
    return multiprocessing.get_context("spawn")


def grant(endpoint: TokenEndpoint, refresh_token: str = FIRST, **extra: Any) -> StoredGrant:
    return StoredGrant(
        provider="microsoft",
        client_id=CLIENT,
        token_url=endpoint.token_url,
        refresh_token=Secret(refresh_token),
        username=USER,
        tenant="contoso.test",
        scopes=MICROSOFT_DELEGATED_SCOPES,
        **extra,
    )


def write_store(path: Path, endpoint: TokenEndpoint) -> FileTokenStore:
    store = FileTokenStore(path)
    store.write(grant(endpoint))
    return store


def refresh_requests(endpoint: TokenEndpoint) -> list[str]:
    return [seen.form["refresh_token"] for seen in endpoint.requests]


def finish(processes: list[SpawnProcess]) -> list[int | None]:
    """Join every process within WAIT seconds; kill the ones still running (bounded)."""
    deadline = time.monotonic() + WAIT
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join(5)
    return [process.exitcode for process in processes]


# -- the child processes (module level: spawn imports them by name) -----------------------


def refresh_worker(
    path: str, me: int, mode: str, barrier: Barrier, results: Queue[tuple[int, list[str]]]
) -> None:
    """Build a provider from the store and force ROUNDS refreshes, in step with the other.

    ``concurrent``: both processes refresh at once in every round. ``alternate``: the two
    take turns, so each always holds a refresh token the other has since used up.
    """
    provider, _ = provider_from_store(path)  # the default session: loopback ignores proxies
    failures: list[str] = []
    steps = ROUNDS if mode == "concurrent" else 2 * ROUNDS
    for step in range(steps):
        barrier.wait(WAIT)
        if mode == "alternate" and step % 2 != me:
            continue
        try:
            provider.get_token(force_refresh=True)
        except TokenRefreshError as error:
            failures.append(error.error_code or error.message)
    barrier.wait(WAIT)
    results.put((me, failures), timeout=WAIT)


def save_worker(path: str, me: int, count: int, start: Barrier) -> None:
    """Save ``count`` refresh tokens, as fast as possible."""
    store = FileTokenStore(path)
    start.wait(WAIT)
    for number in range(count):
        store.save(f"rt-writer{me}-{number:04d}")


def crash_worker(path: str) -> None:
    """Die by SIGKILL after writing the temp file, before ``os.replace``, holding the lock."""

    def die(source: object, target: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = die  # type: ignore[assignment]
    FileTokenStore(path).save("rt-never-visible")


# -- several processes, one store ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["concurrent", "alternate"])
def test_two_processes_share_rotating_refresh_tokens(
    endpoint: TokenEndpoint, tmp_path: Path, spawn: SpawnContext, mode: str
) -> None:
    store = write_store(tmp_path / "bob.json", endpoint)
    barrier = spawn.Barrier(2)
    results: Queue[tuple[int, list[str]]] = spawn.Queue()
    processes = [
        spawn.Process(target=refresh_worker, args=(str(store.path), me, mode, barrier, results))
        for me in (0, 1)
    ]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=WAIT) for _ in processes)
    assert finish(processes) == [0, 0]

    assert outcome == {0: [], 1: []}  # no invalid_grant anywhere
    used = refresh_requests(endpoint)
    assert len(used) == 2 * ROUNDS
    assert len(set(used)) == len(used)  # each refresh token used exactly once
    assert used[0] == FIRST
    assert len(endpoint.issued) == 2 * ROUNDS  # every request got a token
    assert store.load() == endpoint.refresh_token  # the store ends with the latest
    assert store.read_json() == grant(endpoint, endpoint.refresh_token).to_json()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob.json", "bob.json.lock"]


def test_on_rotate_alone_is_not_enough(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    """Why ``store=`` exists: a provider that only saves keeps using what it first read."""
    store = write_store(tmp_path / "bob.json", endpoint)
    first, second = (
        RefreshTokenProvider(
            endpoint.token_url, CLIENT, store.load(), on_rotate=store.save, session=session
        )
        for _ in range(2)
    )
    first.get_token()
    with pytest.raises(TokenRefreshError) as caught:
        second.get_token()
    assert caught.value.error_code == "invalid_grant"

    # The same two processes with store=: the second adopts what the first saved.
    endpoint.configure(refresh_token=FIRST)
    store.save(FIRST)
    first, second = (
        RefreshTokenProvider(endpoint.token_url, CLIENT, store=FileTokenStore(store.path))
        for _ in range(2)
    )
    first.get_token()
    second.get_token()
    assert store.load() == endpoint.refresh_token == second.refresh_token.reveal()


def test_threads_of_two_providers_on_one_file(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    """Two store objects in one process lock each other out like two processes (flock)."""
    path = tmp_path / "bob.json"
    write_store(path, endpoint)
    providers = [provider_from_store(path)[0] for _ in range(2)]
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def run(provider: RefreshTokenProvider) -> None:
        try:
            start.wait(WAIT)
            for _ in range(3):
                provider.get_token(force_refresh=True)
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(providers[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    used = refresh_requests(endpoint)
    assert len(used) == len(set(used)) == 24
    assert FileTokenStore(path).load() == endpoint.refresh_token


# -- invalid_grant: one retry with the stored token, and no more --------------------------


class Interfering(requests.Session):
    """A session that lets "another process" rotate the token just before each request.

    That process does not take the store's lock (an older smtpkit, a host without flock): it
    refreshes at the endpoint and writes the new token straight into the file.
    """

    def __init__(self, endpoint: TokenEndpoint, path: Path, times: int) -> None:
        super().__init__()
        self.trust_env = False
        self.endpoint, self.path, self.times = endpoint, path, times

    def post(self, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if self.times > 0:
            self.times -= 1
            with requests.Session() as other:
                other.trust_env = False
                answer = other.post(
                    self.endpoint.token_url,
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": self.endpoint.refresh_token,
                    },
                    timeout=5,
                ).json()
            data = json.loads(self.path.read_text())
            data["refresh_token"] = answer["refresh_token"]
            temp = self.path.with_name("elsewhere.tmp")
            temp.write_text(json.dumps(data))
            os.replace(temp, self.path)
        return super().post(url, *args, **kwargs)


def test_invalid_grant_is_retried_once_with_the_token_now_stored(
    endpoint: TokenEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bob.json"
    write_store(path, endpoint)
    provider, _ = provider_from_store(path, session=Interfering(endpoint, path, times=1))
    with caplog.at_level(logging.INFO, logger="smtpkit.oauth"):
        provider.get_token()
    # the other process's (rotates FIRST), ours (refused), ours again with what it stored
    other, refused, retried = refresh_requests(endpoint)
    assert other == refused == FIRST
    assert retried not in (FIRST, endpoint.refresh_token)
    assert FileTokenStore(path).load() == endpoint.refresh_token == provider.refresh_token.reveal()
    assert "retrying once" in caplog.text
    assert endpoint.refresh_token not in caplog.text


def test_the_retry_is_bounded_to_one(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    path = tmp_path / "bob.json"
    write_store(path, endpoint)
    provider, _ = provider_from_store(path, session=Interfering(endpoint, path, times=10))
    with pytest.raises(TokenRefreshError) as caught:
        provider.get_token()
    assert caught.value.error_code == "invalid_grant"
    # other, ours (refused), other, ours (refused again): the first try and one retry
    other_1, ours_1, other_2, ours_2 = refresh_requests(endpoint)
    assert other_1 == ours_1 == FIRST
    assert other_2 == ours_2 != FIRST


def test_invalid_grant_with_the_store_unchanged_is_not_retried(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    path = tmp_path / "bob.json"
    write_store(path, endpoint)
    provider, _ = provider_from_store(path, session=session)
    endpoint.configure(mode="invalid_grant")
    with pytest.raises(TokenRefreshError) as caught:
        provider.get_token()
    assert caught.value.error_code == "invalid_grant"
    assert not caught.value.is_transient
    assert len(endpoint.requests) == 1
    with pytest.raises(TokenRefreshError, match="remembered"):
        provider.get_token()
    assert len(endpoint.requests) == 1  # the permanent failure is remembered

    # Someone signs in again and writes a new grant: the running provider picks it up.
    endpoint.configure(mode="ok", refresh_token="rt-new-sign-in")
    FileTokenStore(path).write(grant(endpoint, "rt-new-sign-in"))
    provider.get_token()
    assert endpoint.requests[-1].form["refresh_token"] == "rt-new-sign-in"
    assert FileTokenStore(path).load() == endpoint.refresh_token


# -- what the provider adopts ---------------------------------------------------------------


def test_a_token_this_process_could_not_save_is_not_replaced_by_the_older_one(
    endpoint: TokenEndpoint,
    session: requests.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = write_store(tmp_path / "bob.json", endpoint)
    provider = RefreshTokenProvider(endpoint.token_url, CLIENT, store=store, session=session)

    def full_disk(token: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "save", full_disk)
    provider.get_token()
    assert store.load() == FIRST  # not saved
    monkeypatch.undo()
    provider.get_token(force_refresh=True)  # with the token in memory, not FIRST from disk
    assert [seen.form["refresh_token"] for seen in endpoint.requests][1] != FIRST
    assert store.load() == endpoint.refresh_token


def test_an_explicit_refresh_token_wins_over_an_older_stored_one(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    store = FileTokenStore(tmp_path / "bob.json")
    store.write(grant(endpoint, "rt-old-and-dead"))
    provider = RefreshTokenProvider(endpoint.token_url, CLIENT, FIRST, store=store, session=session)
    provider.get_token()
    assert endpoint.requests[0].form["refresh_token"] == FIRST
    assert store.load() == endpoint.refresh_token


def test_store_without_a_token_and_none_given(tmp_path: Path) -> None:
    from smtpkit.errors import ConfigurationError  # noqa: PLC0415

    with pytest.raises(ConfigurationError, match="does not exist"):
        RefreshTokenProvider(
            "https://idp.example.test/token", CLIENT, store=FileTokenStore(tmp_path / "none")
        )
    with pytest.raises(ConfigurationError, match="no refresh token"):
        RefreshTokenProvider("https://idp.example.test/token", CLIENT)


# -- the lock is bounded ----------------------------------------------------------------


def test_waiting_for_the_lock_is_bounded_and_transient(
    endpoint: TokenEndpoint,
    session: requests.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtpkit.oauth._refresh, "LOCK_MARGIN", 0.0)
    store = write_store(tmp_path / "bob.json", endpoint)
    provider = RefreshTokenProvider(
        endpoint.token_url, CLIENT, store=store, session=session, timeout=0.1
    )
    holder = FileTokenStore(store.path)  # another open file: flock conflicts as across processes
    started = time.monotonic()
    with holder.locked(), pytest.raises(TokenRefreshError) as caught:
        provider.get_token()
    assert time.monotonic() - started < 2.0  # 2 x 0.2 s of request time, no margin
    assert caught.value.is_transient
    assert str(store.path) in caught.value.message
    assert caught.value.__context__ is None
    assert endpoint.requests == []
    provider.get_token()  # once released, it works
    assert store.load() == endpoint.refresh_token


def test_a_writer_killed_while_holding_the_lock_does_not_wedge_the_store(
    endpoint: TokenEndpoint, tmp_path: Path, spawn: SpawnContext
) -> None:
    store = write_store(tmp_path / "bob.json", endpoint)
    before = store.path.read_bytes()
    process = spawn.Process(target=crash_worker, args=(str(store.path),))
    process.start()
    assert finish([process]) == [-signal.SIGKILL]

    assert store.path.read_bytes() == before  # the old file, whole
    leftovers = [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) == 1  # SIGKILL leaves no chance to clean up; it is private
    assert stat.S_IMODE(leftovers[0].stat().st_mode) == 0o600
    with store.locked(timeout=2.0):  # the OS released the dead process's flock
        pass
    store.save("rt-after-crash")
    assert store.load() == "rt-after-crash"


# -- atomic replace ---------------------------------------------------------------------


def test_concurrent_writers_never_show_readers_a_partial_file(
    endpoint: TokenEndpoint, tmp_path: Path, spawn: SpawnContext
) -> None:
    path = tmp_path / "bob.json"
    store = FileTokenStore(path)
    # A large file (a long secret) makes a torn read likely if writes were not atomic.
    store.write(grant(endpoint, client_secret=Secret("s" * 40_000)))
    writers, count = 3, 40
    start = spawn.Barrier(writers + 1)
    processes = [
        spawn.Process(target=save_worker, args=(str(path), me, count, start))
        for me in range(writers)
    ]
    for process in processes:
        process.start()
    start.wait(WAIT)
    reads = 0
    seen: set[str] = set()
    deadline = time.monotonic() + WAIT
    while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
        data = json.loads(path.read_bytes())  # a plain reader, without the lock
        assert data["client_secret"] == "s" * 40_000
        seen.add(data["refresh_token"])
        reads += 1
    assert finish(processes) == [0] * writers
    assert reads > 0
    assert seen <= {FIRST} | {f"rt-writer{w}-{n:04d}" for w in range(writers) for n in range(count)}
    final = FileTokenStore(path).read()
    assert final is not None
    assert final.client_secret is not None
    assert final.client_secret.reveal() == "s" * 40_000  # every save kept the other fields
    assert final.refresh_token.reveal().endswith(f"-{count - 1:04d}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob.json", "bob.json.lock"]


def test_a_failed_replace_leaves_the_old_file_and_no_temp_file(
    endpoint: TokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = write_store(tmp_path / "bob.json", endpoint)
    before = store.path.read_bytes()
    calls: list[tuple[object, object]] = []

    def crash(source: object, target: object) -> None:
        calls.append((source, target))
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="Input/output"):
        store.save("rt-lost")
    monkeypatch.undo()

    [(source, target)] = calls
    assert Path(str(target)) == store.path
    assert not Path(str(source)).exists()  # the temp file was removed
    assert store.path.read_bytes() == before
    assert store.load() == FIRST
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bob.json", "bob.json.lock"]
    store.save("rt-next")  # the lock was released
    assert store.load() == "rt-next"


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_store_and_lock_file_are_private(
    endpoint: TokenEndpoint, tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        store = write_store(tmp_path / "bob.json", endpoint)
        store.save("rt-2")
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.lock_path == tmp_path / "bob.json.lock"
    assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
    assert store.lock_path.read_bytes() == b""  # it holds nothing, ever


def test_an_existing_lock_file_is_made_private(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    lock = tmp_path / "bob.json.lock"
    lock.touch()
    lock.chmod(0o644)
    write_store(tmp_path / "bob.json", endpoint)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_a_symlinked_lock_file_is_refused_and_logged(
    endpoint: TokenEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "elsewhere"
    (tmp_path / "bob.json.lock").symlink_to(target)
    with caplog.at_level(logging.WARNING, logger="smtpkit.oauth"):
        store = write_store(tmp_path / "bob.json", endpoint)
        store.save("rt-2")
    assert not target.exists()  # nothing created through the link
    assert store.load() == "rt-2"  # the store still works, without the cross-process lock
    assert caplog.text.count("cannot create the lock file") == 1


# -- proxies ----------------------------------------------------------------------------


def test_a_loopback_token_url_ignores_proxy_settings(
    endpoint: TokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    write_store(tmp_path / "bob.json", endpoint)
    provider, user = provider_from_store(tmp_path / "bob.json")
    assert user == USER
    provider.get_token()
    assert len(endpoint.requests) == 1

"""``smtpkit send`` with ``SMTPKIT_URL=...?token_store=PATH``: XOAUTH2 end to end on loopback.

A real token endpoint (:class:`oauth_endpoint.TokenEndpoint`, rotating refresh tokens like
Microsoft) and a real SMTP server (:class:`smtpkit.testing.LocalServer`) checking the access
tokens it issued. Plaintext ``smtp://`` is allowed because both are on 127.0.0.1.
"""

from __future__ import annotations

import stat
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from oauth_endpoint import TokenEndpoint

from smtpkit import Security
from smtpkit.auth import Secret
from smtpkit.cli import main
from smtpkit.oauth import MICROSOFT_DELEGATED_SCOPES, FileTokenStore, StoredGrant
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
FIRST = "rt-CANARY-initial-4242"
SEND = ["send", "--to", "bob@example.test", "--subject", "Token store", "--text", "Hello."]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SMTPKIT_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    # A proxy that does not exist: the loopback token endpoint must be reached directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(rotate=True, refresh_token=FIRST) as server:
        yield server


@pytest.fixture
def server(endpoint: TokenEndpoint) -> Iterator[LocalServer]:
    with LocalServer(
        security=Security.NONE, oauth_tokens=endpoint.token_is_valid, require_auth=True
    ) as smtp:
        yield smtp


@pytest.fixture
def store(endpoint: TokenEndpoint, tmp_path: Path) -> FileTokenStore:
    store = FileTokenStore(tmp_path / "alice store.json")  # a space, percent-encoded below
    store.write(
        StoredGrant(
            provider="microsoft",
            client_id="client-123",
            token_url=endpoint.token_url,
            refresh_token=Secret(FIRST),
            username=USER,
            tenant="contoso.test",
            scopes=MICROSOFT_DELEGATED_SCOPES,
        )
    )
    return store


def url(server: LocalServer, store: FileTokenStore, user: str | None = USER) -> str:
    userinfo = f"{urllib.parse.quote(user, safe='')}@" if user else ""
    path = urllib.parse.quote(str(store.path), safe="/")
    return f"smtp://{userinfo}{server.host}:{server.port}?token_store={path}&auth=xoauth2"


def test_send_with_a_token_store(
    endpoint: TokenEndpoint,
    server: LocalServer,
    store: FileTokenStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMTPKIT_URL", url(server, store))

    assert main([*SEND, "--timeout", "10"]) == 0

    [message] = server.messages
    assert message.auth_mechanism == "XOAUTH2"
    assert message.auth_user == USER
    assert message.sender == USER
    assert message.recipients == ("bob@example.test",)
    assert message.message["Subject"] == "Token store"
    [refresh] = endpoint.requests
    assert refresh.form["refresh_token"] == FIRST
    assert refresh.form["scope"] == " ".join(MICROSOFT_DELEGATED_SCOPES)
    # The rotated refresh token went back into the store, which kept its other fields.
    assert store.load() == endpoint.refresh_token != FIRST
    grant = store.read()
    assert grant is not None
    assert (grant.username, grant.tenant) == (USER, "contoso.test")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
    captured = capsys.readouterr()
    assert "Accepted: bob@example.test" in captured.out
    for secret in (FIRST, endpoint.refresh_token, *endpoint.issued):
        assert secret not in captured.out + captured.err

    # A second run (a new process would do the same) starts from the rotated token.
    assert main([*SEND, "--timeout", "10"]) == 0
    assert len(server.messages) == 2
    _, second = endpoint.requests
    assert second.form["refresh_token"] not in (FIRST, store.load())
    assert store.load() == endpoint.refresh_token


def test_the_user_can_come_from_the_store(
    endpoint: TokenEndpoint,
    server: LocalServer,
    store: FileTokenStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTPKIT_URL", url(server, store, user=None))

    assert main([*SEND, "--from", USER, "--timeout", "10"]) == 0

    [message] = server.messages
    assert (message.auth_mechanism, message.auth_user) == ("XOAUTH2", USER)


def test_a_dead_refresh_token_fails_cleanly(
    endpoint: TokenEndpoint,
    server: LocalServer,
    store: FileTokenStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint.configure(refresh_token="rt-someone-else")
    monkeypatch.setenv("SMTPKIT_URL", url(server, store))

    assert main([*SEND, "--timeout", "10"]) == 1

    err = capsys.readouterr().err
    assert "invalid_grant" in err
    assert "hint:" in err
    assert FIRST not in err
    assert server.messages == []
    assert len(endpoint.requests) == 1  # no retry: the store still holds what was sent
    assert store.load() == FIRST

"""Token providers against a real HTTP token endpoint on 127.0.0.1 (no mocks of requests)."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import google.oauth2.credentials
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oauth_endpoint import DEVICE_CODE, JWT_BEARER, TokenEndpoint

import smtpkit.integrations.google
import smtpkit.oauth
from smtpkit.auth import AccessToken, Secret, TokenProvider
from smtpkit.errors import ConfigurationError, StoreLockTimeout, TokenRefreshError
from smtpkit.integrations.google import GOOGLE_AUTH_ATTEMPTS, GoogleCredentialsProvider
from smtpkit.oauth import (
    MICROSOFT_APP_ONLY_SCOPES,
    REFRESH_SKEW,
    ClientCredentialsProvider,
    DeviceCodeFlow,
    FileTokenStore,
    RefreshTokenProvider,
    StaticToken,
    StoredGrant,
    microsoft_app_only,
    microsoft_delegated,
)

REFRESH = "rt-CANARY-refresh-5150"
SECRET = "cs-CANARY-secret-8086"
CLIENT = "client-123"


class Clock:
    """An injectable clock: aware UTC, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(refresh_token=REFRESH, client_secret=SECRET) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    # trust_env=False: no proxy or CA bundle from the environment for loopback tests.
    http = requests.Session()
    http.trust_env = False
    yield http
    http.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock, **options: object
) -> RefreshTokenProvider:
    return RefreshTokenProvider(
        endpoint.token_url,
        CLIENT,
        options.pop("refresh_token", REFRESH),  # type: ignore[arg-type]
        client_secret=SECRET,
        session=session,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


# -- the refresh-token grant -------------------------------------------------------------


def test_refresh_then_cache(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    tokens = provider(endpoint, session, clock, scopes=("https://mail.google.com/",))
    assert isinstance(tokens, TokenProvider)
    first = tokens.get_token()
    assert tokens.get_token() is first
    [seen] = endpoint.requests
    assert seen.form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": CLIENT,
        "client_secret": SECRET,
        "scope": "https://mail.google.com/",
    }
    assert first.token.reveal() == endpoint.issued[0]
    assert first.expires_at == clock.now + timedelta(seconds=3600)


def test_proactive_refresh_within_the_skew(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    tokens = provider(endpoint, session, clock)
    first = tokens.get_token()
    clock.advance(3600 - REFRESH_SKEW - 1)
    assert tokens.get_token() is first
    assert endpoint.count() == 1
    clock.advance(2)  # now inside the skew: refresh before AUTH, not after a refusal
    second = tokens.get_token()
    assert second != first
    assert endpoint.count() == 2


def test_forced_refresh_and_single_flight_rejected(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    tokens = provider(endpoint, session, clock)
    first = tokens.get_token()
    second = tokens.get_token(rejected=first)
    assert second != first
    assert endpoint.count() == 2
    # A late caller reporting the same old token gets the new one without a request.
    assert tokens.get_token(rejected=first) is second
    assert endpoint.count() == 2
    third = tokens.get_token(force_refresh=True)
    assert third not in (first, second)
    assert endpoint.count() == 3


def _in_threads(count: int, work: object) -> list[object]:
    barrier = threading.Barrier(count, timeout=10)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work()  # type: ignore[operator]
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_sixteen_threads_share_one_refresh(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    endpoint.configure(delay=0.3)  # slow, so all 16 arrive while the first is in flight
    tokens = provider(endpoint, session, clock)
    results = _in_threads(16, tokens.get_token)
    assert endpoint.count() == 1
    assert all(result is results[0] for result in results)
    assert isinstance(results[0], AccessToken)
    # All 16 report the same refused token: one refresh again.
    stale = results[0]
    results = _in_threads(16, lambda: tokens.get_token(rejected=stale))
    assert endpoint.count() == 2
    assert len({id(result) for result in results}) == 1
    assert results[0] != stale


def test_rotation_is_kept_and_persisted(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock, tmp_path: Path
) -> None:
    endpoint.configure(rotate=True)
    store = FileTokenStore(tmp_path / "store.json")
    store.save(REFRESH)
    tokens = provider(endpoint, session, clock, refresh_token=store.load(), on_rotate=store.save)
    tokens.get_token()
    assert endpoint.refresh_token != REFRESH
    assert store.load() == endpoint.refresh_token == tokens.refresh_token.reveal()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    # The old refresh token is now refused: the next refresh must use the rotated one.
    tokens.get_token(force_refresh=True)
    assert store.load() == endpoint.refresh_token
    first, second = endpoint.requests
    assert first.form["refresh_token"] == REFRESH
    assert second.form["refresh_token"] not in (REFRESH, store.load())  # rotated twice
    # No temp files left; save() locks the store through its sidecar lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.json", "store.json.lock"]


def test_invalid_grant_is_permanent_with_a_hint_and_no_retry_storm(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    endpoint.configure(mode="invalid_grant")
    tokens = provider(endpoint, session, clock)
    results = _in_threads(16, tokens.get_token)
    assert endpoint.count() == 1
    for error in results:
        assert isinstance(error, TokenRefreshError)
        assert not error.is_transient
        assert error.error_code == "invalid_grant"
        assert error.hint is not None
        assert "Testing" in error.hint
        assert "7 days" in error.hint
    assert "Token has been expired or revoked." in str(results[0])


def test_http_500_is_transient_and_quotes_no_body(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    endpoint.configure(mode="500")
    tokens = provider(endpoint, session, clock)
    with pytest.raises(TokenRefreshError) as caught:
        tokens.get_token()
    assert caught.value.is_transient
    assert "HTTP 500" in str(caught.value)
    assert "html" not in str(caught.value).lower()
    endpoint.configure(mode="ok")
    assert tokens.get_token()  # a transient failure is not remembered
    assert endpoint.count() == 2


def test_connection_refused_is_transient(session: requests.Session, clock: Clock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tokens = RefreshTokenProvider(
        f"http://127.0.0.1:{port}/token", CLIENT, REFRESH, session=session, clock=clock
    )
    with pytest.raises(TokenRefreshError) as caught:
        tokens.get_token()
    assert caught.value.is_transient
    assert "ConnectionError" in str(caught.value)
    assert caught.value.__context__ is None  # no requests exception (with the body) attached


def test_refresh_time_is_bounded(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock
) -> None:
    endpoint.configure(delay=5.0)
    tokens = provider(endpoint, session, clock, timeout=(1.0, 0.5))
    started = time.monotonic()
    with pytest.raises(TokenRefreshError) as caught:
        tokens.get_token()
    assert time.monotonic() - started < 2.0
    assert caught.value.is_transient
    assert "timeout" in str(caught.value)


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        RefreshTokenProvider("http://example.com/token", CLIENT, REFRESH)
    with pytest.raises(ConfigurationError, match="timeout"):
        RefreshTokenProvider("https://example.com/token", CLIENT, REFRESH, timeout=0)
    with pytest.raises(ConfigurationError, match="refresh_token"):
        RefreshTokenProvider("https://example.com/token", CLIENT, "")


# -- Microsoft ---------------------------------------------------------------------------


def test_microsoft_delegated_hits_the_tenant_endpoint_and_persists_rotation(
    endpoint: TokenEndpoint, session: requests.Session, clock: Clock, tmp_path: Path
) -> None:
    endpoint.configure(rotate=True, client_secret=None)
    store = FileTokenStore(tmp_path / "ms.json")
    store.save(REFRESH)
    tokens = microsoft_delegated(
        CLIENT, "contoso.test", store=store, authority=endpoint.base_url, session=session
    )
    tokens.get_token()
    [seen] = endpoint.requests
    assert seen.path == "/contoso.test/oauth2/v2.0/token"
    assert seen.form["scope"] == "https://outlook.office.com/SMTP.Send offline_access"
    assert "client_secret" not in seen.form
    assert store.load() == endpoint.refresh_token != REFRESH


def test_microsoft_delegated_needs_a_refresh_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no refresh token"):
        microsoft_delegated(CLIENT, "contoso.test", store=FileTokenStore(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="tenant"):
        microsoft_delegated(CLIENT, "../evil", REFRESH)


def test_microsoft_app_only_uses_client_credentials(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    tokens = microsoft_app_only(
        CLIENT, "contoso.test", SECRET, authority=endpoint.base_url, session=session
    )
    assert isinstance(tokens, ClientCredentialsProvider)
    tokens.get_token()
    [seen] = endpoint.requests
    assert seen.path == "/contoso.test/oauth2/v2.0/token"
    assert seen.form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT,
        "client_secret": SECRET,
        "scope": " ".join(MICROSOFT_APP_ONLY_SCOPES),
    }
    with pytest.raises(ConfigurationError, match="specific tenant"):
        microsoft_app_only(CLIENT, "common", SECRET)


def test_wrong_client_secret_is_permanent(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    tokens = ClientCredentialsProvider(endpoint.token_url, CLIENT, "wrong", session=session)
    with pytest.raises(TokenRefreshError) as caught:
        tokens.get_token()
    assert caught.value.error_code == "invalid_client"
    assert not caught.value.is_transient


def test_device_code_flow_polls_until_signed_in(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    endpoint.configure(pending_polls=2, slow_down_polls=1, client_secret=None)
    slept: list[float] = []
    flow = DeviceCodeFlow.microsoft(
        CLIENT, "contoso.test", authority=endpoint.base_url, session=session, sleep=slept.append
    )
    authorization = flow.start()
    assert authorization.user_code == "ABCD-EFGH"
    assert "dc-secret" not in repr(authorization)
    response = flow.poll(authorization)
    assert response.refresh_token is not None
    assert response.refresh_token.reveal() == endpoint.refresh_token
    assert slept == [0.0, 5.0, 5.0, 5.0]  # slow_down adds 5 s for every later poll
    assert [s.path for s in endpoint.requests] == [
        "/contoso.test/oauth2/v2.0/devicecode",
        *["/contoso.test/oauth2/v2.0/token"] * 4,
    ]
    assert endpoint.requests[1].form["grant_type"] == DEVICE_CODE


def test_device_code_flow_gives_up_when_the_code_expires(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    endpoint.configure(pending_polls=10**6, device_interval=5, client_secret=None)
    now = [0.0]
    flow = DeviceCodeFlow.microsoft(
        CLIENT,
        "contoso.test",
        authority=endpoint.base_url,
        session=session,
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
        monotonic=lambda: now[0],
    )
    with pytest.raises(TokenRefreshError) as caught:
        flow.poll(flow.start())
    assert caught.value.error_code == "expired_token"
    assert endpoint.count() <= 900 / 5 + 1


# -- Google (google-auth) ----------------------------------------------------------------


def google_user(endpoint: TokenEndpoint, session: requests.Session) -> GoogleCredentialsProvider:
    credentials = google.oauth2.credentials.Credentials(
        token=None,
        refresh_token=REFRESH,
        token_uri=endpoint.token_url,
        client_id=CLIENT,
        client_secret=SECRET,
    )
    return GoogleCredentialsProvider(credentials, session=session, timeout=(1.0, 2.0))


def test_google_user_credentials(endpoint: TokenEndpoint, session: requests.Session) -> None:
    tokens = google_user(endpoint, session)
    before = datetime.now(UTC)
    token = tokens.get_token()
    assert token.token.reveal() == endpoint.issued[0]
    assert token.expires_at is not None
    assert token.expires_at.tzinfo is not None  # google-auth's naive UTC made aware
    assert before + timedelta(seconds=3500) < token.expires_at < before + timedelta(seconds=3700)
    assert tokens.get_token() is token
    [seen] = endpoint.requests
    assert seen.form["grant_type"] == "refresh_token"
    assert seen.form["refresh_token"] == REFRESH


def test_google_invalid_grant_is_permanent(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    endpoint.configure(mode="invalid_grant", error_description=f"bad token {REFRESH}")
    with pytest.raises(TokenRefreshError) as caught:
        google_user(endpoint, session).get_token()
    assert caught.value.error_code == "invalid_grant"
    assert not caught.value.is_transient
    assert REFRESH not in str(caught.value)
    assert endpoint.count() == 1


def test_google_5xx_relies_on_google_auth_retries_only(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    # JSON error body: google-auth marks the RefreshError retryable. (With an HTML body it
    # says retryable=False even after retrying a 500; we follow its verdict, not guess.)
    endpoint.configure(mode="500json")
    with pytest.raises(TokenRefreshError) as caught:
        google_user(endpoint, session).get_token()
    assert caught.value.is_transient
    assert endpoint.count() == GOOGLE_AUTH_ATTEMPTS  # google-auth's own attempts, no more


def test_google_service_account_with_domain_wide_delegation(
    endpoint: TokenEndpoint, session: requests.Session
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "smtpkit-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "sender@smtpkit-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": endpoint.token_url,
    }
    tokens = GoogleCredentialsProvider.service_account(
        info, subject="ops@example.test", session=session
    )
    token = tokens.get_token()
    assert endpoint.subjects == ["ops@example.test"]
    assert endpoint.requests[0].form["grant_type"] == JWT_BEARER
    assert token.expires_at is not None
    assert "ops@example.test" in repr(tokens)
    assert "PRIVATE" not in repr(tokens)


def google_store(endpoint: TokenEndpoint, path: Path) -> FileTokenStore:
    """A token store as ``smtpkit oauth google`` writes it, pointing at the local endpoint."""
    store = FileTokenStore(path)
    store.write(
        StoredGrant(
            provider="google",
            client_id=CLIENT,
            token_url=endpoint.token_url,
            refresh_token=Secret(endpoint.refresh_token),
            username="alice@gmail.com",
            client_secret=Secret(SECRET),
            scopes=("https://mail.google.com/",),
        )
    )
    return store


@pytest.mark.parametrize("timeout", [math.inf, (1.0, math.inf), 0, -1.0, math.nan, True])
def test_google_timeout_must_be_finite(
    endpoint: TokenEndpoint, session: requests.Session, timeout: object
) -> None:
    credentials = google.oauth2.credentials.Credentials(
        token=None, refresh_token=REFRESH, token_uri=endpoint.token_url, client_id=CLIENT
    )
    with pytest.raises(ConfigurationError, match="timeout"):
        GoogleCredentialsProvider(credentials, session=session, timeout=timeout)  # type: ignore[arg-type]


def test_google_store_providers_adopt_a_token_another_process_saved(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    endpoint.configure(rotate=True)  # each refresh revokes the refresh token it used
    store = google_store(endpoint, tmp_path / "alice.json")
    # Two processes that read the file at start-up, before either refreshed.
    first, second = (
        GoogleCredentialsProvider.from_authorized_user_file(store.path, session=session)
        for _ in range(2)
    )
    first.get_token()
    assert store.load() == endpoint.refresh_token != REFRESH  # the rotation was saved
    second.get_token()  # adopts what the first saved, instead of the revoked original
    assert [seen.form["refresh_token"] for seen in endpoint.requests][1] != REFRESH
    first.get_token(force_refresh=True)  # and the first adopts the second's rotation
    assert store.load() == endpoint.refresh_token
    assert endpoint.count() == 3


def test_google_store_refreshes_under_the_store_lock(
    endpoint: TokenEndpoint,
    session: requests.Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(smtpkit.integrations.google, "LOCK_MARGIN", 0.0)
    monkeypatch.setattr(smtpkit.integrations.google, "GOOGLE_AUTH_BACKOFF", 0.0)
    store = google_store(endpoint, tmp_path / "alice.json")
    tokens = GoogleCredentialsProvider.from_authorized_user_file(
        store.path, session=session, timeout=0.05
    )
    assert tokens.store is not None
    holder = FileTokenStore(store.path)  # another open file: flock conflicts as across processes
    started = time.monotonic()
    with holder.locked(), pytest.raises(TokenRefreshError) as caught:
        tokens.get_token()
    assert time.monotonic() - started < 2.0
    assert caught.value.is_transient
    assert "stayed locked" in caught.value.message
    assert endpoint.requests == []  # no refresh while another process holds the store
    assert tokens.get_token()  # once released, it works


def test_google_rotation_that_cannot_be_saved_is_logged_not_raised(
    endpoint: TokenEndpoint,
    session: requests.Session,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint.configure(rotate=True)
    store = google_store(endpoint, tmp_path / "alice.json")

    def locked_out(refresh_token: str) -> None:
        raise StoreLockTimeout(f"token store {store.path} stayed locked")

    def disk_full(refresh_token: str) -> None:
        raise OSError(28, "No space left on device")

    tokens = GoogleCredentialsProvider.from_authorized_user_info(
        store.read_json() or {}, store=store, on_rotate=disk_full, session=session
    )
    store.save = locked_out  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="smtpkit.oauth"):
        token = tokens.get_token()
    assert token.token.reveal() == endpoint.issued[-1]
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failures == [
        "saving it to the token store failed (StoreLockTimeout): the new refresh token was "
        "not persisted",
        "on_rotate failed (OSError): the new refresh token was not persisted",
    ]
    assert endpoint.refresh_token not in caplog.text


def test_google_store_needs_user_credentials(tmp_path: Path, endpoint: TokenEndpoint) -> None:
    store = google_store(endpoint, tmp_path / "alice.json")
    with pytest.raises(ConfigurationError, match="FileTokenStore"):
        GoogleCredentialsProvider(
            google.oauth2.credentials.Credentials(token="t"),
            store=str(store.path),  # type: ignore[arg-type]
        )


# -- static tokens and the store ---------------------------------------------------------


def test_static_token(clock: Clock) -> None:
    token = StaticToken("at-CANARY", clock.now + timedelta(seconds=60), clock=clock)
    assert token.get_token().token.reveal() == "at-CANARY"
    with pytest.raises(TokenRefreshError, match="refused"):
        token.get_token(force_refresh=True)
    clock.advance(61)
    with pytest.raises(TokenRefreshError, match="expired"):
        token.get_token()


def test_store_keeps_fields_and_refuses_garbage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.json"
    store = FileTokenStore(path)
    assert store.load() is None
    path.write_text(
        json.dumps({"provider": "oauth2", "client_id": "c", "token_url": "https://x/t"})
    )
    store.save("rt-1")
    assert json.loads(path.read_text())["client_id"] == "c"
    assert store.load() == "rt-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="smtpkit.oauth"):
        store.load()
    assert "readable by other users" in caplog.text
    path.write_text("rt-CANARY not json")
    with pytest.raises(ConfigurationError) as caught:
        store.load()
    assert "CANARY" not in str(caught.value)


# -- secrets never show --------------------------------------------------------------------


def test_secrets_absent_everywhere(
    endpoint: TokenEndpoint,
    session: requests.Session,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3 included
    endpoint.configure(rotate=True)
    tokens = provider(endpoint, session, clock)
    token = tokens.get_token()
    issued = token.token.reveal()
    endpoint.configure(mode="invalid_grant", error_description=f"no: {endpoint.refresh_token}")
    with pytest.raises(TokenRefreshError) as caught:
        tokens.get_token(force_refresh=True)
    error = caught.value
    secrets = [REFRESH, SECRET, issued, endpoint.refresh_token]
    shown = [
        repr(tokens),
        str(tokens),
        repr(token),
        str(error),
        repr(error),
        str(error.hint),
        caplog.text,
        pickle.dumps(error).decode("latin-1"),
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert "obtained an access token" in caplog.text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(tokens)
    with pytest.raises(TypeError):
        pickle.dumps(token)


def test_public_names_and_no_google_import() -> None:
    public = {
        name
        for name in vars(smtpkit.oauth)
        if not name.startswith("_")
        and name not in {"annotations"}
        and not isinstance(getattr(smtpkit.oauth, name), type(smtpkit))
    }
    assert sorted(smtpkit.oauth.__all__) == sorted(public)
    # smtpkit.oauth works without loading google-auth (only the Google adapter needs it).
    code = "import sys, smtpkit.oauth, smtpkit.auth; print('google' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"

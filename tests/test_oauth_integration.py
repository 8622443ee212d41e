"""OAuth2 end to end: a real token endpoint and a Gmail-style SMTP server, both on loopback.

The server (LocalServer in OAuth mode) accepts only tokens the endpoint issued and that have
not expired; a refused token gets Gmail's ``334 <base64 JSON>`` challenge, then 535 5.7.8.
"""

from __future__ import annotations

import base64
import logging
import pickle
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
import requests

from smtpkit import Submitter, TokenRefreshError, TokenRejected
from smtpkit.auth import OAuthBearerAuth, XOAuth2Auth
from smtpkit.oauth import RefreshTokenProvider
from smtpkit.testing import LocalServer
from tests.oauth_endpoint import TokenEndpoint

USER = "alice@example.test"
REFRESH = "rt-CANARY-refresh-4242"
CLIENT = "client-abc"
TIMEOUT = 5.0


class Clock:
    """An aware UTC clock moved by hand, shared by the provider and the Submitter."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(refresh_token=REFRESH) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy or CA bundle from the environment
    yield session
    session.close()


@pytest.fixture
def server(endpoint: TokenEndpoint) -> Iterator[LocalServer]:
    with LocalServer(oauth_tokens=endpoint.token_is_valid, require_auth=True) as smtp:
        yield smtp


def provider_for(
    endpoint: TokenEndpoint, http: requests.Session, clock: Clock | None = None
) -> RefreshTokenProvider:
    if clock is None:
        return RefreshTokenProvider(endpoint.token_url, CLIENT, REFRESH, session=http)
    return RefreshTokenProvider(endpoint.token_url, CLIENT, REFRESH, session=http, clock=clock)


def submitter_for(
    server: LocalServer, auth: XOAuth2Auth | OAuthBearerAuth, **kw: object
) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        auth=auth,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
        **kw,  # type: ignore[arg-type]
    )


def message(subject: str = "hello") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", subject
    msg.set_content("body")
    return msg


@pytest.mark.parametrize("strategy", [XOAuth2Auth, OAuthBearerAuth])
def test_first_login_fetches_one_token_and_sends(
    strategy: type[XOAuth2Auth],
    server: LocalServer,
    endpoint: TokenEndpoint,
    http: requests.Session,
) -> None:
    submitter = submitter_for(server, strategy(USER, provider_for(endpoint, http)))
    result = submitter.send(message())
    assert result.accepted == ("bob@example.test",)
    assert endpoint.count() == 1
    [received] = server.wait_for(1)
    assert received.auth_user == USER
    assert received.auth_mechanism == strategy(USER, provider_for(endpoint, http)).mechanisms[0]


def test_a_rejected_token_is_refreshed_once_and_auth_retried(
    server: LocalServer, endpoint: TokenEndpoint, http: requests.Session
) -> None:
    provider = provider_for(endpoint, http)
    provider.get_token()  # the provider holds a token it believes valid...
    endpoint.expire_access_tokens()  # ...which the server no longer accepts
    assert endpoint.count() == 1

    result = submitter_for(server, XOAuth2Auth(USER, provider)).send(message())

    assert result.accepted == ("bob@example.test",)
    assert endpoint.count() == 2  # exactly one refresh, no user code involved
    attempts = [(a.mechanism, a.success) for a in server.auth_attempts]
    assert attempts == [("XOAUTH2", False), ("XOAUTH2", True)]


def test_a_token_refused_twice_raises_token_rejected_with_the_challenge(
    endpoint: TokenEndpoint, http: requests.Session
) -> None:
    with LocalServer(oauth_tokens=lambda user, token: False) as server:
        submitter = submitter_for(server, XOAuth2Auth(USER, provider_for(endpoint, http)))
        with pytest.raises(TokenRejected) as caught:
            submitter.send(message())
    error = caught.value
    assert endpoint.count() == 2  # the first token, then exactly one forced refresh
    assert len(server.auth_attempts) == 2
    assert error.scope == "https://mail.google.com/"
    assert error.status == "400"
    assert error.code == 535
    assert error.hint
    assert any("AUTH XOAUTH2 ****" in line for line in error.transcript)
    # Nothing secret in the error, its pickle, or its transcript.
    blob = pickle.dumps(error)
    for token in endpoint.issued:
        assert token not in str(error)
        assert token.encode() not in blob
        assert all(token not in line for line in error.transcript)
    assert REFRESH.encode() not in blob


def test_proactive_refresh_before_auth_when_the_token_is_about_to_expire(
    server: LocalServer, endpoint: TokenEndpoint, http: requests.Session
) -> None:
    clock = Clock()
    provider = provider_for(endpoint, http, clock)
    provider.get_token()
    clock.advance(3600 - 60)  # inside the refresh skew: refresh before AUTH, not after 535
    submitter_for(server, XOAuth2Auth(USER, provider)).send(message())
    assert endpoint.count() == 2
    assert [a.success for a in server.auth_attempts] == [True]


def test_a_kept_connection_outliving_its_token_is_replaced_before_the_next_message(
    server: LocalServer, endpoint: TokenEndpoint, http: requests.Session
) -> None:
    clock = Clock()
    provider = provider_for(endpoint, http, clock)
    submitter = submitter_for(server, XOAuth2Auth(USER, provider), wall_clock=clock)
    with submitter:
        submitter.send(message("one"))
        submitter.send(message("two"))  # same connection, same login
        assert len(server.auth_attempts) == 1
        clock.advance(3600 - 30)  # Gmail would end this session at token expiry
        submitter.send(message("three"))
    assert [m.message["Subject"] for m in server.wait_for(3)] == ["one", "two", "three"]
    assert [a.success for a in server.auth_attempts] == [True, True]  # re-authenticated once
    assert endpoint.count() == 2  # the second login used a refreshed token


def test_sixteen_threads_sharing_a_provider_refresh_once(
    server: LocalServer, endpoint: TokenEndpoint, http: requests.Session
) -> None:
    provider = provider_for(endpoint, http)
    endpoint.configure(delay=0.2)  # a slow endpoint makes the threads overlap
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            submitter_for(server, XOAuth2Auth(USER, provider)).send(message(f"m{n}"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 4)
    assert errors == []
    assert len(server.wait_for(16)) == 16
    assert endpoint.count() == 1


def test_invalid_grant_is_permanent_and_causes_no_retry_storm(
    server: LocalServer, endpoint: TokenEndpoint, http: requests.Session
) -> None:
    endpoint.configure(mode="invalid_grant", error_description="Token has been expired or revoked.")
    submitter = submitter_for(server, XOAuth2Auth(USER, provider_for(endpoint, http)))
    for _ in range(3):
        with pytest.raises(TokenRefreshError) as caught:
            submitter.send(message())
        assert not caught.value.is_transient
        assert caught.value.error_code == "invalid_grant"
    assert endpoint.count() == 1  # remembered: no request per send
    assert server.auth_attempts == []  # nothing reached the SMTP server's AUTH


def test_rotated_refresh_token_is_persisted(http: requests.Session) -> None:
    saved: list[str] = []
    with TokenEndpoint(refresh_token=REFRESH, rotate=True) as rotating:
        with LocalServer(oauth_tokens=rotating.token_is_valid) as smtp:
            provider = RefreshTokenProvider(
                rotating.token_url, CLIENT, REFRESH, session=http, on_rotate=saved.append
            )
            submitter_for(smtp, XOAuth2Auth(USER, provider)).send(message())
        assert saved == [rotating.refresh_token]
        assert saved[0] != REFRESH


def test_no_secret_in_debug_logs(
    caplog: pytest.LogCaptureFixture,
    server: LocalServer,
    endpoint: TokenEndpoint,
    http: requests.Session,
) -> None:
    provider = provider_for(endpoint, http)
    provider.get_token()
    endpoint.expire_access_tokens()  # exercise the failure path too
    with caplog.at_level(logging.DEBUG):
        submitter_for(server, XOAuth2Auth(USER, provider)).send(message())
    text = "\n".join(f"{record.getMessage()} {record.args!r}" for record in caplog.records)
    assert "AUTH XOAUTH2 ****" in text
    for secret in [*endpoint.issued, REFRESH]:
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode()[:16] not in text

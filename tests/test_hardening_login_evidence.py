"""A failed login keeps its evidence: the conversation and the server's decoded challenge.

When the server refuses an OAuth2 token, smtpkit asks the provider for one forced refresh.
If that refresh fails (a revoked refresh token, a ``StaticToken`` that cannot refresh), the
``TokenRefreshError`` raised must still say what the server said: the transcript (with the
``535``) and the decoded ``334`` JSON challenge (``status``, ``schemes``, ``scope``). These
tests use a real token endpoint and a Gmail-shaped SMTP server, both on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import requests

from smtpkit import Security, Submitter, TokenRefreshError
from smtpkit.auth import OAuthBearerAuth, XOAuth2Auth
from smtpkit.oauth import RefreshTokenProvider, StaticToken
from tests.hostile_server import HostileServer, Peer
from tests.oauth_endpoint import TokenEndpoint

USER = "alice@example.test"
REFRESH = "rt-CANARY-evidence-7731"
STATIC = "ya29.CANARY-static-4411"
CLIENT = "client-evidence"
TIMEOUT = 5.0
CHALLENGE = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
REFUSAL = b"535 5.7.8 Username and Password not accepted. Learn more at gsmtp\r\n"


def gmail_refusing_every_token(peer: Peer) -> None:
    """Gmail's answer to a refused token: a base64 JSON challenge, then 535 5.7.8."""
    peer.send(b"220 smtp.gmail.test ESMTP\r\n")
    peer.read_line()
    peer.send(b"250-smtp.gmail.test\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n")
    for _ in range(3):  # AUTH; AUTH again after a refresh; QUIT
        line = peer.read_line()
        if not line.upper().startswith(b"AUTH"):
            peer.send(b"221 2.0.0 closing connection\r\n")
            return
        peer.send(b"334 " + base64.b64encode(json.dumps(CHALLENGE).encode()) + b"\r\n")
        peer.read_line()  # the client's empty (XOAUTH2) or 0x01 (OAUTHBEARER) answer
        peer.send(REFUSAL)


@pytest.fixture
def smtp() -> Iterator[HostileServer]:
    with HostileServer(gmail_refusing_every_token) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # loopback only: no proxy from the environment
    yield session
    session.close()


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", "evidence"
    msg.set_content("body")
    return msg


def send(server: HostileServer, auth: XOAuth2Auth | OAuthBearerAuth) -> TokenRefreshError:
    submitter = Submitter(
        server.host, server.port, security=Security.NONE, auth=auth, timeout=TIMEOUT
    )
    with pytest.raises(TokenRefreshError) as caught:
        submitter.send(message())
    return caught.value


def assert_evidence(error: TokenRefreshError, mechanism: str) -> None:
    assert f"C: AUTH {mechanism} ****" in error.transcript
    assert any(line.startswith("S: 334 ") for line in error.transcript)
    assert any(line.startswith("S: 535 5.7.8 Username and Password") for line in error.transcript)
    assert error.challenge == CHALLENGE
    assert "535 5.7.8" in str(error)  # the message says what the server answered
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.transcript == error.transcript
    assert copy.challenge == CHALLENGE


@pytest.mark.parametrize(
    ("strategy", "mechanism"), [(XOAuth2Auth, "XOAUTH2"), (OAuthBearerAuth, "OAUTHBEARER")]
)
def test_a_revoked_refresh_token_keeps_the_refusal_and_the_challenge(
    smtp: HostileServer,
    http: requests.Session,
    strategy: type[XOAuth2Auth],
    mechanism: str,
) -> None:
    with TokenEndpoint(refresh_token=REFRESH) as endpoint:
        provider = RefreshTokenProvider(endpoint.token_url, CLIENT, REFRESH, session=http)
        provider.get_token()  # a token the provider believes valid...
        endpoint.configure(mode="invalid_grant")  # ...and a refresh token revoked since
        error = send(smtp, strategy(USER, provider))
        issued = endpoint.issued
    assert error.error_code == "invalid_grant"
    assert not error.is_transient
    assert_evidence(error, mechanism)
    blob = pickle.dumps(error)
    for secret in [*issued, REFRESH]:
        assert secret not in str(error) + repr(error) + "\n".join(error.transcript)
        assert secret.encode() not in blob


def test_a_refused_static_token_keeps_the_refusal_and_the_challenge(smtp: HostileServer) -> None:
    error = send(smtp, XOAuth2Auth(USER, StaticToken(STATIC)))
    assert "static access token" in str(error)
    assert_evidence(error, "XOAUTH2")
    assert STATIC not in str(error) + repr(error) + "\n".join(error.transcript)
    assert STATIC.encode() not in pickle.dumps(error)


def test_the_remembered_failure_is_not_stamped_with_another_session_s_evidence(
    smtp: HostileServer, http: requests.Session
) -> None:
    """The provider remembers a permanent failure: each send gets its own evidence."""
    with TokenEndpoint(refresh_token=REFRESH) as endpoint:
        provider = RefreshTokenProvider(endpoint.token_url, CLIENT, REFRESH, session=http)
        provider.get_token()
        endpoint.configure(mode="invalid_grant")
        first = send(smtp, XOAuth2Auth(USER, provider))
        with pytest.raises(TokenRefreshError) as caught:
            provider.get_token(force_refresh=True)
    # Asked directly, the provider's error has no SMTP conversation in it.
    assert caught.value.transcript == ()
    assert first.transcript

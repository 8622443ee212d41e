"""A test server given credentials requires AUTH by default, the fake and the real one alike.

A server told which credentials are valid and then accepting mail from anyone without a login
hides the bug a test meant to catch (code that forgot to log in). ``require_auth=False`` keeps
the old behaviour where a test is really about unauthenticated mail.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage

import pytest

from smtpkit import AuthenticationRequired, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.config import Security
from smtpkit.testing import FakeTransport, LocalServer
from tests.conftest import TIMEOUT, ServerFactory

USER, PASSWORD = "alice@example.test", "s3cret"


def _plain_client(server: LocalServer) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)


def test_local_server_with_credentials_refuses_mail_without_login(
    local_server: ServerFactory,
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    with _plain_client(server) as client:
        client.ehlo("client.test")
        code, text = client.mail(USER)
    assert (code, text) == (530, b"5.7.0 Authentication required")
    assert server.messages == []


def test_local_server_with_oauth_tokens_refuses_mail_without_login(
    local_server: ServerFactory,
) -> None:
    server = local_server(security=Security.NONE, oauth_tokens={USER: "ya29.token"})
    with _plain_client(server) as client:
        client.ehlo("client.test")
        code, _ = client.mail(USER)
    assert code == 530


def test_local_server_with_credentials_accepts_mail_after_login(
    local_server: ServerFactory, make_message: Callable[..., EmailMessage]
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    with Submitter(
        server.host,
        server.port,
        auth=PasswordAuth(USER, PASSWORD),
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    ) as submitter:
        submitter.send(make_message())
    [received] = server.messages
    assert received.auth_user == USER


def test_local_server_require_auth_false_keeps_unauthenticated_mail(
    local_server: ServerFactory,
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD}, require_auth=False)
    with _plain_client(server) as client:
        client.ehlo("client.test")
        assert client.mail(USER)[0] == 250


def test_local_server_without_credentials_does_not_require_auth(
    local_server: ServerFactory,
) -> None:
    server = local_server(security=Security.NONE)
    with _plain_client(server) as client:
        client.ehlo("client.test")
        assert client.mail(USER)[0] == 250


def test_fake_with_credentials_refuses_mail_without_login(
    make_message: Callable[..., EmailMessage],
) -> None:
    fake = FakeTransport(credentials={USER: PASSWORD})
    with pytest.raises(AuthenticationRequired):
        Submitter("smtp.example.com", transport=fake).send(make_message())
    assert "S: 530 5.7.0 Authentication required" in fake.transcript
    assert fake.auth_attempts == []
    assert fake.messages == []


def test_fake_require_auth_false_keeps_unauthenticated_mail(
    make_message: Callable[..., EmailMessage],
) -> None:
    fake = FakeTransport(credentials={USER: PASSWORD}, require_auth=False)
    Submitter("smtp.example.com", transport=fake).send(make_message())
    assert len(fake.messages) == 1

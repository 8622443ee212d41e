"""IPv6 loopback: the client connects to ``::1`` (bare or bracketed) and verifies TLS for it."""

from __future__ import annotations

import socket
from email.message import EmailMessage

import pytest

from smtpkit import Security, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.testing import LocalServer


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback here")


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_send_over_ipv6_loopback(security: Security, host: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@x.test", "b@x.test", "v6"
    message.set_content("over IPv6")
    with LocalServer(host="::1", security=security, credentials={"u": "p"}) as server:
        result = Submitter(
            host,
            server.port,
            security=security,
            auth=PasswordAuth("u", "p"),
            tls_context=server.client_tls_context(),
            timeout=5,
        ).send(message)
        [received] = server.wait_for(1)
    assert result.accepted == ("b@x.test",)
    assert received.tls is True
    assert received.auth_user == "u"


def test_url_with_an_ipv6_literal() -> None:
    submitter = Submitter.from_url("smtp://[::1]:2525")
    assert (submitter.host, submitter.port, submitter.security) == ("[::1]", 2525, Security.NONE)

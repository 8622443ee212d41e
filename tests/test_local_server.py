"""LocalServer over real loopback sockets, driven only by the standard library's smtplib."""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase
from smtpkit.testing._server import LocalServer
from smtpkit.testing._server_sasl import parse_oauthbearer, parse_xoauth2
from smtpkit.testing._server_state import normalize_reply

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0
#: The name the smtplib client sends in EHLO: given, so that smtplib does not look up this
#: machine's own name (a DNS query where /etc/hosts does not have it).
CLIENT_NAME = "client.example.test"
USER = "alice@example.test"
PASSWORD = "correct horse battery staple"
MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
GMAIL_CHALLENGE = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'

Factory = Callable[..., LocalServer]


@pytest.fixture
def make_server() -> Iterator[Factory]:
    servers: list[LocalServer] = []

    def make(**options: Any) -> LocalServer:
        server = LocalServer(**options)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


def connect(server: LocalServer, *, tls: bool = True) -> smtplib.SMTP:
    """An smtplib client that is through TLS (when the server has it) and has said EHLO."""
    if server.security is Security.TLS:
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            server.host,
            server.port,
            CLIENT_NAME,
            timeout=TIMEOUT,
            context=server.client_tls_context(),
        )
    else:
        client = smtplib.SMTP(server.host, server.port, CLIENT_NAME, timeout=TIMEOUT)
    client.ehlo()
    if server.security is Security.STARTTLS and tls:
        client.starttls(context=server.client_tls_context())
        client.ehlo()
    return client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def xoauth2(user: str, token: str) -> str:
    return b64(f"user={user}\x01auth=Bearer {token}\x01\x01".encode())


def oauthbearer(user: str, token: str, port: int) -> str:
    return b64(
        f"n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()
    )


def auth(client: smtplib.SMTP, mechanism: str, user: str, password: str) -> None:
    client.user, client.password = user, password
    method = client.auth_plain if mechanism == "PLAIN" else client.auth_login
    client.auth(mechanism, method)


# -- STARTTLS, AUTH PLAIN / LOGIN ----------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_auth_and_send(make_server: Factory, mechanism: str) -> None:
    server = make_server(credentials={USER: PASSWORD})
    with connect(server) as client:
        assert "starttls" not in client.esmtp_features  # after TLS it is gone
        auth(client, mechanism, USER, PASSWORD)
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    [received] = server.wait_for(1)
    assert received.sender == USER
    assert received.recipients == ("bob@example.test",)
    assert received.raw == MESSAGE
    assert received.message["Subject"] == "hi"
    assert (received.auth_user, received.auth_mechanism, received.tls) == (USER, mechanism, True)
    assert server.auth_attempts == [(mechanism, USER, True)]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize(("user", "password"), [(USER, "wrong"), ("mallory@x.test", PASSWORD)])
def test_bad_credentials_get_535_without_hanging(
    make_server: Factory, mechanism: str, user: str, password: str
) -> None:
    server = make_server(credentials={USER: PASSWORD})
    with connect(server) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            auth(client, mechanism, user, password)
        assert caught.value.smtp_code == 535
        assert caught.value.smtp_error == b"5.7.8 Authentication credentials invalid"
        assert client.noop()[0] == 250  # the session is still in step
    assert server.auth_attempts == [(mechanism, user, False)]


def test_starttls_is_required_before_anything_else(make_server: Factory) -> None:
    server = make_server(credentials={USER: PASSWORD})
    with smtplib.SMTP(server.host, server.port, CLIENT_NAME, timeout=TIMEOUT) as client:
        client.ehlo()
        assert "starttls" in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert client.mail(USER) == (530, b"Must issue a STARTTLS command first")
        assert client.docmd("AUTH", "PLAIN " + b64(b"\0a\0b"))[0] == 530
        client.starttls(context=server.client_tls_context())
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]


def test_any_credentials_accepted_when_none_configured(make_server: Factory) -> None:
    server = make_server()
    with connect(server) as client:
        auth(client, "LOGIN", "whoever", "whatever")
        client.sendmail("a@x.test", ["b@x.test"], MESSAGE)
    assert server.wait_for(1)[0].auth_user == "whoever"


# -- implicit TLS, plaintext, certificates -------------------------------------------------------


def test_implicit_tls_advertises_auth_and_records_tls(make_server: Factory) -> None:
    server = make_server(security=Security.TLS, credentials={USER: PASSWORD})
    assert server.url == f"smtps://127.0.0.1:{server.port}"
    with connect(server) as client:
        assert "starttls" not in client.esmtp_features
        assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        client.login(USER, PASSWORD)
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert server.wait_for(1)[0].tls is True


def test_plaintext_offers_auth_on_loopback(make_server: Factory) -> None:
    server = make_server(security=Security.NONE, credentials={USER: PASSWORD})
    assert server.url == f"smtp://127.0.0.1:{server.port}"
    with connect(server) as client:
        assert "starttls" not in client.esmtp_features
        client.login(USER, PASSWORD)
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    [received] = server.wait_for(1)
    assert (received.tls, received.auth_user) == (False, USER)


@pytest.mark.parametrize("security", [Security.TLS, Security.STARTTLS])
def test_client_that_does_not_trust_the_ca_fails_verification(
    make_server: Factory, security: Security
) -> None:
    server = make_server(security=security)
    other = LocalServer()  # another CA: its context must not trust this server
    for context in (ssl.create_default_context(), other.client_tls_context()):
        if security is Security.TLS:
            with pytest.raises(ssl.SSLCertVerificationError):
                smtplib.SMTP_SSL(
                    server.host, server.port, CLIENT_NAME, timeout=TIMEOUT, context=context
                )
        else:
            with (
                smtplib.SMTP(server.host, server.port, CLIENT_NAME, timeout=TIMEOUT) as client,
                pytest.raises(ssl.SSLCertVerificationError),
            ):
                client.starttls(context=context)
    with connect(server) as client:  # the server is unharmed
        assert client.noop()[0] == 250
    assert server.server_errors == []


def test_ca_file_and_certificate_names(make_server: Factory, tmp_path: Path) -> None:
    server = make_server(security=Security.TLS, hostname="mail.example.test")
    temp_ca = server.ca_path
    assert temp_ca.read_bytes() == server.ca_pem
    assert server.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    context = ssl.create_default_context(cafile=str(temp_ca))
    for name in ("localhost", "127.0.0.1", "mail.example.test"):
        with (
            socket.create_connection((server.host, server.port), TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.recv(100).startswith(b"220 mail.example.test")
    server.stop()
    assert not temp_ca.exists()  # the temporary CA file goes with the server

    kept = tmp_path / "ca.pem"
    server = make_server(ca_path=kept)
    assert server.ca_path == kept
    server.stop()
    assert kept.read_bytes() == server.ca_pem


def tls_handshake(server: LocalServer, name: str) -> bytes:
    """Connect with a client that trusts the server's CA; the greeting's first bytes."""
    context = ssl.create_default_context(cafile=str(server.ca_path))
    with (
        socket.create_connection((server.host, server.port), TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        return tls.recv(100)


def test_certificate_names_are_exactly_the_names_given(make_server: Factory) -> None:
    server = make_server(security=Security.TLS, certificate_names=("mail.example.test",))
    assert tls_handshake(server, "mail.example.test").startswith(b"220 ")
    for name, code in (("127.0.0.1", 64), ("localhost", 62)):  # IP / host name mismatch
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            tls_handshake(server, name)
        assert caught.value.verify_code == code
        assert "mismatch" in str(caught.value.verify_message)
    assert server.server_errors == []


def test_an_expired_certificate(make_server: Factory) -> None:
    server = make_server(security=Security.TLS, certificate_expired=True)
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        tls_handshake(server, "127.0.0.1")
    assert caught.value.verify_code == 10
    assert caught.value.verify_message == "certificate has expired"
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE  # only to read the dates of the refused certificate
    with (
        socket.create_connection((server.host, server.port), TIMEOUT) as raw,
        unverified.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    assert b"\x17\x0d010101000000Z" in der  # notAfter: UTCTime 2001-01-01 00:00:00
    with connect(make_server(security=Security.TLS)) as client:  # the default is valid
        assert client.noop()[0] == 250


# -- SIZE, SMTPUTF8, PIPELINING, AUTH offer ------------------------------------------------------


def test_size_is_advertised_and_enforced(make_server: Factory) -> None:
    server = make_server(security=Security.NONE, size_limit=1000)
    big = MESSAGE + b"x" * 1000 + b"\r\n"
    with connect(server) as client:
        assert client.esmtp_features["size"] == "1000"
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            client.sendmail(USER, ["bob@example.test"], big)  # smtplib sends SIZE=
        assert caught.value.smtp_code == 552
        client.rset()
        client.mail(USER)  # no SIZE= declared: the limit applies to the content
        client.rcpt("bob@example.test")
        assert client.data(big)[0] == 552
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert [m.raw for m in server.wait_for(1)] == [MESSAGE]


def test_message_lines_keep_the_rfc_5321_limit(make_server: Factory) -> None:
    # The reader accepts long SASL lines (see test_long_token_after_bare_334); message lines
    # must still be limited to 998 octets plus CRLF (RFC 5321 §4.5.3.1.6).
    server = make_server(security=Security.NONE)
    with connect(server) as client:
        client.sendmail(USER, ["bob@example.test"], MESSAGE + b"y" * 998 + b"\r\n")
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail(USER, ["bob@example.test"], MESSAGE + b"z" * 1200 + b"\r\n")
        assert caught.value.smtp_code == 500
    assert len(server.wait_for(1)) == 1


def test_no_size_limit_advertises_no_size(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    with connect(server) as client:
        assert "size" not in client.esmtp_features


def test_smtputf8(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    content = "Subject: é\r\n\r\nbödy\r\n".encode()
    with connect(server) as client:
        assert "smtputf8" in client.esmtp_features
        client.sendmail("ålice@example.test", ["bøb@example.test"], content, ["SMTPUTF8"])
    [received] = server.wait_for(1)
    assert (received.sender, received.smtputf8, received.raw) == (
        "ålice@example.test",
        True,
        content,
    )
    assert "SMTPUTF8" in received.mail_options

    plain = make_server(security=Security.NONE, smtputf8=False)
    with connect(plain) as client:
        assert "smtputf8" not in client.esmtp_features


def test_pipelined_commands_get_one_reply_each(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    with connect(server) as client:
        assert "pipelining" in client.esmtp_features
        client.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n")
        assert [client.getreply()[0] for _ in range(4)] == [250, 250, 250, 354]
        client.send(MESSAGE + b".\r\n")
        assert client.getreply()[0] == 250
    assert server.wait_for(1)[0].recipients == ("b@x.test", "c@x.test")


def test_auth_mechanisms_option(make_server: Factory) -> None:
    none = make_server(security=Security.NONE, auth_mechanisms=())
    with connect(none) as client:
        assert "auth" not in client.esmtp_features
        assert client.docmd("AUTH", "PLAIN " + b64(b"\0a\0b"))[0] == 504
    oauth = make_server(security=Security.NONE, oauth_tokens={USER: "t"})
    with connect(oauth) as client:
        assert client.esmtp_features["auth"].split() == [
            "LOGIN",
            "OAUTHBEARER",
            "PLAIN",
            "XOAUTH2",
        ]


def test_require_auth(make_server: Factory) -> None:
    server = make_server(credentials={USER: PASSWORD}, require_auth=True)
    with connect(server) as client:
        assert client.mail(USER) == (530, b"5.7.0 Authentication required")
        client.login(USER, PASSWORD)
        assert client.mail(USER)[0] == 250


# -- scripted failures ---------------------------------------------------------------------------


def test_reply_to_named_recipients(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="Gone@Example.test", times=None)
    server.reply("rcpt", "452 4.2.2 Mailbox full", recipient="full@example.test", times=None)
    with connect(server) as client:
        refused = client.sendmail(
            USER, ["gone@example.test", "full@example.test", "ok@example.test"], MESSAGE
        )
    assert refused == {
        "gone@example.test": (550, b"5.1.1 User unknown"),
        "full@example.test": (452, b"4.2.2 Mailbox full"),
    }
    assert server.wait_for(1)[0].recipients == ("ok@example.test",)


def test_reply_each_phase_once_and_in_order(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    server.reply("mail", "451 4.3.0 Try later")
    server.reply("rcpt", "550 5.1.1 No", times=2)
    server.reply("data", "554 5.3.0 No DATA today")
    server.reply("message", "550-5.4.5 Daily user sending quota exceeded.\n5.4.5 Go away.")
    with connect(server) as client:
        assert client.mail(USER) == (451, b"4.3.0 Try later")
        assert client.mail(USER)[0] == 250
        assert client.rcpt("a@x.test") == (550, b"5.1.1 No")
        assert client.rcpt("b@x.test") == (550, b"5.1.1 No")
        assert client.rcpt("c@x.test")[0] == 250
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.data(MESSAGE)
        assert (caught.value.smtp_code, caught.value.smtp_error) == (554, b"5.3.0 No DATA today")
        assert client.data(MESSAGE) == (
            550,
            b"5.4.5 Daily user sending quota exceeded.\n5.4.5 Go away.",
        )
        client.sendmail(USER, ["d@x.test"], MESSAGE)  # all scripts are used up
    assert [m.recipients for m in server.wait_for(1)] == [("d@x.test",)]


def test_reply_validates_its_arguments(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    for phase, reply, times in [
        ("helo", "550 no", 1),
        ("mail", "oops", 1),
        ("mail", "550 a\n451 b", 1),
        ("mail", "550 a\x00b", 1),
        ("mail", "550 no", 0),
    ]:
        with pytest.raises(ConfigurationError):
            server.reply(phase, reply, times=times)
    assert normalize_reply("421 4.7.0 a\nb\n421 c") == "421-4.7.0 a\r\n421-b\r\n421 c"


def test_disconnect_after_the_content_keeps_it_in_dropped(make_server: Factory) -> None:
    server = make_server(credentials={USER: PASSWORD})
    server.disconnect("message")
    with connect(server) as client:
        client.login(USER, PASSWORD)
        client.mail(USER)
        client.rcpt("bob@example.test")
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.data(MESSAGE)
    assert server.messages == []
    [dropped] = server.dropped
    assert (dropped.raw, dropped.queue_id, dropped.auth_user) == (MESSAGE, None, USER)
    with connect(server) as client:  # only one connection is dropped
        client.login(USER, PASSWORD)
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize("deliver", [True, False])
def test_deprecated_drop_connection_after_data(make_server: Factory, deliver: bool) -> None:
    server = make_server(credentials={USER: PASSWORD})
    with pytest.warns(DeprecationWarning, match=r"drop_connection_after_data is deprecated"):
        server.drop_connection_after_data(deliver=deliver)
    with connect(server) as client:
        client.login(USER, PASSWORD)
        client.mail(USER)
        client.rcpt("bob@example.test")
        with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
            client.data(MESSAGE)
    assert len(server.messages) == (1 if deliver else 0)
    with connect(server) as client:  # only one connection is dropped
        client.login(USER, PASSWORD)
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert len(server.wait_for(2 if deliver else 1)) == (2 if deliver else 1)


# -- recording ---------------------------------------------------------------------------------


def test_save_dir_and_on_message(make_server: Factory, tmp_path: Path) -> None:
    seen: list[bytes] = []
    server = make_server(
        security=Security.NONE,
        save_dir=tmp_path / "out",
        on_message=lambda message: seen.append(message.raw),
    )
    bodies = [MESSAGE, MESSAGE.replace(b"Hello.", b"Second.")]
    with connect(server) as client:
        for body in bodies:
            client.sendmail(USER, ["bob@example.test"], body)
    received = server.wait_for(2)
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    assert [f.read_bytes() for f in files] == bodies
    assert [m.path for m in received] == files
    assert seen == bodies


def test_failing_on_message_is_kept_in_errors(make_server: Factory) -> None:
    def explode(message: object) -> None:
        raise RuntimeError("callback bug")

    server = make_server(security=Security.NONE, on_message=explode)
    with connect(server) as client:
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert len(server.wait_for(1)) == 1
    assert [str(e) for e in server.server_errors] == ["callback bug"]


def test_wait_for_times_out_with_a_helpful_message(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.test", times=None)
    with connect(server) as client, pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail(USER, ["gone@example.test"], MESSAGE)
    with pytest.raises(TimeoutError, match=r"expected 1 message\(s\) within 0.2 s but received 0"):
        server.wait_for(1, timeout=0.2)
    with pytest.raises(TimeoutError, match=r"gone@example\.test: rejected"):
        server.wait_for(1, timeout=0.01)
    with pytest.raises(ConfigurationError):
        server.wait_for(1, timeout=float("inf"))


def test_clear(make_server: Factory) -> None:
    server = make_server(security=Security.NONE)
    with connect(server) as client:
        client.login("u", "p")
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    server.wait_for(1)
    server.clear()
    assert (server.messages, server.auth_attempts) == ([], [])


# -- OAuth2 ------------------------------------------------------------------------------------


def oauth_server(make_server: Factory) -> LocalServer:
    return make_server(security=Security.TLS, oauth_tokens={USER: "good-token"})


def test_xoauth2_inline_success(make_server: Factory) -> None:
    server = oauth_server(make_server)
    with connect(server) as client:
        assert client.docmd("AUTH", "XOAUTH2 " + xoauth2(USER, "good-token"))[0] == 235
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    [received] = server.wait_for(1)
    assert (received.auth_user, received.auth_mechanism) == (USER, "XOAUTH2")
    assert server.auth_attempts == [("XOAUTH2", USER, True)]


def test_xoauth2_without_initial_response(make_server: Factory) -> None:
    server = oauth_server(make_server)
    with connect(server) as client:
        assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert client.docmd(xoauth2(USER, "good-token"))[0] == 235


@pytest.mark.parametrize("inline", [True, False])
def test_xoauth2_invalid_token_follows_gmail(make_server: Factory, inline: bool) -> None:
    server = oauth_server(make_server)
    blob = xoauth2(USER, "expired-token")
    with connect(server) as client:
        if inline:
            code, challenge = client.docmd("AUTH", "XOAUTH2 " + blob)
        else:
            assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
            code, challenge = client.docmd(blob)
        assert code == 334
        assert base64.b64decode(challenge) == GMAIL_CHALLENGE
        assert json.loads(base64.b64decode(challenge))["status"] == "400"
        # The 535 answers the client's empty line: had it been sent unprompted, the empty line
        # would get its own reply and NOOP would read that one instead of 250.
        assert client.docmd("") == (535, b"5.7.8 Username and Password not accepted.")
        assert client.noop()[0] == 250
    assert server.auth_attempts == [("XOAUTH2", USER, False)]


def test_oauthbearer_success_and_failure(make_server: Factory) -> None:
    server = oauth_server(make_server)
    with connect(server) as client:
        code, challenge = client.docmd(
            "AUTH", "OAUTHBEARER " + oauthbearer(USER, "stale", server.port)
        )
        assert (code, base64.b64decode(challenge)) == (334, GMAIL_CHALLENGE)
        assert client.docmd("AQ==") == (535, b"5.7.8 Username and Password not accepted.")
        assert client.noop()[0] == 250
        assert client.docmd("AUTH", "OAUTHBEARER") == (334, b"")
        assert client.docmd(oauthbearer(USER, "good-token", server.port))[0] == 235
    assert server.auth_attempts == [("OAUTHBEARER", USER, False), ("OAUTHBEARER", USER, True)]


def test_long_token_after_bare_334(make_server: Factory) -> None:
    # A Microsoft-sized token: the blob is far longer than a command line (RFC 4954 §4).
    token = "x" * 3000
    server = make_server(security=Security.NONE, oauth_tokens=lambda user, tok: tok == token)
    with connect(server) as client:
        assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert client.docmd(xoauth2(USER, token))[0] == 235
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert server.wait_for(1)[0].auth_user == USER


def test_malformed_oauth_responses(make_server: Factory) -> None:
    server = oauth_server(make_server)
    with connect(server) as client:
        assert client.docmd("AUTH", "XOAUTH2 !!!")[0] == 501
        assert client.docmd("AUTH", "XOAUTH2 " + b64(b"user=a\x01"))[0] == 501
        assert client.docmd("AUTH", "XOAUTH2") == (334, b"")
        assert client.docmd("*")[0] == 501  # the client cancels (RFC 4954 §4)
        assert client.noop()[0] == 250
    assert server.auth_attempts == [("XOAUTH2", None, False)]
    with pytest.raises(ValueError, match="GS2"):
        parse_oauthbearer(b"x,a=u,\x01auth=Bearer t\x01\x01")
    assert parse_oauthbearer(b"n,a=a=2Cb=3D,\x01auth=Bearer t\x01\x01").user == "a,b="
    with pytest.raises(ValueError, match="Bearer"):
        parse_xoauth2(b"user=u\x01auth=Basic t\x01\x01")


# -- configuration and lifecycle ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com", "", "::"])
def test_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        LocalServer(host=host)


@pytest.mark.parametrize(
    "options",
    [
        {"auth_mechanisms": ("PLAIN", "CRAM-MD5")},
        {"auth_mechanisms": "PLAIN"},
        {"size_limit": 0},
        {"port": 70000},
        {"security": "tls"},
        {"certificate_names": "localhost"},
        {"certificate_names": ()},
        {"certificate_names": ("",)},
        {"certificate_names": (1,)},
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        LocalServer(**options)


@pytest.mark.parametrize("security", list(Security))
def test_stop_is_idempotent_frees_the_port_and_leaves_no_thread(security: Security) -> None:
    threads_before = set(threading.enumerate())
    server = LocalServer(security=security, credentials={USER: PASSWORD})
    with server:
        port = server.port
        idle = connect(server)  # left open on purpose, mid-session
        idle.mail(USER)
        assert server.running
    server.stop()
    server.stop()
    assert not server.running
    assert set(threading.enumerate()) == threads_before
    with pytest.raises((smtplib.SMTPServerDisconnected, ConnectionError)):
        idle.noop()
    idle.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_fixed_port_restart_and_taken_port(make_server: Factory) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError, match="in use"):
            LocalServer(port=holder.getsockname()[1]).start()
    server = make_server(security=Security.NONE)
    port = server.port
    server.stop()
    again = make_server(security=Security.NONE, port=port)
    assert again.port == port
    with connect(again) as client:
        assert client.noop()[0] == 250


def test_url_and_repr_show_no_secrets(make_server: Factory) -> None:
    server = make_server(credentials={USER: PASSWORD}, oauth_tokens={USER: "tok-secret"})
    assert server.url == f"smtp+starttls://127.0.0.1:{server.port}"
    assert repr(server) == (
        f"LocalServer(smtp+starttls://127.0.0.1:{server.port}, running=True, "
        f"users=['{USER}'], messages=0)"
    )
    assert PASSWORD not in repr(server)
    assert "tok-secret" not in repr(server)


def test_ipv6_loopback(make_server: Factory) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server = make_server(host="::1", security=Security.TLS)
    assert server.url == f"smtps://[::1]:{server.port}"
    with connect(server) as client:
        client.sendmail(USER, ["bob@example.test"], MESSAGE)
    assert server.wait_for(1)[0].tls


def test_localhost_name_listens_on_127_0_0_1() -> None:
    assert LocalServer(host="localhost").host == "127.0.0.1"


def test_received_messages_speak_the_fakes_vocabulary_too() -> None:
    # The same assertions work on LocalServer's and FakeTransport's records.
    with LocalServer(security=Security.NONE) as server:
        with smtplib.SMTP(server.host, server.port, CLIENT_NAME, timeout=TIMEOUT) as client:
            client.sendmail(
                "a@example.test",
                ["b@example.test"],
                b"Subject: Same words\r\n\r\nbody\r\n",
            )
        [received] = server.wait_for(1)
    assert received.sender == "a@example.test"
    assert received.recipients == ("b@example.test",)
    assert received.subject == "Same words"
    assert received.queue_id == "LOCAL0001"
    assert received.connection == 1


def _send_raw(server: LocalServer, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP(server.host, server.port, CLIENT_NAME, timeout=TIMEOUT) as client:
        return client.sendmail("a@example.test", recipients, b"Subject: s\r\n\r\nbody\r\n")


def test_reply_scripts_one_recipient_a_number_of_times() -> None:
    with LocalServer(security=Security.NONE) as server:
        server.reply(Phase.RCPT, "550 5.1.1 No such user", recipient="b@example.test", times=1)
        refused = _send_raw(server, ["a@example.test", "b@example.test"])
        assert refused == {"b@example.test": (550, b"5.1.1 No such user")}
        assert _send_raw(server, ["a@example.test", "b@example.test"]) == {}  # used up
        first, second = server.wait_for(2)
    assert first.recipients == ("a@example.test",)
    assert second.recipients == ("a@example.test", "b@example.test")


def test_reply_with_times_none_answers_every_time() -> None:
    with LocalServer(security=Security.NONE) as server:
        server.reply("mail", "451 4.3.0 Try again later", times=None)
        for _ in range(3):
            with pytest.raises(smtplib.SMTPSenderRefused) as caught:
                _send_raw(server, ["b@example.test"])
            assert caught.value.smtp_code == 451
        assert server.messages == []


def test_reply_n_times_then_the_servers_own() -> None:
    with LocalServer(security=Security.NONE) as server:
        server.reply(Phase.MESSAGE, "552 5.3.4 Too big", times=2)
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError):
                _send_raw(server, ["b@example.test"])
        assert _send_raw(server, ["b@example.test"]) == {}
        assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize(
    ("phase", "recipient"),
    [(Phase.MAIL, "b@example.test"), ("helo", None), ("message", "b@example.test")],
)
def test_reply_refuses_what_it_cannot_script(phase: Phase | str, recipient: str | None) -> None:
    server = LocalServer(security=Security.NONE)
    with pytest.raises(ConfigurationError):
        server.reply(phase, "550 5.0.0 no", recipient=recipient)

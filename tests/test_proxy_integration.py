"""Mail through a real proxy: pproxy on loopback, LocalServer behind it, both drivers.

Every combination of SOCKS5, SOCKS4 and HTTP CONNECT, with and without proxy
authentication, STARTTLS and implicit TLS, sends a message with SMTP AUTH end to end, and the
proxy's own log shows the tunnel it opened. Then the failures: a wrong proxy password, a
proxy that cannot reach the mail server, a proxy that is not there; TLS checked against the
mail server's name; the plaintext-AUTH rule judged by the mail server, not the proxy; and the
proxy password nowhere in errors, ``repr``, pickles or logs. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from proxy_server import (
    PROXY_PASSWORD,
    PROXY_USER,
    SOCKS4_USER_ID,
    ProxyServer,
    free_port,
    running_pproxy,
)

from smtpkit import (
    AsyncSubmitter,
    InsecureAuthRefused,
    Proxy,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    Security,
    SendResult,
    SMTPError,
    Submitter,
    TLSError,
)
from smtpkit.auth import PasswordAuth
from smtpkit.testing import LocalServer
from smtpkit.transports import SocketTransport

pytest.importorskip("python_socks", reason="python-socks (the [proxy] extra) is not installed")

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
PASSWORD = "mail-password-1"
TIMEOUT = 5.0
ServerFactory = Callable[..., LocalServer]
KINDS = ["socks5", "socks4", "http"]


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[ProxyServer]:
    with running_pproxy() as server:
        yield server


def proxy_url(proxy: ProxyServer, kind: str, *, auth: bool) -> str:
    if not auth:
        return proxy.url(kind)
    if kind == "socks4":
        return proxy.url("socks4-auth", user=SOCKS4_USER_ID)
    return proxy.url(f"{kind}-auth", user=PROXY_USER, password=PROXY_PASSWORD)


def message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", subject
    msg.set_content("Through the proxy.\n")
    return msg


def options(server: LocalServer, proxy: Proxy | str, **extra: object) -> dict[str, object]:
    values: dict[str, object] = {
        "port": server.port,
        "security": server.security,
        "tls_context": server.client_tls_context(),
        "timeout": TIMEOUT,
        "auth": PasswordAuth(USER, PASSWORD),
        "transport": SocketTransport(
            proxy=proxy if isinstance(proxy, Proxy) else Proxy.from_url(proxy)
        ),
        "retry": None,
    }
    values.update(extra)
    return values


def send_sync(
    host: str, server: LocalServer, proxy: Proxy | str, subject: str, **extra: object
) -> SendResult:
    with Submitter(host, **options(server, proxy, **extra)) as submitter:  # type: ignore[arg-type]
        return submitter.send(message(subject))


def send_async(
    host: str, server: LocalServer, proxy: Proxy | str, subject: str, **extra: object
) -> SendResult:
    async def main() -> SendResult:
        async with AsyncSubmitter(host, **options(server, proxy, **extra)) as submitter:  # type: ignore[arg-type]
            return await submitter.send(message(subject))

    return asyncio.run(main())


SENDERS = {"sync": send_sync, "async": send_async}


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", sorted(SENDERS))
@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS], ids=["starttls", "tls"])
@pytest.mark.parametrize("auth", [False, True], ids=["open", "auth"])
@pytest.mark.parametrize("kind", KINDS)
def test_mail_goes_through_the_proxy_with_tls_end_to_end(
    proxy_server: ProxyServer,
    local_server: ServerFactory,
    kind: str,
    auth: bool,
    security: Security,
    driver: str,
) -> None:
    server = local_server(security=security, credentials={USER: PASSWORD})
    subject = f"{kind} {auth} {security.name} {driver}"
    # The mail server is named "localhost" (its certificate's name), the proxy 127.0.0.1.
    result = SENDERS[driver]("localhost", server, proxy_url(proxy_server, kind, auth=auth), subject)
    assert result.accepted == ("bob@example.test",)
    [received] = server.wait_for(1)
    assert received.subject == subject
    assert received.tls  # TLS reached the mail server itself, through the tunnel
    assert [(a.username, a.success) for a in server.auth_attempts] == [(USER, True)]
    # The proxy opened the tunnel to the mail server's port (SOCKS4 and SOCKS5 resolve
    # "localhost" here; HTTP CONNECT hands the name to the proxy).
    target = "localhost" if kind == "http" else "127.0.0.1"
    proxy_server.wait_for_log(f"{kind} 127.0.0.1:")
    proxy_server.wait_for_log(f"-> {target}:{server.port}")


def test_the_certificate_is_checked_against_the_mail_servers_name(
    proxy_server: ProxyServer, local_server: ServerFactory
) -> None:
    # A certificate for "localhost" only: checking the proxy's name (127.0.0.1) would fail.
    server = local_server(security=Security.TLS, certificate_names=("localhost",))
    proxy = proxy_server.url("socks5")
    extra = {"auth": None}
    assert send_sync("localhost", server, proxy, "named", **extra).accepted
    assert send_async("localhost", server, proxy, "named", **extra).accepted
    # Asked for the mail server by address, the same certificate does not match it.
    for send in SENDERS.values():
        with pytest.raises(TLSError) as caught:
            send("127.0.0.1", server, proxy, "by address", **extra)
        assert f"127.0.0.1:{server.port}" in caught.value.message
        assert "did not verify" in caught.value.message


def test_a_certificate_for_another_name_fails_through_the_proxy(
    proxy_server: ProxyServer, local_server: ServerFactory
) -> None:
    server = local_server(security=Security.STARTTLS, certificate_names=("mail.example.test",))
    for send in SENDERS.values():
        with pytest.raises(TLSError, match=f"localhost:{server.port} did not verify"):
            send("localhost", server, proxy_server.url("http"), "wrong name", auth=None)
    assert server.messages == []


# -- the plaintext-AUTH rule looks at the mail server -----------------------------------------


@pytest.mark.parametrize("driver", sorted(SENDERS))
def test_plaintext_auth_through_a_loopback_proxy_to_a_loopback_address(
    proxy_server: ProxyServer, local_server: ServerFactory, driver: str
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    result = SENDERS[driver](
        "127.0.0.1", server, proxy_server.url("socks5"), "plain", tls_context=None
    )
    assert result.accepted == ("bob@example.test",)
    assert [(a.username, a.success) for a in server.auth_attempts] == [(USER, True)]


@pytest.mark.parametrize("driver", sorted(SENDERS))
def test_plaintext_auth_is_refused_when_the_proxy_resolves_the_name(
    proxy_server: ProxyServer, local_server: ServerFactory, driver: str
) -> None:
    # "localhost" may lead anywhere the proxy decides: the connected peer (the proxy, on
    # loopback) proves nothing about where the password would go.
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    with pytest.raises(InsecureAuthRefused):
        SENDERS[driver]("localhost", server, proxy_server.url("http"), "plain", tls_context=None)
    assert server.auth_attempts == []
    assert server.messages == []


# -- failures --------------------------------------------------------------------------------


WRONG = "not-the-proxy-password"


@pytest.mark.parametrize("driver", sorted(SENDERS))
@pytest.mark.parametrize(
    "url",
    [
        pytest.param(lambda p: p.url("socks5-auth", user=PROXY_USER, password=WRONG), id="socks5"),
        pytest.param(lambda p: p.url("http-auth", user=PROXY_USER, password=WRONG), id="http"),
        pytest.param(lambda p: p.url("socks4-auth", user="someone-else"), id="socks4"),
        pytest.param(lambda p: p.url("socks5-auth"), id="socks5-no-credentials"),
        pytest.param(lambda p: p.url("http-auth"), id="http-no-credentials"),
    ],
)
def test_a_wrong_proxy_password_is_a_proxy_authentication_error(
    proxy_server: ProxyServer,
    local_server: ServerFactory,
    url: Callable[[ProxyServer], str],
    driver: str,
) -> None:
    server = local_server(security=Security.STARTTLS, credentials={USER: PASSWORD})
    proxy = Proxy.from_url(url(proxy_server))
    with pytest.raises(ProxyAuthenticationError) as caught:
        SENDERS[driver]("localhost", server, proxy, "refused")
    error = caught.value
    assert error.proxy == proxy.url
    assert error.target == f"localhost:{server.port}"
    assert proxy.url in error.message
    assert error.hint
    assert "proxy" in error.hint
    assert not error.is_transient
    assert server.auth_attempts == []
    assert server.messages == []
    assert_no_secret(error, WRONG, PROXY_PASSWORD)


@pytest.mark.parametrize("driver", sorted(SENDERS))
@pytest.mark.parametrize("kind", KINDS)
def test_a_proxy_that_cannot_reach_the_mail_server(
    proxy_server: ProxyServer, kind: str, driver: str
) -> None:
    closed = free_port()  # nothing listens there
    server = LocalServer(security=Security.STARTTLS, port=closed)  # never started
    url = proxy_url(proxy_server, kind, auth=True)
    with pytest.raises(ProxyConnectionRefused) as caught:
        SENDERS[driver]("127.0.0.1", server, url, "nowhere")
    error = caught.value
    assert error.target == f"127.0.0.1:{closed}"
    assert error.proxy == Proxy.from_url(url).url
    assert error.is_transient
    assert "could not reach" in error.message
    assert_no_secret(error, PROXY_PASSWORD)


@pytest.mark.parametrize("driver", sorted(SENDERS))
@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS], ids=["starttls", "tls"])
def test_a_socks_proxy_that_confirms_then_closes_names_the_proxy(
    proxy_server: ProxyServer, security: Security, driver: str
) -> None:
    # pproxy's SOCKS server says "granted" before it connects, then hangs up: the tunnel
    # ends before the mail server's first byte (the greeting, or the TLS handshake).
    server = LocalServer(security=security, port=free_port())  # never started
    with pytest.raises(ProxyConnectionRefused, match=r"closed before 127\.0\.0\.1:"):
        SENDERS[driver]("127.0.0.1", server, proxy_server.url("socks5"), "x", auth=None)


@pytest.mark.parametrize("driver", sorted(SENDERS))
def test_a_proxy_that_is_not_there(local_server: ServerFactory, driver: str) -> None:
    server = local_server(security=Security.STARTTLS)
    url = f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
    with pytest.raises(ProxyError) as caught:
        SENDERS[driver]("localhost", server, url, "no proxy", auth=None)
    error = caught.value
    assert type(error) is ProxyError
    assert "cannot connect to the proxy" in error.message
    assert error.proxy == f"socks5://{PROXY_USER}:***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    assert_no_secret(error, PROXY_PASSWORD)


# -- secrets ---------------------------------------------------------------------------------


def assert_no_secret(error: SMTPError, *secrets: str) -> None:
    """No proxy password in the error's text, repr, pickle or Celery-style JSON form."""
    shown = [str(error), repr(error), error.hint or "", *error.transcript]
    pickled = pickle.dumps(error)
    encoded = json.dumps(error.args)
    for secret in secrets:
        assert all(secret not in text for text in shown)
        assert secret.encode() not in pickled
        assert secret not in encoded
    clone = type(error)(*json.loads(encoded))  # how Celery's JSON results rebuild it
    assert type(clone) is type(error)
    assert clone.__dict__ == error.__dict__
    assert pickle.loads(pickled).__dict__ == error.__dict__


def test_the_proxy_password_never_reaches_the_logs(
    proxy_server: ProxyServer, local_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # smtpkit, smtpkit.wire, python-socks, asyncio: all
    server = local_server(security=Security.STARTTLS, credentials={USER: PASSWORD})
    good = proxy_url(proxy_server, "socks5", auth=True)
    bad = proxy_server.url("http-auth", user=PROXY_USER, password=WRONG)
    send_sync("localhost", server, good, "logged")
    send_async("localhost", server, good, "logged")
    for send in SENDERS.values():
        with pytest.raises(ProxyAuthenticationError):
            send("localhost", server, bad, "logged")
    assert caplog.records  # something was logged, and none of it holds a password
    for record in caplog.records:
        text = record.getMessage()
        assert PROXY_PASSWORD not in text
        assert WRONG not in text


def test_repr_of_the_proxy_and_its_transport_hides_the_password() -> None:
    proxy = Proxy.from_url(f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:1080")
    transport = SocketTransport(proxy=proxy)
    texts = [repr(proxy), str(proxy), proxy.url, repr(transport)]
    submitter = Submitter("localhost", transport=transport)
    texts.append(repr(submitter))
    submitter.close()
    for text in texts:
        assert PROXY_PASSWORD not in text
    assert repr(transport) == f"SocketTransport(proxy='socks5://{PROXY_USER}:***@127.0.0.1:1080')"
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(proxy)

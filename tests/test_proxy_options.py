"""The ``proxy=`` option, the ``?proxy=`` URL option, the environment opt-in and the doctor's
``proxy`` step, against pproxy and LocalServer on loopback."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import urllib.parse
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from proxy_server import PROXY_PASSWORD, PROXY_USER, ProxyServer, free_port, running_pproxy

from smtpkit import (
    AsyncSubmitter,
    ConfigurationError,
    Proxy,
    Security,
    SendResult,
    Submitter,
)
from smtpkit.auth import PasswordAuth
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.config._configure import options_from_url
from smtpkit.config._url import redact_url
from smtpkit.doctor import check, steps_for
from smtpkit.testing import FakeTransport, LocalServer

pytest.importorskip("python_socks", reason="python-socks (the [proxy] extra) is not installed")

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
PASSWORD = "mail-password-2"
TIMEOUT = 5.0
ServerFactory = Callable[..., LocalServer]


@pytest.fixture(scope="module")
def proxy_server() -> Iterator[ProxyServer]:
    with running_pproxy() as server:
        yield server


def authenticated(proxy: ProxyServer, kind: str = "socks5") -> str:
    return proxy.url(f"{kind}-auth", user=PROXY_USER, password=PROXY_PASSWORD)


def quoted(url: str) -> str:
    """A proxy URL as the value of ``?proxy=`` (percent-encoded once more)."""
    return urllib.parse.quote(url, safe="")


def message(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", subject
    msg.set_content("Through the proxy.\n")
    return msg


def server_url(server: LocalServer, scheme: str = "smtp+starttls", host: str = "localhost") -> str:
    user = urllib.parse.quote(USER, safe="")
    return f"{scheme}://{user}:{PASSWORD}@{host}:{server.port}?timeout={TIMEOUT:g}"


def tunnels_to(proxy: ProxyServer, server: LocalServer) -> int:
    return proxy.log().count(f":{server.port}\n")


# -- proxy= ----------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["url", "value"])
def test_the_proxy_keyword_of_both_drivers(
    proxy_server: ProxyServer, local_server: ServerFactory, given: str
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    url = authenticated(proxy_server, "http")
    proxy: Proxy | str = url if given == "url" else Proxy.from_url(url)
    common: dict[str, object] = {
        "port": server.port,
        "auth": PasswordAuth(USER, PASSWORD),
        "tls_context": server.client_tls_context(),
        "timeout": TIMEOUT,
        "proxy": proxy,
    }
    with Submitter("localhost", **common) as submitter:  # type: ignore[arg-type]
        assert submitter.send(message("sync")).accepted == ("bob@example.test",)

    async def main() -> SendResult:
        async with AsyncSubmitter("localhost", **common) as submitter:  # type: ignore[arg-type]
            return await submitter.send(message("async"))

    assert asyncio.run(main()).accepted == ("bob@example.test",)
    assert [m.subject for m in server.wait_for(2)] == ["sync", "async"]
    proxy_server.wait_for_log("http 127.0.0.1:")
    assert tunnels_to(proxy_server, server) == 2


def test_the_proxy_keyword_refuses_a_transport_that_cannot_honour_it() -> None:
    with pytest.raises(ConfigurationError, match="opens its own connections"):
        Submitter("mail.example.test", transport=FakeTransport(), proxy="socks5://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="unknown proxy scheme"):
        AsyncSubmitter("mail.example.test", proxy="https://127.0.0.1:3128")


# -- ?proxy= ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["smtp+starttls", "smtps"])
def test_the_url_option_of_both_drivers(
    proxy_server: ProxyServer, local_server: ServerFactory, scheme: str
) -> None:
    security = Security.TLS if scheme == "smtps" else Security.STARTTLS
    server = local_server(security=security, credentials={USER: PASSWORD})
    url = f"{server_url(server, scheme)}&proxy={quoted(authenticated(proxy_server))}"
    context = server.client_tls_context()
    with Submitter.from_url(url, tls_context=context) as submitter:
        assert submitter.send(message("sync")).accepted

    async def main() -> SendResult:
        async with AsyncSubmitter.from_url(url, tls_context=context) as submitter:
            return await submitter.send(message("async"))

    assert asyncio.run(main()).accepted
    assert all(m.tls for m in server.wait_for(2))
    assert tunnels_to(proxy_server, server) == 2


def test_plaintext_to_a_loopback_address_through_a_loopback_proxy(
    proxy_server: ProxyServer, local_server: ServerFactory
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    url = f"{server_url(server, 'smtp', '127.0.0.1')}&proxy={quoted(proxy_server.url('socks5'))}"
    with Submitter.from_url(url) as submitter:
        assert submitter.send(message("plain")).accepted
    assert [a.success for a in server.auth_attempts] == [True]
    assert tunnels_to(proxy_server, server) == 1


def test_plaintext_through_a_proxy_needs_a_loopback_address_not_a_name() -> None:
    url = f"smtp://localhost:2525?proxy={quoted('socks5://127.0.0.1:1080')}"
    with pytest.raises(ConfigurationError, match="only a loopback IP address"):
        Submitter.from_url(url)


def test_url_errors_never_show_the_proxy_password() -> None:
    secret = "never-shown-3141"
    for url in (
        f"smtps://mail.example.test?proxy={quoted(f'https://u:{secret}@proxy.example:3128')}",
        f"smtps://mail.example.test?proxy={quoted(f'socks5://u:{secret}@p.example')}&nope=1",
        f"smtps://mail.example.test?proxy=socks4://u:{secret}@p.example",
    ):
        with pytest.raises(ConfigurationError) as caught:
            Submitter.from_url(url)
        assert secret not in str(caught.value)
        assert secret not in redact_url(url)
    submitter = Submitter.from_url(
        f"smtps://mail.example.test?proxy={quoted(f'socks5://u:{secret}@p.example')}"
    )
    assert secret not in repr(submitter)
    submitter.close()


def test_redact_url_masks_the_proxy_password_in_every_spelling() -> None:
    assert (
        redact_url("smtps://me:pw@mail.example?proxy=socks5%3A%2F%2Fu%3As3%40p%3A1080")
        == "smtps://me:***@mail.example?proxy=socks5://u:***@p:1080"
    )
    assert "s3" not in redact_url("smtps://mail.example?proxy=socks5://u:s3@p:1080")
    assert redact_url("smtps://mail.example?proxy=env") == "smtps://mail.example?proxy=env"


# -- the environment, only when asked --------------------------------------------------------


def test_the_environment_proxy_is_used_only_when_asked(
    proxy_server: ProxyServer, local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    monkeypatch.setenv("ALL_PROXY", authenticated(proxy_server))
    context = server.client_tls_context()
    with Submitter.from_url(server_url(server), tls_context=context) as submitter:
        submitter.send(message("direct"))  # ALL_PROXY set, not asked for: not used
    assert tunnels_to(proxy_server, server) == 0
    with Submitter.from_url(f"{server_url(server)}&proxy=env", tls_context=context) as submitter:
        submitter.send(message("env url"))
    with Submitter.from_url(server_url(server), tls_context=context, proxy="env") as submitter:
        submitter.send(message("env keyword"))
    assert tunnels_to(proxy_server, server) == 2
    monkeypatch.setenv("NO_PROXY", "localhost")
    with Submitter.from_url(server_url(server), tls_context=context, proxy="env") as submitter:
        submitter.send(message("no_proxy"))
    assert tunnels_to(proxy_server, server) == 2
    assert len(server.wait_for(4)) == 4


def test_env_without_a_proxy_connects_directly(
    local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("all_proxy", "ALL_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    options = options_from_url("smtps://mail.example.test?proxy=env")
    assert "proxy" not in options


# -- smtpkit check ---------------------------------------------------------------------------


def test_check_shows_the_proxy_step(proxy_server: ProxyServer, local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: PASSWORD})
    target = f"{server_url(server)}&proxy={quoted(authenticated(proxy_server))}"
    report = check(target, login=True, cafile=str(server.ca_path), timeout=TIMEOUT)
    assert report.ok, report.render()
    assert [f.step for f in report.findings] == list(steps_for(Security.STARTTLS, proxy=True))
    proxy_step = report.findings[0]
    assert proxy_step.step == "proxy"
    assert proxy_step.observed.startswith("SOCKS5 proxy socks5://proxyuser:***@127.0.0.1:")
    assert f"opened a tunnel to localhost:{server.port}" in proxy_step.observed
    document = json.loads(report.to_json())
    assert document["findings"][0]["step"] == "proxy"
    assert document["settings"]["proxy"].startswith("socks5://proxyuser:***@127.0.0.1:")
    for text in (report.render(), report.to_json()):
        assert PROXY_PASSWORD not in text
        assert PASSWORD not in text
    assert server.auth_attempts[0].success
    assert tunnels_to(proxy_server, server) >= 1


def test_check_names_a_refused_proxy_password(
    proxy_server: ProxyServer, local_server: ServerFactory
) -> None:
    server = local_server()
    wrong = proxy_server.url("http-auth", user=PROXY_USER, password="wrong-proxy-pw")
    report = check(f"{server_url(server)}&proxy={quoted(wrong)}", timeout=TIMEOUT)
    assert report.exit_code != 0
    step = report.findings[0]
    assert (step.step, step.status.value) == ("proxy", "fail")
    assert "407 Proxy Authentication Required" in step.observed
    assert step.advice
    assert "proxy user name and password" in step.advice
    assert {f.status.value for f in report.findings[1:]} == {"skip"}
    assert "wrong-proxy-pw" not in report.render() + report.to_json()


def test_check_through_a_proxy_that_cannot_reach_the_server(proxy_server: ProxyServer) -> None:
    closed = free_port()
    target = f"smtp+starttls://127.0.0.1:{closed}?proxy={quoted(proxy_server.url('socks5'))}"
    report = check(target, timeout=TIMEOUT)
    statuses = {f.step: f.status.value for f in report.findings}
    assert statuses["proxy"] == "ok"  # pproxy confirms the tunnel before it connects...
    assert statuses["greeting"] == "fail"  # ...and the greeting step says what happened
    greeting = next(f for f in report.findings if f.step == "greeting")
    assert "most likely could not reach the mail server" in greeting.observed


def test_the_cli_table_has_the_proxy_line(
    proxy_server: ProxyServer, local_server: ServerFactory
) -> None:
    server = local_server()
    parser_root = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser_root.add_subparsers(dest="command", required=True))
    target = f"smtp+starttls://localhost:{server.port}?proxy={quoted(proxy_server.url('http'))}"
    arguments = parser_root.parse_args(["check", target, "--cafile", str(server.ca_path)])
    out, err = io.StringIO(), io.StringIO()
    assert run_check(arguments, out, err, environ={}) == 0, out.getvalue() + err.getvalue()
    lines = out.getvalue().splitlines()
    assert ["proxy", "OK"] in [line.split()[:2] for line in lines], out.getvalue()

"""``smtpkit.Proxy`` as a value: URLs, validation, the environment, redaction, and the rules
that do not need a socket (who the peer is; which reply is which error)."""

from __future__ import annotations

import json
import pickle
import sys

import pytest

from smtpkit import (
    ConfigurationError,
    ConnectError,
    Proxy,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    ProxyKind,
)
from smtpkit.auth import Secret
from smtpkit.config import Endpoint, Security
from smtpkit.config._proxy import proxy_option, with_proxy
from smtpkit.testing import FakeTransport
from smtpkit.transports import LoopbackOnlyTransport, SocketTransport
from smtpkit.transports._proxy_route import proxy_failure, tunnel_peer

SECRET = "pr0xy-pa55word"

# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "host", "port", "remote_dns"),
    [
        ("socks5://127.0.0.1", ProxyKind.SOCKS5, "127.0.0.1", 1080, False),
        ("socks5h://proxy.example:9050", ProxyKind.SOCKS5H, "proxy.example", 9050, True),
        ("SOCKS4://proxy.example", ProxyKind.SOCKS4, "proxy.example", 1080, False),
        ("socks4a://proxy.example:1081", ProxyKind.SOCKS4A, "proxy.example", 1081, True),
        ("http://[::1]:3128", ProxyKind.HTTP, "::1", 3128, True),
    ],
)
def test_from_url(url: str, kind: ProxyKind, host: str, port: int, remote_dns: bool) -> None:
    proxy = Proxy.from_url(url)
    assert (proxy.kind, proxy.host, proxy.port) == (kind, host, port)
    assert proxy.kind.remote_dns is remote_dns
    assert proxy.username is None
    assert proxy.password is None


def test_credentials_are_percent_decoded_and_kept_secret() -> None:
    proxy = Proxy.from_url("socks5h://me%40corp:p%40ss%3Aword%2F1@proxy.example:1080")
    assert proxy.username == "me@corp"
    assert isinstance(proxy.password, Secret)
    assert proxy.password.reveal() == "p@ss:word/1"
    assert proxy.url == "socks5h://me%40corp:***@proxy.example:1080"
    assert repr(proxy) == "Proxy('socks5h://me%40corp:***@proxy.example:1080')"
    assert str(proxy) == proxy.url


def test_a_password_may_be_given_as_a_secret_or_str() -> None:
    a = Proxy(ProxyKind.HTTP, "proxy.example", 3128, username="u", password=SECRET)
    b = Proxy(ProxyKind.HTTP, "proxy.example", 3128, username="u", password=Secret(SECRET))
    for proxy in (a, b):
        assert isinstance(proxy.password, Secret)
        assert proxy.password.reveal() == SECRET
        assert SECRET not in repr(proxy)
    assert a == b  # the password is not compared (nor shown)


def test_a_proxy_with_a_password_refuses_to_pickle_and_one_without_does_not() -> None:
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(Proxy.from_url(f"socks5://u:{SECRET}@127.0.0.1:1080"))
    plain = Proxy.from_url("socks5h://proxy.example:1080")
    assert pickle.loads(pickle.dumps(plain)) == plain


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://proxy.example:3128", "unknown proxy scheme 'https'"),
        ("ftp://proxy.example", "unknown proxy scheme"),
        ("proxy.example:1080", "a proxy URL looks like"),
        ("http://proxy.example", "needs a port"),
        ("socks5://proxy.example:99999", "host or port is malformed"),
        ("socks5://proxy.example:1080/path", "must be only scheme://"),
        ("socks5://proxy.example:1080?x=1", "must be only scheme://"),
        ("socks5://", "has no host"),
        (f"socks4://u:{SECRET}@proxy.example", "SOCKS4 carries a user ID but no password"),
        ("socks5://user-only@proxy.example", "needs both a user name and a password"),
        ("http://a%3Ab:pw@proxy.example:3128", "cannot contain ':'"),
        ("socks5://u:p%C3%A9@proxy.example", "must be ASCII"),
        ("socks5://u:p%E9@proxy.example", "not UTF-8"),
        ("socks5://proxy%0D%0Aexample:1080", "invalid label"),
    ],
)
def test_bad_urls_are_configuration_errors_without_the_password(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError, match=words) as caught:
        Proxy.from_url(url)
    assert SECRET not in str(caught.value)
    assert caught.value.hint is None or SECRET not in caught.value.hint


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"kind": "socks5", "host": "p.example"}, "kind must be a ProxyKind"),
        ({"kind": ProxyKind.SOCKS5, "host": "p.example", "port": 0.5}, "1 to 65535"),
        ({"kind": ProxyKind.SOCKS5, "host": "p.example", "port": True}, "1 to 65535"),
        ({"kind": ProxyKind.SOCKS5, "host": "p example"}, "whitespace"),
        ({"kind": ProxyKind.SOCKS5, "host": "p.example", "username": "u", "password": b"x"}, "str"),
        (
            {"kind": ProxyKind.SOCKS5, "host": "p.example", "username": "u\r\n", "password": "x"},
            "control character",
        ),
        (
            {"kind": ProxyKind.SOCKS5, "host": "p.example", "username": "u", "password": "x" * 256},
            "255 bytes",
        ),
    ],
)
def test_the_constructor_checks_every_value(arguments: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        Proxy(**arguments)  # type: ignore[arg-type]


# -- the environment, only when asked ----------------------------------------------------------


def test_from_env_order_and_bare_host_port() -> None:
    env = {"HTTPS_PROXY": "proxy.example:3128", "all_proxy": "", "ALL_PROXY": "socks5h://a:1"}
    assert Proxy.from_env(environ=env) == Proxy.from_url("socks5h://a:1")
    assert Proxy.from_env(environ={"HTTPS_PROXY": "proxy.example:3128"}) == Proxy.from_url(
        "http://proxy.example:3128"
    )
    assert (
        Proxy.from_env(environ={"https_proxy": "http://x:1", "HTTPS_PROXY": "http://y:1"}).host
        == "x"
    )
    assert Proxy.from_env(environ={}) is None
    assert Proxy.from_env(environ={"HTTP_PROXY": "http://web-only:3128"}) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "bypassed"),
    [
        ("example.com", "smtp.example.com", True),
        (".example.com", "smtp.example.com", True),
        ("example.com", "example.com", True),
        ("example.com", "badexample.com", False),
        ("*", "smtp.gmail.com", True),
        ("10.0.0.0/8, 192.0.2.1", "10.1.2.3", True),
        ("10.0.0.0/8, 192.0.2.1", "192.0.2.1", True),
        ("10.0.0.0/8", "192.0.2.1", False),
        ("mail.internal:587", "mail.internal", True),
        ("[::1]", "[::1]", True),
        ("", "smtp.example.com", False),
    ],
)
def test_no_proxy(no_proxy: str, host: str, bypassed: bool) -> None:
    env = {"ALL_PROXY": "socks5h://proxy.example:1080", "NO_PROXY": no_proxy}
    assert (Proxy.from_env(host, environ=env) is None) is bypassed


def test_a_bad_environment_proxy_names_the_variable_and_hides_the_password() -> None:
    with pytest.raises(ConfigurationError, match=r"^ALL_PROXY: unknown proxy scheme") as caught:
        Proxy.from_env(environ={"ALL_PROXY": f"https://u:{SECRET}@proxy.example:3128"})
    assert SECRET not in str(caught.value)


def test_the_environment_is_read_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5h://proxy.example:1080")
    assert proxy_option(None, host="smtp.example.com") is None
    assert with_proxy(None, None, host="smtp.example.com") is None
    assert proxy_option("env", host="smtp.example.com") == Proxy.from_url(
        "socks5h://proxy.example:1080"
    )
    monkeypatch.setenv("NO_PROXY", "example.com")
    assert proxy_option("ENV", host="smtp.example.com") is None


# -- the proxy option and the transport --------------------------------------------------------


def test_with_proxy_builds_or_keeps_a_socket_transport() -> None:
    proxy = Proxy.from_url("socks5://127.0.0.1:1080")
    built = with_proxy(None, proxy, host="mail.example")
    assert isinstance(built, SocketTransport)
    assert built.proxy is proxy
    replaced = with_proxy(SocketTransport(), proxy, host="mail.example")
    assert isinstance(replaced, SocketTransport)
    assert replaced.proxy is proxy
    through = SocketTransport(proxy=proxy)
    assert with_proxy(through, proxy, host="mail.example") is through
    loopback = LoopbackOnlyTransport(through, origin="smtp://127.0.0.1")
    assert with_proxy(loopback, proxy, host="127.0.0.1") is loopback
    from_string = with_proxy(None, "http://127.0.0.1:3128", host="mail.example")
    assert isinstance(from_string, SocketTransport)
    assert from_string.proxy == Proxy.from_url("http://127.0.0.1:3128")


def test_with_proxy_refuses_what_it_cannot_honour() -> None:
    proxy = Proxy.from_url("socks5://127.0.0.1:1080")
    with pytest.raises(ConfigurationError, match="opens its own connections"):
        with_proxy(FakeTransport(), proxy, host="mail.example")
    other = SocketTransport(proxy=Proxy.from_url("socks5://127.0.0.1:1081"))
    with pytest.raises(ConfigurationError, match="another proxy"):
        with_proxy(other, proxy, host="mail.example")
    with pytest.raises(ConfigurationError, match=r"proxy must be a smtpkit\.Proxy"):
        with_proxy(None, 1080, host="mail.example")


def test_without_python_socks_a_proxy_is_refused_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)  # import fails
    with pytest.raises(ConfigurationError, match="needs python-socks") as caught:
        with_proxy(None, "socks5://127.0.0.1:1080", host="mail.example")
    assert caught.value.hint
    assert "smtpkit[proxy]" in caught.value.hint
    assert with_proxy(None, None, host="mail.example") is None  # no proxy: no need


# -- whose address is the peer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "proxy_peer", "peer"),
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),  # proxy and server both on this machine
        ("[::1]", "::1", "::1"),
        ("127.0.0.1", "192.0.2.7", None),  # the proxy's own loopback, over a network
        ("::1", None, None),  # a proxy peer we cannot tell is not loopback
        ("localhost", "127.0.0.1", None),  # a name: the proxy decides where it leads
        ("mail.example", "127.0.0.1", None),
        ("198.51.100.25", "127.0.0.1", "198.51.100.25"),
    ],
)
def test_tunnel_peer(target: str, proxy_peer: str | None, peer: str | None) -> None:
    assert tunnel_peer(target, proxy_peer) == peer


# -- which failure is which error --------------------------------------------------------------

ENDPOINT = Endpoint("smtp.example.com", 587, Security.STARTTLS)


def failure(url: str, **facts: object) -> ProxyError:
    values: dict[str, object] = {"code": None, "detail": "x", "sent": (), "answered": b""}
    values.update(facts)
    return proxy_failure(Proxy.from_url(url), ENDPOINT, **values)  # type: ignore[arg-type]


def test_silent_closes_are_read_by_the_stage_they_happened_at() -> None:
    socks5 = f"socks5://u:{SECRET}@p.example:1080"
    assert type(failure(socks5, sent=[5, 1])) is ProxyAuthenticationError  # after RFC 1929
    assert type(failure(socks5, sent=[5])) is ProxyAuthenticationError  # at the greeting
    assert type(failure(socks5, sent=[5, 1, 5])) is ProxyConnectionRefused  # after CONNECT
    assert type(failure(socks5, sent=[5], answered=b"\x04\x00")) is ProxyError  # not SOCKS5
    assert type(failure("socks4://id@p.example", sent=[4])) is ProxyAuthenticationError
    assert type(failure("socks4://p.example", sent=[4])) is ProxyError
    assert type(failure("http://p.example:3128", sent=[67])) is ProxyConnectionRefused
    assert type(failure("http://p.example:3128", code=407, sent=[67])) is ProxyAuthenticationError
    assert type(failure("socks4://p.example", code=0x5D, sent=[4])) is ProxyAuthenticationError


def test_proxy_errors_are_connect_errors_that_carry_the_proxy_and_the_target() -> None:
    error = failure(f"socks5://u:{SECRET}@p.example:1080", code=0x05, sent=[5, 1, 5])
    assert isinstance(error, ProxyConnectionRefused)
    assert isinstance(error, ConnectError)
    assert isinstance(error, ConnectionError)
    assert error.proxy == "socks5://u:***@p.example:1080"
    assert error.target == "smtp.example.com:587"
    assert error.is_transient
    assert not ProxyAuthenticationError("x").is_transient
    assert ProxyError("x").is_transient
    clone = type(error)(*json.loads(json.dumps(error.args)))  # Celery's JSON results
    assert type(clone) is ProxyConnectionRefused
    assert clone.__dict__ == error.__dict__
    assert pickle.loads(pickle.dumps(error)).__dict__ == error.__dict__
    assert SECRET not in json.dumps(error.args) + repr(error) + str(error)

"""Bad configuration fails at construction, typed, with a hint, before any I/O.

Before this, a host holding a space, CR, LF or NUL, ``auth="user:pass"`` or
``auth=("u", "p")`` and a ``local_hostname`` holding CRLF were accepted; the mistake then
surfaced as an ``AttributeError``/``TypeError`` after EHLO and STARTTLS had gone out (and a
CRLF in the EHLO name put a command of the caller's choosing on the wire). Each entry point
now refuses them when it is called: ``Submitter()``, ``from_url``, ``for_provider``,
``from_env``, the Django backend and a Celery configuration.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from smtpkit import ConfigurationError, Security, Submitter
from smtpkit.config import Endpoint
from tests.conftest import ServerLog

CANARY = "CANARY-pw-3390"


class NoConnect:
    """A transport that fails the test if anything tries to connect."""

    def connect(self, endpoint: Endpoint) -> object:
        raise AssertionError(f"a refused configuration connected to {endpoint.host}")


#: (label, Submitter keywords, words the hint must contain)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("host with a space", {"host": "mail example.com"}, "bare server name"),
    ("host with CRLF", {"host": "mail.example.com\r\nRSET"}, "line break"),
    ("host with LF", {"host": "mail\n.example.com"}, "line break"),
    ("host with NUL", {"host": "mail.example.com\0"}, "bare server name"),
    ("host with a port", {"host": "mail.example.com:587"}, "port separately"),
    ("host as a URL", {"host": "smtps://mail.example.com"}, "from_url"),
    ("auth as 'user:pass'", {"auth": f"me@example.com:{CANARY}"}, "PasswordAuth"),
    ("auth as a tuple", {"auth": ("me@example.com", CANARY)}, "PasswordAuth"),
    ("local_hostname with CRLF", {"local_hostname": "me\r\nRSET"}, "bare name"),
    ("local_hostname with a space", {"local_hostname": "my laptop"}, "bare name"),
    ("local_hostname bare IPv6", {"local_hostname": "2001:db8::1"}, "[IPv6:2001:db8::1]"),
    ("local_hostname not ASCII", {"local_hostname": "bücher.example"}, "xn--bcher-kva"),
    ("max_connections as a str", {"max_connections": "4"}, "max_connections=4"),
    ("transport not one", {"transport": object()}, "FakeTransport"),
]


def _direct(options: dict[str, Any]) -> object:
    host = options.pop("host", "mail.example.com")
    options.setdefault("transport", NoConnect())
    return Submitter(host, **options)


def _from_url(options: dict[str, Any]) -> object:
    host = options.pop("host", "mail.example.com")
    options.setdefault("transport", NoConnect())
    return Submitter.from_url("smtps://mail.example.com", host=host, **options)


def _for_provider(options: dict[str, Any]) -> object:
    options.setdefault("transport", NoConnect())
    return Submitter.for_provider("gmail", **options)


def _from_env(options: dict[str, Any]) -> object:
    options.setdefault("transport", NoConnect())
    environ = {
        "SMTPKIT_URL": "smtps://me%40example.com@mail.example.com",
        "SMTPKIT_PASSWORD": "app-password",
    }
    return Submitter.from_env(environ, **options)


ENTRY_POINTS: dict[str, Callable[[dict[str, Any]], object]] = {
    "Submitter": _direct,
    "from_url": _from_url,
    "for_provider": _for_provider,
    "from_env": _from_env,
}


#: Every entry point with every bad value (a preset names its own host: no host cases).
COMBINATIONS = [
    pytest.param(entry, label, options, hint, id=f"{entry}-{label}")
    for entry in ENTRY_POINTS
    for label, options, hint in BAD
    if not (entry == "for_provider" and "host" in options)
]


@pytest.mark.parametrize(("entry", "label", "options", "hint"), COMBINATIONS)
def test_refused_at_construction_with_a_hint(
    entry: str, label: str, options: dict[str, Any], hint: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ENTRY_POINTS[entry](dict(options))
    error = caught.value
    assert error.hint, f"{label}: no hint"
    assert hint in error.hint, f"{label}: {error.hint!r}"
    shown = f"{error} {error!r} {error.args!r} {pickle.dumps(error)!r}"
    assert CANARY not in shown


def test_a_bad_host_in_the_url_is_refused_with_the_url_entry_points() -> None:
    for url in ("smtps://mail%20server.example.com", "smtps://mail.example.com%0d%0aRSET"):
        with pytest.raises(ConfigurationError, match="host") as caught:
            Submitter.from_url(url, transport=NoConnect())
        assert caught.value.hint
    with pytest.raises(ConfigurationError, match=r"SMTPKIT_URL: .*host") as caught:
        Submitter.from_env({"SMTPKIT_URL": "smtps://mail%20server.example.com"})
    assert caught.value.hint


def test_a_crlf_local_hostname_in_the_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="local_hostname"):
        Submitter.from_url(
            "smtps://mail.example.com?local_hostname=me%0D%0AMAIL%20FROM:%3Cx%40y%3E",
            transport=NoConnect(),
        )


@pytest.mark.parametrize(
    "name",
    [
        "client.example.com",
        "localhost",
        "my_host.corp.example",  # machine names carry underscores; tolerated
        "[192.0.2.1]",
        "[IPv6:2001:db8::1]",
        "client.example.com.",
    ],
)
def test_valid_ehlo_names_are_kept(name: str) -> None:
    submitter = Submitter("mail.example.com", local_hostname=name, transport=NoConnect())
    assert submitter._settings.local_hostname == name


@pytest.mark.parametrize(
    "host", ["smtp.gmail.com", "127.0.0.1", "::1", "[::1]", "  smtp.gmail.com  ", "bücher.example"]
)
def test_valid_hosts_are_kept(host: str) -> None:
    assert Submitter(host, transport=NoConnect()).host == host.strip()


def test_refused_auth_never_reaches_the_server(
    local_server: Callable[..., Any], server_log: ServerLog
) -> None:
    """On real sockets: nothing is sent at all, not even a connection attempt."""
    server = local_server(security=Security.NONE)
    with pytest.raises(ConfigurationError) as caught:
        Submitter(server.host, server.port, security=Security.NONE, auth=("me@example.com", CANARY))
    assert CANARY not in f"{caught.value} {caught.value!r}"
    assert server_log.commands() == []


def test_django_backend_refuses_at_construction() -> None:
    pytest.importorskip("django")
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

    from smtpkit.django import BackendConfigurationError, EmailBackend  # noqa: PLC0415

    for options in (
        {"host": "mail example.com"},
        {"host": "mail.example.com", "local_hostname": "me\r\nRSET"},
        {"host": "mail.example.com", "auth": ("me@example.com", CANARY)},
        {"host": "mail.example.com", "port": "587"},
        {"url": "smtps://mail.example.com", "local_hostname": "a b"},
        {"provider": "gmail", "local_hostname": "a\nb"},
    ):
        with pytest.raises(ConfigurationError) as caught:
            EmailBackend(transport=NoConnect(), **options)
        assert caught.value.hint, options
        assert CANARY not in str(caught.value)
    # A conflict is both an smtpkit error with a hint and Django's own kind.
    with pytest.raises(BackendConfigurationError) as conflict:
        EmailBackend(host="mail.example.com", use_tls=True, use_ssl=True)
    assert isinstance(conflict.value, ImproperlyConfigured)
    assert conflict.value.hint


def test_celery_configuration_refuses_before_connecting() -> None:
    pytest.importorskip("celery")
    from smtpkit.celery import get_submitter, register_submitter  # noqa: PLC0415

    register_submitter("hardening-bad-host", lambda: Submitter("mail example.com"))
    with pytest.raises(ConfigurationError) as caught:
        get_submitter("hardening-bad-host")
    assert caught.value.hint

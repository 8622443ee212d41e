"""Server URLs: schemes, ports, credentials, options, errors, and redaction."""

from __future__ import annotations

import pytest

from smtpkit import ConfigurationError, Security
from smtpkit.config._url import SCHEMES, parse_url, redact_url

SECRET = "CANARY-pw-7731"


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        ("smtp+starttls://smtp.example.com", Security.STARTTLS, 587),
        ("submission://smtp.example.com", Security.STARTTLS, 587),
        ("smtps://smtp.example.com", Security.TLS, 465),
        ("smtp+tls://smtp.example.com", Security.TLS, 465),
        ("smtp://smtp.example.com", Security.NONE, 587),
        ("SMTPS://smtp.example.com", Security.TLS, 465),
        ("smtp+starttls://smtp.example.com:2525", Security.STARTTLS, 2525),
        ("smtps://smtp.example.com:10465/", Security.TLS, 10465),
    ],
)
def test_schemes_and_default_ports(url: str, security: Security, port: int) -> None:
    server = parse_url(url)
    assert server.host == "smtp.example.com"
    assert server.security is security
    assert server.port == port
    assert server.username is None
    assert server.password is None


def test_every_scheme_is_covered() -> None:
    assert set(SCHEMES) == {"smtp+starttls", "submission", "smtps", "smtp+tls", "smtp"}


def test_percent_encoded_user_and_password_are_decoded() -> None:
    server = parse_url("smtp+starttls://you%40gmail.com:p%40ss%3Aw%2Ford%25@smtp.gmail.com:587")
    assert server.username == "you@gmail.com"
    assert server.password is not None
    assert server.password.reveal() == "p@ss:w/ord%"


def test_a_user_without_a_password() -> None:
    server = parse_url("smtps://me%40example.com@smtp.example.com")
    assert server.username == "me@example.com"
    assert server.password is None


def test_an_unencoded_at_sign_in_the_password_is_split_at_the_last_at() -> None:
    server = parse_url("smtp://user:p@ss@smtp.example.com")
    assert server.host == "smtp.example.com"
    assert server.password is not None
    assert server.password.reveal() == "p@ss"


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("smtp://[::1]:2525", "[::1]", 2525),
        ("smtps://u:p@[2001:db8::25]", "[2001:db8::25]", 465),
        ("smtp://127.0.0.1:25", "127.0.0.1", 25),
    ],
)
def test_ip_literals(url: str, host: str, port: int) -> None:
    server = parse_url(url)
    assert (server.host, server.port) == (host, port)


def test_query_options_are_kept() -> None:
    server = parse_url("smtps://smtp.example.com?timeout=10&helo=client.example.com&flag")
    assert dict(server.options) == {
        "timeout": "10",
        "helo": "client.example.com",
        "flag": "",
    }
    with pytest.raises(TypeError):
        server.options["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    "url",
    [
        "smtp.example.com:587",
        "",
        "ftp://smtp.example.com",
        "http://smtp.example.com",
        "smtp://",
        "smtp://:25",
        "smtp://user:pw@:25",
        "smtp://smtp.example.com/inbox",
        "smtp://smtp.example.com:0",
        "smtp://smtp.example.com:70000",
        "smtp://smtp.example.com:-1",
        "smtp://smtp.example.com:abc",
        "smtp://[::1",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_url(url)
    assert isinstance(caught.value, ValueError)


def test_a_non_string_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        parse_url(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        f"smtp+starttls://user:{SECRET}@smtp.example.com:587",
        f"ftp://user:{SECRET}@smtp.example.com",
        f"smtp://user:{SECRET}@smtp.example.com:bad",
        f"smtp://user:{SECRET}@:25",
        f"smtp://user:{SECRET}@smtp.example.com/path",
        # Unencoded "/", "?", "#" in the password: a URL parser reads part of the password
        # as the port, path, query or fragment. It must still never be shown.
        f"smtp://user:{SECRET[:6]}/{SECRET[6:]}@smtp.example.com:25",
        f"smtp://user:{SECRET[:6]}?{SECRET[6:]}@smtp.example.com",
        f"smtp://user:{SECRET[:6]}#{SECRET[6:]}@smtp.example.com",
        f"smtp://user:{SECRET[:6]}@{SECRET[6:]}/x@smtp.example.com",
        f"smtp://user:1234/{SECRET}@smtp.example.com",
    ],
)
def test_no_message_or_repr_shows_the_password(url: str) -> None:
    pieces = [SECRET, SECRET[:6], SECRET[6:]]
    shown = [redact_url(url)]
    try:
        server = parse_url(url)
    except ConfigurationError as error:
        shown += [str(error), repr(error), error.hint or ""]
    else:
        shown += [repr(server), str(server)]
    for text in shown:
        for piece in pieces:
            assert piece not in text, text
    assert "***" in redact_url(url)


def test_redact_url_keeps_the_rest() -> None:
    assert (
        redact_url("smtps://you%40gmail.com:secret@smtp.gmail.com:465?x=1")
        == "smtps://you%40gmail.com:***@smtp.gmail.com:465?x=1"
    )
    assert redact_url("smtps://user@smtp.example.com") == "smtps://user@smtp.example.com"
    assert redact_url("smtp://smtp.example.com:25") == "smtp://smtp.example.com:25"
    assert redact_url("smtp://user:@h") == "smtp://user:***@h"


def test_an_unencoded_special_character_gets_an_encoding_hint() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_url("smtp://user:pa/ss@smtp.example.com:25")
    assert "%2F" in (caught.value.hint or "")


def test_repr_shows_the_user_and_hides_the_password() -> None:
    server = parse_url(f"smtps://me%40example.com:{SECRET}@smtp.example.com")
    assert repr(server) == (
        "ServerURL('smtp.example.com', 465, TLS, user='me@example.com', password=***)"
    )

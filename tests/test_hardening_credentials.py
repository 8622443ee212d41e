"""Credentials that cannot travel are refused when configured, typed, without echoing them.

* A password holding a lone surrogate (what ``os.environ`` makes of a Latin-1 byte under a
  UTF-8 locale, through ``surrogateescape``) used to raise an untyped
  ``UnicodeEncodeError`` at AUTH time, whose ``repr``, ``args`` and pickle carried the
  whole ``\\0user\\0password``.
* An OAuth2 token with a trailing newline passed the bearer-token check (``$`` matches
  before a final ``\\n``); so did other ``^...$`` checks used with ``match``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable

import pytest

from smtpkit import ConfigurationError, Submitter
from smtpkit.auth import (
    AccessToken,
    AppPasswordAuth,
    AuthContext,
    OAuthBearerAuth,
    PasswordAuth,
    SaslExchange,
    SaslMechanismStrategy,
    XOAuth2Auth,
)
from smtpkit.config import Endpoint
from smtpkit.oauth import StaticToken

CANARY = "CANARY-pw-6172"
#: A Latin-1 "é" read through os.environ under a UTF-8 locale: a lone surrogate.
LATIN1_E = b"\xe9".decode("utf-8", "surrogateescape")


class NoConnect:
    def connect(self, endpoint: Endpoint) -> object:
        raise AssertionError(f"a refused configuration connected to {endpoint.host}")


def context(*mechanisms: str) -> AuthContext:
    return AuthContext(frozenset(mechanisms), host="mail.example.com", port=587, encrypted=True)


def assert_not_echoed(error: BaseException) -> None:
    """Neither the message, the repr, the args, the hint, the pickle nor the chained
    exception carries the secret."""
    shown = [str(error), repr(error), repr(error.args), pickle.dumps(error).decode("latin-1")]
    shown.append(str(getattr(error, "hint", "")))
    for chained in (error.__cause__, error.__context__):
        if chained is not None:
            shown.append(repr(chained))
    for text in shown:
        assert CANARY not in text, text


class Custom(SaslMechanismStrategy):
    """A user-written strategy: its user name goes through the shared check."""

    mechanisms = ("X-CUSTOM",)

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        yield f"{self.username}:{CANARY}"


SURROGATE_CASES: dict[str, Callable[[], object]] = {
    "PasswordAuth password": lambda: PasswordAuth("me@example.com", f"{CANARY}{LATIN1_E}"),
    "PasswordAuth username": lambda: PasswordAuth(f"m{LATIN1_E}@example.com", CANARY),
    "AppPasswordAuth password": lambda: AppPasswordAuth("me@gmail.com", f"{CANARY}{LATIN1_E}"),
    "XOAuth2Auth username": lambda: XOAuth2Auth(f"m{LATIN1_E}@x.example", StaticToken("t")),
    "OAuthBearerAuth username": lambda: OAuthBearerAuth(f"m{LATIN1_E}@x.example", StaticToken("t")),
    "custom strategy username": lambda: Custom(f"m{LATIN1_E}"),
    "from_env SMTPKIT_PASSWORD": lambda: Submitter.from_env(
        {
            "SMTPKIT_URL": "smtps://me%40example.com@mail.example.com",
            "SMTPKIT_PASSWORD": f"{CANARY}{LATIN1_E}",
        },
        transport=NoConnect(),
    ),
    "from_url password=": lambda: Submitter.from_url(
        "smtps://me%40example.com@mail.example.com",
        password=f"{CANARY}{LATIN1_E}",
        transport=NoConnect(),
    ),
    "from_env xoauth2 token": lambda: Submitter.from_env(
        {
            "SMTPKIT_URL": "smtps://me%40example.com@mail.example.com?auth=xoauth2",
            "SMTPKIT_PASSWORD": f"{CANARY}{LATIN1_E}",
        },
        transport=NoConnect(),
    ),
}


@pytest.mark.parametrize("case", list(SURROGATE_CASES))
def test_a_lone_surrogate_is_refused_at_construction_without_echo(case: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SURROGATE_CASES[case]()
    message = caught.value.message
    assert "surrogate" in message or "bearer token" in message, message
    assert caught.value.hint
    assert_not_echoed(caught.value)


def test_the_real_environment_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through os.environ itself: the byte 0xE9 in SMTPKIT_PASSWORD, as a shell would set it."""
    if os.name != "posix":
        pytest.skip("os.environb exists on POSIX only")
    monkeypatch.setitem(os.environb, b"SMTPKIT_URL", b"smtps://me%40example.com@mail.example.com")
    monkeypatch.setitem(os.environb, b"SMTPKIT_PASSWORD", CANARY.encode() + b"\xe9")
    assert os.environ["SMTPKIT_PASSWORD"].endswith("\udce9")
    with pytest.raises(ConfigurationError) as caught:
        Submitter.from_env(transport=NoConnect())
    assert_not_echoed(caught.value)


def test_a_url_password_whose_escape_is_not_utf8_is_refused() -> None:
    """%E9 is Latin-1 "é": decoded leniently it became U+FFFD and the login failed later."""
    with pytest.raises(ConfigurationError, match="UTF-8") as caught:
        Submitter.from_url(f"smtps://me%40example.com:{CANARY}%E9@mail.example.com")
    assert_not_echoed(caught.value)


def test_valid_non_ascii_credentials_still_work() -> None:
    auth = PasswordAuth("jörg@example.com", f"pässwörd-{CANARY}")
    command = next(auth.flow(context("PLAIN")))
    assert command.to_bytes().startswith(b"AUTH PLAIN ")


# -- fullmatch: "$" also matches before a final "\n" -----------------------------------------


@pytest.mark.parametrize("token", ["ya29.token\n", "ya29.token\r\n", "ya29\n.token", " ya29"])
def test_a_token_with_a_line_break_is_refused(token: str) -> None:
    strategy = XOAuth2Auth("me@gmail.com", StaticToken("ya29.valid"))
    flow = strategy.token_flow(context("XOAUTH2"), AccessToken(token))
    with pytest.raises(ConfigurationError, match="bearer token"):
        next(flow)


def test_static_token_refuses_a_bad_token_when_constructed() -> None:
    with pytest.raises(ConfigurationError, match="bearer token") as caught:
        StaticToken(f"{CANARY}\n")
    assert_not_echoed(caught.value)


def test_a_url_token_with_a_trailing_newline_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="bearer token") as caught:
        Submitter.from_url(
            "smtps://me%40gmail.com:ya29.tok%0A@smtp.gmail.com?auth=xoauth2", transport=NoConnect()
        )
    assert_not_echoed(caught.value)


def test_a_mechanism_name_with_a_trailing_newline_is_refused() -> None:
    class Bad(SaslMechanismStrategy):
        mechanisms = ("PLAIN\n",)

        def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
            yield ""

    with pytest.raises(ConfigurationError, match="RFC 4422"):
        Bad("me@example.com")


def test_a_tenant_with_a_trailing_newline_is_refused() -> None:
    from smtpkit.oauth import microsoft_token_url  # noqa: PLC0415

    with pytest.raises(ConfigurationError, match="tenant"):
        microsoft_token_url("contoso.onmicrosoft.com\n")


def test_preset_alternatives_with_a_trailing_newline_are_refused() -> None:
    from smtpkit.providers import parse_presets  # noqa: PLC0415

    base = (
        '[presets.x]\ndisplay_name = "X"\nfamily = "x"\nhost = "smtp.x.example"\nport = 587\n'
        'security = "starttls"\nsources = ["https://x.example"]\n'
    )
    parse_presets(base)  # the base is valid
    with pytest.raises(ConfigurationError, match="alternatives"):
        parse_presets(base + 'alternatives = ["465/tls\\n"]\n')

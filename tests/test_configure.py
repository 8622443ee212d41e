"""URL and environment configuration: options, percent-encoding, plaintext rules, secrets."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import ConfigurationError, Security, Submitter
from smtpkit.auth import (
    AppPasswordAuth,
    AuthContext,
    NoCommonMechanism,
    OAuthBearerAuth,
    PasswordAuth,
    Secret,
    XOAuth2Auth,
)
from smtpkit.config._configure import (
    URL_OPTIONS,
    SubmitterOptions,
    options_from_env,
    options_from_url,
)
from smtpkit.oauth import FileTokenStore, RefreshTokenProvider, StaticToken, StoredGrant
from smtpkit.testing import LocalServer

ServerFactory = Callable[..., LocalServer]
TIMEOUT = 5.0

SECRET = "CANARY-pw-5521"


def build(options: SubmitterOptions) -> Submitter:
    """A Submitter from URL options, as ``Submitter.from_url`` builds it."""
    return Submitter(**options)


def context(*mechanisms: str) -> AuthContext:
    return AuthContext(
        mechanisms=frozenset(mechanisms), host="mail.example.com", port=587, encrypted=True
    )


# -- the basics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "security", "port"),
    [
        ("smtp+starttls://mail.example.com", Security.STARTTLS, 587),
        ("smtps://mail.example.com", Security.TLS, 465),
        ("smtp+starttls://mail.example.com:2525", Security.STARTTLS, 2525),
        ("smtp://localhost:1025", Security.NONE, 1025),
        ("smtp://127.0.0.1", Security.NONE, 587),
        ("smtp://[::1]:2525", Security.NONE, 2525),
    ],
)
def test_schemes(url: str, security: Security, port: int) -> None:
    submitter = build(options_from_url(url))
    assert (submitter.security, submitter.port) == (security, port)
    assert submitter.auth is None


def test_percent_encoded_user_and_password() -> None:
    options = options_from_url(f"smtps://you%40gmail.com:{SECRET}%2F%40%3A@smtp.gmail.com")
    auth = options["auth"]
    assert isinstance(auth, PasswordAuth)
    assert auth.username == "you@gmail.com"
    assert f"\0you@gmail.com\0{SECRET}/@:" in _plain_response(auth)


def _plain_response(auth: PasswordAuth) -> str:
    command = next(auth.flow(context("PLAIN")))
    return base64.b64decode(command.to_bytes().split()[-1]).decode()


def test_query_options() -> None:
    options = options_from_url(
        "smtp+starttls://mail.example.com?timeout=7.5&local_hostname=client.example.com"
    )
    submitter = build(options)
    assert submitter.timeouts.connect == 7.5
    assert submitter.timeouts.final_reply == 7.5
    assert options["local_hostname"] == "client.example.com"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", ""])
def test_invalid_timeouts_say_what_is_wrong(value: str) -> None:
    with pytest.raises(ConfigurationError, match=r"timeout=.* must be a number of seconds"):
        options_from_url(f"smtps://mail.example.com?timeout={value}")


def test_unknown_options_are_named() -> None:
    with pytest.raises(ConfigurationError) as caught:
        options_from_url(f"smtps://u:{SECRET}@mail.example.com?timout=5&tls=yes")
    assert "timout" in caught.value.message
    assert "tls" in caught.value.message
    assert caught.value.hint is not None
    assert all(option in caught.value.hint for option in URL_OPTIONS)
    assert SECRET not in str(caught.value)


def test_keyword_overrides_win_and_are_checked() -> None:
    options = options_from_url("smtps://mail.example.com?timeout=5", timeout=9.0, port=10465)
    assert options["timeout"] == 9.0
    assert options["port"] == 10465
    with pytest.raises(ConfigurationError, match="colour"):
        options_from_url("smtps://mail.example.com", colour="red")  # type: ignore[call-arg]


def test_an_auth_override_skips_building_one_from_the_url() -> None:
    auth = AppPasswordAuth("me@example.com", "abcd")
    options = options_from_url("smtps://me%40example.com@mail.example.com", auth=auth)
    assert options["auth"] is auth


# -- auth choices ----------------------------------------------------------------------------


def test_default_auth_is_a_password_with_plain_then_login() -> None:
    auth = options_from_url(f"smtps://me:{SECRET}@mail.example.com")["auth"]
    assert type(auth) is PasswordAuth
    assert auth.choose_mechanism(context("LOGIN", "PLAIN")) == "PLAIN"
    assert auth.choose_mechanism(context("LOGIN")) == "LOGIN"


@pytest.mark.parametrize(("choice", "only"), [("plain", "PLAIN"), ("login", "LOGIN")])
def test_a_mechanism_choice_restricts_the_password_strategy(choice: str, only: str) -> None:
    auth = options_from_url(f"smtps://me:{SECRET}@mail.example.com?auth={choice}")["auth"]
    assert auth is not None
    assert auth.choose_mechanism(context("PLAIN", "LOGIN")) == only
    other = "LOGIN" if only == "PLAIN" else "PLAIN"
    with pytest.raises(NoCommonMechanism):
        auth.choose_mechanism(context(other))


def test_app_password() -> None:
    auth = options_from_url(f"smtps://me%40gmail.com:{SECRET}@smtp.gmail.com?auth=APP_PASSWORD")[
        "auth"
    ]
    assert isinstance(auth, AppPasswordAuth)


@pytest.mark.parametrize(
    ("choice", "cls"), [("xoauth2", XOAuth2Auth), ("oauthbearer", OAuthBearerAuth)]
)
def test_oauth_with_the_access_token_as_password(choice: str, cls: type) -> None:
    auth = options_from_url(f"smtps://me%40gmail.com:ya29.token@smtp.gmail.com?auth={choice}")[
        "auth"
    ]
    assert isinstance(auth, cls)
    assert auth.username == "me@gmail.com"
    assert isinstance(auth.token_provider, StaticToken)
    assert auth.token_provider.get_token().token.reveal() == "ya29.token"


def test_oauth_from_a_token_store(tmp_path: Path) -> None:
    path = tmp_path / "store.json"
    FileTokenStore(path).write(
        StoredGrant(
            provider="microsoft",
            client_id="client-1",
            token_url="https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token",
            refresh_token=Secret("refresh-CANARY"),
            username="alice@contoso.example",
            scopes=("https://outlook.office.com/SMTP.Send", "offline_access"),
        )
    )
    options = options_from_url(f"smtp+starttls://smtp.office365.com?token_store={path}")
    auth = options["auth"]
    assert isinstance(auth, XOAuth2Auth)
    assert auth.username == "alice@contoso.example"
    assert isinstance(auth.token_provider, RefreshTokenProvider)
    assert "refresh-CANARY" not in repr(options)
    assert options["provider"] == "microsoft365"


def test_a_missing_token_store_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        options_from_url(f"smtps://me@mail.example.com?token_store={tmp_path / 'none.json'}")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtps://mail.example.com?auth=plain", "needs a user name"),
        ("smtps://me@mail.example.com?auth=xoauth2", "needs an access token"),
        ("smtps://me@mail.example.com?auth=kerberos", "not a known choice"),
        ("smtps://me@mail.example.com?auth=plain&token_store=/x", "token_store .* is for OAuth2"),
        ("smtps://me@mail.example.com", "names user 'me' but no password"),
        ("smtps://:tok@mail.example.com?auth=xoauth2", "needs an access token|mailbox address"),
    ],
)
def test_auth_mistakes_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        options_from_url(url)


def test_a_password_argument_fills_a_url_without_one() -> None:
    auth = options_from_url("smtps://me@mail.example.com", password=SECRET)["auth"]
    assert isinstance(auth, PasswordAuth)


# -- providers -------------------------------------------------------------------------------


def test_provider_option_and_inference() -> None:
    assert options_from_url("smtps://smtp.gmail.com")["provider"] == "gmail"
    assert (
        options_from_url("smtps://smtp.gmail.com?provider=workspace")["provider"]
        == "google-workspace"
    )
    assert options_from_url("smtps://email-smtp.eu-west-1.amazonaws.com")["provider"] == (
        "ses:eu-west-1"
    )
    assert "provider" not in options_from_url("smtps://mail.example.com")
    with pytest.raises(ConfigurationError, match="did you mean gmail"):
        options_from_url("smtps://smtp.gmail.com?provider=gmial")


# -- plaintext -------------------------------------------------------------------------------


def test_plaintext_to_a_remote_host_needs_an_explicit_opt_out() -> None:
    with pytest.raises(ConfigurationError) as caught:
        options_from_url(f"smtp://me:{SECRET}@mail.example.com:25")
    assert "not loopback" in caught.value.message
    assert caught.value.hint is not None
    assert "allow_plaintext=true" in caught.value.hint
    assert SECRET not in str(caught.value)


def test_the_opt_out_allows_plaintext_and_auth_over_it() -> None:
    options = options_from_url(f"smtp://me:{SECRET}@relay.example.com:25?allow_plaintext=true")
    assert options["security"] is Security.NONE
    assert options["allow_unencrypted_auth"] is True
    without_auth = options_from_url("smtp://relay.example.com:25?allow_plaintext=yes")
    assert "allow_unencrypted_auth" not in without_auth


def test_loopback_plaintext_needs_no_opt_out() -> None:
    options = options_from_url(f"smtp://me:{SECRET}@localhost:1025")
    assert "allow_unencrypted_auth" not in options  # loopback AUTH is allowed anyway


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtps://mail.example.com?allow_plaintext=true", "only applies to smtp://"),
        ("smtp://mail.example.com?allow_plaintext=maybe", "must be true or false"),
        ("smtp://mail.example.com?allow_plaintext=false", "not loopback"),
    ],
)
def test_plaintext_flag_mistakes(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        options_from_url(url)


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"smtps://me:{SECRET}@mail.example.com?timeout=x",
        f"smtps://me:{SECRET}@mail.example.com?nope=1",
        f"smtp://me:{SECRET}@mail.example.com",
        f"smtps://me:{SECRET}@mail.example.com?auth=nope",
        f"smtps://me:{SECRET}@mail.example.com?provider=nope",
        f"ftp://me:{SECRET}@mail.example.com",
        f"smtps://me:{SECRET}/x@mail.example.com:99999",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        options_from_url(url)
    for text in (str(caught.value), repr(caught.value), caught.value.hint or ""):
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(caught.value)


def test_repr_of_options_and_submitter_never_show_the_password() -> None:
    options = options_from_url(f"smtps://me:{SECRET}@mail.example.com")
    assert SECRET not in repr(options)
    assert SECRET not in repr(build(options))


# -- SMTPKIT_URL -----------------------------------------------------------------------------


def test_env_unset_or_blank_gives_none() -> None:
    assert options_from_env({}) is None
    assert options_from_env({"SMTPKIT_URL": "  "}) is None


def test_env_url_with_password_from_smtpkit_password() -> None:
    options = options_from_env(
        {"SMTPKIT_URL": "smtps://me%40example.com@mail.example.com", "SMTPKIT_PASSWORD": SECRET}
    )
    assert options is not None
    auth = options["auth"]
    assert isinstance(auth, PasswordAuth)
    assert auth.username == "me@example.com"


def test_env_errors_name_the_variable_and_hide_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        options_from_env({"SMTPKIT_URL": f"smtp://me:{SECRET}@mail.example.com"})
    assert str(caught.value).startswith("SMTPKIT_URL: ")
    assert SECRET not in str(caught.value)


def test_env_overrides() -> None:
    options = options_from_env({"SMTPKIT_URL": "smtps://mail.example.com"}, timeout=3.0)
    assert options is not None
    assert options["timeout"] == 3.0


# -- end to end ------------------------------------------------------------------------------


def test_a_submitter_from_a_url_sends_through_a_real_server(local_server: ServerFactory) -> None:
    server = local_server(credentials={"me@example.test": SECRET}, require_auth=True)
    url = (
        f"smtp+starttls://me%40example.test:{SECRET}@{server.host}:{server.port}?timeout={TIMEOUT}"
    )
    submitter = build(options_from_url(url, tls_context=server.client_tls_context()))
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "me@example.test", "you@example.test", "x"
    message.set_content("hello")
    submitter.send(message)
    [received] = server.wait_for(1)
    assert (received.auth_user, received.auth_mechanism) == ("me@example.test", "PLAIN")
    assert received.tls

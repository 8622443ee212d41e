"""A URL to a preset's host builds the preset's credential type.

``smtps://me@smtp.yandex.ru`` with a password used to build a plain ``PasswordAuth``, so a
refused login got the advice for an account password, while Yandex (like Gmail, Yahoo,
iCloud, Mail.ru, AOL and Outlook.com) takes only app passwords from mail programs. The
preset's ``credentials`` list (best first) now decides: when the first kind a password can
be is ``app_password``, the URL builds an :class:`~smtpkit.auth.AppPasswordAuth`.
"""

from __future__ import annotations

import pytest

from smtpkit import Submitter
from smtpkit.auth import AppPasswordAuth, PasswordAuth
from smtpkit.config._configure import options_from_env, options_from_url
from smtpkit.errors import CredentialKind

PASSWORD = "CANARY-app-8815"


def url_auth(url: str) -> object:
    return options_from_url(url, password=PASSWORD)["auth"]


@pytest.mark.parametrize(
    "host",
    [
        "smtp.yandex.ru",
        "smtp.gmail.com",
        "smtp.mail.yahoo.com",
        "smtp.mail.me.com",
        "smtp.mail.ru",
        "smtp.aol.com",
        "smtp-mail.outlook.com",
    ],
)
def test_app_password_presets_get_an_app_password_strategy(host: str) -> None:
    auth = url_auth(f"smtps://me%40example.com@{host}")
    assert isinstance(auth, AppPasswordAuth)
    assert auth.credential_kind is CredentialKind.APP_PASSWORD


@pytest.mark.parametrize(
    "url",
    [
        "smtp+starttls://me%40contoso.com@smtp.office365.com",  # oauth2, then password
        "smtps://me%40example.com@smtp.zoho.com",  # password first, app password optional
        "smtps://me%40example.com@mail.example.com",  # no preset
    ],
)
def test_password_presets_and_unknown_hosts_keep_a_password(url: str) -> None:
    auth = url_auth(url)
    assert type(auth) is PasswordAuth
    assert auth.credential_kind is CredentialKind.PASSWORD


def test_a_named_provider_decides_too() -> None:
    auth = url_auth("smtps://me%40example.com@mx.example.com?provider=yandex")
    assert isinstance(auth, AppPasswordAuth)


def test_mechanism_choices_keep_the_preset_kind() -> None:
    """``auth=plain``/``login`` name a mechanism, not a credential: the kind still applies."""
    auth = url_auth("smtps://me%40yandex.ru@smtp.yandex.ru?auth=login")
    assert isinstance(auth, AppPasswordAuth)
    assert auth.mechanisms == ("LOGIN",)


def test_an_explicit_auth_password_wins() -> None:
    auth = url_auth("smtps://me%40yandex.ru@smtp.yandex.ru?auth=password")
    assert type(auth) is PasswordAuth


def test_from_env_and_from_url_alike() -> None:
    options = options_from_env(
        {"SMTPKIT_URL": "smtps://me%40yandex.ru@smtp.yandex.ru", "SMTPKIT_PASSWORD": PASSWORD}
    )
    assert options is not None
    assert isinstance(options["auth"], AppPasswordAuth)
    submitter = Submitter.from_url(f"smtps://me%40yandex.ru:{PASSWORD}@smtp.yandex.ru")
    assert isinstance(submitter.auth, AppPasswordAuth)


def test_django_url_and_provider_settings_alike() -> None:
    pytest.importorskip("django")
    from smtpkit.django import EmailBackend  # noqa: PLC0415

    by_url = EmailBackend(url="smtps://smtp.yandex.ru", username="me@yandex.ru", password="x")
    by_provider = EmailBackend(provider="yandex", username="me@yandex.ru", password="x")
    zoho = EmailBackend(provider="zoho", username="me@zoho.com", password="x")
    assert isinstance(by_url.submitter.auth, AppPasswordAuth)
    assert isinstance(by_provider.submitter.auth, AppPasswordAuth)
    assert type(zoho.submitter.auth) is PasswordAuth

"""Credentials and trust from a server URL: the AUTH strategy, token stores, a CA file.

Helpers of :func:`smtpkit.config._configure.options_from_url` (``auth=``,
``token_store=``, ``cafile=``), and :func:`password_auth`, which the Django backend uses too.

Invariants:
    * A password or token stays in a :class:`~smtpkit.auth.Secret` until the strategy holds
      it; no error message quotes it (messages quote the URL redacted, ``shown``).
    * ``smtpkit.oauth`` (and so ``requests``) is imported only when a URL asks for OAuth2.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence

from smtpkit import providers
from smtpkit.auth import (
    AppPasswordAuth,
    AuthStrategy,
    OAuthBearerAuth,
    PasswordAuth,
    Secret,
    TokenProvider,
    XOAuth2Auth,
)
from smtpkit.config._url import ServerURL
from smtpkit.errors import ConfigurationError

__all__ = ["AUTH_CHOICES", "ENV_PASSWORD", "ca_context", "password_auth", "url_auth"]

#: The environment variable holding the password when the URL has none.
ENV_PASSWORD = "SMTPKIT_PASSWORD"  # noqa: S105 - a variable name, not a password
#: The values of a URL's ``auth=`` option.
AUTH_CHOICES = ("password", "plain", "login", "app_password", "xoauth2", "oauthbearer")


def ca_context(path: str, *, what: str = "the CA file") -> ssl.SSLContext:
    """A verifying client TLS context that trusts the PEM CA bundle at ``path`` only.

    Verification stays on (certificate and host name); only the trusted roots change.

    Raises:
        ConfigurationError: the file cannot be read or holds no PEM certificate.
    """
    full = os.path.expanduser(path)
    try:
        return ssl.create_default_context(cafile=full)
    except ssl.SSLError:  # an OSError too: test it first
        raise ConfigurationError(
            f"{what} {path!r} holds no PEM CA certificate",
            hint="give the CA certificate file (-----BEGIN CERTIFICATE-----), e.g. the one "
            "smtpkit serve prints",
        ) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigurationError(
            f"cannot read {what} {path!r}: {reason}", hint="check the path of the CA file"
        ) from None


def _token_provider(path: str, shown: str) -> tuple[TokenProvider, str | None]:
    """A refreshing token provider from a token store file, and the mailbox it names."""
    # Imported here: smtpkit.oauth pulls in requests, which plain `import smtpkit` (and the
    # pytest plugin every test run loads) should not pay for.
    from smtpkit.oauth import provider_from_store  # noqa: PLC0415

    try:
        return provider_from_store(path)
    except ConfigurationError as error:
        raise ConfigurationError(
            f"{error.message} (token_store in {shown})", hint=error.hint
        ) from None


def url_auth(
    server: ServerURL,
    query: Mapping[str, str],
    password: Secret | None,
    shown: str,
    preset: providers.Preset | None,
) -> AuthStrategy | None:
    choice = query.get("auth", "").strip().lower() or None
    store = query.get("token_store")
    if choice is not None and choice not in AUTH_CHOICES:
        raise ConfigurationError(
            f"auth={query['auth']!r} in {shown} is not a known choice",
            hint=f"choices: {', '.join(AUTH_CHOICES)}",
        )
    if store is not None:
        if choice not in (None, "xoauth2", "oauthbearer"):
            raise ConfigurationError(
                f"token_store in {shown} is for OAuth2: use auth=xoauth2 or auth=oauthbearer"
            )
        choice = choice or "xoauth2"
    user = server.username
    if choice in ("xoauth2", "oauthbearer"):
        token_source: TokenProvider
        if store is not None:
            token_source, stored_user = _token_provider(store, shown)
            user = user or stored_user
        elif password is not None:
            from smtpkit.oauth import StaticToken  # noqa: PLC0415 - only for this choice

            try:
                token_source = StaticToken(password)
            except ConfigurationError as error:  # its message never quotes the token
                raise ConfigurationError(
                    f"{error.message} (the password of {shown}, used as the token for "
                    f"auth={choice})",
                    hint=error.hint,
                ) from None
        else:
            raise ConfigurationError(
                f"auth={choice} in {shown} needs an access token (as the URL password) or "
                "token_store=PATH"
            )
        if not user:
            raise ConfigurationError(
                f"auth={choice} in {shown} needs the mailbox address as the URL user name"
            )
        cls = XOAuth2Auth if choice == "xoauth2" else OAuthBearerAuth
        return cls(user, token_source)
    if user is None:
        if choice is not None:
            raise ConfigurationError(f"auth={choice} in {shown} needs a user name in the URL")
        return None
    if password is None:
        raise ConfigurationError(
            f"the URL {shown} names user {user!r} but no password was given",
            hint=f"put it in the URL (percent-encoded) or set {ENV_PASSWORD}",
        )
    mechanisms = {"plain": ("PLAIN",), "login": ("LOGIN",)}.get(choice or "", ("PLAIN", "LOGIN"))
    return password_auth(
        user, password, preset, mechanisms=mechanisms, app_password=_app_password(choice)
    )


def _app_password(choice: str | None) -> bool | None:
    """What ``auth=`` says about the credential: ``app_password`` yes, ``password`` no.

    ``plain`` and ``login`` name a mechanism, not a kind of credential: ``None`` (the
    preset decides), as without ``auth=``.
    """
    return {"app_password": True, "password": False}.get(choice or "")


def password_auth(
    user: str,
    password: str | Secret,
    preset: providers.Preset | None,
    *,
    mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
    app_password: bool | None = None,
) -> PasswordAuth:
    """The password strategy for ``preset``: an app password where the preset wants one.

    A refused login then gets the advice for the credential the provider takes (Yandex,
    Gmail, Yahoo... accept only app passwords from mail programs). ``app_password`` says
    it explicitly (a URL's ``auth=app_password`` or ``auth=password``); ``None`` lets the
    preset decide (:attr:`~smtpkit.providers.Preset.wants_app_password`).
    """
    if app_password is None:
        app_password = preset is not None and preset.wants_app_password
    cls = AppPasswordAuth if app_password else PasswordAuth
    return cls(user, password, mechanisms=mechanisms)

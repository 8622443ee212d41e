"""The google-auth boundary of the Google adapter: its untyped calls, translated once.

:class:`~smtpkit.integrations.google.GoogleCredentialsProvider` refreshes through these:

* :class:`BoundedRequest`: google-auth's ``requests`` transport with our timeout on every
  call (google-auth's own default is 120 s);
* :func:`user_credentials` and :func:`service_account_credentials`: credentials built from
  an authorized-user mapping or a service account key, with the Gmail scope;
* :func:`with_refresh_token`: the same user credentials with another refresh token (one a
  different process saved to the token store);
* :func:`aware_expiry` and :func:`refresh_error`: google-auth's naive-UTC ``expiry`` as an
  aware datetime, its ``RefreshError`` as a :class:`~smtpkit.errors.TokenRefreshError`.

Invariants:
    * With :mod:`smtpkit.integrations.google` and :mod:`smtpkit.integrations._google_flow`,
      the only code that imports ``google.*`` (an import-linter contract).
    * Errors name files and fields, never a token, a client secret or a key; a refresh
      failure quotes only the ``error`` and ``error_description`` fields, never the raw
      response.
    * ``Any`` from the untyped parts of google-auth stays inside the adapter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account
import requests

from smtpkit.errors import ConfigurationError, TokenRefreshError
from smtpkit.integrations._google_flow import GMAIL_SCOPE, GOOGLE_TOKEN_URL
from smtpkit.oauth import HttpTimeout, token_error

__all__ = [
    "BoundedRequest",
    "aware_expiry",
    "refresh_error",
    "service_account_credentials",
    "user_credentials",
    "with_refresh_token",
]


class BoundedRequest(google.auth.transport.requests.Request):
    """google-auth's requests transport with our timeout on every call (its default: 120 s)."""

    def __init__(self, session: requests.Session, timeout: HttpTimeout) -> None:
        super().__init__(session=session)
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        call: Any = super().__call__  # untyped in google-auth
        return call(url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs)


def aware_expiry(expiry: object) -> datetime | None:
    """google-auth keeps ``expiry`` as a naive datetime in UTC."""
    if not isinstance(expiry, datetime):
        return None
    if expiry.tzinfo is None:
        return expiry.replace(tzinfo=UTC)
    return expiry.astimezone(UTC)


def user_credentials(info: Mapping[str, object], token_uri: str | None = None) -> Any:
    """User credentials (the Gmail scope) from an authorized-user mapping.

    The credentials are built directly: google-auth's own ``from_authorized_user_info``
    always resets ``token_uri`` to Google's endpoint. ``token_uri`` defaults to the
    mapping's ``token_uri`` or ``token_url``, else :data:`GOOGLE_TOKEN_URL`.

    Raises:
        ConfigurationError: a required field is missing (named, never its value).
    """
    fields: dict[str, str] = {}
    for key in ("client_id", "client_secret", "refresh_token"):
        value = info.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"authorized-user info has no {key!r}",
                hint="create it with: smtpkit oauth google --client-secrets FILE ...",
            )
        fields[key] = value
    uri = token_uri or info.get("token_uri") or info.get("token_url") or GOOGLE_TOKEN_URL
    user_type: Any = google.oauth2.credentials.Credentials  # untyped constructor
    return user_type(
        token=None,
        refresh_token=fields["refresh_token"],
        token_uri=str(uri),
        client_id=fields["client_id"],
        client_secret=fields["client_secret"],
        scopes=[GMAIL_SCOPE],
    )


def service_account_credentials(
    key: str | os.PathLike[str] | Mapping[str, object], subject: str, token_uri: str | None
) -> Any:
    """Service account credentials acting as ``subject`` (domain-wide delegation).

    Raises:
        ConfigurationError: an unreadable or invalid key, or an empty subject.
    """
    if not isinstance(subject, str) or "@" not in subject:
        raise ConfigurationError("subject must be the mailbox address to act as")
    sa: Any = google.oauth2.service_account.Credentials  # untyped constructors
    try:
        if isinstance(key, Mapping):
            credentials = sa.from_service_account_info(
                dict(key), scopes=[GMAIL_SCOPE], subject=subject
            )
        else:
            credentials = sa.from_service_account_file(
                os.fspath(key), scopes=[GMAIL_SCOPE], subject=subject
            )
    except (OSError, ValueError, KeyError) as error:
        problem = f"{type(error).__name__}"
    else:
        problem = ""
    if problem:
        raise ConfigurationError(
            f"cannot load the service account key ({problem})",
            hint="download a JSON key for the service account from the Cloud console",
        )
    if token_uri is not None:
        credentials = credentials.with_token_uri(token_uri)
    return credentials


def with_refresh_token(credentials: Any, refresh_token: str) -> Any:
    """User credentials like ``credentials`` (client, token URI, scopes) with another token."""
    user_type: Any = google.oauth2.credentials.Credentials  # untyped constructor
    return user_type(
        token=None,
        refresh_token=refresh_token,
        token_uri=credentials.token_uri,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        scopes=credentials.scopes,
    )


def refresh_error(error: Exception, refresh_token: object) -> TokenRefreshError:
    """Map google-auth's ``RefreshError`` without quoting its raw text."""
    data: Mapping[str, object] = {}
    for arg in error.args[1:]:
        if isinstance(arg, Mapping):
            data = arg
            break
    secrets = [refresh_token] if isinstance(refresh_token, str) else []
    return token_error(
        data,
        action="refresh the Google access token",
        where="google-auth's refresh failed",
        transient=bool(getattr(error, "retryable", False)),
        secrets=secrets,
    )

"""Google accounts through google-auth: the one module that imports ``google.*``.

* :class:`GoogleCredentialsProvider` wraps any ``google.auth.credentials.Credentials`` as a
  :class:`~smtpkit.auth.TokenProvider`, with constructors for an authorized-user file (a
  consumer or Workspace account that signed in once, e.g. with ``smtpkit oauth google``) and
  for a Workspace service account with domain-wide delegation (``subject=`` the mailbox).
* :func:`run_installed_app_flow` runs google-auth-oauthlib's loopback sign-in and returns
  the grant to store.

Gmail's scope for SMTP is ``https://mail.google.com/`` (:data:`GMAIL_SCOPE`).

Invariants:
    * One refresh at a time per provider (the single-flight cache of
      :class:`~smtpkit.oauth.CachingTokenProvider`), bounded: every HTTP request google-auth
      makes goes through a ``Request`` whose timeout we set (google-auth's own default is
      120 s). google-auth already retries 5xx answers (3 attempts with 1 s, 2 s back-off);
      nothing here adds a retry on top.
    * google-auth's naive-UTC ``expiry`` becomes an aware UTC datetime.
    * ``RefreshError`` becomes :class:`~smtpkit.errors.TokenRefreshError`, transient exactly
      when google-auth says ``retryable``; only the ``error`` and ``error_description``
      fields are quoted, never the raw response.
    * ``Any`` from the untyped parts of google-auth stays inside this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import google.oauth2.service_account
import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.errors import ConfigurationError, TokenRefreshError
from smtpkit.oauth import (
    DEFAULT_TIMEOUT,
    CachingTokenProvider,
    FileTokenStore,
    HttpTimeout,
    StoredGrant,
    token_error,
)

__all__ = [
    "GMAIL_SCOPE",
    "GMAIL_SMTP_HOST",
    "GOOGLE_TOKEN_URL",
    "GoogleCredentialsProvider",
    "run_installed_app_flow",
]

#: Full mail access: the only Gmail scope that allows SMTP (and IMAP/POP).
GMAIL_SCOPE = "https://mail.google.com/"
#: Google's OAuth2 token endpoint.
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
#: Gmail's submission host (587 STARTTLS, 465 TLS).
GMAIL_SMTP_HOST = "smtp.gmail.com"
#: google-auth retries a failed token request up to this many times in all (its
#: ``_exponential_backoff`` default), sleeping about 1 s then 2 s between attempts.
GOOGLE_AUTH_ATTEMPTS = 3
GOOGLE_AUTH_BACKOFF = 3.5
#: How long the loopback sign-in waits for the browser to come back.
SIGN_IN_TIMEOUT = 600

RotateCallback = Callable[[str], None]


class _BoundedRequest(google.auth.transport.requests.Request):
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


def _aware(expiry: object) -> datetime | None:
    """google-auth keeps ``expiry`` as a naive datetime in UTC."""
    if not isinstance(expiry, datetime):
        return None
    if expiry.tzinfo is None:
        return expiry.replace(tzinfo=UTC)
    return expiry.astimezone(UTC)


class GoogleCredentialsProvider(CachingTokenProvider):
    """A token provider backed by google-auth credentials.

    ::

        provider = GoogleCredentialsProvider.from_authorized_user_file("alice.json")
        auth = XOAuth2Auth("alice@gmail.com", provider)

        # Workspace: a service account with domain-wide delegation, acting as the mailbox
        provider = GoogleCredentialsProvider.service_account("sa.json", subject="ops@example.com")
        auth = XOAuth2Auth("ops@example.com", provider)

    Args:
        credentials: any ``google.auth.credentials.Credentials`` with the Gmail scope.
        on_rotate: called with a new refresh token if Google issues one.
        timeout: seconds, or ``(connect, read)``, for each HTTP request google-auth makes.
        session: the ``requests.Session`` for those requests (``trust_env=False`` ignores
            proxy and CA settings from the environment).
        clock: returns the current aware UTC time.
    """

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(credentials, google.auth.credentials.Credentials):
            raise ConfigurationError(
                "credentials must be google.auth.credentials.Credentials, got "
                f"{type(credentials).__name__}"
            )
        per_request = float(sum(timeout)) if isinstance(timeout, tuple) else 2.0 * timeout
        bound = GOOGLE_AUTH_ATTEMPTS * per_request + GOOGLE_AUTH_BACKOFF
        if clock is None:
            super().__init__(refresh_bound=bound)
        else:
            super().__init__(refresh_bound=bound, clock=clock)
        self._credentials: Any = credentials
        self._on_rotate = on_rotate
        self._request = _BoundedRequest(
            session if session is not None else requests.Session(), timeout
        )

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def from_authorized_user_info(
        cls,
        info: Mapping[str, object],
        *,
        token_uri: str | None = None,
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoogleCredentialsProvider:
        """From an authorized-user mapping (``client_id``, ``client_secret``,
        ``refresh_token``; a smtpkit store works too).

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
        user_credentials: Any = google.oauth2.credentials.Credentials  # untyped constructor
        credentials = user_credentials(
            token=None,
            refresh_token=fields["refresh_token"],
            token_uri=str(uri),
            client_id=fields["client_id"],
            client_secret=fields["client_secret"],
            scopes=[GMAIL_SCOPE],
        )
        return cls(credentials, on_rotate=on_rotate, timeout=timeout, session=session, clock=clock)

    @classmethod
    def from_authorized_user_file(
        cls,
        path: str | os.PathLike[str],
        *,
        token_uri: str | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoogleCredentialsProvider:
        """From an authorized-user JSON file or a smtpkit store (rotations saved back to it).

        Raises:
            ConfigurationError: the file is unreadable or incomplete.
        """
        store = FileTokenStore(path)
        info = store.read_json()
        if info is None:
            raise ConfigurationError(f"no such file: {store.path}")
        return cls.from_authorized_user_info(
            info,
            token_uri=token_uri,
            on_rotate=store.save,
            timeout=timeout,
            session=session,
            clock=clock,
        )

    @classmethod
    def from_grant(
        cls,
        grant: StoredGrant,
        *,
        token_uri: str | None = None,
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoogleCredentialsProvider:
        """From a :class:`~smtpkit.oauth.StoredGrant` (what ``smtpkit oauth google`` stores)."""
        info: dict[str, object] = {
            "client_id": grant.client_id,
            "client_secret": grant.client_secret.reveal() if grant.client_secret else None,
            "refresh_token": grant.refresh_token.reveal(),
            "token_uri": grant.token_url,
        }
        return cls.from_authorized_user_info(
            info,
            token_uri=token_uri,
            on_rotate=on_rotate,
            timeout=timeout,
            session=session,
            clock=clock,
        )

    @classmethod
    def service_account(
        cls,
        key: str | os.PathLike[str] | Mapping[str, object],
        subject: str,
        *,
        token_uri: str | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoogleCredentialsProvider:
        """A Workspace service account acting as ``subject`` (domain-wide delegation).

        The service account's client ID must be authorized for ``https://mail.google.com/``
        in the Admin console (Security > API controls > Domain-wide delegation).

        Args:
            key: the service account's JSON key file, or its parsed content.
            subject: the mailbox to send as (also the XOAUTH2 user).
            token_uri: overrides the key's ``token_uri`` (tests).

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
        return cls(credentials, timeout=timeout, session=session, clock=clock)

    # -- refreshing ----------------------------------------------------------------------

    @property
    def credentials(self) -> google.auth.credentials.Credentials:
        """The wrapped google-auth credentials."""
        wrapped: google.auth.credentials.Credentials = self._credentials
        return wrapped

    def _refresh(self) -> AccessToken:
        credentials = self._credentials
        before = getattr(credentials, "refresh_token", None)
        failure: TokenRefreshError | None = None
        try:
            # google-auth retries retryable answers itself; one call here, no loop.
            credentials.refresh(self._request)
        except google.auth.exceptions.RefreshError as error:
            failure = _refresh_error(error, before)
        except google.auth.exceptions.TransportError as error:
            failure = TokenRefreshError(
                f"could not refresh the Google access token: {type(error).__name__} "
                "while connecting",
                transient=True,
                hint="check the network path to oauth2.googleapis.com (proxy, firewall, DNS)",
            )
        if failure is not None:
            raise failure  # outside the except block: no __context__ holding the response
        token = credentials.token
        if not isinstance(token, str) or not token:
            raise TokenRefreshError("google-auth refreshed the credentials but gave no token")
        after = getattr(credentials, "refresh_token", None)
        if isinstance(after, str) and after and after != before and self._on_rotate is not None:
            self._on_rotate(after)
        return AccessToken(Secret(token), _aware(credentials.expiry))

    def __repr__(self) -> str:
        kind = type(self._credentials).__name__
        subject = getattr(self._credentials, "_subject", None)
        who = f", subject={subject!r}" if subject else ""
        return f"GoogleCredentialsProvider({kind}{who})"


def _refresh_error(error: Exception, refresh_token: object) -> TokenRefreshError:
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


class _InstalledAppFlow(Protocol):
    """The part of ``google_auth_oauthlib.flow.InstalledAppFlow`` we use."""

    def run_local_server(self, **kwargs: Any) -> Any:
        """Run the loopback redirect flow and return the credentials."""


FlowFactory = Callable[[str, list[str]], _InstalledAppFlow]


def _default_flow(client_secrets: str, scopes: list[str]) -> _InstalledAppFlow:
    import google_auth_oauthlib.flow  # noqa: PLC0415 - only the sign-in command needs it

    flow: _InstalledAppFlow = google_auth_oauthlib.flow.InstalledAppFlow.from_client_secrets_file(
        client_secrets, scopes=scopes
    )
    return flow


def run_installed_app_flow(
    client_secrets: str | os.PathLike[str],
    username: str,
    *,
    open_browser: bool = True,
    flow_factory: FlowFactory = _default_flow,
) -> StoredGrant:
    """Sign in through the browser (loopback redirect, PKCE) and return the grant to store.

    google-auth-oauthlib listens on ``localhost`` on a free port, opens the consent page
    (``prompt=consent`` and offline access, so Google issues a refresh token) and waits for
    the redirect, at most :data:`SIGN_IN_TIMEOUT` seconds.

    Args:
        client_secrets: the OAuth client JSON downloaded from the Cloud console
            (application type "Desktop app").
        username: the Gmail address that will sign in.
        open_browser: open the page automatically (else the URL is printed).
        flow_factory: builds the flow (tests inject a stub).

    Raises:
        ConfigurationError: unreadable client secrets, or no refresh token was issued.
    """
    path = Path(client_secrets).expanduser()
    try:
        secrets_info = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"cannot read the client secrets file {path}: {type(error).__name__}",
            hint="download it from Google Cloud console > APIs & Services > Credentials",
        ) from None
    if not isinstance(secrets_info, dict) or not (
        "installed" in secrets_info or "web" in secrets_info
    ):
        raise ConfigurationError(f"{path} is not an OAuth client secrets file")
    flow = flow_factory(str(path), [GMAIL_SCOPE])
    credentials = flow.run_local_server(
        host="localhost",
        port=0,
        prompt="consent",
        open_browser=open_browser,
        timeout_seconds=SIGN_IN_TIMEOUT,
    )
    refresh_token = getattr(credentials, "refresh_token", None)
    client_id = getattr(credentials, "client_id", None)
    client_secret = getattr(credentials, "client_secret", None)
    token_uri = getattr(credentials, "token_uri", None) or GOOGLE_TOKEN_URL
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConfigurationError(
            "Google issued no refresh token",
            hint="revoke the app's access at myaccount.google.com/permissions and sign in again",
        )
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("the sign-in returned no client ID")
    return StoredGrant(
        provider="google",
        client_id=client_id,
        token_url=str(token_uri),
        refresh_token=Secret(refresh_token),
        username=username,
        client_secret=Secret(client_secret) if isinstance(client_secret, str) else None,
        scopes=(GMAIL_SCOPE,),
    )

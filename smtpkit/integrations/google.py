"""Google accounts through google-auth: with :mod:`smtpkit.integrations._google_auth` and
:mod:`smtpkit.integrations._google_flow`, the only code that imports ``google.*``.

* :class:`GoogleCredentialsProvider` wraps any ``google.auth.credentials.Credentials`` as a
  :class:`~smtpkit.auth.TokenProvider`, with constructors for an authorized-user file (a
  consumer or Workspace account that signed in once, e.g. with ``smtpkit oauth google``) and
  for a Workspace service account with domain-wide delegation (``subject=`` the mailbox).
* :func:`run_installed_app_flow` runs google-auth-oauthlib's loopback sign-in and returns
  the grant to store (it lives in :mod:`smtpkit.integrations._google_flow`).

Gmail's scope for SMTP is ``https://mail.google.com/`` (:data:`GMAIL_SCOPE`).

Invariants:
    * One refresh at a time per provider (the single-flight cache of
      :class:`~smtpkit.oauth.CachingTokenProvider`), bounded: every HTTP request google-auth
      makes goes through a ``Request`` whose timeout we set (google-auth's own default is
      120 s). google-auth already retries 5xx answers (3 attempts with 1 s, 2 s back-off);
      nothing here adds a retry on top.
    * With a token store (``from_authorized_user_file``, ``store=``) each refresh runs
      under the store's cross-process lock, as :class:`~smtpkit.oauth.RefreshTokenProvider`
      does: re-read the store, adopt a refresh token another process saved, refresh, save a
      rotated one, release. Waiting for the lock is bounded.
    * A rotated refresh token that cannot be saved (or an ``on_rotate`` that raises) is
      logged, never raised: the access token in hand is good.
    * Timeouts are finite (``math.inf`` is refused, as for every smtpkit provider).
    * google-auth's naive-UTC ``expiry`` becomes an aware UTC datetime (the calls into
      google-auth and the translation of what they return are in
      :mod:`smtpkit.integrations._google_auth`).
    * ``RefreshError`` becomes :class:`~smtpkit.errors.TokenRefreshError`, transient exactly
      when google-auth says ``retryable``; only the ``error`` and ``error_description``
      fields are quoted, never the raw response.
    * ``Any`` from the untyped parts of google-auth stays inside the adapter (this module
      and :mod:`smtpkit.integrations._google_auth`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.errors import ConfigurationError, StoreLockTimeout, TokenRefreshError
from smtpkit.integrations._google_auth import (
    BoundedRequest,
    aware_expiry,
    refresh_error,
    service_account_credentials,
    user_credentials,
    with_refresh_token,
)
from smtpkit.integrations._google_flow import (
    GMAIL_SCOPE,
    GOOGLE_TOKEN_URL,
    SIGN_IN_TIMEOUT,
    FlowFactory,
    run_installed_app_flow,
)
from smtpkit.oauth import (
    DEFAULT_TIMEOUT,
    CachingTokenProvider,
    FileTokenStore,
    HttpTimeout,
    RotateCallback,
)
from smtpkit.oauth._cache import LOCK_MARGIN
from smtpkit.oauth._http import check_timeout, total_timeout
from smtpkit.oauth._refresh import persist_refresh_token

__all__ = [
    "GMAIL_SCOPE",
    "GMAIL_SMTP_HOST",
    "GOOGLE_TOKEN_URL",
    "SIGN_IN_TIMEOUT",
    "FlowFactory",
    "GoogleCredentialsProvider",
    "RotateCallback",
    "run_installed_app_flow",
]

logger = logging.getLogger("smtpkit.oauth")

#: Gmail's submission host (587 STARTTLS, 465 TLS).
GMAIL_SMTP_HOST = "smtp.gmail.com"
#: google-auth retries a failed token request up to this many times in all (its
#: ``_exponential_backoff`` default), sleeping about 1 s then 2 s between attempts.
GOOGLE_AUTH_ATTEMPTS = 3
GOOGLE_AUTH_BACKOFF = 3.5


class GoogleCredentialsProvider(CachingTokenProvider):
    """A token provider backed by google-auth credentials.

    ::

        provider = GoogleCredentialsProvider.from_authorized_user_file("alice.json")
        auth = XOAuth2Auth("alice@gmail.com", provider)

        # Workspace: a service account with domain-wide delegation, acting as the mailbox
        provider = GoogleCredentialsProvider.service_account("sa.json", subject="ops@example.com")
        auth = XOAuth2Auth("ops@example.com", provider)

    Sharing a refresh token between processes (Celery workers, several app servers): build
    the provider from the store file (:meth:`from_authorized_user_file`) or pass ``store=``.
    Each refresh then holds the store's lock (``fcntl.flock`` on ``<store>.lock``),
    re-reads the file, adopts a refresh token another process saved since this provider last
    looked, refreshes, and saves a rotated token before releasing it. ``on_rotate=store.save``
    alone persists rotations but does not stop a process that read the file earlier from
    refreshing with a token Google has since replaced.

    Args:
        credentials: any ``google.auth.credentials.Credentials`` with the Gmail scope; with
            ``store``, user credentials (``google.oauth2.credentials.Credentials``).
        store: the :class:`~smtpkit.oauth.FileTokenStore` the refresh token is shared
            through (see above). An adopted refresh token replaces the credentials with new
            user credentials of the same client, token URI and scopes.
        on_rotate: called with a new refresh token if Google issues one (after ``store``
            saved it). A failure is logged, never raised.
        timeout: seconds, or ``(connect, read)``, for each HTTP request google-auth makes;
            finite. With ``store``, waiting for another process's refresh is bounded by one
            refresh's worth of it plus :data:`~smtpkit.oauth._cache.LOCK_MARGIN`; then a
            transient error.
        session: the ``requests.Session`` for those requests (``trust_env=False`` ignores
            proxy and CA settings from the environment).
        clock: returns the current aware UTC time.

    Raises:
        ConfigurationError: credentials of the wrong type, a timeout that is not positive
            and finite, or a store that is not a token store.
    """

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        store: FileTokenStore | None = None,
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
        if store is not None:
            if not isinstance(store, FileTokenStore):
                raise ConfigurationError(f"store must be a FileTokenStore, got {store!r}")
            if not isinstance(credentials, google.oauth2.credentials.Credentials):
                raise ConfigurationError(
                    "store= shares a refresh token: it needs user credentials "
                    f"(google.oauth2.credentials.Credentials), got {type(credentials).__name__}"
                )
        timeout = check_timeout(timeout)
        # One refresh: google-auth's own attempts, each bounded by the timeout, and its sleeps.
        bound = GOOGLE_AUTH_ATTEMPTS * total_timeout(timeout) + GOOGLE_AUTH_BACKOFF
        # With a store, first wait for another process's refresh (one refresh, bounded).
        store_wait = bound + LOCK_MARGIN
        refresh_bound = bound + (store_wait if store is not None else 0.0)
        if clock is None:
            super().__init__(refresh_bound=refresh_bound)
        else:
            super().__init__(refresh_bound=refresh_bound, clock=clock)
        self._credentials: Any = credentials
        self._store = store
        self._store_wait = store_wait
        # The stored refresh token when this provider last read or wrote the store: a
        # different one in the file later means another process rotated it.
        self._seen: str | None = store.load() if store is not None else None
        self._on_rotate = on_rotate
        self._request = BoundedRequest(
            session if session is not None else requests.Session(), timeout
        )

    # -- constructors --------------------------------------------------------------------

    @classmethod
    def from_authorized_user_info(
        cls,
        info: Mapping[str, object],
        *,
        token_uri: str | None = None,
        store: FileTokenStore | None = None,
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> GoogleCredentialsProvider:
        """From an authorized-user mapping (``client_id``, ``client_secret``,
        ``refresh_token``; a smtpkit store works too).

        The credentials are built directly: google-auth's own ``from_authorized_user_info``
        always resets ``token_uri`` to Google's endpoint. ``token_uri`` defaults to the
        mapping's ``token_uri`` or ``token_url``, else :data:`GOOGLE_TOKEN_URL`. ``store``:
        the token store the mapping was read from, to share the refresh token through (see
        the class docstring).

        Raises:
            ConfigurationError: a required field is missing (named, never its value).
        """
        credentials = user_credentials(info, token_uri)
        return cls(
            credentials,
            store=store,
            on_rotate=on_rotate,
            timeout=timeout,
            session=session,
            clock=clock,
        )

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
        """From an authorized-user JSON file or a smtpkit store, shared through it.

        The file is the provider's token store: each refresh holds its cross-process lock,
        adopts a refresh token another process saved, and saves a rotated one back.

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
            store=store,
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
        credentials = service_account_credentials(key, subject, token_uri)
        return cls(credentials, timeout=timeout, session=session, clock=clock)

    # -- refreshing ----------------------------------------------------------------------

    @property
    def credentials(self) -> google.auth.credentials.Credentials:
        """The wrapped google-auth credentials."""
        wrapped: google.auth.credentials.Credentials = self._credentials
        return wrapped

    @property
    def store(self) -> FileTokenStore | None:
        """The store the refresh token is shared through, if any."""
        return self._store

    def _refresh(self) -> AccessToken:
        store = self._store
        if store is None:
            return self._refresh_credentials(None)
        try:
            with store.locked(self._store_wait):
                self._adopt(store)
                return self._refresh_credentials(store)
        except StoreLockTimeout:
            failure = f"the token store {store.path} stayed locked for {self._store_wait:.0f} s"
        # Raised outside the except block: no exception context attached.
        raise TokenRefreshError(
            f"could not refresh the Google access token: {failure}",
            transient=True,
            hint="another process is refreshing the same token, or hung doing so; retry later",
        )

    def _refresh_credentials(self, store: FileTokenStore | None) -> AccessToken:
        credentials = self._credentials
        before = getattr(credentials, "refresh_token", None)
        failure: TokenRefreshError | None = None
        try:
            # google-auth retries retryable answers itself; one call here, no loop.
            credentials.refresh(self._request)
        except google.auth.exceptions.RefreshError as error:
            failure = refresh_error(error, before)
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
        if isinstance(after, str) and after and after != before:
            self._keep(Secret(after), store)
        return AccessToken(Secret(token), aware_expiry(credentials.expiry))

    def _keep(self, rotated: Secret, store: FileTokenStore | None) -> None:
        """Persist a rotated refresh token (google-auth already holds it in memory)."""
        logger.info("the Google refresh token was rotated")
        if store is not None and persist_refresh_token(
            "saving it to the token store", store.save, rotated
        ):
            self._seen = rotated.reveal()
        if self._on_rotate is not None:
            persist_refresh_token("on_rotate", self._on_rotate, rotated)

    def _adopt(self, store: FileTokenStore) -> None:
        """Use the stored refresh token if another process saved a new one."""
        try:
            stored = store.load()
        except ConfigurationError as error:
            logger.warning("%s; refreshing with the refresh token in memory", error.message)
            return
        current = getattr(self._credentials, "refresh_token", None)
        if stored is None or stored == current:
            self._seen = stored if stored is not None else self._seen
            return
        if stored == self._seen:
            # The file is older than the token in memory (a rotation this process could
            # not save): keep ours.
            return
        self._credentials = with_refresh_token(self._credentials, stored)
        self._seen = stored
        logger.info(
            "using the refresh token another process saved to the token store %s", store.path
        )

    def _retry_after_failure(self) -> bool:
        """After a permanent failure: worth another try if the store now holds a new token."""
        store = self._store
        if store is None:
            return False
        try:
            stored = store.load()
        except ConfigurationError:
            return False
        current = getattr(self._credentials, "refresh_token", None)
        return stored is not None and stored not in (current, self._seen)

    def __repr__(self) -> str:
        kind = type(self._credentials).__name__
        subject = getattr(self._credentials, "_subject", None)
        who = f", subject={subject!r}" if subject else ""
        return f"GoogleCredentialsProvider({kind}{who})"

"""The refresh-token grant (RFC 6749 §6), with rotation, shared through a token store.

:class:`RefreshTokenProvider` builds on the HTTP grant of :mod:`smtpkit.oauth._grant` (on the
cache of :mod:`smtpkit.oauth._cache`); :func:`persist_refresh_token` is how every provider,
the Google adapter's too, saves a rotated refresh token. The client-credentials grant is in
:mod:`smtpkit.oauth._client_credentials`.

Invariants:
    * Each refresh is one request with finite ``(connect, read)`` timeouts. The only second
      request: with a ``store``, an ``invalid_grant`` answer while the store holds a refresh
      token other than the one sent (another process rotated it) is retried once with it.
    * A rotated refresh token replaces the old one in memory before it is saved or
      ``on_rotate`` is called.
    * With a ``store``, a refresh runs under the store's cross-process lock: re-read the
      store, adopt a refresh token another process saved since this one last looked, refresh,
      save the rotated token, release. Waiting for the lock is bounded.
    * Secrets (access and refresh tokens, client secrets) are held in
      :class:`~smtpkit.auth.Secret`; ``repr`` masks them, providers refuse to pickle, and
      logs name the endpoint and the lifetime only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.errors import ConfigurationError, TokenRefreshError
from smtpkit.oauth._cache import LOCK_MARGIN, utcnow
from smtpkit.oauth._grant import HttpGrantProvider, check_secret
from smtpkit.oauth._http import (
    DEFAULT_TIMEOUT,
    HttpTimeout,
    TokenResponse,
    check_timeout,
    total_timeout,
)
from smtpkit.oauth._store import FileTokenStore, StoreLockTimeout

__all__ = [
    "RefreshTokenProvider",
    "RotateCallback",
    "persist_refresh_token",
]

logger = logging.getLogger("smtpkit.oauth")

#: An ``on_rotate`` callback: receives the new refresh token (persist it atomically).
RotateCallback = Callable[[str], None]


def persist_refresh_token(what: str, hook: RotateCallback, token: Secret) -> bool:
    """Call ``hook`` with a rotated refresh token; log (never raise) a failure.

    Every provider saves rotations through this: a full disk, a read-only store or a store
    lock held too long (:class:`~smtpkit.errors.StoreLockTimeout`) must not fail the send
    that just obtained a good access token. Returns whether ``hook`` succeeded.
    """
    try:
        hook(token.reveal())
    except Exception as error:
        # The access token is good; failing the send would not bring the refresh token back.
        # Say loudly that the next process will need a new grant. No traceback: its locals
        # and message could show the token.
        logger.error(
            "%s failed (%s): the new refresh token was not persisted", what, type(error).__name__
        )
        return False
    return True


class RefreshTokenProvider(HttpGrantProvider):
    """Access tokens from a refresh token (RFC 6749 §6), for any OAuth2 provider.

    ::

        POST /token HTTP/1.1
        Content-Type: application/x-www-form-urlencoded

        grant_type=refresh_token&refresh_token=...&client_id=...&scope=...

        HTTP/1.1 200 OK
        {"access_token": "...", "expires_in": 3599, "token_type": "Bearer",
         "refresh_token": "..."}          <- present when the server rotates it

    Sharing a refresh token between processes (Celery workers, several app servers): pass
    ``store=``. Each refresh then holds the store's lock (``fcntl.flock`` on ``<store>.lock``
    across processes), re-reads the file, adopts a refresh token another process saved since
    this provider last looked, refreshes, and saves a rotated token before releasing it::

        store = FileTokenStore("/var/lib/app/bob.json")
        provider = RefreshTokenProvider(token_url, client_id, store=store)

    ``on_rotate=store.save`` alone persists rotations but does not stop a process that read
    the file earlier from refreshing with a token the server has since revoked.

    Args:
        token_url: the token endpoint (``https://``; ``http://`` only to loopback).
        client_id: the OAuth2 client ID.
        refresh_token: the long-lived refresh token; ``None`` reads it from ``store``.
        client_secret: for confidential clients (and Google's installed apps).
        scopes: sent with each request; empty sends none (the original grant applies).
        store: the :class:`~smtpkit.oauth.FileTokenStore` the refresh token is shared
            through (see above).
        on_rotate: called with the new refresh token when the server issues one (Microsoft
            does on every use), after ``store`` saved it.
        timeout: seconds, or ``(connect, read)``, for each request. With ``store``, waiting
            for another process's refresh is bounded by two requests' worth of it plus
            :data:`~smtpkit.oauth._cache.LOCK_MARGIN`; then a transient error.
        session: the ``requests.Session`` to use (``trust_env=False`` ignores proxy and CA
            settings from the environment).
        clock: returns the current aware UTC time.

    Raises:
        ConfigurationError: an invalid URL, client ID, token, scope or timeout; no refresh
            token given or stored; a store that is not a token store.
    """

    grant = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        refresh_token: str | Secret | None = None,
        *,
        client_secret: str | Secret | None = None,
        scopes: Iterable[str] = (),
        store: FileTokenStore | None = None,
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if store is not None and not isinstance(store, FileTokenStore):
            raise ConfigurationError(f"store must be a FileTokenStore, got {store!r}")
        # Another process's refresh under the store lock: up to two requests (one retry).
        request_bound = total_timeout(check_timeout(timeout))
        store_wait = 2 * request_bound + LOCK_MARGIN
        super().__init__(
            token_url,
            client_id,
            client_secret=client_secret,
            scopes=scopes,
            timeout=timeout,
            session=session,
            clock=clock,
            extra_bound=store_wait + request_bound if store is not None else 0.0,
        )
        # The stored refresh token when this provider last read or wrote the store: a
        # different one in the file later means another process rotated it.
        self._seen: str | None = store.load() if store is not None else None
        if refresh_token is None:
            if self._seen is None:
                raise ConfigurationError(
                    "no refresh token: pass refresh_token= or a store that holds one"
                    if store is None
                    else f"no refresh token: the token store {store.path} does not exist",
                    hint="create one with: smtpkit oauth google|microsoft ... --store PATH",
                )
            refresh_token = self._seen
        self._refresh_token = check_secret("refresh_token", refresh_token)
        self._store = store
        self._store_wait = store_wait
        self._on_rotate = on_rotate

    @property
    def refresh_token(self) -> Secret:
        """The current refresh token (after any rotation or adoption from the store)."""
        return self._refresh_token

    @property
    def store(self) -> FileTokenStore | None:
        """The store the refresh token is shared through, if any."""
        return self._store

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), self._refresh_token.reveal()]

    def _refresh(self) -> AccessToken:
        store = self._store
        if store is None:
            response = self._exchange()
            self._keep(response.refresh_token, None)
            return response.access_token
        failure: str | None = None
        try:
            with store.locked(self._store_wait):
                self._adopt(store, changed_since_seen=True)
                sent = self._refresh_token.reveal()
                try:
                    response = self._exchange()
                except TokenRefreshError as error:
                    # Someone rotated the token without this lock (an older version, a host
                    # without flock, a new sign-in): retry once with the one now stored.
                    if error.error_code != "invalid_grant" or not self._adopt(
                        store, changed_since_seen=False, sent=sent
                    ):
                        raise
                    logger.info(
                        "invalid_grant for client %s, but the token store %s holds a newer "
                        "refresh token: retrying once with it",
                        self._client_id,
                        store.path,
                    )
                    response = self._exchange()
                self._keep(response.refresh_token, store)
                return response.access_token
        except StoreLockTimeout:
            failure = f"the token store {store.path} stayed locked for {self._store_wait:.0f} s"
        # Raised outside the except block: no exception context attached.
        raise TokenRefreshError(
            f"could not refresh the access token: {failure}",
            transient=True,
            hint="another process is refreshing the same token, or hung doing so; retry later",
        )

    def _exchange(self) -> TokenResponse:
        return self._request(
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token.reveal()}
        )

    def _adopt(
        self, store: FileTokenStore, *, changed_since_seen: bool, sent: str | None = None
    ) -> bool:
        """Take the stored refresh token if another process saved a new one; True if taken.

        ``changed_since_seen``: adopt only a token other than the one last read or written
        here (a token this process could not save must not be replaced by the older one on
        disk). Otherwise: adopt a stored token other than ``sent``.
        """
        try:
            stored = store.load()
        except ConfigurationError as error:
            logger.warning("%s; refreshing with the refresh token in memory", error.message)
            return False
        if stored is None or stored == self._refresh_token.reveal():
            self._seen = stored if stored is not None else self._seen
            return False
        if changed_since_seen and stored == self._seen:
            return False
        if not changed_since_seen and stored == sent:
            return False
        self._refresh_token = Secret(stored)
        self._seen = stored
        logger.info(
            "using the refresh token another process saved to the token store %s", store.path
        )
        return True

    def _keep(self, rotated: Secret | None, store: FileTokenStore | None) -> None:
        """Keep a rotated refresh token: in memory first, then the store and ``on_rotate``."""
        if rotated is None or rotated.reveal() == self._refresh_token.reveal():
            return
        # RFC 6749 §6: the server may issue a new refresh token and revoke the old one; keep
        # the new one first, so a failing save or callback cannot lose it for this process.
        self._refresh_token = rotated
        logger.info("the refresh token for client %s was rotated", self._client_id)
        if store is not None and persist_refresh_token(
            "saving it to the token store", store.save, rotated
        ):
            self._seen = rotated.reveal()
        if self._on_rotate is not None:
            persist_refresh_token("on_rotate", self._on_rotate, rotated)

    def _retry_after_failure(self) -> bool:
        """After a permanent failure: worth another try if the store now holds a new token."""
        store = self._store
        if store is None:
            return False
        try:
            stored = store.load()
        except ConfigurationError:
            return False
        return stored is not None and stored not in (self._refresh_token.reveal(), self._seen)

    def _fields(self) -> list[str]:
        fields = super()._fields()
        fields.insert(2, "refresh_token='***'")
        return fields

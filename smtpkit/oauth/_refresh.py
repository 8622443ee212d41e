"""Token providers that refresh over HTTP (on the cache of :mod:`smtpkit.oauth._cache`).

* :class:`RefreshTokenProvider`: the refresh-token grant (RFC 6749 §6), with rotation.
* :class:`ClientCredentialsProvider`: the client-credentials grant (RFC 6749 §4.4), used for
  Microsoft 365 app-only access.

Invariants:
    * Each refresh is one request with finite ``(connect, read)`` timeouts; nothing retries.
    * A rotated refresh token replaces the old one in memory before ``on_rotate`` is called.
    * Secrets (access and refresh tokens, client secrets) are held in
      :class:`~smtpkit.auth.Secret`; ``repr`` masks them, providers refuse to pickle, and
      logs name the endpoint and the lifetime only.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import datetime

import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.errors import ConfigurationError
from smtpkit.oauth._cache import CachingTokenProvider, utcnow
from smtpkit.oauth._http import (
    DEFAULT_TIMEOUT,
    HttpTimeout,
    TokenResponse,
    check_timeout,
    check_token_url,
    post_form,
    raise_for_oauth_error,
    total_timeout,
)

__all__ = ["ClientCredentialsProvider", "RefreshTokenProvider", "RotateCallback"]

logger = logging.getLogger("smtpkit.oauth")

#: An ``on_rotate`` callback: receives the new refresh token (persist it atomically).
RotateCallback = Callable[[str], None]


def _scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):
        # RFC 6749 §3.3: a space-separated list; accept it as given.
        scopes = scopes.split()
    result = tuple(scopes)
    if not all(isinstance(s, str) and s and " " not in s for s in result):
        raise ConfigurationError(f"scopes must be non-empty strings without spaces: {result!r}")
    return result


def _secret(what: str, value: str | Secret) -> Secret:
    text = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{what} must be a non-empty str")
    return value if isinstance(value, Secret) else Secret(value)


class _HttpProvider(CachingTokenProvider):
    """Shared parts of the HTTP grant providers: endpoint, client, session, timeout."""

    grant = ""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        *,
        client_secret: str | Secret | None,
        scopes: Iterable[str],
        timeout: HttpTimeout,
        session: requests.Session | None,
        clock: Callable[[], datetime],
    ) -> None:
        timeout = check_timeout(timeout)
        super().__init__(clock=clock, refresh_bound=total_timeout(timeout))
        self._token_url = check_token_url(token_url)
        if not isinstance(client_id, str) or not client_id.strip():
            raise ConfigurationError("client_id must be a non-empty str")
        self._client_id = client_id
        self._client_secret = (
            _secret("client_secret", client_secret) if client_secret is not None else None
        )
        self._scopes = _scopes(scopes)
        self._timeout = timeout
        # requests honours HTTPS_PROXY and REQUESTS_CA_BUNDLE from the environment unless
        # the session says trust_env=False; pass such a session to opt out (tests do).
        self._session = session if session is not None else requests.Session()

    @property
    def token_url(self) -> str:
        """The token endpoint."""
        return self._token_url

    @property
    def client_id(self) -> str:
        """The OAuth2 client ID (not a secret)."""
        return self._client_id

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes requested with each token."""
        return self._scopes

    def _secrets(self) -> list[str]:
        return [self._client_secret.reveal()] if self._client_secret else []

    def _request(self, form: dict[str, str]) -> TokenResponse:
        form["client_id"] = self._client_id
        if self._client_secret is not None:
            # RFC 6749 §2.3.1 allows the secret in the body; Google and Microsoft accept it.
            form["client_secret"] = self._client_secret.reveal()
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        endpoint = urllib.parse.urlsplit(self._token_url).netloc
        action = f"obtain an access token ({self.grant})"
        issued_at = self._clock()
        logger.debug("requesting an access token from %s (%s)", endpoint, self.grant)
        status, data = post_form(
            self._session, self._token_url, form, timeout=self._timeout, action=action
        )
        raise_for_oauth_error(
            status, data, endpoint=endpoint, action=action, secrets=self._secrets()
        )
        response = TokenResponse.parse(data, issued_at, endpoint)
        expires = response.access_token.expires_at
        logger.info(
            "obtained an access token from %s for client %s, %s",
            endpoint,
            self._client_id,
            f"expires {expires.isoformat()}" if expires else "no expiry given",
        )
        return response

    def _fields(self) -> list[str]:
        fields = [f"token_url={self._token_url!r}", f"client_id={self._client_id!r}"]
        if self._client_secret is not None:
            fields.append("client_secret='***'")
        if self._scopes:
            fields.append(f"scopes={self._scopes!r}")
        return fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._fields())})"


class RefreshTokenProvider(_HttpProvider):
    """Access tokens from a refresh token (RFC 6749 §6), for any OAuth2 provider.

    ::

        POST /token HTTP/1.1
        Content-Type: application/x-www-form-urlencoded

        grant_type=refresh_token&refresh_token=...&client_id=...&scope=...

        HTTP/1.1 200 OK
        {"access_token": "...", "expires_in": 3599, "token_type": "Bearer",
         "refresh_token": "..."}          <- present when the server rotates it

    Args:
        token_url: the token endpoint (``https://``; ``http://`` only to loopback).
        client_id: the OAuth2 client ID.
        refresh_token: the long-lived refresh token.
        client_secret: for confidential clients (and Google's installed apps).
        scopes: sent with each request; empty sends none (the original grant applies).
        on_rotate: called with the new refresh token when the server issues one (Microsoft
            does on every use). Pass ``FileTokenStore(path).save`` to persist it.
        timeout: seconds, or ``(connect, read)``, for each request.
        session: the ``requests.Session`` to use (``trust_env=False`` ignores proxy and CA
            settings from the environment).
        clock: returns the current aware UTC time.

    Raises:
        ConfigurationError: an invalid URL, client ID, token, scope or timeout.
    """

    grant = "refresh_token"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        refresh_token: str | Secret,
        *,
        client_secret: str | Secret | None = None,
        scopes: Iterable[str] = (),
        on_rotate: RotateCallback | None = None,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret=client_secret,
            scopes=scopes,
            timeout=timeout,
            session=session,
            clock=clock,
        )
        self._refresh_token = _secret("refresh_token", refresh_token)
        self._on_rotate = on_rotate

    @property
    def refresh_token(self) -> Secret:
        """The current refresh token (after any rotation)."""
        return self._refresh_token

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), self._refresh_token.reveal()]

    def _refresh(self) -> AccessToken:
        response = self._request(
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token.reveal()}
        )
        rotated = response.refresh_token
        if rotated is not None and rotated.reveal() != self._refresh_token.reveal():
            # RFC 6749 §6: the server may issue a new refresh token and revoke the old one;
            # keep the new one first, so a failing callback cannot lose it for this process.
            self._refresh_token = rotated
            logger.info("the refresh token for client %s was rotated", self._client_id)
            if self._on_rotate is not None:
                try:
                    self._on_rotate(rotated.reveal())
                except Exception as error:
                    # The access token is good; failing the send would not bring the refresh
                    # token back. Say loudly that the next process will need a new grant.
                    # No traceback: its locals and message could show the token.
                    logger.error(
                        "on_rotate failed (%s): the new refresh token was not persisted",
                        type(error).__name__,
                    )
        return response.access_token

    def _fields(self) -> list[str]:
        fields = super()._fields()
        fields.insert(2, "refresh_token='***'")
        return fields


class ClientCredentialsProvider(_HttpProvider):
    """Access tokens for the application itself (RFC 6749 §4.4): no user, no refresh token.

    ::

        POST /{tenant}/oauth2/v2.0/token HTTP/1.1

        grant_type=client_credentials&client_id=...&client_secret=...
            &scope=https://outlook.office365.com/.default

        HTTP/1.1 200 OK
        {"access_token": "...", "expires_in": 3599, "token_type": "Bearer"}

    Args:
        token_url: the token endpoint.
        client_id: the application (client) ID.
        client_secret: the application's secret.
        scopes: e.g. ``("https://outlook.office365.com/.default",)``.
        timeout, session, clock: as for :class:`RefreshTokenProvider`.
    """

    grant = "client_credentials"

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str | Secret,
        *,
        scopes: Iterable[str] = (),
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(
            token_url,
            client_id,
            client_secret=_secret("client_secret", client_secret),
            scopes=scopes,
            timeout=timeout,
            session=session,
            clock=clock,
        )

    def _refresh(self) -> AccessToken:
        return self._request({"grant_type": "client_credentials"}).access_token

"""What the HTTP grant providers share: one token request to an OAuth2 token endpoint.

:class:`HttpGrantProvider` is the base of :class:`~smtpkit.oauth.RefreshTokenProvider` and
:class:`~smtpkit.oauth.ClientCredentialsProvider`: it checks the endpoint, client and scopes
once, posts a grant's form with the client's credentials (RFC 6749 §2.3.1, §3.3), maps an
OAuth2 error answer to :class:`~smtpkit.errors.TokenRefreshError` and parses the token
response. A subclass says which grant it sends (``grant``) and implements ``_refresh``.

Invariants:
    * One request per call of ``_request``, with finite ``(connect, read)`` timeouts; no
      retry here.
    * The client secret is held in a :class:`~smtpkit.auth.Secret`; ``repr`` masks it, and
      logs name the endpoint, the client ID and the lifetime only. ``_secrets`` lists every
      secret a subclass holds, so an error quoting the endpoint's answer masks them.
    * Scopes are non-empty strings without spaces (a space-separated string is split).
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import datetime

import requests

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError
from smtpkit.oauth._cache import CachingTokenProvider
from smtpkit.oauth._http import (
    HttpTimeout,
    TokenResponse,
    check_timeout,
    check_token_url,
    default_session,
    post_form,
    raise_for_oauth_error,
    total_timeout,
)

__all__ = ["HttpGrantProvider", "check_scopes", "check_secret"]

logger = logging.getLogger("smtpkit.oauth")


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(scopes, str):
        # RFC 6749 §3.3: a space-separated list; accept it as given.
        scopes = scopes.split()
    if not isinstance(scopes, Iterable):
        raise ConfigurationError(f"scopes must be strings, got a {type(scopes).__name__}")
    result = tuple(scopes)
    if not all(isinstance(s, str) and s and " " not in s for s in result):
        raise ConfigurationError(f"scopes must be non-empty strings without spaces: {result!r}")
    return result


def check_secret(what: str, value: str | Secret) -> Secret:
    text = value.reveal() if isinstance(value, Secret) else value
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"{what} must be a non-empty str")
    return value if isinstance(value, Secret) else Secret(value)


class HttpGrantProvider(CachingTokenProvider):
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
        extra_bound: float = 0.0,
    ) -> None:
        timeout = check_timeout(timeout)
        super().__init__(clock=clock, refresh_bound=total_timeout(timeout) + extra_bound)
        self._token_url = check_token_url(token_url)
        if not isinstance(client_id, str) or not client_id.strip():
            raise ConfigurationError("client_id must be a non-empty str")
        self._client_id = client_id
        self._client_secret = (
            check_secret("client_secret", client_secret) if client_secret is not None else None
        )
        self._scopes = check_scopes(scopes)
        self._timeout = timeout
        # requests honours HTTPS_PROXY and REQUESTS_CA_BUNDLE from the environment unless
        # the session says trust_env=False; pass such a session to opt out. The default
        # session ignores the environment for a loopback token URL (see default_session).
        self._session = session if session is not None else default_session(self._token_url)

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

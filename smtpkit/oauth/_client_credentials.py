"""The client-credentials grant (RFC 6749 §4.4): access tokens for the application itself.

Used for Microsoft 365 app-only access (:func:`~smtpkit.oauth.microsoft_app_only`). There is
no user and no refresh token: each refresh asks for a new access token with the client's
own secret.

Invariants:
    * One request per refresh (:class:`~smtpkit.oauth._grant.HttpGrantProvider`), with
      finite timeouts; the client secret never reaches a ``repr``, log line or error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.oauth._cache import utcnow
from smtpkit.oauth._grant import HttpGrantProvider, check_secret
from smtpkit.oauth._http import DEFAULT_TIMEOUT, HttpTimeout

__all__ = ["ClientCredentialsProvider"]


class ClientCredentialsProvider(HttpGrantProvider):
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
            client_secret=check_secret("client_secret", client_secret),
            scopes=scopes,
            timeout=timeout,
            session=session,
            clock=clock,
        )

    def _refresh(self) -> AccessToken:
        return self._request({"grant_type": "client_credentials"}).access_token

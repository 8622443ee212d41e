"""OAuth2 token providers for :class:`~smtpkit.auth.XOAuth2Auth` and
:class:`~smtpkit.auth.OAuthBearerAuth` (``docs/oauth.md``).

* :class:`StaticToken`: a token obtained elsewhere.
* :class:`RefreshTokenProvider`: the refresh-token grant (RFC 6749 §6) for any provider,
  with rotation, shared between processes through a token store (``store=``).
* :class:`ClientCredentialsProvider`: the client-credentials grant (RFC 6749 §4.4).
* :func:`microsoft_delegated`, :func:`microsoft_app_only`: Microsoft 365 presets.
* :class:`FileTokenStore`: a refresh token in a mode-0600 file, replaced atomically and
  locked across processes (``<file>.lock``); :func:`provider_from_store` turns one back into
  a refreshing provider.
* :class:`DeviceCodeFlow`: sign in on another device (RFC 8628), for headless hosts.
* :class:`CachingTokenProvider`: the single-flight cache to build other providers on.

Google accounts use :class:`smtpkit.integrations.google.GoogleCredentialsProvider`, which
wraps google-auth.

Every provider shares one token among threads, refreshes it :data:`REFRESH_SKEW` seconds
before it expires, one refresh at a time, with finite HTTP timeouts and no retry loop; its
failures are :class:`~smtpkit.errors.TokenRefreshError` (``.is_transient``, ``.error_code``,
``.hint``). No secret reaches a ``repr``, log line, error message or pickle.
"""

from smtpkit.oauth._cache import REFRESH_SKEW, CachingTokenProvider
from smtpkit.oauth._client_credentials import ClientCredentialsProvider
from smtpkit.oauth._device import DEVICE_CODE_GRANT, DeviceAuthorization, DeviceCodeFlow
from smtpkit.oauth._from_store import provider_from_store
from smtpkit.oauth._http import DEFAULT_TIMEOUT, HttpTimeout, TokenResponse, token_error
from smtpkit.oauth._microsoft import (
    MICROSOFT_APP_ONLY_SCOPES,
    MICROSOFT_AUTHORITY,
    MICROSOFT_DELEGATED_SCOPES,
    MICROSOFT_SMTP_HOST,
    microsoft_app_only,
    microsoft_delegated,
    microsoft_token_url,
)
from smtpkit.oauth._refresh import RefreshTokenProvider, RotateCallback
from smtpkit.oauth._static import StaticToken
from smtpkit.oauth._store import LOCK_TIMEOUT, FileTokenStore, StoredGrant, StoreLockTimeout

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEVICE_CODE_GRANT",
    "LOCK_TIMEOUT",
    "MICROSOFT_APP_ONLY_SCOPES",
    "MICROSOFT_AUTHORITY",
    "MICROSOFT_DELEGATED_SCOPES",
    "MICROSOFT_SMTP_HOST",
    "REFRESH_SKEW",
    "CachingTokenProvider",
    "ClientCredentialsProvider",
    "DeviceAuthorization",
    "DeviceCodeFlow",
    "FileTokenStore",
    "HttpTimeout",
    "RefreshTokenProvider",
    "RotateCallback",
    "StaticToken",
    "StoreLockTimeout",
    "StoredGrant",
    "TokenResponse",
    "microsoft_app_only",
    "microsoft_delegated",
    "microsoft_token_url",
    "provider_from_store",
    "token_error",
]

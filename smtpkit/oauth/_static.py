"""``StaticToken``: a provider for an access token obtained elsewhere.

Invariants:
    * It never refreshes: a forced refresh, or a token already past its expiry, raises a
      permanent :class:`~smtpkit.errors.TokenRefreshError` instead of sending a token the
      server will refuse (failed logins count against limits such as Gmail's
      ``454 4.7.0 Too many login attempts``).
    * The token is a :class:`~smtpkit.auth.Secret`: masked in ``repr``, never pickled.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NoReturn

from smtpkit.auth import AccessToken, Secret
from smtpkit.auth._token import check_bearer_token
from smtpkit.errors import TokenRefreshError
from smtpkit.oauth._cache import utcnow

__all__ = ["StaticToken"]

_HINT = (
    "a StaticToken cannot be refreshed: obtain a new access token, or use a provider that "
    "refreshes (RefreshTokenProvider, microsoft_delegated, GoogleCredentialsProvider)"
)


class StaticToken:
    """Always the same access token (for scripts, tests, or tokens managed by other code).

    ::

        auth = XOAuth2Auth("alice@gmail.com", StaticToken("ya29.a0Af..."))

    Args:
        token: the access token.
        expires_at: its expiry (an aware datetime), if known.
        clock: returns the current aware UTC time.

    Raises:
        ConfigurationError: an empty token, one that is not a bearer token (whitespace, a
            line break, non-ASCII), or a naive ``expires_at``.
    """

    def __init__(
        self,
        token: str | Secret,
        expires_at: datetime | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._token = AccessToken(token, expires_at)
        # Checked now, not at the first login: the caller handed us this text.
        check_bearer_token(self._token.token.reveal())
        self._clock = clock

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        """The token.

        Raises:
            TokenRefreshError: (permanent) a refresh was asked for, or the token expired.
        """
        if force_refresh or rejected is not None:
            raise TokenRefreshError("the server refused the static access token", hint=_HINT)
        if self._token.expires_within(0, self._clock()):
            assert self._token.expires_at is not None
            raise TokenRefreshError(
                f"the static access token expired at {self._token.expires_at.isoformat()}",
                hint=_HINT,
            )
        return self._token

    def __repr__(self) -> str:
        expiry = self._token.expires_at
        return f"StaticToken('***', expires_at={expiry.isoformat() if expiry else None!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("StaticToken holds a token and is not picklable")

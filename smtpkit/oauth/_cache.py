"""``CachingTokenProvider``: the single-flight token cache every provider builds on.

Invariants:
    * Single flight: the cache lock is held across a refresh, so concurrent callers wait and
      then reuse its result. A caller passing ``rejected=`` refreshes only if that token is
      still the current one. Waiting for the lock is bounded by the refresh's own bound.
    * Nothing here retries: a failed refresh raises at once, and a permanent failure
      (``invalid_grant``, ``invalid_client``, ...) is remembered, so later calls raise it
      again without a request instead of hammering the endpoint (unless
      ``_retry_after_failure()`` says the credentials changed since).
    * Providers refuse to pickle (they hold credentials); copies are the same object.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NoReturn

from smtpkit.auth import AccessToken
from smtpkit.errors import TokenRefreshError

__all__ = ["LOCK_MARGIN", "REFRESH_SKEW", "CachingTokenProvider", "utcnow"]


#: Seconds before its expiry at which a cached token is refreshed anyway. A token that is
#: "still valid" when read can be expired when the server checks it: the clocks of this host
#: and the issuer differ (minutes on some VMs), and a kept connection may log in again later.
#: Five minutes covers that and google-auth's own 3m45s margin; Google's and Microsoft's
#: tokens live about an hour, so it costs little.
REFRESH_SKEW = 300.0

#: Seconds a caller waits for another thread's refresh beyond that refresh's own bound.
LOCK_MARGIN = 5.0


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


class CachingTokenProvider(abc.ABC):
    """Base for providers: caches the token, refreshes it once at a time (single flight).

    Subclasses implement :meth:`_refresh`. ``get_token()``::

        cached and not expiring within REFRESH_SKEW      -> the cached token, no request
        force_refresh=True                               -> one refresh
        rejected=<the cached token>                      -> one refresh
        rejected=<an older token> (someone refreshed)    -> the cached token, no request
        after a permanent failure                        -> that error again, no request

    Args:
        clock: returns the current aware UTC time (inject one in tests).
        refresh_bound: the most seconds one refresh can take; waiting threads give up
            after that plus :data:`LOCK_MARGIN` with a transient error.

    Attributes:
        refresh_count: how many refreshes were attempted (for tests and metrics).
    """

    def __init__(self, *, clock: Callable[[], datetime] = utcnow, refresh_bound: float) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._lock_wait = refresh_bound + LOCK_MARGIN
        self._failure: TokenRefreshError | None = None
        self.refresh_count = 0

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        """A valid access token, refreshed when needed (see the class docstring).

        Raises:
            TokenRefreshError: the refresh failed, or another thread's refresh did not
                finish in time (transient).
        """
        if not self._lock.acquire(timeout=self._lock_wait):
            raise TokenRefreshError(
                f"another thread's token refresh took longer than {self._lock_wait:.0f} s",
                transient=True,
                hint="the identity provider is slow or unreachable; try again later",
            )
        try:
            current = self._token
            if current is not None and not self._stale(current, force_refresh, rejected):
                return current
            if self._failure is not None:
                if not self._retry_after_failure():
                    raise _again(self._failure)
                self._failure = None
            self.refresh_count += 1
            try:
                token = self._refresh()
            except TokenRefreshError as error:
                if not error.is_transient:
                    # The grant is dead for this configuration: a new request cannot help.
                    self._failure = error
                raise
            self._token = token
            return token
        finally:
            self._lock.release()

    def _stale(
        self, current: AccessToken, force_refresh: bool, rejected: AccessToken | None
    ) -> bool:
        if rejected is not None:
            if current == rejected:
                return True
            # Another caller already replaced the refused token (single flight).
        elif force_refresh:
            return True
        return current.expires_within(REFRESH_SKEW, self._clock())

    @abc.abstractmethod
    def _refresh(self) -> AccessToken:
        """Obtain a new access token (called with the lock held)."""

    def _retry_after_failure(self) -> bool:
        """Whether a remembered permanent failure may be retried (called with the lock held).

        ``False`` here; a provider whose credentials can change underneath it (a shared
        token store that someone signed in to again) says when they did.
        """
        return False

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} holds credentials and is not picklable; build the "
            "provider from configuration in each process"
        )

    def __copy__(self) -> CachingTokenProvider:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> CachingTokenProvider:
        return self


def _again(error: TokenRefreshError) -> TokenRefreshError:
    """A fresh copy of a remembered permanent failure (no stale traceback attached)."""
    return TokenRefreshError(
        f"{error.message} (remembered; no new request was made)",
        transient=False,
        error_code=error.error_code,
        hint=error.hint,
    )

"""The device authorization grant (RFC 8628): sign in on another device, for headless hosts.

::

    POST /{tenant}/oauth2/v2.0/devicecode       client_id=...&scope=...
    200 {"device_code": "...", "user_code": "ABCD-EFGH",
         "verification_uri": "https://microsoft.com/devicelogin",
         "expires_in": 900, "interval": 5, "message": "To sign in, ..."}

    (the user opens the URI on any device and types the code; meanwhile, every interval:)
    POST /{tenant}/oauth2/v2.0/token
         grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=...&device_code=...
    400 {"error": "authorization_pending"}      keep polling
    400 {"error": "slow_down"}                  add 5 s to the interval (RFC 8628 §3.5)
    200 {"access_token": "...", "refresh_token": "...", "expires_in": 3599}

Invariants:
    * Polling is bounded by the server's ``expires_in`` and by a count derived from it, and
      never runs faster than the server's ``interval``. The sleep and the monotonic clock are
      injectable so tests need not wait.
    * The device code is a :class:`~smtpkit.auth.Secret`; only the user code and URI are
      meant to be shown.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import requests

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError, TokenRefreshError
from smtpkit.oauth._cache import utcnow
from smtpkit.oauth._http import (
    DEFAULT_TIMEOUT,
    HttpTimeout,
    TokenResponse,
    check_timeout,
    check_token_url,
    default_session,
    post_form,
    raise_for_oauth_error,
)
from smtpkit.oauth._microsoft import (
    MICROSOFT_AUTHORITY,
    MICROSOFT_DELEGATED_SCOPES,
    microsoft_token_url,
)

__all__ = ["DEVICE_CODE_GRANT", "DeviceAuthorization", "DeviceCodeFlow"]

#: RFC 8628 §3.4: the grant type of the polling requests.
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
DEFAULT_INTERVAL = 5.0
#: RFC 8628 §3.5: on ``slow_down`` the interval grows by 5 seconds for all later requests.
SLOW_DOWN_STEP = 5.0
#: The longest we wait for a sign-in even if the server allows longer (Microsoft: 15 min).
MAX_WAIT = 30 * 60.0


@dataclass(frozen=True)
class DeviceAuthorization:
    """The server's answer to the device authorization request (RFC 8628 §3.2).

    Attributes:
        device_code: the secret the client polls with.
        user_code: what the user types, e.g. ``"ABCD-EFGH"``.
        verification_uri: where the user types it.
        expires_in: seconds until the codes expire.
        interval: seconds to wait between polls.
        message: the provider's ready-made instruction text, if any.
    """

    device_code: Secret = field(repr=False)
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float
    message: str | None = None


class DeviceCodeFlow:
    """Run the device authorization grant against one identity provider.

    ::

        flow = DeviceCodeFlow.microsoft(CLIENT_ID, "contoso.onmicrosoft.com")
        authorization = flow.start()
        print(authorization.message)     # "To sign in, use a web browser to open ..."
        response = flow.poll(authorization)
        store.save(response.refresh_token.reveal())

    Args:
        device_url: the device authorization endpoint.
        token_url: the token endpoint.
        client_id: a public client's ID.
        scopes: the scopes to ask for (include ``offline_access`` for a refresh token).
        timeout: the HTTP timeout of each request.
        session: the ``requests.Session`` to use.
        sleep, monotonic: injectable time (tests).
        clock: the current aware UTC time (for the access token's expiry).
    """

    def __init__(
        self,
        device_url: str,
        token_url: str,
        client_id: str,
        *,
        scopes: Iterable[str] = (),
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._device_url = check_token_url(device_url)
        self._token_url = check_token_url(token_url)
        if not isinstance(client_id, str) or not client_id.strip():
            raise ConfigurationError("client_id must be a non-empty str")
        self._client_id = client_id
        self._scopes = tuple(scopes)
        self._timeout = check_timeout(timeout)
        self._session = session if session is not None else default_session(self._token_url)
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock

    @classmethod
    def microsoft(
        cls,
        client_id: str,
        tenant: str,
        *,
        scopes: Iterable[str] = MICROSOFT_DELEGATED_SCOPES,
        authority: str = MICROSOFT_AUTHORITY,
        timeout: HttpTimeout = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> DeviceCodeFlow:
        """The flow for Microsoft Entra ID: ``{authority}/{tenant}/oauth2/v2.0/devicecode``."""
        token_url = microsoft_token_url(tenant, authority)
        device_url = token_url.removesuffix("/token") + "/devicecode"
        return cls(
            device_url,
            token_url,
            client_id,
            scopes=scopes,
            timeout=timeout,
            session=session,
            sleep=sleep,
            monotonic=monotonic,
        )

    @property
    def token_url(self) -> str:
        """The token endpoint (store it with the refresh token)."""
        return self._token_url

    def start(self) -> DeviceAuthorization:
        """Ask for a device code and user code (RFC 8628 §3.1).

        Raises:
            TokenRefreshError: the server refused, or answered without the codes.
        """
        form = {"client_id": self._client_id}
        if self._scopes:
            form["scope"] = " ".join(self._scopes)
        endpoint = urllib.parse.urlsplit(self._device_url).netloc
        action = "start the device sign-in"
        status, data = post_form(
            self._session, self._device_url, form, timeout=self._timeout, action=action
        )
        raise_for_oauth_error(status, data, endpoint=endpoint, action=action)
        device_code = data.get("device_code")
        user_code = data.get("user_code")
        # RFC 8628 §3.2 says verification_uri; Microsoft's older endpoint said _url.
        uri = data.get("verification_uri") or data.get("verification_url")
        if not (isinstance(device_code, str) and isinstance(user_code, str) and device_code):
            raise TokenRefreshError(f"{endpoint} answered the device request without codes")
        message = data.get("message")
        return DeviceAuthorization(
            user_code=user_code,
            verification_uri=uri if isinstance(uri, str) else "",
            expires_in=_seconds(data.get("expires_in"), 900.0),
            interval=_seconds(data.get("interval"), DEFAULT_INTERVAL),
            message=message if isinstance(message, str) else None,
            device_code=Secret(device_code),
        )

    def poll(self, authorization: DeviceAuthorization) -> TokenResponse:
        """Poll the token endpoint until the user signs in (RFC 8628 §3.4, §3.5).

        Raises:
            TokenRefreshError: the user declined, the code expired (``error_code`` is
                ``"expired_token"``), or the server refused (permanent); network errors
                (transient).
        """
        endpoint = urllib.parse.urlsplit(self._token_url).netloc
        action = "complete the device sign-in"
        form = {
            "grant_type": DEVICE_CODE_GRANT,
            "client_id": self._client_id,
            "device_code": authorization.device_code.reveal(),
        }
        wait = min(authorization.expires_in, MAX_WAIT)
        deadline = self._monotonic() + wait
        interval = max(authorization.interval, 0.0)
        # A bound on the count too, in case the clock does not advance (a stubbed sleep).
        max_polls = math.ceil(wait / max(interval, 1.0)) + 1
        for _ in range(max_polls):
            self._sleep(interval)
            if self._monotonic() > deadline:
                break
            issued_at = self._clock()
            status, data = post_form(
                self._session, self._token_url, form, timeout=self._timeout, action=action
            )
            error = data.get("error")
            if status == 400 and error == "authorization_pending":
                continue
            if status == 400 and error == "slow_down":
                interval += SLOW_DOWN_STEP
                continue
            raise_for_oauth_error(
                status,
                data,
                endpoint=endpoint,
                action=action,
                secrets=[authorization.device_code.reveal()],
            )
            return TokenResponse.parse(data, issued_at, endpoint)
        raise TokenRefreshError(
            f"could not {action}: nobody signed in within {wait:.0f} s",
            error_code="expired_token",
            hint="run the command again and complete the sign-in before the code expires",
        )


def _seconds(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return default

"""One POST to an OAuth2 token endpoint, and the one place its failures become errors.

Every provider in this package talks to its token endpoint through :func:`post_form` and
:func:`raise_for_oauth_error`, so the mapping below holds everywhere:

================================================  ==========================================
what happened                                     error
================================================  ==========================================
connection refused/reset, DNS, TLS, timeout        transient :class:`TokenRefreshError`
HTTP 5xx or 429, ``temporarily_unavailable``       transient
``invalid_grant``, ``invalid_client``, ...        permanent, ``error_code`` set, with a hint
(RFC 6749 §5.2)
a 2xx answer that is not a token (no JSON,         permanent (usually a wrong ``token_url``)
no ``access_token``)
================================================  ==========================================

Invariants:
    * Every request has a finite ``(connect, read)`` timeout; nothing here retries.
    * Error messages quote only the ``error`` field and at most
      :data:`MAX_DESCRIPTION` characters of ``error_description``, with any secret of the
      request masked; never the response body, the form, or a ``requests`` exception (which
      holds the request and its body). Errors are raised outside ``except`` blocks so they
      carry no ``__context__`` pointing at such an exception.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

import requests

from smtpkit.auth import AccessToken, Secret
from smtpkit.config import is_loopback
from smtpkit.errors import ConfigurationError, TokenRefreshError

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_DESCRIPTION",
    "HttpTimeout",
    "TokenResponse",
    "check_timeout",
    "check_token_url",
    "default_session",
    "post_form",
    "raise_for_oauth_error",
    "token_error",
    "total_timeout",
]

#: A ``requests`` timeout: seconds for both phases, or ``(connect, read)``.
HttpTimeout = float | tuple[float, float]

#: Connect within 5 s (a token endpoint is a large, close CDN); 20 s for each read, since
#: identity providers occasionally take several seconds under load. Bounds one refresh.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 20.0)

#: How much of an ``error_description`` an error message quotes (Microsoft's AADSTS texts
#: carry a trace ID and timestamp after the useful first sentence).
MAX_DESCRIPTION = 200

#: A token response larger than this is not a token response (an HTML error page, say).
MAX_RESPONSE_BYTES = 256 * 1024

# OAuth2 error codes (RFC 6749 §5.2, RFC 8628 §3.5, Microsoft's AADSTS family) that no retry
# will fix, with what the user should check.
PERMANENT_HINTS = MappingProxyType(
    {
        "invalid_grant": (
            "the refresh token is no longer valid: the user revoked access or changed the "
            "password, a Google app in 'Testing' publishing status issues refresh tokens that "
            "expire after 7 days, a Microsoft refresh token expired (inactivity) or was "
            "rotated but the new one was not saved; run 'smtpkit oauth ...' again to get a "
            "new one"
        ),
        "invalid_client": (
            "the client ID or client secret is wrong, or the secret expired (Microsoft Entra "
            "client secrets expire; create a new one)"
        ),
        "unauthorized_client": (
            "this client is not allowed to use this grant: check the app registration "
            "(public client flows enabled for device code; the right application type)"
        ),
        "invalid_scope": (
            "the requested scope is not valid for this client: Gmail needs "
            "https://mail.google.com/, Microsoft 365 https://outlook.office.com/SMTP.Send "
            "(delegated) or https://outlook.office365.com/.default (app-only)"
        ),
        "unsupported_grant_type": "the token endpoint does not support this grant type",
        "invalid_request": "the token request was malformed: check token_url and client_id",
        "interaction_required": (
            "the user must sign in interactively (MFA or a Conditional Access policy): run "
            "'smtpkit oauth microsoft ...' again"
        ),
        "consent_required": "an administrator or the user must consent to the app's permissions",
        "access_denied": "the user or an administrator declined the request",
        "authorization_declined": "the user declined the sign-in request",
        "expired_token": "the device code expired before sign-in completed; start again",
        "bad_verification_code": "the device code was not recognised; start again",
    }
)

# Errors a token endpoint sends when it is the one in trouble (RFC 6749 §4.1.2.1).
TRANSIENT_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 §5.1), secrets wrapped.

    Attributes:
        access_token: the new access token and its expiry.
        refresh_token: a new refresh token, when the server rotated it (RFC 6749 §6).
        scope: the granted scope, when the server said.
    """

    access_token: AccessToken
    refresh_token: Secret | None
    scope: str | None

    @classmethod
    def parse(cls, data: Mapping[str, object], issued_at: datetime, endpoint: str) -> TokenResponse:
        """Parse a JSON token response; ``issued_at`` is when the request was sent.

        The expiry counts from the request, not the answer: conservative by the round trip.

        Raises:
            TokenRefreshError: no ``access_token`` (permanent).
        """
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenRefreshError(
                f"the token endpoint {endpoint} answered without an access_token",
                hint="check token_url: it should be the provider's OAuth2 token endpoint",
            )
        expires_at = None
        lifetime = _number(data.get("expires_in"))
        if lifetime is not None:
            expires_at = issued_at + timedelta(seconds=lifetime)
        refresh = data.get("refresh_token")
        scope = data.get("scope")
        return cls(
            access_token=AccessToken(token, expires_at),
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            scope=scope if isinstance(scope, str) else None,
        )


def _number(value: object) -> float | None:
    # RFC 6749 §5.1 says an integer; some servers (ADFS, older Azure AD v1) send a string.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def check_token_url(url: str) -> str:
    """Accept ``https://`` URLs, and ``http://`` only to a loopback host (tests, proxies).

    Raises:
        ConfigurationError: anything else (a token request carries secrets).
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"token_url must be a str, got {type(url).__name__}")
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host and is_loopback(host):
        return url
    raise ConfigurationError(
        f"token_url must be an https:// URL (http:// only to a loopback host), got {url!r}"
    )


def default_session(token_url: str) -> requests.Session:
    """The ``requests.Session`` a provider uses when none is given.

    It honours the environment (``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``), except
    for a loopback token URL (a local identity proxy, a test endpoint): no proxy can reach
    this host's loopback, so such a session ignores the environment (``trust_env=False``).
    """
    session = requests.Session()
    host = urllib.parse.urlsplit(token_url).hostname or ""
    if is_loopback(host):
        session.trust_env = False
    return session


def check_timeout(timeout: HttpTimeout) -> HttpTimeout:
    """Validate a ``requests`` timeout: positive and finite.

    Raises:
        ConfigurationError: otherwise (an unbounded refresh could hang a send forever).
    """
    parts = timeout if isinstance(timeout, tuple) else (timeout,)
    if len(parts) not in (1, 2) or not all(
        isinstance(p, int | float) and not isinstance(p, bool) and 0 < p < math.inf for p in parts
    ):
        raise ConfigurationError(
            f"timeout must be seconds > 0 or a (connect, read) pair, got {timeout!r}"
        )
    return timeout


def total_timeout(timeout: HttpTimeout) -> float:
    """Connect plus read time: the longest one request can take without data trickling."""
    return float(sum(timeout)) if isinstance(timeout, tuple) else 2.0 * timeout


def _mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _describe(data: Mapping[str, object], secrets: Iterable[str]) -> tuple[str | None, str]:
    error = data.get("error")
    code = error if isinstance(error, str) and error else None
    description = data.get("error_description")
    text = code or "unknown error"
    if isinstance(description, str) and description.strip():
        first = " ".join(description.split())
        if len(first) > MAX_DESCRIPTION:
            first = first[:MAX_DESCRIPTION] + "..."
        text = f"{text}: {_mask(first, secrets)}"
    return code, _mask(text, secrets)


def token_error(
    data: Mapping[str, object],
    *,
    action: str,
    where: str,
    transient: bool = False,
    secrets: Iterable[str] = (),
) -> TokenRefreshError:
    """Build the :class:`TokenRefreshError` for an OAuth2 error document (RFC 6749 §5.2).

    Args:
        data: the decoded error response (``error``, ``error_description``); may be empty.
        action: what was attempted, e.g. ``"refresh the access token"``.
        where: who answered, e.g. ``"oauth2.googleapis.com answered HTTP 400"``.
        transient: whether a retry later may succeed (also true for
            ``temporarily_unavailable`` and ``server_error``).
        secrets: values to mask if the server echoed them.

    Returns:
        The error (not raised): permanent errors carry ``error_code`` and a hint naming the
        usual causes.
    """
    code, text = _describe(data, secrets)
    transient = transient or code in TRANSIENT_ERRORS
    if transient:
        hint: str | None = "the identity provider is having trouble; try again in a few minutes"
    else:
        hint = PERMANENT_HINTS.get(code or "")
        if hint is None and not data:
            hint = "check token_url: the answer was not an OAuth2 JSON response"
    return TokenRefreshError(
        f"could not {action}: {where} ({text})",
        transient=transient,
        error_code=code,
        hint=hint,
    )


def raise_for_oauth_error(
    status: int,
    data: Mapping[str, object],
    *,
    endpoint: str,
    action: str,
    secrets: Iterable[str] = (),
) -> None:
    """Raise the :class:`TokenRefreshError` for an error response; return for a 2xx one.

    HTTP 5xx and 429 are transient; the rest as :func:`token_error` decides.
    """
    if 200 <= status < 300:
        return
    raise token_error(
        data,
        action=action,
        where=f"{endpoint} answered HTTP {status}",
        transient=status >= 500 or status == 429,
        secrets=secrets,
    )


def post_form(
    session: requests.Session,
    url: str,
    form: Mapping[str, str],
    *,
    timeout: HttpTimeout,
    action: str,
) -> tuple[int, dict[str, object]]:
    """POST ``form`` (``application/x-www-form-urlencoded``, RFC 6749 §4) and decode JSON.

    Returns:
        ``(status, body)``; ``body`` is ``{}`` when the answer was not a JSON object.

    Raises:
        TokenRefreshError: transient, for network errors and timeouts.
    """
    endpoint = urllib.parse.urlsplit(url).netloc
    failure: str | None = None
    try:
        response = session.post(
            url,
            data=dict(form),
            headers={"Accept": "application/json"},
            timeout=timeout,
            allow_redirects=False,  # a redirect would resend the secrets elsewhere
        )
        content = response.content
    except requests.Timeout:
        failure = f"no answer within the timeout ({timeout!r} s)"
    except requests.RequestException as error:
        # str(error) may quote the URL, never the body; the type name is enough to act on.
        failure = f"{type(error).__name__} while connecting"
    if failure is not None:
        raise TokenRefreshError(
            f"could not {action}: {endpoint}: {failure}",
            transient=True,
            hint="check the network path to the identity provider (proxy, firewall, DNS)",
        )
    data: dict[str, object] = {}
    if len(content) <= MAX_RESPONSE_BYTES:
        try:
            decoded = response.json()
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            data = decoded
    return response.status_code, data

"""The OAuth2 access token as a value, and the contract of what hands them out.

* :class:`AccessToken`: a bearer token (held in a :class:`~smtpkit.auth.Secret`) and its
  expiry as an aware UTC ``datetime`` (or ``None`` when unknown).
* :class:`TokenProvider`: anything that hands out access tokens and can be told to refresh.
  Providers that talk HTTP live in :mod:`smtpkit.oauth` and :mod:`smtpkit.integrations`.
* :func:`check_bearer_token`: the one check of a token's text before it goes on the wire.

The strategies that send a token (XOAUTH2, OAUTHBEARER) are in :mod:`smtpkit.auth._oauth`.

Invariants:
    * A token's text is never in a ``repr``, an error message or a pickle: ``repr`` shows
      ``'***'``, pickling raises ``TypeError``, and a token refused by
      :func:`check_bearer_token` is described, never quoted.
    * ``expires_at`` is aware and in UTC, or ``None``; equality compares the text in
      constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn, Protocol, runtime_checkable

from smtpkit.auth._base import Secret
from smtpkit.errors import ConfigurationError

__all__ = ["AccessToken", "TokenProvider", "check_bearer_token"]

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
# Real providers stay inside it (Google "ya29.…", Microsoft JWTs). Anything else - spaces,
# 0x01, CR/LF - would corrupt the SASL message, so it is refused before anything is sent.
# Used with fullmatch(): with match(), "$" also matches before a final "\n".
_BEARER_TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, eq=False)
class AccessToken:
    """An OAuth2 bearer token and when it expires.

    Args:
        token: the access token (a ``str`` is wrapped in a :class:`~smtpkit.auth.Secret`).
        expires_at: an aware ``datetime`` (converted to UTC), or ``None`` when the issuer
            gave no lifetime.

    Two tokens are equal when their text and expiry are equal. ``repr`` shows ``'***'``;
    pickling raises ``TypeError``.

    Raises:
        ConfigurationError: a token that is not text, an empty one, or a naive
            ``expires_at``.
    """

    token: Secret
    expires_at: datetime | None = None

    def __init__(self, token: str | Secret, expires_at: datetime | None = None) -> None:
        if not isinstance(token, str | Secret):
            raise ConfigurationError(
                f"an access token must be a str or a Secret, got {type(token).__name__}",
                hint="pass the access token text your OAuth2 library returned",
            )
        secret = token if isinstance(token, Secret) else Secret(token)
        if not secret.reveal():
            raise ConfigurationError("an access token must not be empty")
        if expires_at is not None:
            if not isinstance(expires_at, datetime) or expires_at.utcoffset() is None:
                raise ConfigurationError(
                    "expires_at must be an aware datetime (e.g. datetime.now(UTC)), not naive"
                )
            expires_at = expires_at.astimezone(UTC)
        object.__setattr__(self, "token", secret)
        object.__setattr__(self, "expires_at", expires_at)

    def expires_within(self, seconds: float, now: datetime) -> bool:
        """Whether the token expires within ``seconds`` of ``now`` (an aware datetime).

        A token without a known expiry never "expires within" anything: the server decides.
        """
        if self.expires_at is None:
            return False
        return self.expires_at - now <= timedelta(seconds=seconds)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AccessToken):
            return NotImplemented
        same = hmac.compare_digest(
            self.token.reveal().encode("utf-8"), other.token.reveal().encode("utf-8")
        )
        return same and self.expires_at == other.expires_at

    def __hash__(self) -> int:
        return hash((self.token.reveal(), self.expires_at))

    def __repr__(self) -> str:
        expiry = self.expires_at.isoformat() if self.expires_at else None
        return f"AccessToken(token='***', expires_at={expiry!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("access tokens are not picklable; ask the token provider in each process")


@runtime_checkable
class TokenProvider(Protocol):
    """Hands out OAuth2 access tokens; safe to share between threads.

    ``get_token()`` returns a cached token while it stays valid and refreshes it when it is
    about to expire. ``force_refresh=True`` refreshes regardless. ``rejected=`` names a token
    the server refused: the provider refreshes only if that is still its current token, and
    otherwise returns the current one (another caller already refreshed - "single flight").

    Raises:
        TokenRefreshError: no token could be obtained; ``.is_transient`` tells a network
            hiccup from a revoked grant.
    """

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        """A valid access token (see the class docstring)."""
        ...


def check_bearer_token(text: str) -> str:
    """``text`` if it is a bearer token (RFC 6750 §2.1 ``b64token``), else ConfigurationError.

    The error never quotes the token: it says what is wrong with it only.
    """
    if not isinstance(text, str) or not _BEARER_TOKEN_RE.fullmatch(text):
        raise ConfigurationError(
            "the access token holds characters a bearer token cannot contain (RFC 6750 §2.1): "
            "whitespace or a line break, 0x01, or non-ASCII",
            hint="pass the bare access token, without 'Bearer ' and without line breaks",
        )
    return text

"""Login errors: no way to log in, a refused login, a token that could not be had.

Three kinds, all about AUTH (RFC 4954) and its OAuth2 mechanisms (RFC 7628, XOAUTH2):

* found before anything is sent (configuration errors): AUTH would cross an
  unencrypted link, or no mechanism is common to both sides;
* the server refused the login (reply errors): :class:`AuthenticationError` and the
  class that says what to do about it, and ``AuthenticationRequired`` at ``MAIL``;
* an OAuth2 token could not be obtained (:class:`TokenRefreshError`), before any command.

:class:`CredentialKind` says what kind of secret was used; the hints differ by it.

Invariants:
    * Nothing here holds a credential: a refused token's challenge holds only the server's
      ``status``, ``schemes`` and ``scope``.
    * ``StoreLockTimeout`` is always transient; an ``AuthenticationError`` is transient
      exactly when its reply is (4xx), a ``TokenRefreshError`` when the token endpoint's
      answer was.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Unpack

from smtpkit.errors._base import SMTPError
from smtpkit.errors._local import ConfigurationError
from smtpkit.errors._reply import ReplyError, ReplyErrorOptions
from smtpkit.replies import Phase, Reply

__all__ = [
    "AppPasswordRequired",
    "AuthenticationError",
    "AuthenticationRequired",
    "BasicAuthDisabled",
    "CredentialKind",
    "EncryptionRequired",
    "InsecureAuthRefused",
    "InvalidCredentials",
    "MechanismUnsupported",
    "NoCommonMechanism",
    "StoreLockTimeout",
    "TokenRefreshError",
    "TokenRejected",
    "WebLoginRequired",
]


class CredentialKind(enum.Enum):
    """What kind of secret the client authenticated with; it changes the advice we give."""

    PASSWORD = "password"  # noqa: S105 - a kind of credential, not a credential
    APP_PASSWORD = "app_password"  # noqa: S105
    OAUTH2 = "oauth2"


class InsecureAuthRefused(ConfigurationError):
    """AUTH was about to be sent over an unencrypted link to a non-loopback host."""


# Mechanisms that carry an OAuth2 bearer token instead of a password.
_OAUTH_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER", "XOAUTH"})


class NoCommonMechanism(ConfigurationError):
    """The server offers no AUTH mechanism that the strategy can use.

    Raised before anything is sent, so it costs no login attempt.

    Attributes:
        offered: the mechanisms the server advertised, sorted (empty when it offered none).
        supported: the mechanisms the strategy would use, in its preference order.
        strategy: the strategy's class name.
    """

    def __init__(
        self,
        *,
        offered: Iterable[str],
        supported: Sequence[str],
        strategy: str,
        encrypted: bool,
        hint: str | None = None,
    ) -> None:
        self.offered: tuple[str, ...] = tuple(sorted(offered))
        self.supported: tuple[str, ...] = tuple(supported)
        self.strategy = strategy
        wanted = ", ".join(self.supported) or "nothing"
        if self.offered:
            message = (
                f"no AUTH mechanism in common: the server offers {' '.join(self.offered)}; "
                f"{strategy} supports {wanted}"
            )
        else:
            message = (
                f"the server advertised no AUTH mechanisms (no AUTH in its EHLO reply); "
                f"{strategy} supports {wanted}"
            )
        if hint is None:
            hint = _no_mechanism_hint(self.offered, encrypted)
        super().__init__(message, hint=hint)


def _no_mechanism_hint(offered: Sequence[str], encrypted: bool) -> str:
    if not offered and not encrypted:
        # Gmail, Microsoft 365 and most submission servers advertise AUTH only after TLS
        # (RFC 3207 §4.2: the client must discard what it learnt before STARTTLS).
        return "the server offers AUTH only after TLS; use Security.STARTTLS or Security.TLS"
    if not offered:
        return (
            "check the host and port: submission is port 587 (STARTTLS) or 465 (TLS); "
            "port 25 relays between servers and often offers no AUTH"
        )
    if set(offered) <= _OAUTH_MECHANISMS:
        return "this server accepts only OAuth2 here; use an OAuth2 strategy (docs/oauth.md)"
    return f"use a strategy for one of the offered mechanisms: {', '.join(offered)}"


class TokenRefreshError(SMTPError):
    """An OAuth2 access token could not be obtained or refreshed.

    Attributes:
        error_code: the token endpoint's OAuth2 error (``"invalid_grant"``), if any.
        challenge: when the refresh followed a token the SMTP server refused, the server's
            decoded JSON error challenge (``status``, ``schemes``, ``scope``); else empty.
    """

    def __init__(
        self,
        message: str = "",
        *,
        transient: bool = False,
        error_code: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
        challenge: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.transient = transient
        self.error_code = error_code
        self.challenge: dict[str, str] = dict(challenge or {})

    @property
    def is_transient(self) -> bool:
        return self.transient


class StoreLockTimeout(TokenRefreshError, TimeoutError):
    """Another thread or process held a token store's lock longer than the wait allowed.

    Always transient: the holder finishes (or dies, and the OS releases its lock).
    """

    def __init__(
        self,
        message: str = "",
        *,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, transient=True, hint=hint, transcript=transcript)


class AuthenticationError(ReplyError):
    """The server did not accept the login."""


class InvalidCredentials(AuthenticationError):
    """Username, password, app password or token not accepted."""


class AppPasswordRequired(AuthenticationError):
    """The account needs an app password (e.g. Gmail 534 5.7.9)."""


class WebLoginRequired(AuthenticationError):
    """The provider wants an interactive browser sign-in first (e.g. Gmail 534 5.7.14)."""


class BasicAuthDisabled(AuthenticationError):
    """Password (basic) authentication is turned off for the account or tenant."""


class MechanismUnsupported(AuthenticationError):
    """The server does not support the AUTH mechanism used (504 5.7.4 and friends)."""


class EncryptionRequired(AuthenticationError):
    """The server wants TLS before AUTH (530 5.7.0 Must issue a STARTTLS command first)."""


class TokenRejected(AuthenticationError):
    """An OAuth2 token was refused even after a refresh.

    Attributes:
        status, schemes, scope: decoded from the server's JSON challenge, when sent.
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        challenge: Mapping[str, str] | None = None,
        **options: Unpack[ReplyErrorOptions],
    ) -> None:
        super().__init__(reply, phase, **options)
        self.challenge: dict[str, str] = dict(challenge or {})

    @property
    def status(self) -> str | None:
        """The ``status`` field of the server's JSON challenge (e.g. ``"400"``)."""
        return self.challenge.get("status")

    @property
    def scope(self) -> str | None:
        """The ``scope`` field of the server's JSON challenge."""
        return self.challenge.get("scope")

    @property
    def schemes(self) -> str | None:
        """The ``schemes`` field of the server's JSON challenge."""
        return self.challenge.get("schemes")


class AuthenticationRequired(ReplyError):
    """The server wants the client to log in before sending (530 5.7.0 at MAIL)."""

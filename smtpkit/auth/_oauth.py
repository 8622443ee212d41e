"""OAuth2 for SMTP AUTH: the two strategies that log in with an access token.

The token value (:class:`~smtpkit.auth.AccessToken`) and the provider contract
(:class:`~smtpkit.auth.TokenProvider`) are in :mod:`smtpkit.auth._token`.

* :class:`XOAuth2Auth` (Google's and Microsoft's ``XOAUTH2``) and :class:`OAuthBearerAuth`
  (RFC 7628 ``OAUTHBEARER``).
* :class:`TokenAuthStrategy`: the protocol a driver uses to recognise token strategies.

Strategies here do no I/O, and obtaining a token is I/O, so the driver does it: it asks the
strategy's provider for a token and then runs :meth:`XOAuth2Auth.token_flow` with it::

    token = strategy.token_provider.get_token()
    flow = strategy.token_flow(context, token)      # then drive it like any AuthFlow

A token strategy's plain ``flow(context)`` raises :class:`~smtpkit.errors.LocalProtocolError`
on its first ``next()``: without a token there is nothing to send.

When the server refuses the token, the driver asks for exactly one forced refresh, passing the
refused token as ``rejected=`` (so that when many threads share one provider, only the first
refreshes and the others reuse its result), and tries AUTH once more.

Invariants:
    * The initial response goes on the ``AUTH`` line only if that line fits in 512 octets
      including CRLF; otherwise it follows the server's bare ``334`` (RFC 4954 §4), which is
      also the exchange Microsoft documents.
    * A ``334`` after the client's response is an error challenge (Gmail sends base64 JSON):
      XOAUTH2 answers it with an empty line, OAUTHBEARER with ``AQ==`` (a single 0x01,
      RFC 7628 §3.2.3), and the flow returns the decoded JSON (``status``, ``schemes``,
      ``scope``) once the final reply arrives. Nothing is retried here.
    * Every command the flows yield is redacted in transcripts (``AUTH XOAUTH2 ****``);
      tokens never appear in ``repr``, errors or pickles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from smtpkit.auth._base import (
    AuthContext,
    AuthFlow,
    AuthStrategy,
    SaslExchange,
    Secret,
    b64decode_challenge,
)
from smtpkit.auth._sasl import SaslMechanismStrategy
from smtpkit.auth._token import AccessToken, TokenProvider, check_bearer_token
from smtpkit.errors import (
    ConfigurationError,
    CredentialKind,
    LocalProtocolError,
    RemoteProtocolError,
)
from smtpkit.replies import Reply

__all__ = [
    "OAuthBearerAuth",
    "TokenAuthStrategy",
    "XOAuth2Auth",
    "decode_error_challenge",
]

# The JSON fields of an OAuth2 error challenge that we keep (RFC 7628 §3.2.2).
_CHALLENGE_FIELDS = ("status", "schemes", "scope")
# A challenge longer than this is not an OAuth2 error document; do not try to parse it.
_MAX_CHALLENGE = 4096


@runtime_checkable
class TokenAuthStrategy(AuthStrategy, Protocol):
    """An :class:`~smtpkit.auth.AuthStrategy` that logs in with an OAuth2 access token.

    Drivers detect it with ``isinstance(strategy, TokenAuthStrategy)``, obtain a token from
    :attr:`token_provider` and run :meth:`token_flow` instead of ``flow``.
    """

    @property
    def token_provider(self) -> TokenProvider:
        """Where the access tokens come from."""
        ...

    def token_flow(self, context: AuthContext, token: AccessToken) -> AuthFlow:
        """The AUTH exchange for ``token``; returns the decoded error challenge on failure."""
        ...


def decode_error_challenge(challenges: Sequence[Reply]) -> dict[str, str] | None:
    """The OAuth2 error document from the ``334`` challenges of a failed exchange.

    Gmail sends (RFC 7628 §3.2.2 defines the same fields for OAUTHBEARER)::

        S: 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21h...

    which decodes to ``{"status": "400", "schemes": "Bearer", "scope":
    "https://mail.google.com/"}``. The last challenge that is a JSON object wins; only
    ``status``, ``schemes`` and ``scope`` are kept, as strings. Returns ``None`` when no
    challenge holds such a document (Microsoft fails with a plain ``535 5.7.3``).
    """
    for reply in reversed(challenges):
        if reply.code != 334:
            continue
        try:
            raw = b64decode_challenge(reply)
        except RemoteProtocolError:
            continue  # not base64: not an error document either
        if not raw or len(raw) > _MAX_CHALLENGE:
            continue
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(document, dict):
            continue
        return {
            key: str(document[key])
            for key in _CHALLENGE_FIELDS
            if key in document and document[key] is not None
        }
    return None


def _check_token(token: AccessToken) -> str:
    if not isinstance(token, AccessToken):
        raise ConfigurationError(f"expected an AccessToken, got {type(token).__name__}")
    return check_bearer_token(token.token.reveal())


class _OAuthStrategy(SaslMechanismStrategy):
    """Shared machinery of the two OAuth2 strategies: provider, token flow, error decoding."""

    credential_kind = CredentialKind.OAUTH2

    def __init__(self, username: str, token_provider: TokenProvider) -> None:
        super().__init__(username)
        if not isinstance(token_provider, TokenProvider):
            raise ConfigurationError(
                f"token_provider must have a get_token() method (a TokenProvider), got "
                f"{type(token_provider).__name__}",
                hint="e.g. smtpkit.oauth.StaticToken(token) or smtpkit.oauth.RefreshTokenProvider",
            )
        self._token_provider = token_provider

    @property
    def token_provider(self) -> TokenProvider:
        """Where the access tokens come from."""
        return self._token_provider

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        """Not usable without a token: raises :class:`~smtpkit.errors.LocalProtocolError`."""
        raise LocalProtocolError(
            f"{type(self).__name__} needs an access token: the driver must call "
            "token_flow(context, strategy.token_provider.get_token()) instead of flow(context)"
        )

    def token_flow(self, context: AuthContext, token: AccessToken) -> AuthFlow:
        """The AUTH exchange with ``token`` (see the class docstring for the transcripts).

        Returns (as the generator's return value) ``None`` on success, else the decoded JSON
        error challenge (``status``, ``schemes``, ``scope``) or ``None`` when there was none.

        Raises:
            NoCommonMechanism: on the first ``next()``, when the server does not offer it.
            ConfigurationError: on the first ``next()``, for a malformed token.
        """
        # Checked here, on the first next(), so errors name this strategy, not the helper.
        self.choose_mechanism(context)
        text = _check_token(token)
        return (yield from _BoundExchange(self, text).flow(context))

    def _message(self, mechanism: str, context: AuthContext, token: str) -> str:
        raise NotImplementedError  # pragma: no cover - each subclass defines its message

    #: What the client sends to an error challenge (RFC 7628 §3.2.3 for OAUTHBEARER).
    error_answer: str = ""

    def failure_details(
        self, reply: Reply, challenges: tuple[Reply, ...]
    ) -> Mapping[str, str] | None:
        """The decoded JSON error challenge, if the server sent one."""
        return decode_error_challenge(challenges)

    def __repr__(self) -> str:
        provider = type(self._token_provider).__name__
        return f"{type(self).__name__}(username={self.username!r}, token_provider={provider})"


class _BoundExchange(SaslMechanismStrategy):
    """One exchange of an OAuth2 strategy with one token (lives for one ``token_flow``)."""

    mechanisms = ("XOAUTH2", "OAUTHBEARER")
    credential_kind = CredentialKind.OAUTH2

    def __init__(self, owner: _OAuthStrategy, token: str) -> None:
        super().__init__(owner.username, mechanisms=owner.mechanisms)
        self._owner = owner
        self._token = Secret(token)

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        owner = self._owner
        # The initial response; the base class moves it after a bare 334 when the AUTH line
        # would exceed 512 octets (RFC 4954 §4).
        yield owner._message(mechanism, context, self._token.reveal())
        # Any 334 now is an error challenge: answer it so the server sends its final reply.
        yield owner.error_answer

    def failure_details(
        self, reply: Reply, challenges: tuple[Reply, ...]
    ) -> Mapping[str, str] | None:
        return self._owner.failure_details(reply, challenges)


class XOAuth2Auth(_OAuthStrategy):
    """Log in with an OAuth2 access token using ``XOAUTH2`` (Google, Microsoft, Yahoo, ...).

    The message is ``user=<addr>\\x01auth=Bearer <token>\\x01\\x01``, base64-encoded. A short
    (Google-sized) token goes on the AUTH line::

        C: AUTH XOAUTH2 dXNlcj1hbGljZUBnbWFpbC5jb20BYXV0aD1CZWFyZXIgeWEyOS52ZjlkZnQ0cWoBAQ==
        S: 235 2.7.0 Accepted

    A long one (Microsoft's JWTs) follows the server's bare ``334`` (RFC 4954 §4)::

        C: AUTH XOAUTH2
        S: 334
        C: dXNlcj1ib2JAY29udG9zby5jb20BYXV0aD1CZWFyZXIgZXlKMGVYQWlPaUpLVjFRaUxDSn...
        S: 235 2.7.0 Authentication successful

    A refused token at Gmail: a JSON error challenge, an empty answer, the final reply::

        C: AUTH XOAUTH2 dXNlcj1hbGljZUBnbWFpbC5jb20BYXV0aD1CZWFyZXIgeWEyOS5leHBpcmVkAQE=
        S: 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21h...
        C:
        S: 535-5.7.8 Username and Password not accepted. Learn more at
        S: 535 5.7.8  https://support.google.com/mail/?p=BadCredentials ... - gsmtp

    Args:
        username: the mailbox address the token was issued for.
        token_provider: where tokens come from, e.g. :class:`smtpkit.oauth.StaticToken`.

    Raises:
        ConfigurationError: an empty username or one with NUL, or no provider.
    """

    mechanisms = ("XOAUTH2",)

    def _message(self, mechanism: str, context: AuthContext, token: str) -> str:
        # Google's and Microsoft's documented XOAUTH2 format (no RFC): key=value pairs
        # separated by 0x01, the whole ended by two 0x01.
        return f"user={self.username}\x01auth=Bearer {token}\x01\x01"


class OAuthBearerAuth(_OAuthStrategy):
    """Log in with an OAuth2 access token using ``OAUTHBEARER`` (RFC 7628).

    The message (RFC 7628 §3.1) is a GS2 header naming the user, then the server's host and
    port and the token, separated by 0x01::

        n,a=alice@gmail.com,\\x01host=smtp.gmail.com\\x01port=587\\x01auth=Bearer ya29...\\x01\\x01

    ::

        C: AUTH OAUTHBEARER bixhPWFsaWNlQGdtYWlsLmNvbSwBaG9zdD1zbXRwLmdtYWlsLmNvbQFwb3J0PTU4...
        S: 235 2.7.0 Accepted

    A refused token: the server's JSON error challenge is answered with ``AQ==`` (a single
    0x01, RFC 7628 §3.2.3) and the server sends its final failure::

        C: AUTH OAUTHBEARER bixhPWFsaWNl...
        S: 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOi...
        C: AQ==
        S: 535 5.7.8 Username and Password not accepted.

    Args:
        username: the mailbox address (sent as the GS2 authorization identity).
        token_provider: where tokens come from.

    Raises:
        ConfigurationError: an empty username or one with NUL, or no provider.
    """

    mechanisms = ("OAUTHBEARER",)
    error_answer = "\x01"

    def _message(self, mechanism: str, context: AuthContext, token: str) -> str:
        # RFC 5801 §4: in a saslname, "," is written "=2C" and "=" is written "=3D".
        authzid = self.username.replace("=", "=3D").replace(",", "=2C")
        host = context.host.strip("[]")  # RFC 7628 §3.1: the host name, without brackets
        fields = f"host={host}\x01port={context.port}\x01auth=Bearer {token}"
        return f"n,a={authzid},\x01{fields}\x01\x01"

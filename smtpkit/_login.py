"""Logging in on a negotiated session: the AUTH exchange and OAuth2's retry-once rule.

The session hands this module a narrow channel (:class:`LoginChannel`): send a command and
read its reply, close politely, and build errors. Keeping the login rules here keeps them
readable on their own and testable through any channel.

Invariants:
    * AUTH is never sent over plaintext to a peer address that is not loopback unless the
      settings opt in; the host name is never what decides.
    * One login attempt per strategy, except OAuth2: when the server refuses a token, the
      provider is asked for exactly one forced refresh (single flight through
      ``rejected=``) and AUTH runs once more, on a new connection if the server hung up.
    * Every failure closes the session (QUIT when it is still open) before raising, and
      carries the session's redacted transcript, a failed token refresh included (with the
      server's refusal and decoded challenge when a refused token caused it).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

from smtpkit.auth import AuthContext, AuthFlow, AuthStrategy, TokenAuthStrategy, drive_flow
from smtpkit.errors import (
    InsecureAuthRefused,
    RemoteProtocolError,
    SMTPError,
    TokenRefreshError,
    TokenRejected,
    error_for_reply,
)
from smtpkit.protocol import Command, Extensions
from smtpkit.replies import Phase, Reply
from smtpkit.transports import is_loopback_peer

__all__ = ["LoginChannel", "ReconnectForToken", "log_in"]

logger = logging.getLogger("smtpkit")

E = TypeVar("E", bound=SMTPError)


class ReconnectForToken(Exception):
    """The server closed the connection after refusing a token; log in on a new one."""


class LoginChannel(Protocol):
    """What logging in needs from a session."""

    @property
    def alive(self) -> bool: ...

    @property
    def encrypted(self) -> bool: ...

    @property
    def peer_address(self) -> str | None: ...

    @property
    def extensions(self) -> Extensions: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def transcript(self) -> tuple[str, ...]: ...

    def exchange(self, command: Command) -> Reply: ...

    def quit(self) -> None: ...

    def unexpected(self, reply: Reply, command: str) -> RemoteProtocolError: ...

    def enrich(self, error: E) -> E: ...


def log_in(
    channel: LoginChannel,
    strategy: AuthStrategy,
    *,
    host: str,
    port: int,
    allow_unencrypted_auth: bool,
    token_retry: bool,
) -> datetime | None:
    """Run AUTH with ``strategy``; return when the login expires (an OAuth2 token), if known.

    Transcript (AUTH PLAIN)::

        C: AUTH PLAIN ****
        S: 235 2.7.0 Accepted

    Raises:
        InsecureAuthRefused: the connection is plaintext and its peer address is not
            loopback (the host name does not count: ``evil.localhost`` may resolve anywhere).
        AuthenticationError (and subclasses), TokenRefreshError, ...: the login failed.
        ReconnectForToken: a refused token was refreshed but the server hung up.
    """
    peer = channel.peer_address
    if not (channel.encrypted or is_loopback_peer(peer) or allow_unencrypted_auth):
        channel.quit()
        reached = f" ({peer})" if peer and peer != host.strip("[]") else ""
        raise InsecureAuthRefused(
            f"refusing to send credentials to {host}{reached} over an unencrypted "
            "connection to an address that is not loopback",
            hint=(
                "use Security.STARTTLS or Security.TLS; pass allow_unencrypted_auth=True "
                "only for a trusted network"
            ),
        )
    context = AuthContext(
        mechanisms=channel.extensions.auth_mechanisms,
        host=host,
        port=port,
        encrypted=channel.encrypted,
    )
    if isinstance(strategy, TokenAuthStrategy):
        return _token_login(channel, strategy, context, token_retry=token_retry)
    reply, details = _run_flow(channel, lambda: strategy.flow(context))
    if reply.code != 235:
        channel.quit()
        raise _auth_error(channel, strategy, context, reply, details)
    logger.debug("authenticated to %s as %s", host, strategy.username)
    return None


def _token_login(
    channel: LoginChannel,
    strategy: TokenAuthStrategy,
    context: AuthContext,
    *,
    token_retry: bool,
) -> datetime | None:
    """AUTH with an OAuth2 token: on rejection, one forced refresh and one more try.

    The provider refreshes a token that expires soon by itself. When the server refuses a
    token the provider still believed valid (revoked, or Gmail ending it early), the
    provider is asked for exactly one forced refresh and AUTH runs once more.
    """
    provider = strategy.token_provider
    try:
        token = provider.get_token()
    except SMTPError as failure:
        channel.quit()
        raise _with_evidence(failure, channel) from failure.__cause__
    reply, details = _run_flow(channel, lambda: strategy.token_flow(context, token))
    if reply.code == 235:
        return token.expires_at
    error = _auth_error(channel, strategy, context, reply, details)
    if not (token_retry and isinstance(error, TokenRejected)):
        channel.quit()
        raise error
    logger.info("the server refused the OAuth2 token; refreshing it once and retrying")
    try:
        fresh = provider.get_token(force_refresh=True, rejected=token)
    except SMTPError as failure:
        channel.quit()
        raise _with_evidence(failure, channel, reply, details) from failure.__cause__
    if not channel.alive:
        raise ReconnectForToken()
    reply, details = _run_flow(channel, lambda: strategy.token_flow(context, fresh))
    if reply.code == 235:
        return fresh.expires_at
    channel.quit()
    raise _auth_error(channel, strategy, context, reply, details)


def _with_evidence(
    failure: E,
    channel: LoginChannel,
    refusal: Reply | None = None,
    details: Mapping[str, str] | None = None,
) -> E:
    """``failure`` (from the token provider) with this session's evidence attached.

    The transcript shows what the server said; after a refused token, the error also keeps
    the server's refusal (in its message) and its decoded JSON challenge (``challenge``), so
    a revoked grant can be told from a token issued for the wrong user or scope. A copy is
    returned: a provider may remember one error and raise it again to other callers.
    """
    evidence = copy.copy(failure)
    evidence.attach_transcript(channel.transcript)
    if refusal is not None and isinstance(evidence, TokenRefreshError):
        evidence.challenge = dict(details or {})
        evidence.message = f"{failure.message} (after AUTH was refused: {refusal})"
        evidence.args = (evidence.message,)
    return evidence


def _run_flow(
    channel: LoginChannel, start: Callable[[], AuthFlow]
) -> tuple[Reply, Mapping[str, str] | None]:
    """Drive an AUTH flow to its final reply (RFC 4954 §4); close the session on failure."""
    try:
        return drive_flow(start(), channel.exchange)
    except SMTPError:
        channel.quit()
        raise


def _auth_error(
    channel: LoginChannel,
    strategy: AuthStrategy,
    context: AuthContext,
    reply: Reply,
    details: Mapping[str, str] | None,
) -> SMTPError:
    command = f"AUTH {strategy.choose_mechanism(context)}"
    if reply.is_positive:
        return channel.unexpected(reply, command)
    error = error_for_reply(
        reply,
        Phase.AUTH,
        command=command,
        provider=channel.provider,
        credential_kind=strategy.credential_kind,
        challenge=details,
        transcript=channel.transcript,
    )
    return channel.enrich(error)

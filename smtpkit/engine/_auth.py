"""Logging in on a negotiated link: AUTH through the strategies, and OAuth2's retry-once rule.

The strategies (:mod:`smtpkit.auth`) are already I/O-free generators of commands; this
module drives them over the link's steps, fetches tokens through the ``FetchToken`` effect,
and turns the final reply into a typed error through the one reply table.

Invariants:
    * AUTH is never sent over plaintext unless the *peer the driver connected to* is a
      loopback address (not the configured host name: ``evil.localhost`` is not loopback)
      or the settings opt in.
    * One login attempt per strategy, except OAuth2: when the server refuses a token, the
      provider is asked for exactly one forced refresh (``rejected=`` the refused token, so
      concurrent connections share one refresh) and AUTH runs once more - on a new
      connection (:class:`Reconnect`) when the server hung up after refusing.
    * A flow stopped on a ``334`` is cancelled with ``*`` (RFC 4954 §4) so the server sends
      a final reply.
    * Every failure ends the link (QUIT when it is still usable) before raising.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TypeVar

from smtpkit.auth import (
    AccessToken,
    AuthContext,
    AuthFlow,
    AuthStrategy,
    TokenAuthStrategy,
    flow_exchanges,
)
from smtpkit.config import is_loopback_peer as peer_is_loopback
from smtpkit.engine._effects import FetchToken, Log, LogLevel, Steps
from smtpkit.engine._link import Link
from smtpkit.errors import (
    InsecureAuthRefused,
    LocalProtocolError,
    ServerDisconnected,
    SMTPError,
    TokenRefreshError,
    TokenRejected,
    error_for_reply,
)
from smtpkit.replies import Phase, Reply

__all__ = ["Reconnect", "authenticate", "peer_is_loopback"]

E = TypeVar("E", bound=SMTPError)


class Reconnect(Exception):
    """The server hung up after refusing a token: log in on a new connection with ``token``."""

    def __init__(self, token: AccessToken) -> None:
        super().__init__("reconnect with a refreshed token")
        self.token = token


def authenticate(
    link: Link, strategy: AuthStrategy, *, token: AccessToken | None, token_retry: bool
) -> Steps[None]:
    """Run AUTH with ``strategy``; sets ``link.auth_expires_at`` for an OAuth2 login.

    Transcript (AUTH PLAIN)::

        C: AUTH PLAIN ****
        S: 235 2.7.0 Accepted

    Args:
        token: a token to log in with (after a reconnect), instead of asking the provider.
        token_retry: whether a refused token may be refreshed and tried once more.

    Raises:
        InsecureAuthRefused: plaintext to a peer that is not loopback, without the opt-in.
        AuthenticationError (and subclasses), TokenRefreshError, ...: the login failed.
        Reconnect: a refused token was refreshed but the server hung up.
    """
    settings = link.settings
    if not (link.encrypted or peer_is_loopback(link.peer) or settings.allow_unencrypted_auth):
        yield from link.quit()
        peer = link.peer
        reached = f" ({peer})" if peer and peer != settings.server_hostname else ""
        raise InsecureAuthRefused(
            f"refusing to send credentials to {settings.host}{reached} over an unencrypted "
            "connection to an address that is not loopback",
            hint=(
                "use Security.STARTTLS or Security.TLS; pass allow_unencrypted_auth=True "
                "only for a trusted network"
            ),
        )
    context = AuthContext(
        mechanisms=link.extensions.auth_mechanisms,
        host=settings.host,
        port=settings.port,
        encrypted=link.encrypted,
    )
    if isinstance(strategy, TokenAuthStrategy):
        yield from _token_login(link, strategy, context, token=token, token_retry=token_retry)
        return
    reply, details = yield from _attempt(link, strategy.flow(context))
    if reply.code != 235:
        yield from link.quit()
        raise _auth_error(link, strategy, context, reply, details)
    yield Log(LogLevel.DEBUG, f"authenticated to {settings.host} as {strategy.username}")


def _token_login(
    link: Link,
    strategy: TokenAuthStrategy,
    context: AuthContext,
    *,
    token: AccessToken | None,
    token_retry: bool,
) -> Steps[None]:
    provider = strategy.token_provider
    if token is None:
        token = yield from _fetch(link, FetchToken(provider))
    reply, details = yield from _attempt(link, strategy.token_flow(context, token))
    if reply.code == 235:
        link.auth_expires_at = token.expires_at
        return
    refused = _auth_error(link, strategy, context, reply, details)
    if not (token_retry and isinstance(refused, TokenRejected)):
        yield from link.quit()
        raise refused
    yield Log(LogLevel.INFO, "the server refused the OAuth2 token; refreshing it once and retrying")
    fresh = yield from _fetch(link, FetchToken(provider, True, token), reply, details)
    if not link.alive:
        raise Reconnect(fresh)
    try:
        reply, details = yield from _attempt(link, strategy.token_flow(context, fresh))
    except ServerDisconnected as lost:
        # It hung up after refusing (without a 421): the fresh token goes to a new connection.
        raise Reconnect(fresh) from lost
    if reply.code == 235:
        link.auth_expires_at = fresh.expires_at
        return
    yield from link.quit()
    raise _auth_error(link, strategy, context, reply, details)


def _fetch(
    link: Link,
    effect: FetchToken,
    refusal: Reply | None = None,
    details: Mapping[str, str] | None = None,
) -> Steps[AccessToken]:
    try:
        token = yield effect
    except SMTPError as failure:
        yield from link.quit()
        raise _with_evidence(failure, link, refusal, details) from failure.__cause__
    if not isinstance(token, AccessToken):
        yield from link.quit()
        raise LocalProtocolError(f"FetchToken was answered with {type(token).__name__}")
    return token


def _with_evidence(
    failure: E, link: Link, refusal: Reply | None, details: Mapping[str, str] | None
) -> E:
    """A copy of the provider's ``failure`` with this connection's evidence attached.

    The transcript shows what the server said; after a refused token the error also keeps
    the refusal (in its message) and the decoded JSON challenge (``challenge``), which tell
    a revoked grant from a token for the wrong user or scope. A copy: a provider may
    remember one error and raise it to every caller, each with its own conversation.
    """
    evidence = copy.copy(failure)
    evidence.attach_transcript(link.transcript)
    if refusal is not None and isinstance(evidence, TokenRefreshError):
        evidence.challenge = dict(details or {})
        evidence.message = f"{failure.message} (after AUTH was refused: {refusal})"
        evidence.args = (evidence.message,)
    return evidence


def _attempt(link: Link, flow: AuthFlow) -> Steps[tuple[Reply, Mapping[str, str] | None]]:
    """One AUTH exchange; on any failure the link ends (QUIT if still usable)."""
    try:
        return (yield from run_flow(link, flow))
    except SMTPError:
        yield from link.quit()
        raise


def run_flow(link: Link, flow: AuthFlow) -> Steps[tuple[Reply, Mapping[str, str] | None]]:
    """Drive an AUTH flow to its final reply over the link (RFC 4954 §4).

    The rules (the cancel with ``*`` included) are :func:`smtpkit.auth.flow_exchanges`'s,
    the same ones :func:`smtpkit.auth.drive_flow` follows; each exchange is the link's
    step. Secrets the server echoes are already masked by the protocol core (the commands
    declare them in ``Command.secrets``).

    Raises:
        SMTPError: what the flow raises (``NoCommonMechanism`` before anything is sent) and
            what the link's steps raise.
    """
    return (yield from flow_exchanges(flow, link.exchange))


def _auth_error(
    link: Link,
    strategy: AuthStrategy,
    context: AuthContext,
    reply: Reply,
    details: Mapping[str, str] | None,
) -> SMTPError:
    command = f"AUTH {strategy.choose_mechanism(context)}"
    if reply.is_positive:
        return link.unexpected(reply, command)
    error = error_for_reply(
        reply,
        Phase.AUTH,
        command=command,
        provider=link.provider,
        credential_kind=strategy.credential_kind,
        challenge=details,
        transcript=link.transcript,
    )
    return link.enrich(error)

"""The aiosmtpd handler behind :class:`~smtpkit.testing.LocalServer`: hooks and SASL checks.

aiosmtpd calls the ``handle_*`` hooks for EHLO/HELO, RSET, NOOP, QUIT and the end of DATA,
and ``auth_<MECHANISM>`` methods for custom mechanisms; each hook lets the protocol
(:class:`~smtpkit.testing._server_protocol.LocalSMTP`) decide the reply against the test's
script. Everything here runs on the server's event-loop thread and talks to the test
thread only through :class:`~smtpkit.testing._server_state.ServerState`.

Invariants:
    * Attribute names on :class:`Handler` starting with ``handle_`` or ``auth_`` are hooks:
      aiosmtpd discovers them by prefix (``auth_FOO`` becomes mechanism ``FOO``), so no other
      attribute may use those prefixes.
    * A failed AUTH always ends with a reply: an authenticator that returns
      ``AuthResult(success=False)`` with ``handled`` left ``True`` would leave the client
      waiting forever.
    * Secrets are compared in constant time and never logged or stored.
    * A completed exchange leaves its verdict on the session (``auth_verdict``); the
      protocol records the attempt when the final reply goes out, so a scripted ``"auth"``
      reply decides the outcome, as on the fake.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from smtpkit.replies import Phase
from smtpkit.testing._record import AuthAttempt
from smtpkit.testing._server_sasl import (
    OAUTH_ERROR_CHALLENGE,
    OAUTH_FAILURE_REPLY,
    OAuthResponse,
    parse_oauthbearer,
    parse_xoauth2,
)
from smtpkit.testing._server_state import ServerState

if TYPE_CHECKING:
    from smtpkit.testing._server_protocol import LocalSMTP

__all__ = [
    "AUTH_REQUIRED_REPLY",
    "Handler",
    "Identity",
    "LocalSession",
    "TokenCheck",
    "drop_connection",
]

#: RFC 4954 §6: the reply to MAIL when the server requires AUTH first.
AUTH_REQUIRED_REPLY = "530 5.7.0 Authentication required"

#: A validator ``(user, token) -> bool`` or a mapping of user to the currently valid token.
TokenCheck = Callable[[str, str], bool] | Mapping[str, str]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class LocalSession(Session):
    """aiosmtpd's session, quiet about ``login_data``, carrying the last AUTH verdict."""

    def __init__(self, loop: Any) -> None:
        super().__init__(loop)
        #: The verdict of an AUTH exchange whose final reply is not sent yet.
        self.auth_verdict: AuthAttempt | None = None

    @property
    def login_data(self) -> Any:
        # aiosmtpd's own property logs a deprecation warning on every AUTH.
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class Identity:
    """What a successful AUTH stores on the aiosmtpd session."""

    __slots__ = ("mechanism", "user")

    def __init__(self, user: str, mechanism: str) -> None:
        self.user = user
        self.mechanism = mechanism

    @property
    def login(self) -> bytes:
        # aiosmtpd copies ``auth_data.login`` into the (deprecated) ``session.login_data``.
        return self.user.encode("utf-8")


def _verdict(session: Session, attempt: AuthAttempt) -> None:
    if isinstance(session, LocalSession):
        session.auth_verdict = attempt


class Handler:
    """aiosmtpd hooks that adjust EHLO, check credentials and let the protocol decide replies.

    Args:
        state: the shared state the test thread reads.
        credentials: user to password; ``None`` accepts any PLAIN/LOGIN credentials.
        oauth_tokens: user to valid token, or a validator; ``None`` accepts any token.
        mechanisms: the SASL mechanisms offered (an empty collection hides AUTH from EHLO).
        advertise: extra EHLO keywords to add (``PIPELINING``, ``CHUNKING``, ``DSN``).
        hide: EHLO keywords aiosmtpd adds that are switched off (``8BITMIME``).
        auth_failure_reply: the wire reply (CRLF-joined lines) to refused PLAIN/LOGIN
            credentials; ``None`` keeps aiosmtpd's default.
    """

    def __init__(
        self,
        state: ServerState,
        *,
        credentials: Mapping[str, str] | None,
        oauth_tokens: TokenCheck | None,
        mechanisms: Collection[str],
        advertise: tuple[str, ...] = (),
        hide: tuple[str, ...] = (),
        auth_failure_reply: str | None = None,
    ) -> None:
        self.state = state
        self._credentials = dict(credentials) if credentials is not None else None
        self._oauth_tokens = oauth_tokens
        self._mechanisms = frozenset(mechanisms)
        self._advertise = advertise
        self._hide = frozenset(f"250-{keyword}" for keyword in hide)
        self._auth_failure_reply = auth_failure_reply

    # -- EHLO / HELO ---------------------------------------------------------------------------

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        """Adjust aiosmtpd's EHLO lines to the extensions switched on; or a scripted reply."""
        wire = await cast("LocalSMTP", server).decide(Phase.EHLO)
        if wire is not None and not wire.startswith("2"):
            return wire.split("\r\n")
        # With an EHLO hook, aiosmtpd leaves recording the client's name to the hook; without
        # it every later command would be refused with "503 send HELO first".
        session.host_name = hostname
        if wire is not None:
            return wire.split("\r\n")
        lines: list[str] = []
        for line in responses:
            if line in self._hide or (line.startswith("250-AUTH") and not self._mechanisms):
                continue
            if line == "250 HELP":
                # aiosmtpd reads and answers one command line at a time, which is all RFC 2920
                # asks of a pipelining server; CHUNKING and DSN are played by the protocol.
                lines += [f"250-{keyword}" for keyword in self._advertise]
            lines.append(line)
        if "DSN" in self._advertise:
            # RFC 3461: a RCPT line with NOTIFY/ORCPT (and MAIL with RET/ENVID) may run 500
            # octets past RFC 5321's 512; a real DSN server accepts it, so this one does too.
            limits = server.command_size_limits
            for verb in ("MAIL", "RCPT"):
                limits[verb] = max(limits[verb], server.command_size_limit + 500)
        return lines

    async def handle_HELO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str
    ) -> str:
        """Accept HELO (recording the client's name), or play a scripted ``"ehlo"`` reply."""
        wire = await cast("LocalSMTP", server).decide(Phase.EHLO)
        if wire is None or wire.startswith("2"):
            session.host_name = hostname
        return wire or f"250 {server.hostname}"

    # -- RSET / NOOP / QUIT / the end of DATA --------------------------------------------------

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """``250 OK``, or the scripted ``"rset"`` reply (the transaction is reset anyway)."""
        return await cast("LocalSMTP", server).decide(Phase.RSET) or "250 OK"

    async def handle_NOOP(
        self, server: SMTP, session: Session, envelope: Envelope, arg: str
    ) -> str:
        """``250 OK``, or the scripted ``"noop"`` reply."""
        return await cast("LocalSMTP", server).decide(Phase.NOOP) or "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """``221 Bye``, or the scripted ``"quit"`` reply (aiosmtpd closes afterwards)."""
        return await cast("LocalSMTP", server).decide(Phase.QUIT) or "221 Bye"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """The final reply to the content (scriptable as ``"message"``); keeps the message."""
        raw = bytes(envelope.original_content or b"")
        return await cast("LocalSMTP", server).finish_message(raw, chunked=False)

    async def handle_exception(self, error: Exception) -> str:
        """Turn an exception inside the server into a 451 reply and keep it for the test."""
        if isinstance(error, TLSSetupException):
            # A failed STARTTLS handshake (for instance a client that does not trust the CA):
            # aiosmtpd closes the connection itself and ignores this reply.
            self.state.records.note(f"STARTTLS handshake failed: {error.__cause__!r}")
            return "454 4.7.0 TLS not available"
        self.state.record_error(error, "while handling a command")
        return f"451 4.3.0 Local server error: {type(error).__name__}"

    # -- AUTH PLAIN / LOGIN (aiosmtpd's built-in mechanisms) -----------------------------------

    def check_password(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd authenticator for PLAIN and LOGIN."""
        if not isinstance(auth_data, LoginPassword):  # pragma: no cover - aiosmtpd contract
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if self._credentials is None:
            ok = True
        else:
            expected = self._credentials.get(user)
            ok = expected is not None and _same(password, expected)
        _verdict(session, AuthAttempt(mechanism, user, ok))
        if ok:
            return AuthResult(success=True, auth_data=Identity(user, mechanism))
        # handled=False: aiosmtpd then sends the message, by default "535 5.7.8
        # Authentication credentials invalid".
        return AuthResult(success=False, handled=False, message=self._auth_failure_reply)

    # -- AUTH XOAUTH2 / OAUTHBEARER ------------------------------------------------------------

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """``AUTH XOAUTH2 [initial-response]``; failure follows Gmail's exchange."""
        return await self._oauth(server, args, "XOAUTH2", parse_xoauth2)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """``AUTH OAUTHBEARER [initial-response]`` (RFC 7628 §3.1)."""
        return await self._oauth(server, args, "OAUTHBEARER", parse_oauthbearer)

    async def _oauth(
        self,
        server: SMTP,
        args: list[str],
        mechanism: str,
        parse: Callable[[bytes], OAuthResponse],
    ) -> AuthResult:
        """Run one OAuth2 exchange.

        Success::

            C: AUTH XOAUTH2 dXNlcj1...
            S: 235 2.7.0 Authentication successful

        Invalid token (Gmail's behaviour, also used for OAUTHBEARER)::

            C: AUTH XOAUTH2 dXNlcj1...
            S: 334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOi...
            C:                          (empty line; "AQ==" for OAUTHBEARER)
            S: 535 5.7.8 Username and Password not accepted.
        """
        blob = await _initial_response(server, args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        try:
            response = parse(blob)
        except ValueError as error:
            self.state.records.auth_attempt(AuthAttempt(mechanism, None, False))
            await server.push(f"501 5.5.2 Malformed {mechanism} response: {error}")
            return AuthResult(success=False, handled=True)
        session = server.session
        assert session is not None
        if self._token_ok(response.user, response.token):
            _verdict(session, AuthAttempt(mechanism, response.user, True))
            return AuthResult(success=True, auth_data=Identity(response.user, mechanism))
        answer = await server.challenge_auth(OAUTH_ERROR_CHALLENGE)
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)  # "*" or bad base64: 501 was sent
        _verdict(session, AuthAttempt(mechanism, response.user, False))
        return AuthResult(success=False, handled=False, message=OAUTH_FAILURE_REPLY)

    def _token_ok(self, user: str, token: str) -> bool:
        check = self._oauth_tokens
        if check is None:
            return True
        if isinstance(check, Mapping):
            expected = check.get(user)
            return expected is not None and _same(token, expected)
        return bool(check(user, token))


async def drop_connection(server: SMTP) -> NoReturn:
    """Close the session's connection without a reply, then wait for aiosmtpd to cancel
    this session's task from ``connection_lost()``."""
    if isinstance(server.transport, asyncio.Transport):
        server.transport.abort()
    await asyncio.Event().wait()
    raise AssertionError("unreachable: the session task is cancelled")  # pragma: no cover


async def _initial_response(server: SMTP, args: list[str]) -> bytes | None:
    """The decoded initial response: inline after the mechanism, or after a bare ``334``.

    Returns ``None`` after replying 501 (bad base64, or the client cancelled with ``*``).
    """
    if len(args) == 1:
        answer = await server.challenge_auth(b"")  # sends "334 " and reads one line
        return answer if isinstance(answer, bytes) else None
    if args[1] == "=":  # RFC 4954 §4: "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None

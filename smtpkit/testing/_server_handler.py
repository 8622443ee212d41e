"""The aiosmtpd handler behind :class:`~smtpkit.testing.LocalServer`: hooks and SASL checks.

aiosmtpd calls the ``handle_*`` hooks for each command and ``auth_<MECHANISM>`` methods for
custom mechanisms; everything here runs on the server's event-loop thread and talks to the
test thread only through :class:`~smtpkit.testing._server_state.ServerState`.

Invariants:
    * Attribute names on :class:`Handler` starting with ``handle_`` or ``auth_`` are hooks:
      aiosmtpd discovers them by prefix (``auth_FOO`` becomes mechanism ``FOO``), so no other
      attribute may use those prefixes.
    * A failed AUTH always ends with a reply: an authenticator that returns
      ``AuthResult(success=False)`` with ``handled`` left ``True`` would leave the client
      waiting forever.
    * Secrets are compared in constant time and never logged or stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Callable, Collection, Mapping
from typing import Any, NoReturn

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from smtpkit.testing._server_sasl import (
    OAUTH_ERROR_CHALLENGE,
    OAUTH_FAILURE_REPLY,
    OAuthResponse,
    parse_oauthbearer,
    parse_xoauth2,
)
from smtpkit.testing._server_state import DROP, AuthAttempt, ServerState

__all__ = ["AUTH_REQUIRED_REPLY", "Handler", "TokenCheck", "drop_connection"]

#: RFC 4954 §6: the reply to MAIL when the server requires AUTH first.
AUTH_REQUIRED_REPLY = "530 5.7.0 Authentication required"

#: A validator ``(user, token) -> bool`` or a mapping of user to the currently valid token.
TokenCheck = Callable[[str, str], bool] | Mapping[str, str]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Handler:
    """aiosmtpd hooks that record messages, check credentials and play scripted failures.

    Args:
        state: the shared state the test thread reads.
        credentials: user to password; ``None`` accepts any PLAIN/LOGIN credentials.
        oauth_tokens: user to valid token, or a validator; ``None`` accepts any token.
        require_auth: answer MAIL before a successful AUTH with :data:`AUTH_REQUIRED_REPLY`.
        mechanisms: the SASL mechanisms offered (an empty collection hides AUTH from EHLO).
        pipelining: advertise PIPELINING (RFC 2920) in the EHLO reply.
        implicit_tls: the listener speaks TLS from the first byte.
        auth_failure_reply: the wire reply (CRLF-joined lines) to refused PLAIN/LOGIN
            credentials; ``None`` keeps aiosmtpd's default.
    """

    def __init__(
        self,
        state: ServerState,
        *,
        credentials: Mapping[str, str] | None,
        oauth_tokens: TokenCheck | None,
        require_auth: bool,
        mechanisms: Collection[str],
        pipelining: bool,
        implicit_tls: bool,
        auth_failure_reply: str | None = None,
    ) -> None:
        self.state = state
        self._credentials = dict(credentials) if credentials is not None else None
        self._oauth_tokens = oauth_tokens
        self._require_auth = require_auth
        self._mechanisms = frozenset(mechanisms)
        self._pipelining = pipelining
        self._implicit_tls = implicit_tls
        self._auth_failure_reply = auth_failure_reply

    # -- EHLO ----------------------------------------------------------------------------------

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        """Adjust aiosmtpd's EHLO lines: add PIPELINING, drop an empty AUTH line."""
        # With an EHLO hook, aiosmtpd leaves recording the client's name to the hook; without
        # it every later command would be refused with "503 send HELO first".
        session.host_name = hostname
        lines: list[str] = []
        for line in responses:
            if line.startswith("250-AUTH") and not self._mechanisms:
                continue
            if line == "250 HELP" and self._pipelining:
                # aiosmtpd reads and answers one command line at a time, which is all RFC 2920
                # asks of a server; it just never says so.
                lines.append("250-PIPELINING")
            lines.append(line)
        return lines

    # -- envelope ------------------------------------------------------------------------------

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Check AUTH if required, play a scripted ``"mail"`` failure, else accept."""
        if self._require_auth and not session.authenticated:
            self.state.note(f"MAIL FROM:<{address}> refused: {AUTH_REQUIRED_REPLY}")
            return AUTH_REQUIRED_REPLY
        scripted = self.state.take_failure("mail")
        if scripted == DROP:
            await drop_connection(server)
        if scripted is not None:
            return scripted
        # A hook that answers takes over aiosmtpd's bookkeeping of the envelope.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Refuse rejected recipients, play a scripted ``"rcpt"`` failure, else accept."""
        rejected = self.state.rejection_for(address)
        if rejected is not None:
            return rejected
        scripted = self.state.take_failure("rcpt")
        if scripted == DROP:
            await drop_connection(server)
        if scripted is not None:
            return scripted
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    def take_data_command_failure(self) -> str | None:
        """The scripted reply to the DATA command itself (used by the SMTP subclass)."""
        return self.state.take_failure("data")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message; or play a scripted ``"message"`` failure or connection drop."""
        scripted = self.state.take_failure("message")
        if scripted is not None and scripted != DROP:
            return scripted
        drop = True if scripted == DROP else self.state.take_drop()
        if drop is None or drop:
            self._record(server, session, envelope)
        if drop is None:
            return "250 OK"
        # Simulate a link lost after the final "." (RFC 5321 §4.1.1.4 leaves the outcome
        # unknown to the client): abort without a reply.
        await drop_connection(server)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, server: SMTP, session: Session, envelope: Envelope) -> None:
        transport = server.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        auth = session.auth_data if session.authenticated else None
        self.state.record_message(
            mail_from=envelope.mail_from or "",
            rcpt_tos=envelope.rcpt_tos,
            raw=bytes(envelope.original_content or b""),
            auth=(auth.user, auth.mechanism) if isinstance(auth, _Identity) else None,
            tls=self._implicit_tls or ssl_object is not None,
            smtputf8=bool(envelope.smtp_utf8),
            mail_options=envelope.mail_options,
        )

    async def handle_exception(self, error: Exception) -> str:
        """Turn an exception inside the server into a 451 reply and keep it for the test."""
        if isinstance(error, TLSSetupException):
            # A failed STARTTLS handshake (for instance a client that does not trust the CA):
            # aiosmtpd closes the connection itself and ignores this reply.
            self.state.note(f"STARTTLS handshake failed: {error.__cause__!r}")
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
        self.state.record_attempt(AuthAttempt(mechanism, user, ok))
        if ok:
            return AuthResult(success=True, auth_data=_Identity(user, mechanism))
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
            self.state.record_attempt(AuthAttempt(mechanism, None, False))
            await server.push(f"501 5.5.2 Malformed {mechanism} response: {error}")
            return AuthResult(success=False, handled=True)
        ok = self._token_ok(response.user, response.token)
        self.state.record_attempt(AuthAttempt(mechanism, response.user, ok))
        if ok:
            return AuthResult(success=True, auth_data=_Identity(response.user, mechanism))
        answer = await server.challenge_auth(OAUTH_ERROR_CHALLENGE)
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)  # "*" or bad base64: 501 was sent
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


class _Identity:
    """What a successful AUTH stores on the aiosmtpd session."""

    __slots__ = ("mechanism", "user")

    def __init__(self, user: str, mechanism: str) -> None:
        self.user = user
        self.mechanism = mechanism

    @property
    def login(self) -> bytes:
        # aiosmtpd copies ``auth_data.login`` into the (deprecated) ``session.login_data``.
        return self.user.encode("utf-8")


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

"""The fake server's AUTH (RFC 4954): the command, and the PLAIN, LOGIN, XOAUTH2 and
OAUTHBEARER exchanges.

Job: :class:`AuthCommands` does the SMTP part of AUTH for one connection - when AUTH is
allowed, base64, the ``*`` cancel, the final reply (scriptable as phase ``"auth"``) - and
each mechanism is a generator that yields server challenges (the text after ``334 ``) and
receives the client's decoded responses, then returns a :class:`Verdict`. No I/O, no clock.

Exchanges, as the client sees them::

    C: AUTH PLAIN AHVzZXIAcGFzcw==        C: AUTH LOGIN
    S: 235 2.7.0 Authentication successful S: 334 VXNlcm5hbWU6
                                           C: dXNlcg==
                                           S: 334 UGFzc3dvcmQ6
                                           C: cGFzcw==
                                           S: 235 2.7.0 Authentication successful

A refused OAuth2 token gets Gmail's JSON error challenge first; the client answers it (an
empty line, or ``AQ==`` for OAUTHBEARER) and then gets the ``535``.

Invariants:
    * Secrets never leave this module: a verdict holds the user name only, and the
      transcript shows ``****`` for every AUTH payload.
    * Only AUTH PLAIN with an initial response may end a pipelined group (RFC 4954 §4).
    * ``credentials=None`` accepts any well-formed response; a mapping accepts exactly the
      user names it holds, each with its own password (or, for OAuth2, access token).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Generator, Mapping
from dataclasses import dataclass

from smtpkit.replies import Phase, Reply
from smtpkit.testing._fake_core import SessionCore
from smtpkit.testing._fake_wire import Mode
from smtpkit.testing._record import AuthAttempt
from smtpkit.testing._server_sasl import (
    OAUTH_ERROR_CHALLENGE,
    OAuthResponse,
    parse_oauthbearer,
    parse_xoauth2,
)

__all__ = [
    "SUPPORTED_MECHANISMS",
    "AuthCommands",
    "SaslServer",
    "Verdict",
    "decode_response",
    "start_exchange",
]

#: Mechanisms the fake server can run.
SUPPORTED_MECHANISMS = frozenset({"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"})

_USERNAME_PROMPT = base64.b64encode(b"Username:").decode("ascii")
_PASSWORD_PROMPT = base64.b64encode(b"Password:").decode("ascii")


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an exchange ended.

    Attributes:
        username: who the client claimed to be (``None`` if the response was unreadable).
        success: whether the credentials were accepted.
        malformed: the response broke the mechanism's grammar (answered ``501``, not ``535``).
        oauth: an OAuth2 mechanism (a failure is answered with Gmail's OAuth2 wording).
    """

    username: str | None
    success: bool
    malformed: bool = False
    oauth: bool = False


#: An exchange yields challenge texts (already base64) and receives decoded responses.
SaslServer = Generator[str, bytes, Verdict]


def decode_response(text: str) -> bytes | None:
    """Decode a base64 client response (``"="`` is an empty one); ``None`` if invalid."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


class _Checker:
    def __init__(self, credentials: Mapping[str, str] | None) -> None:
        self._credentials = credentials

    def __call__(self, username: str, secret: str) -> bool:
        if self._credentials is None:
            return True
        expected = self._credentials.get(username)
        if expected is None:
            return False
        return hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _plain(initial: bytes | None, check: _Checker) -> SaslServer:
    # RFC 4616 §2: message = [authzid] NUL authcid NUL passwd
    data = initial if initial is not None else (yield "")
    parts = data.split(b"\0")
    if len(parts) != 3 or not parts[1]:
        return Verdict(None, False, malformed=True)
    username, password = _text(parts[1]), _text(parts[2])
    return Verdict(username, check(username, password))


def _login(initial: bytes | None, check: _Checker) -> SaslServer:
    # The LOGIN mechanism (draft-murchison-sasl-login): prompts "Username:", "Password:".
    user = initial if initial is not None else (yield _USERNAME_PROMPT)
    password = yield _PASSWORD_PROMPT
    username = _text(user)
    return Verdict(username, check(username, _text(password)))


def _oauth(initial: bytes | None, check: _Checker, mechanism: str) -> SaslServer:
    data = initial if initial is not None else (yield "")
    try:
        parsed: OAuthResponse = (
            parse_xoauth2(data) if mechanism == "XOAUTH2" else parse_oauthbearer(data)
        )
    except ValueError:
        return Verdict(None, False, malformed=True, oauth=True)
    if check(parsed.user, parsed.token):
        return Verdict(parsed.user, True, oauth=True)
    # RFC 7628 §3.2.2 / Gmail: the error is a 334 challenge the client must answer first.
    yield base64.b64encode(OAUTH_ERROR_CHALLENGE).decode("ascii")
    return Verdict(parsed.user, False, oauth=True)


def start_exchange(
    mechanism: str, initial: bytes | None, credentials: Mapping[str, str] | None
) -> SaslServer:
    """The server exchange for ``mechanism`` (one of :data:`SUPPORTED_MECHANISMS`)."""
    check = _Checker(credentials)
    if mechanism == "PLAIN":
        return _plain(initial, check)
    if mechanism == "LOGIN":
        return _login(initial, check)
    if mechanism in ("XOAUTH2", "OAUTHBEARER"):
        return _oauth(initial, check, mechanism)
    raise ValueError(f"the fake server cannot run SASL mechanism {mechanism!r}")


class AuthCommands(SessionCore):
    """AUTH for one connection: checks, the SASL exchange, the (scriptable) final reply."""

    _sasl: SaslServer | None = None
    _sasl_mechanism = ""
    _sasl_plain_ir = False

    def _cmd_auth(self, arg: str) -> None:
        mechanism, _, initial_text = arg.partition(" ")
        mechanism = mechanism.upper()
        caps = self.config.capabilities
        error: tuple[int, str, str] | None = None
        if not self._esmtp:
            error = (503, "5.5.1", "Error: send EHLO first")
        elif not caps.auth:
            error = (503, "5.5.1", "Error: authentication not enabled")
        elif not self._auth_allowed():
            error = (530, "5.7.0", "Must issue a STARTTLS command first")
        elif self._auth is not None:
            error = (503, "5.5.1", "Error: already authenticated")
        elif self._tx.active:
            error = (503, "5.5.1", "Error: MAIL transaction in progress")
        elif mechanism not in caps.auth:
            error = (504, "5.5.4", "Unrecognized authentication type")
        initial = decode_response(initial_text) if initial_text else None
        if error is None and initial_text and initial is None:
            error = (501, "5.5.2", "Cannot decode the initial response")
        if error is not None:
            self._reply(*error, sync="AUTH")
            return
        self._sasl_mechanism = mechanism
        # RFC 4954 §4: only AUTH PLAIN with an initial response may be pipelined.
        self._sasl_plain_ir = mechanism == "PLAIN" and initial is not None
        self._sasl = start_exchange(mechanism, initial, self.config.credentials)
        self._sasl_step(None)

    def _auth_continue(self, text: str) -> None:
        self._log("C: " + (text if text in ("", "*") else "****"))
        sasl = self._sasl
        assert sasl is not None  # AUTH mode implies a running exchange
        if text == "*":
            sasl.close()
            self._end_auth()
            self._reply(501, "5.7.0", "Authentication cancelled", sync="AUTH")
            return
        response = decode_response(text) if text else b""
        if response is None:
            sasl.close()
            self._end_auth()
            self._reply(501, "5.5.2", "Cannot decode the response", sync="AUTH")
            return
        self._sasl_step(response)

    def _sasl_step(self, response: bytes | None) -> None:
        sasl = self._sasl
        assert sasl is not None
        try:
            challenge = next(sasl) if response is None else sasl.send(response)
        except StopIteration as stop:
            self._end_auth()
            self._auth_verdict(stop.value)
            return
        self.mode = Mode.AUTH
        self._send(Reply(334, (challenge,)), sync="AUTH (334 challenge)")

    def _end_auth(self) -> None:
        self._sasl = None
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND

    def _auth_verdict(self, verdict: Verdict) -> None:
        mechanism = self._sasl_mechanism
        sync = None if self._sasl_plain_ir else "AUTH"
        if verdict.malformed:
            self._events.attempt(AuthAttempt(mechanism, None, False))
            self._reply(501, "5.5.2", f"Malformed {mechanism} response", sync=sync)
            return
        if verdict.success:
            default = self._reply_obj(235, "2.7.0", "Authentication successful")
        elif verdict.oauth:
            default = self._reply_obj(535, "5.7.8", "Username and Password not accepted.")
        else:
            default = self._reply_obj(535, "5.7.8", "Authentication credentials invalid")
        step = self._events.take_script(Phase.AUTH, None)
        reply = self._scripted(step, default, f"AUTH {mechanism}", phase=Phase.AUTH)
        if reply is None:
            return
        success = reply.code // 100 == 2
        self._events.attempt(AuthAttempt(mechanism, verdict.username, success))
        self._send(reply, sync=sync)
        if success and verdict.username is not None:
            self._auth = (verdict.username, mechanism)

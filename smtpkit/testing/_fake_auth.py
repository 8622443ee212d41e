"""The server side of SMTP AUTH (RFC 4954) for the fake server: PLAIN, LOGIN, XOAUTH2,
OAUTHBEARER.

Job: each mechanism is a generator that yields server challenges (the text after ``334 ``)
and receives the client's decoded responses, then returns a :class:`Verdict`. The session
does the SMTP part: base64, the ``*`` cancel, the final reply. No I/O, no clock.

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
    * Secrets never leave this module: a verdict holds the user name only.
    * ``credentials=None`` accepts any well-formed response; a mapping accepts exactly the
      user names it holds, each with its own password (or, for OAuth2, access token).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Generator, Mapping
from dataclasses import dataclass

from smtpkit.testing._server_sasl import (
    OAUTH_ERROR_CHALLENGE,
    OAuthResponse,
    parse_oauthbearer,
    parse_xoauth2,
)

__all__ = ["SUPPORTED_MECHANISMS", "SaslServer", "Verdict", "decode_response", "start_exchange"]

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

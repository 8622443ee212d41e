"""Secrets the client sent in AUTH never come back out through what the server says.

Servers echo the client's line (``500 5.5.2 Unrecognized command: AUTH PLAIN <base64>``,
``535 5.7.8 rejected <base64>``), some decode it first, some cut it short. A hostile
loopback server here echoes every form of what it was sent, for every mechanism in
:mod:`smtpkit.auth`; the canaries must not appear in ``str(exc)``, ``repr(exc)``,
``exc.reply``, ``exc.transcript``, ``exc.challenge``, the pickle, or the DEBUG wire log.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from smtpkit import AuthenticationError, ReplyError, Security, SMTPError, Submitter
from smtpkit.auth import (
    AccessToken,
    AppPasswordAuth,
    AuthContext,
    AuthStrategy,
    OAuthBearerAuth,
    PasswordAuth,
    SaslExchange,
    SaslMechanismStrategy,
    Secret,
    XOAuth2Auth,
)
from smtpkit.errors import InvalidCredentials, RemoteProtocolError
from smtpkit.protocol import ClientConnection, Command, ReplyReceived
from smtpkit.replies import Reply
from tests.hostile_server import HostileServer, Peer

USER = "alice@example.test"
PASSWORD = "pw-CANARY-7f3e9a51"
APP_PASSWORD = "cnry wxyz qrst uvkl"  # Google shows app passwords in groups of four
TOKEN = "ya29.CANARY-token-5c2d8e41b7"
LONG_TOKEN = "eyJ0eXAiOiJKV1Qi.CANARY." + "x" * 600  # a Microsoft-sized JWT: after a bare 334
TIMEOUT = 5.0


class SameToken:
    """A token provider that hands out the same token, refresh or not (the server decides)."""

    def __init__(self, token: str) -> None:
        self.token = AccessToken(token)
        self.calls = 0

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        self.calls += 1
        return self.token


@dataclass(frozen=True)
class Case:
    """One strategy and the raw secret it sends."""

    build: Callable[[], AuthStrategy]
    secret: str  # what must never show, raw
    mechanism: str


CASES = {
    "plain": Case(lambda: PasswordAuth(USER, PASSWORD, mechanisms=("PLAIN",)), PASSWORD, "PLAIN"),
    "login": Case(lambda: PasswordAuth(USER, PASSWORD, mechanisms=("LOGIN",)), PASSWORD, "LOGIN"),
    "app-password": Case(
        lambda: AppPasswordAuth(USER, APP_PASSWORD), "".join(APP_PASSWORD.split()), "PLAIN"
    ),
    "xoauth2": Case(lambda: XOAuth2Auth(USER, SameToken(TOKEN)), TOKEN, "XOAUTH2"),
    "xoauth2-long": Case(lambda: XOAuth2Auth(USER, SameToken(LONG_TOKEN)), LONG_TOKEN, "XOAUTH2"),
    "oauthbearer": Case(lambda: OAuthBearerAuth(USER, SameToken(TOKEN)), TOKEN, "OAUTHBEARER"),
}

#: How the hostile server words its refusal: the issue's two real-world shapes.
REFUSALS = {
    "535": (b"535", b"5.7.8"),
    "500": (b"500", b"5.5.2"),
}


def echo_lines(payloads: list[bytes], code: bytes, enhanced: bytes) -> bytes:
    """A multi-line refusal quoting every form of what the client sent."""
    lines = []
    for payload in payloads:
        decoded = base64.b64decode(payload).replace(b"\0", b" ").replace(b"\x01", b" ")
        lines += [
            enhanced + b" Unrecognized command: AUTH " + payload,
            enhanced + b" rejected " + payload,
            enhanced + b" decoded as <" + decoded[:400] + b">",
            enhanced + b" cut short: " + payload[:24] + b"...",
        ]
    body = [code + b"-" + line + b"\r\n" for line in lines[:-1]]
    return b"".join(body) + code + b" " + lines[-1] + b"\r\n"


def json_challenge(payloads: list[bytes]) -> bytes:
    """A Gmail-shaped 334 error challenge whose JSON quotes the decoded SASL message."""
    said = base64.b64decode(payloads[-1]).decode("latin-1")
    document = {"status": "400", "schemes": "Bearer", "scope": said}
    return b"334 " + base64.b64encode(json.dumps(document).encode()) + b"\r\n"


def hostile(refusal: str) -> Callable[[Peer], None]:
    code, enhanced = REFUSALS[refusal]

    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.send(b"250-hostile.test\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n")
        for _ in range(3):  # at most: AUTH, AUTH again after a token refresh, QUIT
            line = peer.read_line()
            if not line.upper().startswith(b"AUTH "):
                peer.send(b"221 2.0.0 bye\r\n")
                return
            words = line.split(b" ")
            mechanism = words[1].upper()
            payloads = words[2:3]
            if mechanism == b"LOGIN":
                for prompt in (b"VXNlcm5hbWU6", b"UGFzc3dvcmQ6"):
                    peer.send(b"334 " + prompt + b"\r\n")
                    payloads.append(peer.read_line())
            elif not payloads:
                peer.send(b"334 \r\n")  # RFC 4954 §4: the response follows a bare 334
                payloads.append(peer.read_line())
            if mechanism in (b"XOAUTH2", b"OAUTHBEARER"):
                peer.send(json_challenge(payloads))
                peer.read_line()  # the client's empty (or 0x01) answer
            peer.send(echo_lines(payloads, code, enhanced))

    return handler


@pytest.fixture
def wire_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="smtpkit"):
        yield caplog


def forms_of(secret: str, sent: list[bytes]) -> list[str]:
    """Every shape the canary could leak in: raw, each payload, and their first 16 chars."""
    forms = [secret, secret[:16], base64.b64encode(secret.encode()).decode()[:16]]
    for payload in sent:
        text = payload.decode()
        forms += [text, text[:16]]
    return forms


def sent_payloads(peer: Peer) -> list[bytes]:
    """The base64 payloads the client sent (AUTH initial responses and continuations)."""
    out = []
    for line in peer.lines:
        words = line.split(b" ")
        if line.upper().startswith(b"AUTH ") and len(words) == 3:
            out.append(words[2])
        elif line and not line.upper().startswith((b"AUTH", b"EHLO", b"QUIT")):
            out.append(line)
    return [p for p in out if len(p) >= 8]


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_secret_the_server_echoes_leaves_the_session(
    name: str, refusal: str, wire_log: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    with HostileServer(hostile(refusal)) as server:
        submitter = Submitter(
            server.host,
            server.port,
            security=Security.NONE,  # 127.0.0.1: plaintext AUTH is allowed to loopback
            auth=case.build(),
            timeout=TIMEOUT,
        )
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", "canary"
        msg.set_content("body")
        with pytest.raises(SMTPError) as caught:
            submitter.send(msg)
    assert server.errors == []
    [peer] = server.peers
    sent = sent_payloads(peer)
    assert sent, "the client sent no AUTH payload: the test proves nothing"
    error = caught.value
    assert isinstance(error, ReplyError)
    assert isinstance(error, AuthenticationError) or refusal == "500"
    # The refusal itself survives, masked: the echo arrived and was redacted, not dropped.
    assert error.reply.code == int(REFUSALS[refusal][0])
    assert "****" in str(error.reply)

    log = "\n".join(r.getMessage() for r in wire_log.records)
    assert "S: " in log
    assert "****" in log
    blob = pickle.dumps(error)
    places = {
        "str": str(error),
        "repr": repr(error),
        "reply": str(error.reply) + repr(error.reply.lines),
        "transcript": "\n".join(error.transcript),
        "challenge": repr(getattr(error, "challenge", None)),
        "log": log,
    }
    for form in forms_of(case.secret, sent):
        for place, text in places.items():
            assert form not in text, f"{form[:20]!r}... leaked through {place}"
        assert form.encode() not in blob, f"{form[:20]!r}... leaked through the pickle"


def test_a_short_password_does_not_eat_the_reply_text() -> None:
    """Masking is for secrets, not for words that happen to contain them."""

    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.send(b"250-hostile.test\r\n250 AUTH PLAIN\r\n")
        peer.read_line()
        peer.send(b"535 5.7.8 Username and Password not accepted\r\n")
        peer.read_line()
        peer.send(b"221 bye\r\n")

    with HostileServer(handler) as server:
        submitter = Submitter(
            server.host,
            server.port,
            security=Security.NONE,
            auth=PasswordAuth(USER, "word"),
            timeout=TIMEOUT,
        )
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", "canary"
        msg.set_content("body")
        with pytest.raises(InvalidCredentials) as caught:
            submitter.send(msg)
    assert caught.value.reply.text == "Username and Password not accepted"


# -- the sans-IO core, byte level ----------------------------------------------------------


def authenticating_connection(payload: str) -> ClientConnection:
    """A connection that sent ``AUTH PLAIN <payload>`` and awaits the reply."""
    conn = ClientConnection()
    conn.receive_data(b"220 mx.test ESMTP\r\n")
    conn.next_event()
    conn.send(Command.ehlo("client.test"))
    conn.receive_data(b"250-mx.test\r\n250 AUTH PLAIN\r\n")
    conn.next_event()
    conn.send(Command.auth("PLAIN", payload, secrets=(PASSWORD,)))
    return conn


def test_a_malformed_echo_of_auth_is_masked_in_the_protocol_error() -> None:
    payload = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    conn = authenticating_connection(payload)
    conn.receive_data(f"what is AUTH PLAIN {payload}\r\n".encode())
    with pytest.raises(RemoteProtocolError) as caught:
        conn.next_event()
    assert "malformed reply line" in str(caught.value)
    assert payload[:16] not in str(caught.value)
    assert payload[:16] not in repr(caught.value.args)


def test_only_replies_to_auth_are_masked() -> None:
    payload = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    conn = authenticating_connection(payload)
    conn.receive_data(f"535 5.7.8 no: {PASSWORD}\r\n".encode())
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert event.reply == Reply(535, ("5.7.8 no: ****",))
    assert "S: 535 5.7.8 no: ****" in conn.transcript
    # The next command is not AUTH: its reply is the server's text, unchanged.
    conn.send(Command.noop())
    conn.receive_data(b"250 2.0.0 ok, the Password is not my business\r\n")
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert event.reply.lines == ("2.0.0 ok, the Password is not my business",)


def test_a_custom_mechanism_declares_the_secrets_it_holds() -> None:
    """A subclass that keeps its password in a Secret gets its replies masked for free."""

    class Reversed(SaslMechanismStrategy):
        mechanisms = ("X-REVERSED",)

        def __init__(self, username: str, password: str) -> None:
            super().__init__(username)
            self._password = Secret(password)

        def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
            yield None
            yield self._password.reveal()[::-1]

    context = AuthContext(frozenset({"X-REVERSED"}), "mx.test", 587, encrypted=True)
    flow = Reversed(USER, PASSWORD).flow(context)
    first = next(flow)
    answer = flow.send(Reply(334, ("",)))
    assert first.secrets == ()
    assert PASSWORD in answer.secrets  # held, though never sent raw
    assert PASSWORD[::-1] in answer.secrets  # the SASL message sent
    assert answer.line in answer.secrets  # and its base64

"""``smtpkit.auth.drive_flow``: the one AUTH loop, driven with canned replies (no sockets)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence

import pytest

from smtpkit.auth import (
    AccessToken,
    AuthContext,
    AuthFlow,
    NoCommonMechanism,
    PasswordAuth,
    Secret,
    XOAuth2Auth,
    drive_flow,
)
from smtpkit.errors import RemoteProtocolError, ServerDisconnected
from smtpkit.protocol import Command
from smtpkit.replies import Phase, Reply

ACCEPTED = Reply(235, ("2.7.0 Accepted",))
REFUSED = Reply(535, ("5.7.8 Username and Password not accepted",))
CANCELLED = Reply(501, ("5.7.0 Authentication cancelled",))
USERNAME_PROMPT = Reply(334, ("VXNlcm5hbWU6",))
PASSWORD_PROMPT = Reply(334, ("UGFzc3dvcmQ6",))
#: Gmail's XOAUTH2 error challenge: base64 of a JSON object (a 334, not a final reply).
CHALLENGE = Reply(
    334,
    (
        base64.b64encode(
            json.dumps(
                {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
            ).encode()
        ).decode(),
    ),
)


def ctx(*mechanisms: str) -> AuthContext:
    return AuthContext(
        mechanisms=frozenset(mechanisms), host="smtp.example.test", port=587, encrypted=True
    )


class Server:
    """An ``exchange`` that answers from a script and records every command it was sent."""

    def __init__(self, replies: Sequence[Reply], *, fail_on_cancel: bool = False) -> None:
        self._replies = list(replies)
        self._fail_on_cancel = fail_on_cancel
        self.sent: list[Command] = []

    def __call__(self, command: Command) -> Reply:
        self.sent.append(command)
        if command.line == "*" and self._fail_on_cancel:
            raise ServerDisconnected("the server closed the connection")
        assert self._replies, f"no reply scripted for {command.redacted}"
        return self._replies.pop(0)

    @property
    def lines(self) -> list[str]:
        return [command.redacted for command in self.sent]


def stops_on_a_challenge() -> AuthFlow:
    """A flow that reads a 334 and has nothing to answer: it returns details instead."""
    reply = yield Command("AUTH", "AUTH X-TEST", Phase.AUTH, "AUTH X-TEST")
    return {"challenge": reply.text}


def fails_on_a_challenge() -> AuthFlow:
    """A flow that cannot read the server's challenge."""
    yield Command("AUTH", "AUTH X-TEST", Phase.AUTH, "AUTH X-TEST")
    raise RemoteProtocolError("the challenge is not base64")


def test_one_step_success() -> None:
    server = Server([ACCEPTED])
    reply, details = drive_flow(PasswordAuth("alice", "secret").flow(ctx("PLAIN")), server)
    assert (reply, details) == (ACCEPTED, None)
    assert len(server.sent) == 1
    assert server.sent[0].line.startswith("AUTH PLAIN ")


def test_login_feeds_each_challenge_back() -> None:
    server = Server([USERNAME_PROMPT, PASSWORD_PROMPT, ACCEPTED])
    reply, details = drive_flow(PasswordAuth("alice", "secret").flow(ctx("LOGIN")), server)
    assert (reply, details) == (ACCEPTED, None)
    assert [c.line for c in server.sent] == [
        "AUTH LOGIN",
        base64.b64encode(b"alice").decode(),
        base64.b64encode(b"secret").decode(),
    ]


def test_a_refusal_is_returned_not_cancelled() -> None:
    server = Server([REFUSED])
    reply, _ = drive_flow(PasswordAuth("alice", "secret").flow(ctx("PLAIN")), server)
    assert reply == REFUSED
    assert "*" not in server.lines


def test_a_flow_that_stops_on_a_334_is_cancelled() -> None:
    server = Server([CHALLENGE, CANCELLED])
    reply, details = drive_flow(stops_on_a_challenge(), server)
    assert server.lines == ["AUTH X-TEST", "*"]  # RFC 4954 §4: "*" ends the exchange
    assert reply == CANCELLED  # the final reply is the answer to the cancel
    assert details == {"challenge": CHALLENGE.text}


class Tokens:
    def __init__(self, token: AccessToken) -> None:
        self.token = token

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        return self.token


def test_xoauth2_error_challenge_is_answered_by_the_strategy_not_cancelled() -> None:
    token = AccessToken(Secret("ya29.token"), None)
    strategy = XOAuth2Auth("alice@gmail.com", Tokens(token))
    server = Server([CHALLENGE, REFUSED])
    reply, details = drive_flow(strategy.token_flow(ctx("XOAUTH2"), token), server)
    assert reply == REFUSED
    assert server.lines[0].startswith("AUTH XOAUTH2")
    assert [c.line for c in server.sent[1:]] == [""]  # the empty response Gmail asks for
    assert details == {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}


def test_a_flow_that_cannot_read_a_challenge_cancels_then_raises() -> None:
    server = Server([CHALLENGE, CANCELLED])
    with pytest.raises(RemoteProtocolError, match="not base64"):
        drive_flow(fails_on_a_challenge(), server)
    assert server.lines == ["AUTH X-TEST", "*"]


def test_a_failed_cancel_does_not_hide_why_the_flow_failed() -> None:
    server = Server([CHALLENGE], fail_on_cancel=True)
    with pytest.raises(RemoteProtocolError, match="not base64"):
        drive_flow(fails_on_a_challenge(), server)
    assert server.lines == ["AUTH X-TEST", "*"]


def test_no_common_mechanism_sends_nothing() -> None:
    server = Server([])
    with pytest.raises(NoCommonMechanism):
        drive_flow(PasswordAuth("alice", "secret").flow(ctx("XOAUTH2")), server)
    assert server.sent == []


def test_transport_errors_pass_through() -> None:
    def broken(command: Command) -> Reply:
        raise ServerDisconnected("gone")

    with pytest.raises(ServerDisconnected):
        drive_flow(PasswordAuth("alice", "secret").flow(ctx("PLAIN")), broken)


def test_details_are_a_mapping_or_none() -> None:
    _, details = drive_flow(stops_on_a_challenge(), Server([CHALLENGE, CANCELLED]))
    assert isinstance(details, Mapping)

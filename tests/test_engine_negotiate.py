"""The engine's connection steps, byte for byte, with no sockets: greeting, EHLO, STARTTLS,
AUTH (and OAuth2's retry-once rule), the peer-address rule, redaction and deadlines."""

from __future__ import annotations

import base64
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from engine_script import (
    EHLO_AUTH,
    EHLO_BARE,
    EHLO_STARTTLS,
    GREETING,
    Later,
    Script,
    lines,
)

from smtpkit import (
    ConnectionRejected,
    InsecureAuthRefused,
    InvalidCredentials,
    OperationTimeout,
    Security,
    StartTLSNotOffered,
    Timeouts,
    TLSModeMismatch,
    TokenRefreshError,
    TokenRejected,
)
from smtpkit.auth import AccessToken, PasswordAuth, XOAuth2Auth
from smtpkit.engine import (
    CLOSE,
    Connect,
    FetchToken,
    Link,
    LinkSettings,
    StartTLS,
    close_link,
    open_link,
    peer_is_loopback,
    probe_link,
)

USER = "alice@example.test"
CANARY = "canary-Pa55w0rd-7f3a"
PLAIN = base64.b64encode(f"\0{USER}\0{CANARY}".encode()).decode()


def settings(**changes: object) -> LinkSettings:
    values: dict[str, object] = {
        "host": "mx.example.test",
        "port": 587,
        "security": Security.STARTTLS,
        "timeouts": Timeouts(connect=10, command=5, final_reply=30),
        "local_hostname": "client.example.test",
    }
    values.update(changes)
    return LinkSettings(**values)  # type: ignore[arg-type]


def open_with(script: Script, **changes: object) -> Link:
    return script.run(open_link(settings(**changes), clock=script.clock))


# -- the whole negotiation ---------------------------------------------------------------


def test_starttls_then_auth_plain_byte_for_byte() -> None:
    script = Script().serve(
        GREETING,
        EHLO_STARTTLS,
        b"220 2.0.0 Ready to start TLS\r\n",
        EHLO_AUTH,
        b"235 2.7.0 Accepted\r\n",
    )
    link = open_with(script, auth=PasswordAuth(USER, CANARY))
    assert script.writes == [
        lines("EHLO client.example.test"),
        lines("STARTTLS"),
        lines("EHLO client.example.test"),
        lines(f"AUTH PLAIN {PLAIN}"),
    ]
    handshake = [e for e in script.effects if isinstance(e, StartTLS)]
    assert handshake == [StartTLS("mx.example.test", 100.0 + 10)]
    assert link.alive
    assert link.encrypted
    assert link.conn.authenticated
    assert link.extensions.max_size == 1_000_000
    assert CANARY not in "\n".join(link.transcript)
    assert PLAIN not in "\n".join(link.transcript)


def test_connect_deadline_and_implicit_tls_skip_starttls() -> None:
    script = Script(implicit_tls=True).serve(GREETING, EHLO_AUTH)
    link = open_with(script, security=Security.TLS, port=465)
    assert script.effects[0] == Connect(100.0 + 10)
    assert script.writes == [lines("EHLO client.example.test")]
    assert link.encrypted


def test_starttls_not_offered_sends_nothing_more_not_even_quit() -> None:
    script = Script().serve(GREETING, EHLO_BARE)
    with pytest.raises(StartTLSNotOffered) as caught:
        open_with(script, auth=PasswordAuth(USER, CANARY))
    assert script.writes == [lines("EHLO client.example.test")]
    assert caught.value.transcript  # the evidence travels with the error


def test_starttls_refused_is_not_a_downgrade() -> None:
    script = Script().serve(GREETING, EHLO_STARTTLS, b"454 4.7.0 TLS not available\r\n")
    with pytest.raises(Exception) as caught:
        open_with(script)
    assert type(caught.value).__name__ == "TLSUnavailable"
    # EHLO, STARTTLS, QUIT - no MAIL, no AUTH, no second EHLO in plaintext.
    assert script.writes == [lines("EHLO client.example.test"), lines("STARTTLS"), lines("QUIT")]


def test_helo_fallback_after_ehlo_is_unknown() -> None:
    script = Script().serve(GREETING, b"502 5.5.2 Command not recognized\r\n", b"250 mx\r\n")
    link = open_with(script, security=Security.NONE)
    assert script.writes == [lines("EHLO client.example.test"), lines("HELO client.example.test")]
    assert not link.extensions.pipelining


def test_refused_greeting_quits_and_raises_typed() -> None:
    script = Script().serve(b"554 5.7.1 No SMTP service here\r\n", b"221 Bye\r\n")
    with pytest.raises(ConnectionRejected):
        open_with(script)
    assert script.writes == [lines("QUIT")]


def test_421_greeting_gets_no_quit() -> None:
    script = Script().serve(b"421 4.3.2 Service shutting down\r\n")
    with pytest.raises(Exception) as caught:
        open_with(script)
    assert type(caught.value).__name__ == "ServiceUnavailable"
    assert script.writes == []


# -- deadlines per reply, not per read -----------------------------------------------------


def test_a_dripping_greeting_times_out_when_the_reply_is_due() -> None:
    # Every piece arrives 2 s after the previous one (well inside a per-read timeout of
    # 5 s), but the greeting as a whole is not complete after 5 s.
    script = Script().serve(
        Later(2, b"220-mx"), Later(2, b".example"), Later(2, b".test\r\n"), Later(2, b"220 hi\r\n")
    )
    with pytest.raises(OperationTimeout) as caught:
        open_with(script, security=Security.NONE, port=465)
    assert "reply to the greeting within 5 s (14 octets of it arrived)" in str(caught.value)
    assert script.now == 106.0  # gave up at the 3rd piece, 6 s in: past the 5 s deadline
    # A greeting started: a slow server (say what to do), not a TLS-port mix-up.
    assert "stalls" in (caught.value.hint or "")
    assert "TLS" not in (caught.value.hint or "")


def test_each_reply_gets_its_own_deadline() -> None:
    script = Script().serve(Later(4, GREETING), Later(4, b"250-mx\r\n"), Later(0.5, b"250 OK\r\n"))
    link = open_with(script, security=Security.NONE)
    assert link.alive  # 4 s greeting, 4.5 s EHLO: each within its own 5 s deadline


def test_a_dripping_command_reply_times_out() -> None:
    script = Script().serve(GREETING, Later(2, b"250-mx\r\n"), Later(2, b"250-A\r\n"))
    script.serve(Later(2, b"250 B\r\n"))
    with pytest.raises(OperationTimeout) as caught:
        open_with(script, security=Security.NONE)
    assert "EHLO client.example.test" in str(caught.value)
    assert "within 5 s" in str(caught.value)


def test_silent_port_465_without_tls_is_a_mode_mismatch() -> None:
    script = Script()  # nothing ever comes: a TLS server waiting for the client hello
    with pytest.raises(TLSModeMismatch):
        open_with(script, port=465)


# -- the plaintext AUTH rule is decided on the peer address ---------------------------------


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", False),
        ("203.0.113.5", False),
        ("evil.localhost", False),
        ("localhost.", False),
        (None, False),
    ],
)
def test_peer_is_loopback(peer: str | None, loopback: bool) -> None:
    assert peer_is_loopback(peer) is loopback


def test_plaintext_auth_to_a_remote_peer_is_refused_whatever_the_host_says() -> None:
    script = Script(peer="203.0.113.5").serve(GREETING, EHLO_AUTH, b"221 Bye\r\n")
    with pytest.raises(InsecureAuthRefused) as caught:
        open_with(
            script,
            host="evil.localhost",
            security=Security.NONE,
            auth=PasswordAuth(USER, CANARY),
        )
    assert "evil.localhost (203.0.113.5)" in str(caught.value)
    assert script.writes == [lines("EHLO client.example.test"), lines("QUIT")]


def test_plaintext_auth_to_a_loopback_peer_is_allowed() -> None:
    script = Script(peer="::1").serve(GREETING, EHLO_AUTH, b"235 2.7.0 OK\r\n")
    link = open_with(script, security=Security.NONE, auth=PasswordAuth(USER, CANARY))
    assert link.conn.authenticated


def test_plaintext_auth_opt_in() -> None:
    script = Script(peer="203.0.113.5").serve(GREETING, EHLO_AUTH, b"235 2.7.0 OK\r\n")
    link = open_with(
        script,
        security=Security.NONE,
        auth=PasswordAuth(USER, CANARY),
        allow_unencrypted_auth=True,
    )
    assert link.conn.authenticated


# -- secrets echoed by the server are masked ----------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        f"500 5.5.2 Unrecognized command: AUTH PLAIN {PLAIN}",
        f"535 5.7.8 rejected {PLAIN}",
        f"535 5.7.8 password {CANARY} is wrong",
    ],
)
def test_secrets_echoed_in_auth_replies_never_leave(echo: str) -> None:
    script = Script(implicit_tls=True).serve(
        GREETING, EHLO_AUTH, echo.encode() + b"\r\n", b"221 Bye\r\n"
    )
    with pytest.raises(Exception) as caught:
        script.run(
            open_link(
                settings(security=Security.TLS, auth=PasswordAuth(USER, CANARY)),
                clock=script.clock,
                trace=True,
            )
        )
    error = caught.value
    shown = [str(error), repr(error), repr(error.args), "\n".join(error.transcript)]  # type: ignore[attr-defined]
    shown.append(str(error.reply))  # type: ignore[attr-defined]
    shown.append(repr(pickle.loads(pickle.dumps(error)).__dict__))
    shown.extend(script.logs)
    for text in shown:
        assert CANARY not in text, text
        assert PLAIN not in text, text
    assert "****" in str(error.reply)  # type: ignore[attr-defined]


def test_login_continuation_secrets_are_masked_too() -> None:
    login = base64.b64encode(CANARY.encode()).decode()
    script = Script(implicit_tls=True).serve(
        GREETING,
        b"250-mx\r\n250 AUTH LOGIN\r\n",
        b"334 VXNlcm5hbWU6\r\n",
        b"334 UGFzc3dvcmQ6\r\n",
        f"535 5.7.8 bad {login} ({CANARY})\r\n".encode(),
        b"221 Bye\r\n",
    )
    with pytest.raises(InvalidCredentials) as caught:
        open_with(
            script, security=Security.TLS, auth=PasswordAuth(USER, CANARY, mechanisms=("LOGIN",))
        )
    assert CANARY not in str(caught.value)
    assert login not in str(caught.value)
    assert CANARY not in "\n".join(caught.value.transcript)


# -- OAuth2: refresh once, on a new connection when the server hung up ----------------------


class Tokens:
    def __init__(self) -> None:
        self.calls: list[tuple[bool, str | None]] = []
        self.current = AccessToken("tok-old", datetime.now(UTC) + timedelta(hours=1))

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        self.calls.append((force_refresh, rejected.token.reveal() if rejected else None))
        if force_refresh:
            self.current = AccessToken("tok-new", datetime.now(UTC) + timedelta(hours=1))
        return self.current


def oauth_script(tokens: Tokens, *chunks: bytes) -> Script:
    def fetch(effect: FetchToken) -> AccessToken:
        return tokens.get_token(force_refresh=effect.force_refresh, rejected=effect.rejected)

    return Script(implicit_tls=True, token=fetch).serve(*chunks)


def xoauth2(token: str) -> str:
    raw = f"user={USER}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode()


ERROR_CHALLENGE = base64.b64encode(b'{"status":"400","schemes":"Bearer"}')


def test_refused_token_is_refreshed_once_and_retried_on_the_same_connection() -> None:
    tokens = Tokens()
    script = oauth_script(
        tokens,
        GREETING,
        EHLO_AUTH,
        b"334 " + ERROR_CHALLENGE + b"\r\n",
        b"535 5.7.8 Username and Password not accepted\r\n",
        b"235 2.7.0 Accepted\r\n",
    )
    link = open_with(script, security=Security.TLS, auth=XOAuth2Auth(USER, tokens))
    assert tokens.calls == [(False, None), (True, "tok-old")]
    assert script.writes == [
        lines("EHLO client.example.test"),
        lines(f"AUTH XOAUTH2 {xoauth2('tok-old')}"),
        lines(""),
        lines(f"AUTH XOAUTH2 {xoauth2('tok-new')}"),
    ]
    assert link.auth_expires_at == tokens.current.expires_at


def test_refused_token_then_hang_up_reconnects_once_with_the_fresh_token() -> None:
    tokens = Tokens()
    script = oauth_script(
        tokens,
        GREETING,
        EHLO_AUTH,
        b"535 5.7.8 Username and Password not accepted\r\n",
        b"",  # the server hangs up after refusing
        GREETING,
        EHLO_AUTH,
        b"235 2.7.0 Accepted\r\n",
    )
    link = open_with(script, security=Security.TLS, auth=XOAuth2Auth(USER, tokens))
    assert tokens.calls == [(False, None), (True, "tok-old")]  # no third token request
    assert script.kinds().count("Connect") == 2
    assert CLOSE in script.effects
    assert script.writes[-1] == lines(f"AUTH XOAUTH2 {xoauth2('tok-new')}")
    assert link.alive
    assert link.conn.authenticated


def test_token_refused_twice_is_token_rejected_with_its_evidence() -> None:
    tokens = Tokens()
    script = oauth_script(
        tokens,
        GREETING,
        EHLO_AUTH,
        b"535 5.7.8 Username and Password not accepted\r\n",
        b"334 " + ERROR_CHALLENGE + b"\r\n",
        b"535 5.7.8 Username and Password not accepted\r\n",
        b"221 Bye\r\n",
    )
    with pytest.raises(TokenRejected) as caught:
        open_with(script, security=Security.TLS, auth=XOAuth2Auth(USER, tokens))
    assert caught.value.status == "400"
    assert script.writes[-1] == lines("QUIT")
    assert "tok-new" not in "\n".join(caught.value.transcript)


def test_failed_forced_refresh_keeps_the_refusal_as_evidence() -> None:
    remembered = TokenRefreshError("invalid_grant: token revoked")  # a provider may reuse it

    def fetch(effect: FetchToken) -> AccessToken:
        if effect.force_refresh:
            raise remembered
        return AccessToken("tok-old")

    script = Script(implicit_tls=True, token=fetch).serve(
        GREETING,
        EHLO_AUTH,
        b"334 " + ERROR_CHALLENGE + b"\r\n",
        b"535 5.7.8 Username and Password not accepted\r\n",
        b"221 Bye\r\n",
    )
    with pytest.raises(TokenRefreshError) as caught:
        open_with(script, security=Security.TLS, auth=XOAuth2Auth(USER, Tokens()))
    error = caught.value
    assert any(line.startswith("S: 535") for line in error.transcript)  # the refusal
    assert error.challenge == {"status": "400", "schemes": "Bearer"}
    assert "after AUTH was refused: 535 5.7.8" in str(error)
    assert remembered.transcript == ()  # a copy carries this connection's evidence
    assert remembered.challenge == {}
    assert script.writes[-1] == lines("QUIT")


# -- NOOP and QUIT -------------------------------------------------------------------------


def test_probe_and_close() -> None:
    script = Script().serve(GREETING, EHLO_AUTH, b"250 2.0.0 OK\r\n", b"221 2.0.0 Bye\r\n")
    link = open_with(script, security=Security.NONE)
    assert script.run(probe_link(link)) is True
    script.run(close_link(link))
    assert script.writes[-2:] == [lines("NOOP"), lines("QUIT")]
    assert script.effects[-1] == CLOSE
    assert not link.alive


def test_probe_of_a_dead_connection_is_false() -> None:
    script = Script().serve(GREETING, EHLO_AUTH, b"")
    link = open_with(script, security=Security.NONE)
    assert script.run(probe_link(link)) is False
    assert not link.alive

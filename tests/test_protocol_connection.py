"""Byte-level tests for ClientConnection and its state table: whole sessions, no sockets."""

from __future__ import annotations

import base64

import pytest

from smtpkit.errors import LocalProtocolError, RemoteProtocolError
from smtpkit.protocol import (
    NEED_DATA,
    ClientConnection,
    Command,
    ConnectionClosed,
    Event,
    ReplyReceived,
    State,
)
from smtpkit.protocol._states import ON_REPLY, SEND
from smtpkit.replies import Phase, Reply

GREETING = b"220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp\r\n"
EHLO_PLAIN = (
    b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
EHLO_TLS = (
    b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
    b"250-SIZE 35882577\r\n"
    b"250-8BITMIME\r\n"
    b"250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-CHUNKING\r\n"
    b"250 SMTPUTF8\r\n"
)
EHLO_NO_PIPELINING = b"250-mx.example.com\r\n250 8BITMIME\r\n"

CANARY_PASSWORD = "canary-Pa55w0rd-7f3a"
CANARY_PLAIN = base64.b64encode(f"\0alice@gmail.com\0{CANARY_PASSWORD}".encode()).decode()


def receive(conn: ClientConnection, data: bytes) -> ReplyReceived:
    """Feed ``data`` and return the single reply it completes."""
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, ReplyReceived), event
    assert conn.next_event() is NEED_DATA
    return event


def events(conn: ClientConnection) -> list[Event]:
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return out


def greeted(ehlo: bytes = EHLO_TLS) -> ClientConnection:
    """A connection in READY after the greeting and EHLO."""
    conn = ClientConnection()
    receive(conn, GREETING)
    conn.send(Command.ehlo("client.example.com"))
    receive(conn, ehlo)
    assert conn.state is State.READY
    return conn


def in_content(ehlo: bytes = EHLO_TLS) -> ClientConnection:
    conn = greeted(ehlo)
    for command, reply in (
        (Command.mail("alice@gmail.com"), b"250 2.1.0 OK\r\n"),
        (Command.rcpt("bob@example.org"), b"250 2.1.5 OK\r\n"),
        (Command.data(), b"354 Go ahead\r\n"),
    ):
        conn.send(command)
        receive(conn, reply)
    assert conn.state is State.CONTENT
    return conn


# -- the whole happy session, byte by byte -------------------------------------------------


def test_full_session_with_starttls_and_auth() -> None:
    conn = ClientConnection()
    assert conn.state is State.AWAIT_GREETING
    assert conn.next_event() is NEED_DATA

    # S: 220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp
    event = receive(conn, GREETING)
    assert event.command is not None
    assert event.command.verb == "<greeting>"
    assert event.reply == Reply(220, ("smtp.gmail.com ESMTP a1-20020a05 - gsmtp",))
    assert conn.state is State.GREETED

    # C: EHLO client.example.com
    assert conn.send(Command.ehlo("client.example.com")) == b"EHLO client.example.com\r\n"
    assert conn.state is State.EHLO_SENT
    # S: 250-smtp.gmail.com at your service ... 250-STARTTLS ... 250 SMTPUTF8
    event = receive(conn, EHLO_PLAIN)
    assert event.command == Command.ehlo("client.example.com")
    assert conn.state is State.READY
    assert conn.extensions is not None
    assert conn.extensions.starttls
    assert conn.extensions.auth_mechanisms == frozenset()

    # C: STARTTLS
    assert conn.send(Command.starttls()) == b"STARTTLS\r\n"
    assert conn.state is State.STARTTLS_SENT
    # S: 220 2.0.0 Ready to start TLS
    receive(conn, b"220 2.0.0 Ready to start TLS\r\n")
    assert conn.state is State.TLS_HANDSHAKE
    assert conn.tls_established() == 0
    assert conn.state is State.GREETED
    assert conn.extensions is None

    # C: EHLO client.example.com
    assert conn.send(Command.ehlo("client.example.com")) == b"EHLO client.example.com\r\n"
    # S: 250-... 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH ...
    receive(conn, EHLO_TLS)
    assert conn.state is State.READY
    assert conn.extensions is not None
    assert "XOAUTH2" in conn.extensions.auth_mechanisms
    assert not conn.authenticated

    # C: AUTH PLAIN AGFsaWNlQGdtYWlsLmNvbQBjYW5hcnkt...
    assert conn.send(Command.auth("PLAIN", CANARY_PLAIN)) == (
        f"AUTH PLAIN {CANARY_PLAIN}\r\n".encode()
    )
    assert conn.state is State.AUTH_SENT
    # S: 235 2.7.0 Accepted
    receive(conn, b"235 2.7.0 Accepted\r\n")
    assert conn.state is State.READY
    assert conn.authenticated

    # C: MAIL FROM:<alice@gmail.com> SIZE=30
    assert conn.send(Command.mail("alice@gmail.com", ["SIZE=30"])) == (
        b"MAIL FROM:<alice@gmail.com> SIZE=30\r\n"
    )
    assert conn.state is State.ENVELOPE
    # S: 250 2.1.0 OK
    assert receive(conn, b"250 2.1.0 OK\r\n").command == Command.mail(
        "alice@gmail.com", ["SIZE=30"]
    )
    assert conn.state is State.ENVELOPE

    # C: RCPT TO:<bob@example.org>
    assert conn.send(Command.rcpt("bob@example.org")) == b"RCPT TO:<bob@example.org>\r\n"
    # S: 250 2.1.5 OK
    assert receive(conn, b"250 2.1.5 OK\r\n").reply.code == 250
    # C: RCPT TO:<carol@example.net>
    assert conn.send(Command.rcpt("carol@example.net")) == b"RCPT TO:<carol@example.net>\r\n"
    # S: 250 2.1.5 OK
    receive(conn, b"250 2.1.5 OK\r\n")
    assert conn.state is State.ENVELOPE

    # C: DATA
    assert conn.send(Command.data()) == b"DATA\r\n"
    assert conn.state is State.DATA_SENT
    # S: 354 Go ahead a1-20020a05 - gsmtp
    receive(conn, b"354 Go ahead a1-20020a05 - gsmtp\r\n")
    assert conn.state is State.CONTENT

    # C: Subject: hi / (blank) / .dotted / .
    assert conn.content(b"Subject: hi\n\n") == b"Subject: hi\r\n\r\n"
    assert conn.content(b".dotted") == b"..dotted"
    assert conn.end_content() == b"\r\n.\r\n"
    assert conn.state is State.READY
    assert [c.verb for c in conn.pending] == ["."]
    # S: 250 2.0.0 OK  1700000000 a1-20020a05 - gsmtp
    event = receive(conn, b"250 2.0.0 OK  1700000000 a1-20020a05 - gsmtp\r\n")
    assert event.command is not None
    assert event.command.phase is Phase.MESSAGE
    assert conn.state is State.READY

    # C: QUIT
    assert conn.send(Command.quit()) == b"QUIT\r\n"
    assert conn.state is State.QUIT_SENT
    # S: 221 2.0.0 closing connection a1-20020a05 - gsmtp
    receive(conn, b"221 2.0.0 closing connection a1-20020a05 - gsmtp\r\n")
    assert conn.state is State.CLOSED
    assert conn.pending == ()

    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(())


def test_auth_with_challenges() -> None:
    conn = greeted()
    # C: AUTH LOGIN
    assert conn.send(Command.auth("LOGIN")) == b"AUTH LOGIN\r\n"
    # S: 334 VXNlcm5hbWU6
    receive(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.AUTH_CHALLENGE
    # C: YWxpY2VAZ21haWwuY29t
    assert conn.send(Command.auth_response("YWxpY2VAZ21haWwuY29t")) == b"YWxpY2VAZ21haWwuY29t\r\n"
    assert conn.state is State.AUTH_SENT
    # S: 334 UGFzc3dvcmQ6
    receive(conn, b"334 UGFzc3dvcmQ6\r\n")
    # C: <password, base64>
    conn.send(Command.auth_response(base64.b64encode(CANARY_PASSWORD.encode()).decode()))
    # S: 235 2.7.0 Accepted
    receive(conn, b"235 2.7.0 Accepted\r\n")
    assert conn.authenticated
    assert conn.state is State.READY


def test_refused_auth_leaves_ready_and_unauthenticated() -> None:
    conn = greeted()
    conn.send(Command.auth("PLAIN", CANARY_PLAIN))
    # S: 535-5.7.8 Username and Password not accepted.
    # S: 535 5.7.8  https://support.google.com/mail/?p=BadCredentials
    receive(
        conn,
        b"535-5.7.8 Username and Password not accepted.\r\n"
        b"535 5.7.8  https://support.google.com/mail/?p=BadCredentials\r\n",
    )
    assert conn.state is State.READY
    assert not conn.authenticated


def test_auth_cancel_with_star() -> None:
    conn = greeted()
    conn.send(Command.auth("XOAUTH2", "dXNlcj0="))
    # S: 334 eyJzdGF0dXMiOiI0MDAifQ==
    receive(conn, b"334 eyJzdGF0dXMiOiI0MDAifQ==\r\n")
    # C: <empty line>   (RFC 7628 / XOAUTH2: acknowledge the error)
    assert conn.send(Command.auth_response("")) == b"\r\n"
    # S: 535 5.7.8 Username and Password not accepted.
    receive(conn, b"535 5.7.8 Username and Password not accepted.\r\n")
    assert conn.state is State.READY
    assert not conn.authenticated


# -- illegal steps -------------------------------------------------------------------------------


def test_sending_before_the_greeting() -> None:
    conn = ClientConnection()
    with pytest.raises(
        LocalProtocolError, match=r"cannot send EHLO in state 'awaiting the greeting'"
    ):
        conn.send(Command.ehlo("client.example.com"))
    assert conn.state is State.AWAIT_GREETING
    assert conn.transcript == ()


def test_rcpt_before_mail() -> None:
    conn = greeted()
    with pytest.raises(
        LocalProtocolError, match=r"cannot send RCPT in state 'ready \(no transaction\)'"
    ):
        conn.send(Command.rcpt("bob@example.org"))
    assert conn.state is State.READY
    assert conn.pending == ()


def test_data_before_mail() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError, match="cannot send DATA in state 'ready"):
        conn.send(Command.data())


def test_data_right_after_mail_is_allowed_by_the_table() -> None:
    # The table allows DATA in a transaction with no accepted RCPT yet: with pipelining, the
    # client cannot know which RCPTs will pass; the server answers 554 "no valid recipients".
    assert SEND[(State.ENVELOPE, "DATA")] is State.DATA_SENT
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com"))
    receive(conn, b"250 2.1.0 OK\r\n")
    assert conn.send(Command.data()) == b"DATA\r\n"
    # S: 554 5.5.1 Error: no valid recipients
    receive(conn, b"554 5.5.1 Error: no valid recipients\r\n")
    assert conn.state is State.ENVELOPE
    assert conn.send(Command.rset()) == b"RSET\r\n"
    assert conn.state is State.READY


def test_mail_twice_is_refused() -> None:
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com"))
    receive(conn, b"250 OK\r\n")
    with pytest.raises(
        LocalProtocolError, match="cannot send MAIL in state 'in a mail transaction'"
    ):
        conn.send(Command.mail("alice@gmail.com"))


def test_mail_before_ehlo() -> None:
    conn = ClientConnection()
    receive(conn, GREETING)
    with pytest.raises(
        LocalProtocolError, match=r"cannot send MAIL in state 'greeted \(EHLO needed\)'"
    ):
        conn.send(Command.mail("alice@gmail.com"))


def test_content_before_354() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError, match="cannot send message content in state 'ready"):
        conn.content(b"Subject: hi\r\n")
    with pytest.raises(LocalProtocolError, match="cannot end message content in state 'ready"):
        conn.end_content()
    conn.send(Command.mail("alice@gmail.com"))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.rcpt("bob@example.org"))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.data())
    # DATA sent, no 354 yet.
    with pytest.raises(
        LocalProtocolError, match="cannot send message content in state 'DATA sent'"
    ):
        conn.send_content(b"Subject: hi\r\n")


def test_commands_during_content_are_refused() -> None:
    conn = in_content()
    with pytest.raises(
        LocalProtocolError, match="cannot send MAIL in state 'sending message content'"
    ):
        conn.send(Command.mail("alice@gmail.com"))
    with pytest.raises(
        LocalProtocolError, match="cannot send QUIT in state 'sending message content'"
    ):
        conn.send(Command.quit())


def test_auth_continuation_without_a_challenge() -> None:
    conn = greeted()
    with pytest.raises(
        LocalProtocolError, match="cannot send an AUTH continuation in state 'ready"
    ):
        conn.send(Command.auth_response("dXNlcg=="))


def test_nothing_after_closed() -> None:
    conn = greeted()
    conn.send(Command.quit())
    receive(conn, b"221 2.0.0 Bye\r\n")
    assert conn.state is State.CLOSED
    for command in (
        Command.ehlo("client.example.com"),
        Command.mail("alice@gmail.com"),
        Command.rset(),
        Command.noop(),
        Command.quit(),
    ):
        with pytest.raises(
            LocalProtocolError, match=f"cannot send {command.verb} in state 'closed'"
        ):
            conn.send(command)
    with pytest.raises(LocalProtocolError, match="state 'closed'"):
        conn.send_chunk(b"x", last=True)
    with pytest.raises(LocalProtocolError, match="state 'closed'"):
        conn.content(b"x")
    with pytest.raises(LocalProtocolError, match="state 'closed'"):
        conn.tls_established()


def test_tls_established_without_a_220() -> None:
    conn = greeted(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError, match=r"cannot complete TLS in state 'ready.*no 220"):
        conn.tls_established()
    conn.send(Command.starttls())
    with pytest.raises(LocalProtocolError, match="cannot complete TLS in state 'STARTTLS sent'"):
        conn.tls_established()
    # S: 454 4.7.0 TLS not available due to temporary reason
    receive(conn, b"454 4.7.0 TLS not available due to temporary reason\r\n")
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError, match="no 220"):
        conn.tls_established()


def test_nothing_may_be_sent_during_the_tls_handshake() -> None:
    conn = greeted(EHLO_PLAIN)
    conn.send(Command.starttls())
    receive(conn, b"220 2.0.0 Ready to start TLS\r\n")
    with pytest.raises(
        LocalProtocolError, match="cannot send EHLO in state 'TLS handshake pending'"
    ):
        conn.send(Command.ehlo("client.example.com"))


def test_a_failed_send_produces_no_bytes_and_changes_nothing() -> None:
    conn = greeted()
    before = (conn.state, conn.pending, conn.transcript)
    with pytest.raises(LocalProtocolError):
        conn.send(Command.data())
    assert (conn.state, conn.pending, conn.transcript) == before


@pytest.mark.parametrize("state", list(State))
def test_every_state_names_itself_in_illegal_steps(state: State) -> None:
    allowed = {kind for (s, kind) in SEND if s is state}
    illegal = [
        c
        for c in (Command.mail("a@example.com"), Command.data(), Command.starttls())
        if c.verb not in allowed
    ]
    conn = ClientConnection()
    conn._state = state  # a white-box shortcut: every state's refusals name it
    for command in illegal:
        with pytest.raises(LocalProtocolError) as caught:
            conn.send(command)
        assert command.verb in str(caught.value)
        assert repr(state.value) in str(caught.value)


def test_state_table_invariants() -> None:
    # Every state but CLOSED has a way out; CLOSED accepts nothing.
    sources = {s for (s, _) in SEND} | {s for (s, _) in ON_REPLY}
    assert sources | {State.CONTENT, State.TLS_HANDSHAKE, State.CLOSED} == set(State)
    assert not any(s is State.CLOSED for (s, _) in SEND)
    assert not any(s is State.CLOSED for (s, _) in ON_REPLY)


# -- replies that make no sense -----------------------------------------------------------------


def test_2xx_to_data_is_a_remote_protocol_error() -> None:
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com"))
    conn.send(Command.rcpt("bob@example.org"))
    conn.send(Command.data())
    # S: 250 OK / 250 OK / 250 OK   (the third answers DATA: it must be 354 or an error)
    conn.receive_data(b"250 OK\r\n250 OK\r\n250 OK\r\n")
    assert isinstance(conn.next_event(), ReplyReceived)
    assert isinstance(conn.next_event(), ReplyReceived)
    with pytest.raises(RemoteProtocolError, match="unexpected reply 250 to DATA"):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_3xx_greeting_is_a_remote_protocol_error() -> None:
    conn = ClientConnection()
    conn.receive_data(b"354 what\r\n")
    with pytest.raises(RemoteProtocolError, match="unexpected reply 354"):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_334_to_ehlo_is_a_remote_protocol_error() -> None:
    conn = ClientConnection()
    receive(conn, GREETING)
    conn.send(Command.ehlo("client.example.com"))
    conn.receive_data(b"334 VXNlcm5hbWU6\r\n")
    with pytest.raises(RemoteProtocolError, match="unexpected reply 334 to EHLO"):
        conn.next_event()


def test_3xx_to_quit_is_a_remote_protocol_error() -> None:
    conn = greeted()
    conn.send(Command.quit())
    conn.receive_data(b"354 odd\r\n")
    with pytest.raises(RemoteProtocolError, match="unexpected reply 354 to QUIT"):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_any_reply_to_an_auth_step_is_legal() -> None:
    # 2xx ends the exchange, 3xx is another challenge, 4xx/5xx a refusal.
    conn = greeted()
    conn.send(Command.auth("LOGIN"))
    receive(conn, b"334 VXNlcm5hbWU6\r\n")
    conn.send(Command.auth_response(CANARY_PLAIN))
    receive(conn, b"354 odd but a challenge\r\n")
    assert conn.state is State.AUTH_CHALLENGE


def test_malformed_reply_closes_the_connection() -> None:
    conn = ClientConnection()
    conn.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.CLOSED


def test_overlong_line_raises_from_receive_data() -> None:
    conn = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="longer than"):
        conn.receive_data(b"2" * 5000)
    assert conn.state is State.CLOSED


# -- greeting and EHLO variants -------------------------------------------------------------------


def test_554_greeting_allows_only_quit() -> None:
    conn = ClientConnection()
    # S: 554 5.7.1 No SMTP service here
    receive(conn, b"554 5.7.1 No SMTP service here\r\n")
    assert conn.state is State.GREETED
    assert conn.send(Command.quit()) == b"QUIT\r\n"


def test_421_greeting_closes() -> None:
    conn = ClientConnection()
    # S: 421 4.7.0 Try again later, closing connection.
    event = receive(conn, b"421 4.7.0 Try again later, closing connection.\r\n")
    assert event.reply.code == 421
    assert conn.state is State.CLOSED


def test_421_to_ehlo_closes() -> None:
    conn = ClientConnection()
    receive(conn, GREETING)
    conn.send(Command.ehlo("client.example.com"))
    # S: 421 4.7.66 TLS 1.0 and 1.1 are not supported.
    receive(conn, b"421 4.7.66 TLS 1.0 and 1.1 are not supported.\r\n")
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="cannot send HELO in state 'closed'"):
        conn.send(Command.helo("client.example.com"))


def test_refused_ehlo_allows_helo() -> None:
    conn = ClientConnection()
    receive(conn, b"220 old.example.com SMTP\r\n")
    conn.send(Command.ehlo("client.example.com"))
    # S: 502 5.5.2 Command not recognized
    receive(conn, b"502 5.5.2 Command not recognized\r\n")
    assert conn.state is State.GREETED
    assert conn.extensions is None
    # C: HELO client.example.com
    assert conn.send(Command.helo("client.example.com")) == b"HELO client.example.com\r\n"
    # S: 250 old.example.com
    receive(conn, b"250 old.example.com\r\n")
    assert conn.state is State.READY
    assert conn.extensions is not None
    assert conn.extensions.server_name == "old.example.com"
    assert not conn.extensions.pipelining
    assert dict(conn.extensions.keywords) == {}


def test_ehlo_again_in_ready_replaces_extensions() -> None:
    conn = greeted(EHLO_PLAIN)
    conn.send(Command.ehlo("client.example.com"))
    receive(conn, EHLO_NO_PIPELINING)
    assert conn.extensions is not None
    assert not conn.extensions.pipelining


def test_rset_and_noop() -> None:
    conn = greeted()
    assert conn.send(Command.noop()) == b"NOOP\r\n"
    receive(conn, b"250 2.0.0 OK\r\n")
    conn.send(Command.mail("alice@gmail.com"))
    receive(conn, b"250 OK\r\n")
    assert conn.send(Command.noop()) == b"NOOP\r\n"
    receive(conn, b"250 OK\r\n")
    assert conn.state is State.ENVELOPE
    assert conn.send(Command.rset()) == b"RSET\r\n"
    assert conn.state is State.READY
    receive(conn, b"250 2.1.5 Flushed\r\n")
    assert conn.state is State.READY


# -- pipelining (RFC 2920) -----------------------------------------------------------------------


def test_without_pipelining_a_second_command_before_the_reply_raises() -> None:
    conn = greeted(EHLO_NO_PIPELINING)
    conn.send(Command.mail("alice@example.com"))
    with pytest.raises(
        LocalProtocolError,
        match=r"cannot send RCPT while 'MAIL FROM:<alice@example.com>' awaits its reply: "
        r"the server did not offer PIPELINING",
    ):
        conn.send(Command.rcpt("bob@example.org"))
    assert [c.verb for c in conn.pending] == ["MAIL"]
    receive(conn, b"250 OK\r\n")
    assert conn.send(Command.rcpt("bob@example.org")) == b"RCPT TO:<bob@example.org>\r\n"


def test_pipelined_transaction_in_one_flight() -> None:
    conn = greeted()
    # C: MAIL FROM:<alice@gmail.com>
    # C: RCPT TO:<bob@example.org>
    # C: RCPT TO:<nobody@example.org>
    # C: DATA
    flight = b"".join(
        conn.send(c)
        for c in (
            Command.mail("alice@gmail.com"),
            Command.rcpt("bob@example.org"),
            Command.rcpt("nobody@example.org"),
            Command.data(),
        )
    )
    assert flight == (
        b"MAIL FROM:<alice@gmail.com>\r\n"
        b"RCPT TO:<bob@example.org>\r\n"
        b"RCPT TO:<nobody@example.org>\r\n"
        b"DATA\r\n"
    )
    assert conn.state is State.DATA_SENT
    assert [c.verb for c in conn.pending] == ["MAIL", "RCPT", "RCPT", "DATA"]
    # S: 250 2.1.0 OK
    # S: 250 2.1.5 OK
    # S: 550-5.1.1 The email account that you tried to reach does not exist.
    # S: 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser
    # S: 354 Go ahead
    conn.receive_data(
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
        b"550-5.1.1 The email account that you tried to reach does not exist.\r\n"
        b"550 5.1.1  https://support.google.com/mail/?p=NoSuchUser\r\n"
        b"354 Go ahead\r\n"
    )
    got = events(conn)
    assert all(isinstance(e, ReplyReceived) for e in got)
    replies = [e for e in got if isinstance(e, ReplyReceived)]
    assert [(e.command.verb if e.command else None, e.reply.code) for e in replies] == [
        ("MAIL", 250),
        ("RCPT", 250),
        ("RCPT", 550),
        ("DATA", 354),
    ]
    refused = [e for e in replies if e.reply.code == 550]
    assert refused[0].command is not None
    assert refused[0].command.address == "nobody@example.org"
    assert refused[0].reply.enhanced_code == "5.1.1"
    assert replies[1].command is not None
    assert replies[1].command.address == "bob@example.org"
    assert conn.state is State.CONTENT


def test_pipelined_replies_split_across_reads() -> None:
    conn = greeted()
    for command in (Command.mail("a@example.com"), Command.rcpt("b@example.org"), Command.data()):
        conn.send(command)
    wire = b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 Go ahead\r\n"
    got: list[Event] = []
    for index in range(len(wire)):
        conn.receive_data(wire[index : index + 1])
        got.extend(events(conn))
    assert [e.reply.code for e in got if isinstance(e, ReplyReceived)] == [250, 250, 354]
    assert conn.state is State.CONTENT


def test_end_of_content_and_next_mail_pipelined() -> None:
    conn = in_content()
    wire = conn.send_content(b"Subject: one\r\n\r\nfirst\r\n")
    assert wire == b"Subject: one\r\n\r\nfirst\r\n.\r\n"
    # C: MAIL FROM:<alice@gmail.com>   (before the reply to ".")
    # C: RCPT TO:<carol@example.net>
    wire += conn.send(Command.mail("alice@gmail.com"))
    wire += conn.send(Command.rcpt("carol@example.net"))
    assert [c.verb for c in conn.pending] == [".", "MAIL", "RCPT"]
    # S: 250 2.0.0 OK queued
    # S: 250 2.1.0 OK
    # S: 550 5.1.1 no such user
    conn.receive_data(b"250 2.0.0 OK queued\r\n250 2.1.0 OK\r\n550 5.1.1 no such user\r\n")
    got = [e for e in events(conn) if isinstance(e, ReplyReceived)]
    assert [(e.command.phase if e.command else None, e.reply.code) for e in got] == [
        (Phase.MESSAGE, 250),
        (Phase.MAIL, 250),
        (Phase.RCPT, 550),
    ]
    assert conn.state is State.ENVELOPE


def test_ehlo_is_synchronising_even_with_pipelining() -> None:
    conn = ClientConnection()
    receive(conn, GREETING)
    conn.send(Command.ehlo("client.example.com"))
    receive(conn, EHLO_TLS)
    conn.send(Command.ehlo("client.example.com"))
    with pytest.raises(LocalProtocolError, match="cannot send MAIL in state 'EHLO sent'"):
        conn.send(Command.mail("alice@gmail.com"))


def test_data_is_synchronising_even_with_pipelining() -> None:
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com"))
    conn.send(Command.rcpt("bob@example.org"))
    conn.send(Command.data())
    with pytest.raises(LocalProtocolError, match="cannot send RCPT in state 'DATA sent'"):
        conn.send(Command.rcpt("carol@example.net"))


def test_refused_mail_in_a_pipeline_still_moves_in_order() -> None:
    conn = greeted()
    for command in (Command.mail("a@example.com"), Command.rcpt("b@example.org"), Command.data()):
        conn.send(command)
    # S: 550 5.7.1 sender refused
    # S: 503 5.5.1 need MAIL first
    # S: 503 5.5.1 need MAIL first
    conn.receive_data(b"550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n")
    got = [e for e in events(conn) if isinstance(e, ReplyReceived)]
    assert [e.reply.code for e in got] == [550, 503, 503]
    # A refused DATA leaves the transaction open: RSET closes it.
    assert conn.state is State.ENVELOPE
    conn.send(Command.rset())
    assert conn.state is State.READY


# -- BDAT (RFC 3030) ---------------------------------------------------------------------------


def test_bdat_single_last_chunk() -> None:
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com", ["BODY=8BITMIME"]))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.rcpt("bob@example.org"))
    receive(conn, b"250 OK\r\n")
    # C: BDAT 12 LAST
    # C: .not stuffed   (BDAT content travels as is: no dot-stuffing, no terminator)
    assert conn.send_chunk(b".not stuffed", last=True) == b"BDAT 12 LAST\r\n.not stuffed"
    assert conn.state is State.READY
    # S: 250 2.0.0 OK
    event = receive(conn, b"250 2.0.0 OK\r\n")
    assert event.command is not None
    assert event.command.phase is Phase.MESSAGE
    assert event.command.line == "BDAT 12 LAST"


def test_bdat_several_chunks_pipelined() -> None:
    conn = greeted()
    conn.send(Command.mail("alice@gmail.com"))
    conn.send(Command.rcpt("bob@example.org"))
    # C: BDAT 5
    # C: BDAT 3 LAST
    wire = conn.send_chunk(b"hello", last=False)
    assert conn.state is State.CHUNKING
    wire += conn.send_chunk(b"abc", last=True)
    assert wire == b"BDAT 5\r\nhelloBDAT 3 LAST\r\nabc"
    assert conn.state is State.READY
    # S: 250 OK / 250 OK / 250 2.0.0 5 octets received / 250 2.0.0 Message accepted
    conn.receive_data(b"250 OK\r\n250 OK\r\n250 2.0.0 5 received\r\n250 2.0.0 accepted\r\n")
    got = [e for e in events(conn) if isinstance(e, ReplyReceived)]
    assert [(e.command.phase if e.command else None) for e in got] == [
        Phase.MAIL,
        Phase.RCPT,
        Phase.DATA,
        Phase.MESSAGE,
    ]


def test_bdat_without_pipelining_waits_between_chunks() -> None:
    conn = greeted(EHLO_NO_PIPELINING)
    conn.send(Command.mail("a@example.com"))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.rcpt("b@example.org"))
    receive(conn, b"250 OK\r\n")
    conn.send_chunk(b"abc", last=False)
    with pytest.raises(LocalProtocolError, match="awaits its reply"):
        conn.send_chunk(b"def", last=True)
    receive(conn, b"250 OK\r\n")
    assert conn.send_chunk(b"def", last=True) == b"BDAT 3 LAST\r\ndef"


def test_bdat_then_rset_aborts() -> None:
    conn = greeted()
    conn.send(Command.mail("a@example.com"))
    conn.send(Command.rcpt("b@example.org"))
    conn.send_chunk(b"abc", last=False)
    assert conn.send(Command.rset()) == b"RSET\r\n"
    assert conn.state is State.READY


def test_bdat_before_mail_is_refused() -> None:
    conn = greeted()
    with pytest.raises(LocalProtocolError, match="cannot send BDAT LAST in state 'ready"):
        conn.send_chunk(b"abc", last=True)


# -- closing: 421 and EOF ------------------------------------------------------------------------


def test_unsolicited_421() -> None:
    conn = greeted()
    # S: 421 4.4.2 mx.example.com Error: timeout exceeded
    event = receive(conn, b"421 4.4.2 mx.example.com Error: timeout exceeded\r\n")
    assert event.command is None
    assert event.reply == Reply(421, ("4.4.2 mx.example.com Error: timeout exceeded",))
    assert conn.state is State.CLOSED


def test_unsolicited_non_421_reply_is_reported_without_a_command() -> None:
    conn = greeted()
    event = receive(conn, b"250 stray\r\n")
    assert event.command is None
    assert conn.state is State.READY


def test_421_to_a_pipelined_command_closes() -> None:
    conn = greeted()
    conn.send(Command.mail("a@example.com"))
    conn.send(Command.rcpt("b@example.org"))
    # S: 421 4.7.0 Try again later, closing connection.
    event = receive(conn, b"421 4.7.0 Try again later, closing connection.\r\n")
    assert event.command is not None
    assert event.command.verb == "MAIL"
    assert conn.state is State.CLOSED
    conn.receive_data(b"")
    closed = conn.next_event()
    assert closed == ConnectionClosed((Command.rcpt("b@example.org"),))


def test_eof_with_pending_commands() -> None:
    conn = greeted()
    conn.send(Command.mail("a@example.com"))
    conn.send(Command.rcpt("b@example.org"))
    conn.send(Command.data())
    conn.receive_data(b"250 OK\r\n")
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ReplyReceived)
    event = conn.next_event()
    assert event == ConnectionClosed((Command.rcpt("b@example.org"), Command.data()))
    assert conn.state is State.CLOSED
    assert conn.pending == ()


def test_eof_before_the_greeting() -> None:
    conn = ClientConnection()
    conn.receive_data(b"")
    # The greeting is not a command the caller sent: it is not listed.
    assert conn.next_event() == ConnectionClosed(())
    assert conn.state is State.CLOSED


def test_eof_in_the_middle_of_a_reply() -> None:
    conn = greeted()
    conn.send(Command.noop())
    conn.receive_data(b"250-partial\r\n250 par")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed((Command.noop(),))


def test_mark_closed() -> None:
    conn = greeted()
    conn.send(Command.mail("a@example.com"))
    conn.mark_closed()
    assert conn.state is State.CLOSED
    assert conn.pending == ()


# -- STARTTLS injection (RFC 3207 §4.2) -----------------------------------------------------------


def test_plaintext_after_220_is_discarded() -> None:
    conn = greeted(EHLO_PLAIN)
    assert conn.extensions is not None
    conn.send(Command.starttls())
    # S: 220 2.0.0 Ready to start TLS
    # S: 250-injected.example.com          (sent in plaintext by a man in the middle,
    # S: 250 AUTH PLAIN                     in the same TCP segment as the 220)
    injected = b"250-injected.example.com\r\n250 AUTH PLAIN\r\n"
    conn.receive_data(b"220 2.0.0 Ready to start TLS\r\n" + injected)
    event = conn.next_event()
    assert isinstance(event, ReplyReceived)
    assert event.reply.code == 220
    assert conn.state is State.TLS_HANDSHAKE
    assert conn.tls_established() == len(injected)
    assert conn.state is State.GREETED
    assert conn.extensions is None
    assert not conn.authenticated
    assert conn.next_event() is NEED_DATA
    assert "-- discarded 42 octets sent in plaintext after 220" in conn.transcript
    # The genuine, encrypted EHLO reply is what counts.
    conn.send(Command.ehlo("client.example.com"))
    receive(conn, EHLO_TLS)
    assert conn.extensions is not None
    assert conn.extensions.server_name == "smtp.gmail.com at your service, [203.0.113.5]"


def test_partial_plaintext_after_220_is_discarded() -> None:
    conn = greeted(EHLO_PLAIN)
    conn.send(Command.starttls())
    conn.receive_data(b"220 go ahead\r\n250-half a rep")
    assert isinstance(conn.next_event(), ReplyReceived)
    assert conn.tls_established() == len(b"250-half a rep")
    # The next reply after TLS is read from a clean parser.
    conn.send(Command.ehlo("client.example.com"))
    receive(conn, b"250 mx.example.com\r\n")
    assert conn.state is State.READY


def test_starttls_resets_authentication() -> None:
    conn = greeted()
    conn.send(Command.auth("PLAIN", CANARY_PLAIN))
    receive(conn, b"235 2.7.0 Accepted\r\n")
    assert conn.authenticated
    conn.send(Command.starttls())
    receive(conn, b"220 go ahead\r\n")
    conn.tls_established()
    assert not conn.authenticated


# -- the transcript -------------------------------------------------------------------------------


def test_transcript_is_redacted() -> None:
    conn = in_content()
    content = f"Subject: {CANARY_PASSWORD}\r\n\r\nbody {CANARY_PLAIN}\r\n".encode()
    conn.send_content(content)
    receive(conn, b"250 OK\r\n")
    conn.send(Command.quit())
    receive(conn, b"221 bye\r\n")

    conn2 = greeted()
    conn2.send(Command.auth("LOGIN"))
    receive(conn2, b"334 VXNlcm5hbWU6\r\n")
    conn2.send(Command.auth_response(base64.b64encode(b"alice@gmail.com").decode()))
    receive(conn2, b"334 UGFzc3dvcmQ6\r\n")
    conn2.send(Command.auth_response(base64.b64encode(CANARY_PASSWORD.encode()).decode()))
    receive(conn2, b"235 2.7.0 Accepted\r\n")

    for transcript in (conn.transcript, conn2.transcript):
        text = "\n".join(transcript)
        assert CANARY_PASSWORD not in text
        assert CANARY_PLAIN not in text
        assert base64.b64encode(CANARY_PASSWORD.encode()).decode() not in text
    assert f"C: <{len(content)} octets of message content>" in conn.transcript
    assert conn2.transcript[-6:] == (
        "C: AUTH LOGIN",
        "S: 334 VXNlcm5hbWU6",
        "C: ****",
        "S: 334 UGFzc3dvcmQ6",
        "C: ****",
        "S: 235 2.7.0 Accepted",
    )


def test_transcript_of_a_session() -> None:
    conn = greeted(EHLO_NO_PIPELINING)
    conn.send(Command.auth("PLAIN", CANARY_PLAIN))
    receive(conn, b"235 2.7.0 Accepted\r\n")
    conn.send(Command.mail("a@example.com"))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.rcpt("b@example.org"))
    receive(conn, b"250 OK\r\n")
    conn.send(Command.data())
    receive(conn, b"354 go\r\n")
    conn.send_content(b"secret body\n")
    receive(conn, b"250 queued\r\n")
    assert conn.transcript == (
        "S: 220 smtp.gmail.com ESMTP a1-20020a05 - gsmtp",
        "C: EHLO client.example.com",
        "S: 250-mx.example.com",
        "S: 250 8BITMIME",
        "C: AUTH PLAIN ****",
        "S: 235 2.7.0 Accepted",
        "C: MAIL FROM:<a@example.com>",
        "S: 250 OK",
        "C: RCPT TO:<b@example.org>",
        "S: 250 OK",
        "C: DATA",
        "S: 354 go",
        "C: <13 octets of message content>",
        "C: .",
        "S: 250 queued",
    )


def test_transcript_bdat_content_is_redacted() -> None:
    conn = greeted()
    conn.send(Command.mail("a@example.com"))
    conn.send(Command.rcpt("b@example.org"))
    conn.send_chunk(CANARY_PASSWORD.encode(), last=True)
    assert CANARY_PASSWORD not in "\n".join(conn.transcript)
    assert conn.transcript[-2:] == ("C: BDAT 20 LAST", "C: <20 octets of message content>")


def test_transcript_is_bounded() -> None:
    conn = greeted()
    for _ in range(500):
        conn.send(Command.noop())
        receive(conn, b"250 OK\r\n")
    assert len(conn.transcript) == 200
    assert conn.transcript[-1] == "S: 250 OK"


def test_errors_from_the_connection_do_not_leak_auth_payloads() -> None:
    conn = greeted(EHLO_NO_PIPELINING)
    conn.send(Command.auth("PLAIN", CANARY_PLAIN))
    with pytest.raises(LocalProtocolError) as caught:
        conn.send(Command.auth_response(CANARY_PLAIN))
    assert CANARY_PLAIN not in str(caught.value)
    assert str(caught.value) == "cannot send an AUTH continuation in state 'AUTH step sent'"

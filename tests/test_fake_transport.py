"""Byte-level tests of ``FakeTransport``: the fake server must answer as a strict SMTP server.

Every test here speaks raw SMTP to the fake through the ``Stream`` seam and asserts the exact
bytes it answers, so what passes against the fake would pass against a real server.
"""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit.config import Endpoint, Security
from smtpkit.errors import (
    ConfigurationError,
    ConnectError,
    DeliveryUnknown,
    InvalidCredentials,
    OperationTimeout,
    ServerDisconnected,
    TLSError,
    TLSModeMismatch,
)
from smtpkit.protocol import encode_content
from smtpkit.replies import Phase
from smtpkit.testing import ReceivedMessage
from smtpkit.testing._fake import FakeStream, FakeTransport
from smtpkit.testing._fake_config import FakeCapabilities, FakeTLS
from smtpkit.transports import Stream, Transport

HOST = "fake.smtpkit.test"
SUBMISSION = Endpoint(HOST, 587)
CANARY = "Canary-Pa55word-7f3e"
EHLO_PLAIN = (
    b"250-fake.smtpkit.test at your service, [client.example.com]\r\n"
    b"250-SIZE 10485760\r\n"
    b"250-8BITMIME\r\n"
    b"250-STARTTLS\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 DSN\r\n"
)
EHLO_TLS = (
    b"250-fake.smtpkit.test at your service, [client.example.com]\r\n"
    b"250-SIZE 10485760\r\n"
    b"250-8BITMIME\r\n"
    b"250-AUTH PLAIN LOGIN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n"
    b"250-PIPELINING\r\n"
    b"250-SMTPUTF8\r\n"
    b"250 DSN\r\n"
)
MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Hello\r\n\r\nHi there.\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def plain(user: str, password: str) -> bytes:
    return b64(b"\0" + user.encode() + b"\0" + password.encode())


def talk(stream: FakeStream, data: bytes = b"") -> bytes:
    """Send ``data`` (if any) and return everything the server queued in answer."""
    if data:
        stream.send(data)
    return stream.receive()


def greeted(fake: FakeTransport, endpoint: Endpoint = SUBMISSION) -> FakeStream:
    stream = fake.connect(endpoint)
    assert talk(stream) == b"220 fake.smtpkit.test ESMTP\r\n"
    return stream


def ready(fake: FakeTransport, *, tls: bool = True) -> FakeStream:
    """Greeting read, EHLO done, and (by default) STARTTLS done and EHLO again."""
    stream = greeted(fake)
    assert talk(stream, b"EHLO client.example.com\r\n").startswith(b"250-")
    if tls:
        assert talk(stream, b"STARTTLS\r\n") == b"220 2.0.0 Ready to start TLS\r\n"
        stream.start_tls(ssl.create_default_context(), HOST)
        assert talk(stream, b"EHLO client.example.com\r\n").startswith(b"250-")
    return stream


def logged_in(fake: FakeTransport, user: str = "me@example.com") -> FakeStream:
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN " + plain(user, "pw") + b"\r\n").startswith(b"235 ")
    return stream


def send_message(stream: FakeStream, raw: bytes = MESSAGE, rcpts: tuple[str, ...] = ()) -> bytes:
    """Pipeline MAIL, RCPT..., DATA; then the content. Returns all replies."""
    rcpts = rcpts or ("b@example.com",)
    group = b"MAIL FROM:<a@example.com>\r\n" + b"".join(
        b"RCPT TO:<" + r.encode() + b">\r\n" for r in rcpts
    )
    replies = talk(stream, group + b"DATA\r\n")
    if not replies.endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n"):
        return replies
    return replies + talk(stream, encode_content(raw))


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport(credentials={"me@example.com": "pw"})


# -- greeting, EHLO, STARTTLS ------------------------------------------------------------


def test_greeting_and_ehlo_before_tls_hide_auth(fake: FakeTransport) -> None:
    stream = greeted(fake)
    assert talk(stream, b"EHLO client.example.com\r\n") == EHLO_PLAIN
    assert not stream.is_encrypted


def test_starttls_resets_the_session_and_hides_starttls(fake: FakeTransport) -> None:
    stream = greeted(fake)
    talk(stream, b"EHLO client.example.com\r\n")
    assert talk(stream, b"STARTTLS\r\n") == b"220 2.0.0 Ready to start TLS\r\n"
    stream.start_tls(ssl.create_default_context(), HOST)
    assert stream.is_encrypted
    assert stream.server_hostname == HOST
    # RFC 3207 §4.2: the EHLO from before TLS no longer counts.
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == (
        b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    )
    assert talk(stream, b"EHLO client.example.com\r\n") == EHLO_TLS
    assert talk(stream, b"STARTTLS\r\n") == b"503 5.5.1 Error: TLS already active\r\n"


def test_auth_advertised_in_plaintext_when_allowed() -> None:
    fake = FakeTransport(auth_requires_tls=False)
    stream = greeted(fake)
    assert b"250-AUTH PLAIN LOGIN\r\n" in talk(stream, b"EHLO client.example.com\r\n")


def test_helo_answers_one_line_and_refuses_parameters(fake: FakeTransport) -> None:
    stream = greeted(fake)
    assert talk(stream, b"HELO client.example.com\r\n") == (
        b"250 fake.smtpkit.test at your service, [client.example.com]\r\n"
    )
    assert talk(stream, b"MAIL FROM:<a@example.com> SIZE=10\r\n") == (
        b"555 5.5.4 Parameters not allowed after HELO\r\n"
    )


def test_ehlo_without_argument_is_a_syntax_error(fake: FakeTransport) -> None:
    stream = greeted(fake)
    assert talk(stream, b"EHLO\r\n") == b"501 5.5.4 Syntax: EHLO hostname\r\n"


def test_capabilities_are_configurable() -> None:
    caps = FakeCapabilities(
        starttls=False, auth=(), pipelining=False, size=None, chunking=True, dsn=False
    )
    fake = FakeTransport(capabilities=caps)
    stream = greeted(fake)
    assert talk(stream, b"EHLO c.example\r\n") == (
        b"250-fake.smtpkit.test at your service, [c.example]\r\n"
        b"250-8BITMIME\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n"
        b"250-CHUNKING\r\n"
        b"250 SMTPUTF8\r\n"
    )
    assert talk(stream, b"STARTTLS\r\n") == b"502 5.5.1 Error: STARTTLS not offered\r\n"


def test_gmail_capabilities() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities.gmail())
    stream = greeted(fake)
    talk(stream, b"EHLO client.example.com\r\n")
    talk(stream, b"STARTTLS\r\n")
    stream.start_tls(ssl.create_default_context(), HOST)
    assert talk(stream, b"EHLO client.example.com\r\n") == (
        b"250-fake.smtpkit.test at your service, [client.example.com]\r\n"
        b"250-SIZE 35882577\r\n"
        b"250-8BITMIME\r\n"
        b"250-AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n"
        b"250-ENHANCEDSTATUSCODES\r\n"
        b"250-PIPELINING\r\n"
        b"250-CHUNKING\r\n"
        b"250 SMTPUTF8\r\n"
    )


def test_fake_satisfies_the_transport_seam(fake: FakeTransport) -> None:
    assert isinstance(fake, Transport)
    assert isinstance(fake.connect(SUBMISSION), Stream)


def test_without_enhanced_status_codes_replies_carry_none() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(enhanced_status_codes=False))
    stream = ready(fake, tls=False)
    assert talk(stream, b"RCPT TO:<b@example.com>\r\n") == b"503 Error: need MAIL command\r\n"


def test_unsupported_mechanism_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="CRAM-MD5"):
        FakeTransport(capabilities=FakeCapabilities(auth=("CRAM-MD5",)))


# -- TLS modes ---------------------------------------------------------------------------


def test_starttls_unavailable_answers_454() -> None:
    fake = FakeTransport(tls=FakeTLS.UNAVAILABLE)
    stream = ready(fake, tls=False)
    assert talk(stream, b"STARTTLS\r\n") == b"454 4.7.0 TLS not available\r\n"
    assert not stream.is_encrypted


def test_untrusted_certificate_fails_start_tls() -> None:
    fake = FakeTransport(tls=FakeTLS.UNTRUSTED_CERTIFICATE)
    stream = ready(fake, tls=False)
    assert talk(stream, b"STARTTLS\r\n").startswith(b"220 ")
    with pytest.raises(TLSError, match="certificate verify failed"):
        stream.start_tls(ssl.create_default_context(), HOST)
    assert stream.server_closed
    with pytest.raises(ServerDisconnected):
        stream.send(b"EHLO client.example.com\r\n")


def test_untrusted_certificate_passes_when_verification_is_off() -> None:
    fake = FakeTransport(tls=FakeTLS.UNTRUSTED_CERTIFICATE)
    stream = ready(fake, tls=False)
    talk(stream, b"STARTTLS\r\n")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    stream.start_tls(context, HOST)
    assert stream.is_encrypted


def test_start_tls_out_of_turn_fails(fake: FakeTransport) -> None:
    stream = greeted(fake)
    with pytest.raises(TLSError, match="not waiting"):
        stream.start_tls(ssl.create_default_context(), HOST)
    talk(stream, b"EHLO client.example.com\r\n")
    stream.send(b"STARTTLS\r\n")  # the 220 is not read yet
    with pytest.raises(TLSError, match="not waiting"):
        stream.start_tls(ssl.create_default_context(), HOST)


def test_implicit_tls_is_encrypted_from_the_start(fake: FakeTransport) -> None:
    stream = greeted(fake, Endpoint(HOST, 465, security=Security.TLS))
    assert stream.is_encrypted
    assert talk(stream, b"EHLO client.example.com\r\n") == EHLO_TLS


def test_implicit_tls_with_untrusted_certificate_fails_at_connect() -> None:
    fake = FakeTransport(tls=FakeTLS.UNTRUSTED_CERTIFICATE)
    with pytest.raises(TLSError, match="certificate verify failed"):
        fake.connect(Endpoint(HOST, 465, security=Security.TLS))
    assert fake.connections == 1


def test_implicit_tls_to_a_plaintext_server_is_a_mode_mismatch() -> None:
    fake = FakeTransport(tls=FakeTLS.UNAVAILABLE)
    with pytest.raises(TLSModeMismatch):
        fake.connect(Endpoint(HOST, 465, security=Security.TLS))


def test_plaintext_after_starttls_220_closes_the_connection(fake: FakeTransport) -> None:
    stream = ready(fake, tls=False)
    talk(stream, b"STARTTLS\r\n")
    stream.send(b"EHLO injected\r\n")
    assert stream.receive() == b""
    assert any("TLS handshake" in e for e in fake.protocol_errors)


# -- AUTH --------------------------------------------------------------------------------


def test_auth_plain_inline_good_and_bad() -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"})
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "nope") + b"\r\n") == (
        b"535 5.7.8 Authentication credentials invalid\r\n"
    )
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n") == (
        b"235 2.7.0 Authentication successful\r\n"
    )
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n") == (
        b"503 5.5.1 Error: already authenticated\r\n"
    )
    assert fake.auth_attempts == [
        ("PLAIN", "me@example.com", False),
        ("PLAIN", "me@example.com", True),
    ]


def test_auth_plain_after_empty_challenge(fake: FakeTransport) -> None:
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN\r\n") == b"334 \r\n"
    assert talk(stream, plain("me@example.com", "pw") + b"\r\n") == (
        b"235 2.7.0 Authentication successful\r\n"
    )


def test_auth_login_good_and_bad(fake: FakeTransport) -> None:
    stream = ready(fake)
    assert talk(stream, b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"
    assert talk(stream, b64(b"me@example.com") + b"\r\n") == b"334 UGFzc3dvcmQ6\r\n"
    assert talk(stream, b64(b"wrong") + b"\r\n") == (
        b"535 5.7.8 Authentication credentials invalid\r\n"
    )
    # LOGIN with the user name as initial response skips the first prompt.
    assert talk(stream, b"AUTH LOGIN " + b64(b"me@example.com") + b"\r\n") == (
        b"334 UGFzc3dvcmQ6\r\n"
    )
    assert talk(stream, b64(b"pw") + b"\r\n") == b"235 2.7.0 Authentication successful\r\n"
    assert [a.success for a in fake.auth_attempts] == [False, True]


def test_unknown_user_is_refused(fake: FakeTransport) -> None:
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN " + plain("who@example.com", "pw") + b"\r\n").startswith(
        b"535 5.7.8 "
    )


def test_credentials_none_accepts_anyone() -> None:
    fake = FakeTransport()
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN " + plain("anyone", "anything") + b"\r\n").startswith(b"235 ")
    assert fake.auth_attempts == [("PLAIN", "anyone", True)]


def test_auth_errors() -> None:
    # require_auth=False: AUTH inside a mail transaction needs a server that takes mail
    # without a login.
    fake = FakeTransport(credentials={"me@example.com": "pw"}, require_auth=False)
    stream = ready(fake, tls=False)
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n") == (
        b"530 5.7.0 Must issue a STARTTLS command first\r\n"
    )
    stream = ready(fake)
    assert talk(stream, b"AUTH CRAM-MD5\r\n") == b"504 5.5.4 Unrecognized authentication type\r\n"
    assert talk(stream, b"AUTH PLAIN !!!\r\n") == (
        b"501 5.5.2 Cannot decode the initial response\r\n"
    )
    assert talk(stream, b"AUTH LOGIN\r\n") == b"334 VXNlcm5hbWU6\r\n"
    assert talk(stream, b"*\r\n") == b"501 5.7.0 Authentication cancelled\r\n"
    assert talk(stream, b"AUTH PLAIN " + b64(b"no-nul-bytes") + b"\r\n") == (
        b"501 5.5.2 Malformed PLAIN response\r\n"
    )
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n").startswith(b"250 ")
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n") == (
        b"503 5.5.1 Error: MAIL transaction in progress\r\n"
    )


def test_require_auth_refuses_mail_before_auth() -> None:
    fake = FakeTransport(require_auth=True)
    stream = ready(fake)
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == (
        b"530 5.7.0 Authentication required\r\n"
    )
    assert talk(stream, b"AUTH PLAIN " + plain("u", "p") + b"\r\n").startswith(b"235 ")
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == b"250 2.1.0 OK\r\n"


def test_xoauth2_good_and_bad_token() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities.gmail(), credentials={"me@gmail.com": "tok"})
    stream = ready(fake)
    good = b64(b"user=me@gmail.com\x01auth=Bearer tok\x01\x01")
    bad = b64(b"user=me@gmail.com\x01auth=Bearer expired\x01\x01")
    challenge = talk(stream, b"AUTH XOAUTH2 " + bad + b"\r\n")
    assert challenge.startswith(b"334 ")
    assert b'"status":"400"' in base64.b64decode(challenge[4:].strip())
    assert talk(stream, b"\r\n") == b"535 5.7.8 Username and Password not accepted.\r\n"
    assert talk(stream, b"AUTH XOAUTH2 " + good + b"\r\n") == (
        b"235 2.7.0 Authentication successful\r\n"
    )
    assert fake.auth_attempts == [
        ("XOAUTH2", "me@gmail.com", False),
        ("XOAUTH2", "me@gmail.com", True),
    ]


# -- mail transactions -------------------------------------------------------------------


def test_pipelined_envelope_replies_in_order(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    replies = talk(
        stream,
        b"MAIL FROM:<a@example.com> SIZE=67\r\n"
        b"RCPT TO:<b@example.com>\r\n"
        b"RCPT TO:<c@example.com>\r\n"
        b"DATA\r\n",
    )
    assert replies == (
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    )
    assert talk(stream, encode_content(MESSAGE)) == b"250 2.0.0 OK: queued as FAKE0001\r\n"
    (sent,) = fake.messages
    assert sent.sender == "a@example.com"
    assert sent.recipients == ("b@example.com", "c@example.com")
    assert sent.raw == MESSAGE
    assert sent.subject == "Hello"
    assert sent.auth_user == "me@example.com"
    assert sent.auth_mechanism == "PLAIN"
    assert sent.tls
    assert sent.mail_options == ("SIZE=67",)
    assert sent.queue_id == "FAKE0001"
    assert fake.protocol_errors == []


def test_dot_stuffing_round_trip(fake: FakeTransport) -> None:
    body = b"Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend.\r\n"
    stream = logged_in(fake)
    assert send_message(stream, body).endswith(b"250 2.0.0 OK: queued as FAKE0001\r\n")
    assert fake.messages[0].raw == body


def test_commands_and_content_split_across_sends(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    stream.send(b"MAIL FR")
    stream.send(b"OM:<a@example.com>\r")
    stream.send(b"\nRCPT TO:<b@example.com>\r\nDA")
    stream.send(b"TA\r\n")
    assert stream.receive().endswith(b"354 End data with <CR><LF>.<CR><LF>\r\n")
    wire = encode_content(MESSAGE)
    for i in range(0, len(wire), 7):
        stream.send(wire[i : i + 7])
    assert stream.receive() == b"250 2.0.0 OK: queued as FAKE0001\r\n"
    assert fake.messages[0].raw == MESSAGE


def test_lf_dot_crlf_does_not_end_content(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    stream.send(b"Subject: smuggle\r\n\r\nhi\n.\r\nMAIL FROM:<evil@example.com>\r\n")
    with pytest.raises(OperationTimeout):
        stream.receive()  # still inside the content
    assert talk(stream, b".\r\n") == (
        b"550 5.6.0 Message contains bare <CR> or <LF> characters\r\n"
    )
    assert fake.messages == []
    assert any("bare CR or LF" in e for e in fake.protocol_errors)


def test_bare_lf_command_is_refused(fake: FakeTransport) -> None:
    stream = greeted(fake)
    assert talk(stream, b"EHLO client.example.com\n") == (
        b"500 5.5.2 Syntax error: bare <LF> received\r\n"
    )


def test_sequencing_errors(fake: FakeTransport) -> None:
    stream = greeted(fake)
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == (
        b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    )
    stream = logged_in(fake)
    assert talk(stream, b"RCPT TO:<b@example.com>\r\n") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert talk(stream, b"DATA\r\n") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == b"250 2.1.0 OK\r\n"
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == (
        b"503 5.5.1 Error: nested MAIL command\r\n"
    )
    assert talk(stream, b"DATA\r\n") == b"554 5.5.1 Error: no valid recipients\r\n"
    assert talk(stream, b"MAIL FROM:a@example.com\r\n") == (
        b"503 5.5.1 Error: nested MAIL command\r\n"
    )
    assert talk(stream, b"RCPT TO:b@example.com\r\n") == b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
    assert talk(stream, b"RSET\r\n") == b"250 2.0.0 OK\r\n"
    assert talk(stream, b"MAIL FROM:a@example.com\r\n") == (
        b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
    )
    assert talk(stream, b"FROB\r\n") == b"500 5.5.1 Error: command not recognized\r\n"


def test_null_sender_and_parameters(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    assert (
        talk(stream, b"MAIL FROM:<> BODY=8BITMIME RET=HDRS ENVID=x1 AUTH=<>\r\n")
        == b"250 2.1.0 OK\r\n"
    )
    assert talk(stream, b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE\r\n") == (
        b"250 2.1.5 OK\r\n"
    )
    assert talk(stream, b"RCPT TO:<c@example.com> FOO=1\r\n") == (
        b"555 5.5.4 Unsupported option: FOO=1\r\n"
    )
    assert talk(stream, b"RSET\r\n") == b"250 2.0.0 OK\r\n"
    assert talk(stream, b"MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n") == (
        b"555 5.5.4 Unsupported option: BODY=BINARYMIME\r\n"
    )


def test_size_limits() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(size=100))
    stream = logged_in(fake)
    assert talk(stream, b"MAIL FROM:<a@example.com> SIZE=101\r\n") == (
        b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    )
    assert talk(stream, b"MAIL FROM:<a@example.com> SIZE=abc\r\n") == (
        b"501 5.5.4 Bad SIZE parameter\r\n"
    )
    big = b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n"
    assert send_message(stream, big).endswith(
        b"552 5.3.4 Message size exceeds fixed maximum message size\r\n"
    )
    assert fake.messages == []


def test_smtputf8_addresses() -> None:
    fake = FakeTransport()
    stream = logged_in(fake)
    assert talk(stream, "MAIL FROM:<jörg@example.com>\r\n".encode()) == (
        b"553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"
    )
    assert talk(stream, "MAIL FROM:<jörg@example.com> SMTPUTF8\r\n".encode()) == (
        b"250 2.1.0 OK\r\n"
    )
    assert talk(stream, "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode()) == b"250 2.1.5 OK\r\n"


def test_eight_bit_content_without_declaration_is_noted(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    raw = "Subject: x\r\n\r\nGrüße\r\n".encode()
    assert send_message(stream, raw).endswith(b"250 2.0.0 OK: queued as FAKE0001\r\n")
    assert any("8-bit" in e for e in fake.protocol_errors)


def test_rset_noop_quit(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == b"250 2.1.0 OK\r\n"
    assert talk(stream, b"RSET\r\n") == b"250 2.0.0 OK\r\n"
    assert talk(stream, b"RCPT TO:<b@example.com>\r\n") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert talk(stream, b"NOOP\r\n") == b"250 2.0.0 OK\r\n"
    assert talk(stream, b"QUIT\r\n") == b"221 2.0.0 Bye\r\n"
    assert stream.receive() == b""
    assert stream.server_closed
    with pytest.raises(ServerDisconnected):
        stream.send(b"NOOP\r\n")
    stream.close()
    stream.close()  # idempotent
    assert stream.closed


def test_max_recipients() -> None:
    fake = FakeTransport(max_recipients=1)
    stream = logged_in(fake)
    replies = send_message(stream, rcpts=("b@example.com", "c@example.com"))
    assert b"452 4.5.3 Too many recipients\r\n" in replies
    assert fake.messages[0].recipients == ("b@example.com",)


# -- BDAT --------------------------------------------------------------------------------


@pytest.fixture
def chunking() -> FakeTransport:
    return FakeTransport(capabilities=FakeCapabilities(chunking=True))


def test_bdat_exact_octets_across_sends(chunking: FakeTransport) -> None:
    stream = logged_in(chunking)
    first, second = MESSAGE[:30], MESSAGE[30:]
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n") == (
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
    )
    stream.send(b"BDAT 30\r\n" + first[:10])
    stream.send(first[10:])
    stream.send(b"BDAT " + str(len(second)).encode() + b" LAST\r\n" + second[:5])
    stream.send(second[5:])
    assert stream.receive() == (
        b"250 2.0.0 30 octets received\r\n250 2.0.0 OK: queued as FAKE0001\r\n"
    )
    (sent,) = chunking.messages
    assert sent.raw == MESSAGE
    assert sent.chunked
    assert "C: BDAT 30" in chunking.transcript
    assert "C: <30 octets>" in chunking.transcript


def test_bdat_content_is_not_unstuffed(chunking: FakeTransport) -> None:
    stream = logged_in(chunking)
    raw = b"Subject: x\r\n\r\n.\r\n..\r\n"
    stream.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
        b"BDAT " + str(len(raw)).encode() + b" LAST\r\n" + raw
    )
    assert stream.receive().endswith(b"250 2.0.0 OK: queued as FAKE0001\r\n")
    assert chunking.messages[0].raw == raw


def test_bdat_errors(chunking: FakeTransport) -> None:
    stream = logged_in(chunking)
    assert talk(stream, b"BDAT 3 LAST\r\nabc") == b"503 5.5.1 Error: need MAIL command\r\n"
    assert talk(stream, b"BDAT x\r\n") == b"501 5.5.4 Syntax: BDAT count [LAST]\r\n"
    talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    assert talk(stream, b"BDAT 3\r\nabc") == b"250 2.0.0 3 octets received\r\n"
    assert talk(stream, b"DATA\r\n") == b"503 5.5.1 Error: DATA after BDAT\r\n"
    assert talk(stream, b"BDAT 0 LAST\r\n") == b"250 2.0.0 OK: queued as FAKE0001\r\n"
    assert chunking.messages[0].raw == b"abc"


def test_bdat_without_chunking_is_refused(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    assert talk(stream, b"BDAT 3 LAST\r\nabc") == b"502 5.5.1 Error: command not implemented\r\n"
    assert any("CHUNKING" in e for e in fake.protocol_errors)


# -- pipelining discipline ---------------------------------------------------------------


def test_commands_after_ehlo_in_the_same_send_are_a_sync_error(fake: FakeTransport) -> None:
    stream = greeted(fake)
    replies = talk(stream, b"EHLO client.example.com\r\nMAIL FROM:<a@example.com>\r\n")
    assert replies.endswith(b"554 5.5.0 Error: SMTP protocol synchronization\r\n")
    assert stream.receive() == b""
    assert "EHLO" in fake.protocol_errors[0]


def test_sending_before_the_greeting_is_a_sync_error(fake: FakeTransport) -> None:
    stream = fake.connect(SUBMISSION)
    stream.send(b"EHLO client.example.com\r\n")
    assert stream.receive() == (
        b"220 fake.smtpkit.test ESMTP\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n"
    )


def test_content_before_354_is_a_sync_error(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    replies = talk(
        stream,
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
        + encode_content(MESSAGE),
    )
    assert replies.endswith(
        b"354 End data with <CR><LF>.<CR><LF>\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n"
    )
    assert fake.messages == []


def test_without_pipelining_every_command_synchronises() -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(pipelining=False))
    stream = logged_in(fake)
    replies = talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n")
    assert replies == (b"250 2.1.0 OK\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n")


def test_receive_with_nothing_to_say_times_out_at_once(fake: FakeTransport) -> None:
    stream = greeted(fake)
    stream.set_timeout(30)
    with pytest.raises(OperationTimeout, match="reply that will never come") as caught:
        stream.receive()
    assert "30 s" in str(caught.value)
    assert caught.value.transcript[-1] == "S: 220 fake.smtpkit.test ESMTP"


# -- scripting ---------------------------------------------------------------------------


def test_scripted_phase_reply_refuses_mail(fake: FakeTransport) -> None:
    fake.reply("mail", "550 5.7.60 SMTP; Client does not have permissions to send as this sender")
    stream = logged_in(fake)
    replies = talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert replies == (
        b"550 5.7.60 SMTP; Client does not have permissions to send as this sender\r\n"
        b"503 5.5.1 Error: need MAIL command\r\n"
        b"503 5.5.1 Error: need MAIL command\r\n"
    )


def test_scripted_reply_for_one_recipient(fake: FakeTransport) -> None:
    step = fake.reply(
        Phase.RCPT, code=550, enhanced="5.1.1", text="User unknown", recipient="Bob@Example.com"
    )
    stream = logged_in(fake)
    replies = send_message(stream, rcpts=("a@example.com", "bob@example.com", "c@example.com"))
    assert replies.startswith(
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 User unknown\r\n250 2.1.5 OK\r\n354 "
    )
    assert fake.messages[0].recipients == ("a@example.com", "c@example.com")
    assert step.used == 1
    assert step.exhausted


def test_scripted_times_then_normal(fake: FakeTransport) -> None:
    fake.reply("rcpt", "451 4.3.0 Try again later", times=2)
    stream = logged_in(fake)
    talk(stream, b"MAIL FROM:<a@example.com>\r\n")
    answers = [talk(stream, b"RCPT TO:<b@example.com>\r\n") for _ in range(3)]
    assert answers == [
        b"451 4.3.0 Try again later\r\n",
        b"451 4.3.0 Try again later\r\n",
        b"250 2.1.5 OK\r\n",
    ]


def test_scripted_always(fake: FakeTransport) -> None:
    step = fake.reply("noop", "421 4.7.0 Try later, closing connection", times=None)
    for _ in range(3):
        stream = logged_in(fake)
        assert talk(stream, b"NOOP\r\n") == b"421 4.7.0 Try later, closing connection\r\n"
        assert stream.receive() == b""  # 421 closes the channel (RFC 5321 §3.8)
    assert step.used == 3
    assert not step.exhausted
    step.cancel()
    assert talk(logged_in(fake), b"NOOP\r\n") == b"250 2.0.0 OK\r\n"


def test_multi_line_scripted_auth_reply(fake: FakeTransport) -> None:
    fake.reply(
        "auth",
        "534-5.7.9 Application-specific password required.\n"
        "534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor",
    )
    stream = ready(fake)
    assert talk(stream, b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n") == (
        b"534-5.7.9 Application-specific password required.\r\n"
        b"534 5.7.9 https://support.google.com/mail/?p=InvalidSecondFactor\r\n"
    )
    assert fake.auth_attempts == [("PLAIN", "me@example.com", False)]
    # The scripted refusal did not log the session in: the server still wants AUTH.
    assert talk(stream, b"MAIL FROM:<a@example.com>\r\n") == (
        b"530 5.7.0 Authentication required\r\n"
    )


def test_scripted_greeting_refusal(fake: FakeTransport) -> None:
    fake.reply("greeting", "554 5.7.1 Service unavailable; client host blocked")
    stream = fake.connect(SUBMISSION)
    assert talk(stream) == b"554 5.7.1 Service unavailable; client host blocked\r\n"
    assert talk(stream, b"EHLO client.example.com\r\n") == (
        b"503 5.5.1 Error: the greeting refused service; send QUIT\r\n"
    )
    assert talk(stream, b"QUIT\r\n") == b"221 2.0.0 Bye\r\n"


def test_scripted_ehlo_failure_then_helo(fake: FakeTransport) -> None:
    fake.reply("ehlo", "502 5.5.1 Command not implemented")
    stream = greeted(fake)
    assert talk(stream, b"EHLO client.example.com\r\n") == b"502 5.5.1 Command not implemented\r\n"
    assert talk(stream, b"HELO client.example.com\r\n").startswith(b"250 ")


def test_scripted_data_refusal_opens_no_content_phase(fake: FakeTransport) -> None:
    fake.reply("data", "451 4.3.0 Temporary failure")
    stream = logged_in(fake)
    replies = talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    assert replies.endswith(b"451 4.3.0 Temporary failure\r\n")
    assert talk(stream, b"RSET\r\n") == b"250 2.0.0 OK\r\n"  # read as a command, not content


def test_scripted_message_refusal_is_not_in_outbox(fake: FakeTransport) -> None:
    fake.reply("message", "550 5.4.5 Daily user sending quota exceeded.")
    stream = logged_in(fake)
    assert send_message(stream).endswith(b"550 5.4.5 Daily user sending quota exceeded.\r\n")
    assert fake.messages == []
    assert fake.dropped == []


def test_scripted_positive_reply_keeps_the_command_working(fake: FakeTransport) -> None:
    fake.reply("message", "250 2.0.0 OK 1700000000 abc123 - gsmtp")
    stream = logged_in(fake)
    assert send_message(stream).endswith(b"250 2.0.0 OK 1700000000 abc123 - gsmtp\r\n")
    assert len(fake.messages) == 1


def test_scripting_input_is_checked(fake: FakeTransport) -> None:
    with pytest.raises(ConfigurationError, match="unknown phase"):
        fake.reply("rcpt-to", "550 x")
    with pytest.raises(ConfigurationError, match="recipient"):
        fake.reply("mail", "550 x", recipient="b@example.com")
    with pytest.raises(ConfigurationError, match="code"):
        fake.reply("mail", "hello")
    with pytest.raises(ConfigurationError, match="times"):
        fake.timeout("mail", times=0)
    with pytest.raises(ConfigurationError, match="either"):
        fake.reply("mail", "550 x", code=550)
    with pytest.raises(ConfigurationError, match="every line"):
        fake.reply("mail", "550-a\n451 b")


# Each phase: the bytes to reach it, what the client reads before the server goes silent.
def _reach(fake: FakeTransport, phase: str) -> tuple[FakeStream, bytes]:
    """Drive a session up to the command of ``phase`` and send it; return what was read."""
    if phase == "greeting":
        return fake.connect(SUBMISSION), b""
    if phase == "ehlo":
        stream = greeted(fake)
        stream.send(b"EHLO client.example.com\r\n")
        return stream, b""
    if phase == "starttls":
        stream = ready(fake, tls=False)
        stream.send(b"STARTTLS\r\n")
        return stream, b""
    if phase == "auth":
        stream = ready(fake)
        stream.send(b"AUTH PLAIN " + plain("me@example.com", "pw") + b"\r\n")
        return stream, b""
    stream = logged_in(fake)
    before = {
        "mail": (b"", b""),
        "rcpt": (b"MAIL FROM:<a@example.com>\r\n", b"250 2.1.0 OK\r\n"),
        "data": (
            b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n",
            b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n",
        ),
        "rset": (b"", b""),
        "noop": (b"", b""),
        "quit": (b"", b""),
    }
    if phase == "message":
        assert talk(stream, b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        stream.send(encode_content(MESSAGE))
        return stream, b""
    sent, replies = before[phase]
    command = {
        "mail": b"MAIL FROM:<a@example.com>\r\n",
        "rcpt": b"RCPT TO:<b@example.com>\r\n",
        "data": b"DATA\r\n",
        "rset": b"RSET\r\n",
        "noop": b"NOOP\r\n",
        "quit": b"QUIT\r\n",
    }[phase]
    stream.send(sent + command)
    return stream, replies


PHASES = [p.value for p in Phase]


@pytest.mark.parametrize("phase", PHASES)
def test_scripted_disconnect_at_each_phase(fake: FakeTransport, phase: str) -> None:
    fake.disconnect(phase)
    stream, expected = _reach(fake, phase)
    got = stream.receive() if expected else b""
    assert got == expected
    assert stream.receive() == b""
    with pytest.raises(ServerDisconnected):
        stream.send(b"NOOP\r\n")
    assert fake.messages == []
    assert len(fake.dropped) == (1 if phase == "message" else 0)


@pytest.mark.parametrize("phase", PHASES)
def test_scripted_timeout_at_each_phase(fake: FakeTransport, phase: str) -> None:
    fake.timeout(phase)
    stream, expected = _reach(fake, phase)
    got = stream.receive() if expected else b""
    assert got == expected
    with pytest.raises(OperationTimeout, match=f"fake.timeout\\('{phase}'\\)"):
        stream.receive()
    stream.send(b"NOOP\r\n")  # ignored: the server is stuck
    with pytest.raises(OperationTimeout):
        stream.receive()
    assert fake.messages == []
    assert len(fake.dropped) == (1 if phase == "message" else 0)


def test_disconnect_after_content_keeps_it_in_dropped(fake: FakeTransport) -> None:
    fake.disconnect(Phase.MESSAGE)
    stream = logged_in(fake)
    assert send_message(stream) == (
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    )
    assert stream.receive() == b""
    (dropped,) = fake.dropped
    assert dropped.raw == MESSAGE
    assert dropped.queue_id is None
    assert "connection 1 closed by the server" in fake.transcript[-1]


def test_refuse_connect_then_connect(fake: FakeTransport) -> None:
    fake.refuse_connect()
    with pytest.raises(ConnectError, match="refused"):
        fake.connect(SUBMISSION)
    greeted(fake)
    assert fake.connections == 2
    assert fake.endpoints == [SUBMISSION, SUBMISSION]


# -- outbox, assert_sent, transcript -----------------------------------------------------


def _outbox_with_two(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    send_message(stream)
    other = (
        b"From: a@example.com\r\nTo: c@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("Schöne Grüße".encode()).replace(b"\n", b"\r\n")
    )
    send_message(stream, other, rcpts=("c@example.com",))


def test_assert_sent_matches(fake: FakeTransport) -> None:
    _outbox_with_two(fake)
    (hello,) = fake.assert_sent(to="B@example.com", subject="Hello", sender="a@example.com")
    assert isinstance(hello, ReceivedMessage)
    fake.assert_sent(subject="Grüße", contains="Schöne")
    fake.assert_sent(sender="a@example.com", count=2)
    fake.assert_sent(contains="Hi there.", count=1)


def test_assert_sent_failure_lists_what_was_sent(fake: FakeTransport) -> None:
    _outbox_with_two(fake)
    with pytest.raises(AssertionError) as caught:
        fake.assert_sent(to="nobody@example.com", subject="Hello")
    text = str(caught.value)
    assert "to='nobody@example.com', subject='Hello'" in text
    assert "expected at least one matching message(s), found 0" in text
    assert "1. from <a@example.com> to [b@example.com] subject 'Hello'" in text
    assert "2. from <a@example.com> to [c@example.com] subject 'Grüße'" in text
    with pytest.raises(AssertionError, match="expected 1 matching message"):
        fake.assert_sent(sender="a@example.com", count=1)


def test_assert_sent_on_empty_outbox_mentions_dropped(fake: FakeTransport) -> None:
    fake.disconnect("message")
    send_message(logged_in(fake))
    with pytest.raises(AssertionError) as caught:
        fake.assert_sent()
    assert "No message was accepted" in str(caught.value)
    assert "1 more received without a final reply (fake.dropped)" in str(caught.value)


def test_clear_forgets_everything_but_scripts(fake: FakeTransport) -> None:
    step = fake.reply("noop", "250 2.0.0 scripted", times=None)
    send_message(logged_in(fake))
    fake.clear()
    assert (fake.messages, fake.transcript, fake.auth_attempts, fake.connections) == ([], [], [], 0)
    assert fake.scripts == [step]


def test_transcript_redacts_auth_and_summarises_content() -> None:
    fake = FakeTransport(credentials={"me@example.com": CANARY})
    stream = ready(fake)
    talk(stream, b"AUTH PLAIN " + plain("me@example.com", CANARY + "x") + b"\r\n")
    talk(stream, b"AUTH LOGIN\r\n")
    talk(stream, b64(b"me@example.com") + b"\r\n")
    talk(stream, b64(CANARY.encode()) + b"\r\n")
    body = f"Subject: secret\r\n\r\n{CANARY}\r\n".encode()
    send_message(stream, body)
    lines = fake.transcript
    assert "C: AUTH PLAIN ****" in lines
    assert "C: AUTH LOGIN" in lines
    assert lines.count("C: ****") == 2
    assert f"C: <{len(body)} octets>" in lines
    assert "C: ." in lines
    everything = "\n".join(lines)
    for secret in (CANARY, b64(CANARY.encode()).decode(), plain("me@example.com", CANARY).decode()):
        assert secret not in everything
    assert fake.auth_attempts == [
        ("PLAIN", "me@example.com", False),
        ("LOGIN", "me@example.com", True),
    ]


def test_connections_are_independent_and_thread_safe() -> None:
    fake = FakeTransport()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                stream = logged_in(fake)
                send_message(stream)
                talk(stream, b"QUIT\r\n")
                stream.close()
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake.connections == 40
    assert len(fake.messages) == 40
    assert len({m.queue_id for m in fake.messages}) == 40
    assert len(fake.auth_attempts) == 40
    assert all(s.closed for s in fake.streams)


def _iter_phases() -> Iterator[Phase]:
    yield from Phase


def test_phase_strings_and_members_are_equivalent(fake: FakeTransport) -> None:
    for phase in _iter_phases():
        assert fake.timeout(phase.value).phase is fake.timeout(phase).phase
        assert fake.timeout(phase.value.upper()).phase is phase


# -- end to end: the real Submitter over the fake -----------------------------------------

try:
    from smtpkit import Submitter
    from smtpkit.auth import PasswordAuth
except ImportError:  # pragma: no cover - the client is optional for these tests
    Submitter = None  # type: ignore[assignment,misc]

needs_submitter = pytest.mark.skipif(Submitter is None, reason="smtpkit.Submitter unavailable")


def _email(to: str = "you@example.com, bob@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "me@example.com"
    message["To"] = to
    message["Subject"] = "Quarterly report"
    message.set_content("Hello,\n.a line that starts with a dot\nBye\n")
    return message


def _submitter(fake: FakeTransport, password: str = "pw", **kwargs: object) -> Submitter:
    return Submitter(
        HOST,
        transport=fake,
        auth=PasswordAuth("me@example.com", password),
        **kwargs,  # type: ignore[arg-type]
    )


@needs_submitter
@pytest.mark.parametrize(
    "caps",
    [FakeCapabilities(), FakeCapabilities.gmail(), FakeCapabilities(pipelining=False)],
    ids=["default", "gmail", "no-pipelining"],
)
def test_submitter_sends_and_logs_in_once(caps: FakeCapabilities) -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"}, capabilities=caps)
    with _submitter(fake) as submitter:
        submitter.send(_email())
        submitter.send(_email("you@example.com"))
    assert fake.connections == 1
    assert fake.auth_attempts == [("PLAIN", "me@example.com", True)]
    first, _ = fake.messages
    assert first.tls
    assert first.recipients == ("you@example.com", "bob@example.com")
    assert ".a line that starts with a dot" in first.message.get_body().get_content()  # type: ignore[union-attr]
    fake.assert_sent(to="bob@example.com", subject="Quarterly report", count=1)
    assert fake.protocol_errors == []
    assert all(stream.closed for stream in fake.streams)


@needs_submitter
def test_submitter_reports_a_refused_recipient() -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"})
    fake.reply("rcpt", "550 5.1.1 User unknown", recipient="bob@example.com")
    result = _submitter(fake).send(_email())
    assert result.accepted == ("you@example.com",)
    assert set(result.rejected) == {"bob@example.com"}
    assert fake.messages[0].recipients == ("you@example.com",)
    assert fake.protocol_errors == []


@needs_submitter
def test_submitter_wrong_password() -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"})
    with pytest.raises(InvalidCredentials):
        _submitter(fake, password="nope").send(_email())
    assert fake.messages == []
    assert fake.auth_attempts == [("PLAIN", "me@example.com", False)]


@needs_submitter
def test_submitter_lost_after_content_is_delivery_unknown() -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"})
    fake.disconnect("message")
    with pytest.raises(DeliveryUnknown):
        _submitter(fake).send(_email())
    assert fake.messages == []
    assert len(fake.dropped) == 1


@needs_submitter
def test_submitter_times_out_without_sleeping() -> None:
    fake = FakeTransport(credentials={"me@example.com": "pw"})
    fake.timeout("rcpt")
    with pytest.raises(OperationTimeout):
        _submitter(fake).send(_email())
    assert fake.messages == []


@needs_submitter
def test_submitter_refuses_an_untrusted_certificate() -> None:
    fake = FakeTransport(tls=FakeTLS.UNTRUSTED_CERTIFICATE)
    with pytest.raises(TLSError):
        _submitter(fake).send(_email())
    assert fake.auth_attempts == []


def test_line_length_limits(fake: FakeTransport) -> None:
    stream = logged_in(fake)
    assert talk(stream, b"NOOP " + b"x" * 600 + b"\r\n") == b"500 5.5.2 Line too long\r\n"
    # RFC 3461 §5 and RFC 1870 §8 let MAIL grow past 512 octets with their parameters.
    long_mail = b"MAIL FROM:<a@example.com> SIZE=10 ENVID=" + b"e" * 90 + b" AUTH=<" + b"u" * 400
    assert talk(stream, long_mail + b">\r\n") == b"250 2.1.0 OK\r\n"
    assert "C: <607-octet line>" in stream.transcript


def test_scripted_step_reports_its_use(fake: FakeTransport) -> None:
    step = fake.reply("rset", "250 2.0.0 {id} is not replaced here", times=2)
    assert repr(step) == "<Scripted rset: 250 2.0.0 {id} is not replaced here (0/2 used)>"
    stream = logged_in(fake)
    talk(stream, b"RSET\r\n")
    assert (step.used, step.exhausted) == (1, False)
    assert fake.scripts == [step]


def test_scripted_message_reply_gets_the_queue_id(fake: FakeTransport) -> None:
    fake.reply("message", "250 2.0.0 OK id={id}")
    assert send_message(logged_in(fake)).endswith(b"250 2.0.0 OK id=FAKE0001\r\n")

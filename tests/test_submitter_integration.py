"""Submitter end to end over real loopback sockets: LocalServer (aiosmtpd + trustme).

Every test checks the server's side too (what it received, how often AUTH ran, which
commands it read), so a client that only looks right to itself fails.
"""

from __future__ import annotations

import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from smtpkit import (
    DeliveryUnknown,
    InvalidCredentials,
    MessageError,
    MessageTooLarge,
    OperationTimeout,
    RecipientRejected,
    ReplyError,
    Security,
    SenderRejected,
    ServerDisconnected,
    Submitter,
    Timeouts,
)
from smtpkit.auth import AuthStrategy, PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.testing import AuthAttempt, LocalServer
from smtpkit.transports import SocketTransport, Stream

if TYPE_CHECKING:
    from conftest import ServerLog

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
PASSWORD = "correct horse battery staple"
TIMEOUT = 5.0
MakeMessage = Callable[..., EmailMessage]
ServerFactory = Callable[..., LocalServer]


class CountingTransport:
    """The real socket transport, counting the connections it opens."""

    def __init__(self) -> None:
        self.connections = 0
        self._inner = SocketTransport()

    def connect(self, endpoint: Endpoint) -> Stream:
        self.connections += 1
        return self._inner.connect(endpoint)


def submitter_for(
    server: LocalServer,
    *,
    auth: AuthStrategy | None = None,
    transport: CountingTransport | None = None,
    timeout: float = TIMEOUT,
    max_connections: int = 4,
) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        auth=auth,
        tls_context=server.client_tls_context(),
        timeout=timeout,
        transport=transport,
        max_connections=max_connections,
    )


@pytest.fixture
def server(local_server: ServerFactory) -> LocalServer:
    """A STARTTLS server that requires AUTH, like a port 587 submission server."""
    return local_server(credentials={USER: PASSWORD}, require_auth=True)


def login() -> PasswordAuth:
    return PasswordAuth(USER, PASSWORD)


# -- security modes and mechanisms ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "tls"),
    [(Security.STARTTLS, True), (Security.TLS, True), (Security.NONE, False)],
)
def test_send_with_each_security_mode_and_auth_plain(
    local_server: ServerFactory, make_message: MakeMessage, security: Security, tls: bool
) -> None:
    server = local_server(security=security, credentials={USER: PASSWORD}, require_auth=True)
    result = submitter_for(server, auth=login()).send(make_message(Subject="modes"))

    [received] = server.wait_for(1)
    assert received.tls is tls
    assert received.auth_user == USER
    assert received.auth_mechanism == "PLAIN"
    assert received.sender == USER
    assert received.recipients == ("bob@example.test",)
    assert received.message["Subject"] == "modes"
    assert result.accepted == ("bob@example.test",)
    assert server.auth_attempts == [AuthAttempt("PLAIN", USER, True)]


def test_starttls_is_done_before_auth_and_ehlo_is_repeated(
    server: LocalServer, make_message: MakeMessage, server_log: ServerLog
) -> None:
    # close() says QUIT (garbage collection closes without it, on whatever thread).
    with submitter_for(server, auth=login()) as submitter:
        submitter.send(make_message())
    server_log.wait_closed()

    assert server_log.verbs() == [
        "EHLO",
        "STARTTLS",
        "EHLO",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]
    assert "AUTH PLAIN ********" in server_log.commands()


def test_login_only_server_gets_auth_login(
    local_server: ServerFactory, make_message: MakeMessage
) -> None:
    server = local_server(
        credentials={USER: PASSWORD}, require_auth=True, auth_mechanisms=("LOGIN",)
    )
    submitter_for(server, auth=login()).send(make_message())

    [received] = server.wait_for(1)
    assert received.auth_mechanism == "LOGIN"
    assert server.auth_attempts == [AuthAttempt("LOGIN", USER, True)]


def test_without_auth_no_auth_is_sent(
    local_server: ServerFactory, make_message: MakeMessage, server_log: ServerLog
) -> None:
    # require_auth=False: this test is about a client without credentials sending no AUTH.
    server = local_server(credentials={USER: PASSWORD}, require_auth=False)
    submitter_for(server).send(make_message())
    server.wait_for(1)
    server_log.wait_closed()
    assert "AUTH" not in server_log.verbs()
    assert server.auth_attempts == []


# -- connection reuse ------------------------------------------------------------------------------


def test_with_block_uses_one_connection_and_one_login(
    server: LocalServer, make_message: MakeMessage
) -> None:
    transport = CountingTransport()
    with submitter_for(server, auth=login(), transport=transport) as submitter:
        results = [submitter.send(make_message(Subject=f"n{i}")) for i in range(3)]

    received = server.wait_for(3)
    assert [m.message["Subject"] for m in received] == ["n0", "n1", "n2"]
    assert [r.message_id for r in results] == [m.message["Message-ID"] for m in received]
    assert len({r.message_id for r in results}) == 3
    assert transport.connections == 1
    assert server.auth_attempts == [AuthAttempt("PLAIN", USER, True)]


def test_without_a_with_block_sends_share_one_kept_connection(
    server: LocalServer, make_message: MakeMessage, server_log: ServerLog
) -> None:
    # As httpx.Client does, a Submitter keeps its connection between calls: a long-lived
    # one (a module-level object in a web app) logs in once, not once per send().
    transport = CountingTransport()
    submitter = submitter_for(server, auth=login(), transport=transport)
    submitter.send(make_message())
    submitter.send(make_message())

    server.wait_for(2)
    assert transport.connections == 1
    assert len(server.auth_attempts) == 1
    submitter.close()
    server_log.wait_closed(1)
    # The connection is closed politely, not dropped.
    assert server_log.verbs().count("QUIT") == 1


def test_open_and_close_keep_one_connection(server: LocalServer, make_message: MakeMessage) -> None:
    transport = CountingTransport()
    submitter = submitter_for(server, auth=login(), transport=transport).open()
    try:
        assert len(server.auth_attempts) == 1  # open() logs in at once
        submitter.send(make_message())
        submitter.send(make_message())
    finally:
        submitter.close()
    assert transport.connections == 1
    assert len(server.wait_for(2)) == 2


# -- envelope and content ----------------------------------------------------------------------


def test_envelope_from_headers_and_bcc_is_not_transmitted(
    server: LocalServer, make_message: MakeMessage
) -> None:
    message = make_message(
        To="Bob <bob@example.test>",
        Cc="carol@example.test",
        Bcc="Secret Dave <dave@example.test>",
    )
    result = submitter_for(server, auth=login()).send(message)

    [received] = server.wait_for(1)
    assert received.sender == USER
    assert received.recipients == ("bob@example.test", "carol@example.test", "dave@example.test")
    assert b"dave@example.test" not in received.raw
    assert b"Secret Dave" not in received.raw
    assert b"\nBcc:" not in received.raw
    assert received.message["Cc"] == "carol@example.test"
    assert result.accepted == received.recipients
    # The caller's message is not modified.
    assert message["Bcc"] == "Secret Dave <dave@example.test>"


def test_explicit_sender_and_recipients_override_the_headers(
    server: LocalServer, make_message: MakeMessage
) -> None:
    result = submitter_for(server, auth=login()).send(
        make_message(Cc="carol@example.test"),
        sender="bounces@example.test",
        recipients=["erin@example.test", "frank@example.test"],
    )

    [received] = server.wait_for(1)
    assert received.sender == "bounces@example.test"
    assert received.recipients == ("erin@example.test", "frank@example.test")
    assert received.message["To"] == "bob@example.test"  # headers untouched
    assert result.sender == "bounces@example.test"
    assert result.accepted == ("erin@example.test", "frank@example.test")


def test_bytes_with_explicit_envelope_are_sent_as_given(server: LocalServer) -> None:
    raw = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: raw\r\n"
        b"Message-ID: <raw-1@example.test>\r\n\r\n.leading dot\r\nbody\r\n"
    )
    result = submitter_for(server, auth=login()).send(
        raw, sender=USER, recipients=["bob@example.test"]
    )

    [received] = server.wait_for(1)
    assert received.raw == raw  # dot-stuffing undone by the server, nothing added
    assert received.recipients == ("bob@example.test",)
    assert result.message_id == "<raw-1@example.test>"


def test_bytes_without_an_envelope_are_refused_before_sending(
    server: LocalServer, server_log: ServerLog
) -> None:
    with pytest.raises(MessageError):
        submitter_for(server, auth=login()).send(b"Subject: x\r\n\r\nbody\r\n")
    server_log.wait_closed()
    assert "MAIL" not in server_log.verbs()
    assert server.messages == []


def test_message_id_and_date_are_added_and_reported(
    server: LocalServer, make_message: MakeMessage
) -> None:
    message = make_message()
    assert message["Message-ID"] is None
    result = submitter_for(server, auth=login()).send(message)

    [received] = server.wait_for(1)
    assert result.message_id is not None
    assert received.message["Message-ID"] == result.message_id
    assert received.message["Date"] is not None
    assert received.message["Date"].datetime.tzinfo is not None
    assert result.sender == USER
    assert result.accepted == ("bob@example.test",)
    assert dict(result.rejected) == {}
    assert not result.partially_rejected
    assert result.reply.code == 250
    assert result.reply.text == "OK"


def test_an_existing_message_id_is_kept(server: LocalServer, make_message: MakeMessage) -> None:
    result = submitter_for(server, auth=login()).send(
        make_message(Message_ID="<given@example.test>")
    )
    [received] = server.wait_for(1)
    assert result.message_id == "<given@example.test>"
    assert received.message["Message-ID"] == "<given@example.test>"


def test_eight_bit_body_and_smtputf8_addresses(
    server: LocalServer, make_message: MakeMessage
) -> None:
    message = make_message(body="Grüße, 你好\n", To="zoë@exämple.test")
    message.set_content("Grüße, 你好\n", cte="8bit")
    result = submitter_for(server, auth=login()).send(message)

    [received] = server.wait_for(1)
    assert received.smtputf8
    assert "BODY=8BITMIME" in received.mail_options
    assert received.recipients == ("zoë@exämple.test",)
    assert "Grüße, 你好".encode() in received.raw
    assert result.accepted == ("zoë@exämple.test",)


def test_non_ascii_address_without_smtputf8_is_a_message_error(
    local_server: ServerFactory, make_message: MakeMessage, server_log: ServerLog
) -> None:
    server = local_server(credentials={USER: PASSWORD}, smtputf8=False)
    with pytest.raises(MessageError) as caught:
        submitter_for(server, auth=login()).send(make_message(To="zoë@example.test"))
    assert "SMTPUTF8" in str(caught.value)
    server_log.wait_closed()
    assert "MAIL" not in server_log.verbs()
    assert server.messages == []


def test_non_ascii_domain_without_smtputf8_is_sent_as_idna(
    local_server: ServerFactory, make_message: MakeMessage
) -> None:
    server = local_server(credentials={USER: PASSWORD}, smtputf8=False)
    submitter_for(server, auth=login()).send(make_message(To="bob@exämple.test"))
    [received] = server.wait_for(1)
    assert received.recipients == ("bob@xn--exmple-cua.test",)
    assert not received.smtputf8


# -- refusals --------------------------------------------------------------------------------------


def test_partial_recipient_rejection_is_reported_in_the_result(
    server: LocalServer, make_message: MakeMessage
) -> None:
    server.reply("rcpt", "550 5.1.1 No such user here", recipient="nobody@example.test", times=None)
    result = submitter_for(server, auth=login()).send(
        make_message(To="bob@example.test, nobody@example.test, carol@example.test")
    )

    [received] = server.wait_for(1)
    assert received.recipients == ("bob@example.test", "carol@example.test")
    assert result.accepted == ("bob@example.test", "carol@example.test")
    assert list(result.rejected) == ["nobody@example.test"]
    reply = result.rejected["nobody@example.test"]
    assert reply.code == 550
    assert reply.enhanced_code == "5.1.1"
    assert "No such user here" in reply.text
    assert result.partially_rejected


def test_all_recipients_refused_raises_and_the_connection_stays_usable(
    server: LocalServer, make_message: MakeMessage, server_log: ServerLog
) -> None:
    server.reply("rcpt", "550 5.1.1 No such user", recipient="x@example.test", times=None)
    server.reply("rcpt", "450 4.2.1 Mailbox busy", recipient="y@example.test", times=None)
    transport = CountingTransport()
    with submitter_for(server, auth=login(), transport=transport) as submitter:
        with pytest.raises(RecipientRejected) as caught:
            submitter.send(make_message(To="x@example.test, y@example.test"))
        result = submitter.send(make_message(Subject="after"))

    error = caught.value
    assert set(error.rejected) == {"x@example.test", "y@example.test"}
    assert error.rejected["x@example.test"].code == 550
    assert error.rejected["y@example.test"].code == 450
    assert error.recipient == "x@example.test"
    assert error.code == 550
    [received] = server.wait_for(1)
    assert received.message["Subject"] == "after"
    assert result.accepted == ("bob@example.test",)
    assert transport.connections == 1
    assert len(server.auth_attempts) == 1
    server_log.wait_closed()
    verbs = server_log.verbs()
    assert "RSET" in verbs
    # The refused transaction was reset before the next MAIL.
    second_mail = [i for i, v in enumerate(verbs) if v == "MAIL"][1]
    assert verbs.index("RSET") < second_mail


@pytest.mark.parametrize(
    ("reply", "transient"),
    [("550 5.1.0 Sender address rejected", False), ("451 4.1.8 Sender domain not found", True)],
)
def test_sender_rejected(
    server: LocalServer, make_message: MakeMessage, reply: str, transient: bool
) -> None:
    server.reply("mail", reply)
    with pytest.raises(SenderRejected) as caught:
        submitter_for(server, auth=login()).send(make_message())
    assert caught.value.code == int(reply[:3])
    assert caught.value.is_transient is transient
    assert caught.value.enhanced_code == reply[4:9]
    assert caught.value.reply.text == reply[10:]
    assert server.messages == []


@pytest.mark.parametrize(
    ("phase", "reply", "transient"),
    [
        ("data", "554 5.5.1 No valid recipients", False),
        ("message", "552 5.3.4 Message too big for system", False),
        ("message", "451 4.3.0 Try again later", True),
    ],
)
def test_data_and_message_refusals_are_typed(
    server: LocalServer, make_message: MakeMessage, phase: str, reply: str, transient: bool
) -> None:
    server.reply(phase, reply)  # type: ignore[arg-type]
    with submitter_for(server, auth=login()) as submitter:
        with pytest.raises(ReplyError) as caught:
            submitter.send(make_message())
        assert caught.value.code == int(reply[:3])
        assert caught.value.is_transient is transient
        # The session is still usable after the refusal.
        submitter.send(make_message(Subject="next"))
    [received] = server.wait_for(1)
    assert received.message["Subject"] == "next"


def test_wrong_password_is_invalid_credentials_after_one_attempt(
    server: LocalServer, make_message: MakeMessage, server_log: ServerLog
) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        submitter_for(server, auth=PasswordAuth(USER, "wrong")).send(make_message())

    assert caught.value.code == 535
    assert not caught.value.is_transient
    assert caught.value.hint
    assert server.auth_attempts == [AuthAttempt("PLAIN", USER, False)]
    server_log.wait_closed()
    assert server_log.verbs().count("AUTH") == 1
    assert "MAIL" not in server_log.verbs()
    assert server.messages == []


def test_oversized_message_is_refused_before_mail(
    local_server: ServerFactory, make_message: MakeMessage, server_log: ServerLog
) -> None:
    server = local_server(credentials={USER: PASSWORD}, size_limit=2000)
    with submitter_for(server, auth=login()) as submitter:
        with pytest.raises(MessageTooLarge) as caught:
            submitter.send(make_message(body="x" * 70 + "\n" * 100 + "y" * 3000 + "\n"))
        # The connection stays usable and a small message declares its SIZE.
        submitter.send(make_message(Subject="small"))

    assert caught.value.from_server is False
    assert caught.value.code == 552
    [received] = server.wait_for(1)
    assert received.message["Subject"] == "small"
    assert any(option.startswith("SIZE=") for option in received.mail_options)
    server_log.wait_closed()
    assert server_log.verbs().count("MAIL") == 1


# -- lost connections and timeouts -----------------------------------------------------------


def test_drop_after_data_is_delivery_unknown_and_never_resent(
    server: LocalServer, make_message: MakeMessage
) -> None:
    server.disconnect("message")
    with pytest.raises(DeliveryUnknown) as caught:
        submitter_for(server, auth=login()).send(make_message(Subject="once"))

    error = caught.value
    [received] = server.dropped
    assert error.message_id is not None
    assert error.message_id == received.message["Message-ID"]
    assert error.recipients == ("bob@example.test",)
    assert not error.is_transient
    assert error.hint
    time.sleep(0.2)  # give a (wrong) resend the time to arrive
    assert len(server.dropped) == 1
    assert server.messages == []


def test_drop_after_data_in_a_with_block_then_the_next_send_reconnects(
    server: LocalServer, make_message: MakeMessage
) -> None:
    server.disconnect("message")
    transport = CountingTransport()
    with submitter_for(server, auth=login(), transport=transport) as submitter:
        with pytest.raises(DeliveryUnknown):
            submitter.send(make_message(Subject="lost"))
        submitter.send(make_message(Subject="next"))
    received = server.dropped + server.wait_for(1)
    assert [m.message["Subject"] for m in received] == ["lost", "next"]
    assert transport.connections == 2


@dataclass
class RawSMTPServer:
    """A minimal SMTP server on 127.0.0.1 with scripted misbehaviour, one thread.

    Args:
        close_after: per connection (in order), close it after this many messages, or
            ``None`` to serve until QUIT.
        idle_reply: a line sent just before such a close (e.g. a 421 idle timeout).
        pipelining: whether EHLO offers PIPELINING.
        drop_in_data: close this many connections in the middle of a message's content.
    """

    close_after: list[int | None]
    idle_reply: bytes = b""
    pipelining: bool = True
    drop_in_data: int = 0
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        for limit in self.close_after:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(TIMEOUT)
                self._session(conn.makefile("rwb"), limit)
            if limit is not None:
                self.closed.set()

    def _session(self, file: io.BufferedRWPair, limit: int | None) -> None:
        def reply(line: bytes) -> None:
            file.write(line + b"\r\n")
            file.flush()

        reply(b"220 raw.localhost ESMTP")
        served = 0
        sender = ""
        for _ in range(1000):  # bounded: a session here is a few dozen lines
            line = file.readline(1024)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                reply(b"250-raw.localhost\r\n250 PIPELINING" if self.pipelining else b"250 raw")
            elif verb == b"MAIL":
                sender = line.decode().strip()
                reply(b"250 OK")
            elif verb in (b"RCPT", b"RSET", b"NOOP"):
                reply(b"250 OK")
            elif verb == b"DATA":
                reply(b"354 Go ahead")
                if self.drop_in_data:
                    self.drop_in_data -= 1
                    file.readline(2048)
                    return
                content = b""
                while (chunk := file.readline(2048)) not in (b".\r\n", b""):
                    content += chunk
                self.messages.append((sender, content))
                reply(b"250 2.0.0 queued")
                served += 1
                if served == limit:
                    if self.idle_reply:
                        reply(self.idle_reply)
                    return
            elif verb == b"QUIT":
                reply(b"221 Bye")
                return
            else:
                reply(b"500 unknown")

    def __enter__(self) -> RawSMTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("idle_reply", [b"", b"421 4.4.2 raw.localhost idle timeout"])
def test_a_kept_connection_closed_while_idle_is_reopened(
    make_message: MakeMessage, idle_reply: bytes, pipelining: bool
) -> None:
    transport = CountingTransport()
    with RawSMTPServer([1, None], idle_reply=idle_reply, pipelining=pipelining) as raw:
        submitter = Submitter(
            "127.0.0.1", raw.port, security=Security.NONE, timeout=TIMEOUT, transport=transport
        )
        with submitter:
            submitter.send(make_message(Subject="first"))
            assert raw.closed.wait(TIMEOUT)
            result = submitter.send(make_message(Subject="second"))
    subjects = [content.split(b"Subject: ")[1].split(b"\r\n")[0] for _, content in raw.messages]
    assert subjects == [b"first", b"second"]  # each exactly once
    assert transport.connections == 2
    assert result.reply.code == 250


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A loopback listener that completes TCP connections and never says anything."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


def test_a_silent_server_gives_operation_timeout(
    silent_listener: socket.socket, make_message: MakeMessage
) -> None:
    port = silent_listener.getsockname()[1]
    submitter = Submitter("127.0.0.1", port, security=Security.NONE, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(OperationTimeout) as caught:
        submitter.send(make_message())
    assert time.monotonic() - started < 3
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.is_transient


def test_a_connection_lost_during_the_content_is_retryable_and_not_reused(
    make_message: MakeMessage,
) -> None:
    # The server never saw the final ".", so it cannot have accepted the message: the error
    # is an ordinary (transient) disconnect, and the broken connection is not used again.
    big = make_message(body=("x" * 76 + "\n") * 110_000)  # ~8.5 MB: several content slices
    transport = CountingTransport()
    with RawSMTPServer([None, None], drop_in_data=1) as raw:
        submitter = Submitter(
            "127.0.0.1", raw.port, security=Security.NONE, timeout=TIMEOUT, transport=transport
        )
        with submitter:
            with pytest.raises(ServerDisconnected) as caught:
                submitter.send(big)
            assert not isinstance(caught.value, DeliveryUnknown)
            assert caught.value.is_transient
            submitter.send(make_message(Subject="after"))
    assert caught.value.transcript
    assert [b"Subject: after" in content for _, content in raw.messages] == [True]
    assert transport.connections == 2


class RecordingTransport(CountingTransport):
    """Records, for each command line sent, the timeout in force on the stream."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[bytes, float | None]] = []

    def connect(self, endpoint: Endpoint) -> Stream:
        stream = super().connect(endpoint)
        recorder = self
        timeout: list[float | None] = [None]

        class Recording:
            @property
            def is_encrypted(self) -> bool:
                return stream.is_encrypted

            def send(self, data: bytes) -> None:
                recorder.sent.append((data.split(b" ", 1)[0].strip(), timeout[0]))
                stream.send(data)

            def receive(self, max_bytes: int = 65536) -> bytes:
                return stream.receive(max_bytes)

            def set_timeout(self, seconds: float) -> None:
                timeout[0] = seconds
                stream.set_timeout(seconds)

            def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
                stream.start_tls(context, server_hostname)

            def close(self) -> None:
                stream.close()

        return Recording()


def test_commands_after_starttls_use_the_command_timeout(
    server: LocalServer, make_message: MakeMessage
) -> None:
    transport = RecordingTransport()
    submitter = Submitter(
        server.host,
        server.port,
        auth=login(),
        tls_context=server.client_tls_context(),
        timeout=Timeouts(connect=3.0, command=4.0, final_reply=4.5),
        transport=transport,
    )
    submitter.send(make_message())
    timeouts = dict(transport.sent)  # last timeout per verb
    assert timeouts[b"STARTTLS"] == 4.0
    assert timeouts[b"AUTH"] == 4.0
    assert timeouts[b"EHLO"] == 4.0
    assert timeouts[b"MAIL"] == 4.0


@pytest.mark.parametrize("max_connections", [1, 2, 4])
def test_sends_from_several_threads_share_pooled_connections(
    server: LocalServer, make_message: MakeMessage, max_connections: int
) -> None:
    transport = CountingTransport()
    errors: list[BaseException] = []
    with submitter_for(
        server, auth=login(), transport=transport, max_connections=max_connections
    ) as submitter:

        def work(n: int) -> None:
            try:
                for i in range(2):
                    submitter.send(make_message(Subject=f"t{n}-{i}"))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * 2)
    assert errors == []
    subjects = sorted(m.message["Subject"] for m in server.wait_for(8))
    assert subjects == sorted(f"t{n}-{i}" for n in range(4) for i in range(2))
    # The pool never opens more than max_connections, and logs in once per connection.
    assert 1 <= transport.connections <= max_connections
    assert len(server.auth_attempts) == transport.connections

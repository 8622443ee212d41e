"""One vocabulary: every scenario here runs against FakeTransport and LocalServer alike.

The test code is the same for both; only the ``kit`` fixture differs (an in-memory fake, or
aiosmtpd on 127.0.0.1 with STARTTLS and its own CA). A scenario that fails on one server
and passes on the other is a place where the two test servers disagree.

LocalServer plays timeouts and delays in real time, so those scenarios use short client
timeouts (a fraction of a second).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest

from smtpkit import (
    AuthenticationRequired,
    DeliveryUnknown,
    InvalidCredentials,
    MessageTooLarge,
    OperationTimeout,
    RecipientRejected,
    SenderRejected,
    ServerDisconnected,
    ServiceUnavailable,
    Submitter,
    Timeouts,
    TLSUnavailable,
)
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint, Security
from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase
from smtpkit.testing import (
    FakeCapabilities,
    FakeTransport,
    LocalServer,
    ReceivedMessage,
    Scripted,
)
from smtpkit.transports import SocketTransport, Stream

pytestmark = pytest.mark.timeout(30)

USER, PASSWORD = "alice@example.test", "s3cret-pw"
#: Client timeouts for scenarios that end in a timeout: short, as LocalServer waits for real.
SHORT = 0.25
TIMEOUT = 5.0

Server = FakeTransport | LocalServer


@dataclass
class Kit:
    """Builds one kind of test server, a Submitter for it, and a raw line client."""

    kind: str
    servers: list[LocalServer] = field(default_factory=list)
    # Every Submitter is kept and closed at teardown, on this thread: one left to the
    # garbage collector would close its pool (QUIT) wherever the collector runs, possibly
    # on LocalServer's own event-loop thread, which then waits on itself.
    submitters: list[Submitter] = field(default_factory=list)

    def start(
        self,
        *,
        credentials: dict[str, str] | None = None,
        require_auth: bool | None = None,
        pipelining: bool = True,
        chunking: bool = False,
        smtputf8: bool = True,
        eight_bit_mime: bool = True,
        dsn: bool = True,
        size: int | None = None,
        plain: bool = False,
    ) -> Server:
        """A server offering the extensions asked for. ``plain``: LocalServer without TLS
        (the raw client speaks plaintext; the fake never insists on STARTTLS before MAIL)."""
        if self.kind == "fake":
            return FakeTransport(
                credentials=credentials,
                require_auth=require_auth,
                capabilities=FakeCapabilities(
                    pipelining=pipelining,
                    chunking=chunking,
                    smtputf8=smtputf8,
                    eight_bit_mime=eight_bit_mime,
                    dsn=dsn,
                    size=size,
                ),
            )
        server = LocalServer(
            security=Security.NONE if plain else Security.STARTTLS,
            credentials=credentials,
            require_auth=require_auth,
            pipelining=pipelining,
            chunking=chunking,
            smtputf8=smtputf8,
            eight_bit_mime=eight_bit_mime,
            dsn=dsn,
            size_limit=size,
        )
        self.servers.append(server)
        return server.start()

    def submitter(
        self,
        server: Server,
        *,
        auth: PasswordAuth | None = None,
        timeout: float | Timeouts = TIMEOUT,
    ) -> Submitter:
        if isinstance(server, FakeTransport):
            made = Submitter("smtp.example.com", transport=server, auth=auth, timeout=timeout)
        else:
            made = Submitter(
                server.host,
                server.port,
                security=server.security,
                auth=auth,
                tls_context=server.client_tls_context(),
                timeout=timeout,
            )
        self.submitters.append(made)
        return made

    def raw(self, server: Server, *, ehlo: bool = True) -> Raw:
        """A plaintext line client, greeting read and (unless ``ehlo=False``) EHLO sent."""
        stream: Stream
        if isinstance(server, FakeTransport):
            stream = server.connect(Endpoint("smtp.example.com", 25, Security.NONE))
        else:
            endpoint = Endpoint(server.host, server.port, Security.NONE, connect_timeout=TIMEOUT)
            stream = SocketTransport().connect(endpoint)
        client = Raw(stream)
        assert client.reply()[0] == 220
        if ehlo:
            assert client.command("EHLO client.example.test")[0] == 250
        return client


class Raw:
    """Sends raw bytes and reads whole replies over any ``Stream`` (fake or socket)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.buffer = b""
        stream.set_timeout(TIMEOUT)

    def send(self, data: bytes) -> None:
        self.stream.send(data)

    def reply(self) -> tuple[int, str]:
        for _ in range(1000):  # bounded: a reply arrives in a few reads
            lines = self.buffer.split(b"\r\n")
            for index, line in enumerate(lines[:-1]):
                if len(line) >= 4 and line[3:4] == b" ":
                    reply, self.buffer = lines[: index + 1], b"\r\n".join(lines[index + 1 :])
                    text = "\n".join(x[4:].decode() for x in reply)
                    return int(line[:3]), text
            data = self.stream.receive()
            if not data:
                raise EOFError("the server closed the connection")
            self.buffer += data
        raise AssertionError("no complete reply")

    def command(self, line: str) -> tuple[int, str]:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.stream.close()


@pytest.fixture(params=["fake", "local"])
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    made = Kit(request.param)
    yield made
    for submitter in made.submitters:
        submitter.close()
    for server in made.servers:
        server.stop()


def message(
    subject: str = "Hello", to: str = "bob@example.test", body: str = "Hi.\n"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, subject
    msg.set_content(body)
    return msg


def login() -> PasswordAuth:
    return PasswordAuth(USER, PASSWORD)


# -- what arrived ------------------------------------------------------------------------------


def test_an_accepted_message_is_recorded_the_same_way(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD})
    result = kit.submitter(server, auth=login()).send(message())
    [received] = server.messages
    assert isinstance(received, ReceivedMessage)
    assert (received.sender, received.recipients, received.subject) == (
        USER,
        ("bob@example.test",),
        "Hello",
    )
    assert (received.auth_user, received.auth_mechanism, received.tls) == (USER, "PLAIN", True)
    assert received.message["Message-ID"] == result.message_id
    assert received.raw.endswith(b"\r\n")
    assert b"Hi." in received.raw
    assert received.connection == 1
    assert received.queue_id is not None
    assert received.chunked is False
    assert received.recipients == result.accepted
    assert server.auth_attempts == [("PLAIN", USER, True)]
    assert server.dropped == []
    assert server.protocol_errors == []
    assert server.wait_for(1) == [received]


def test_assert_sent_matches_and_explains_a_mismatch(kit: Kit) -> None:
    server = kit.start()
    kit.submitter(server).send(message("Welcome", to="new@example.test"))
    [found] = server.assert_sent(to="NEW@example.test", subject="Welcome", sender=USER)
    assert found.subject == "Welcome"
    server.assert_sent(contains="Hi.", count=1)
    with pytest.raises(AssertionError, match=r"to='gone@example\.test'.*\n1 message\(s\) accepted"):
        server.assert_sent(to="gone@example.test")
    with pytest.raises(AssertionError, match="expected 2 matching"):
        server.assert_sent(count=2)


def test_clear_forgets_what_arrived_but_keeps_the_script(kit: Kit) -> None:
    server = kit.start()
    step = server.reply("rcpt", "550 5.1.1 No such user", recipient="gone@example.test")
    kit.submitter(server).send(message())
    server.clear()
    assert (server.messages, server.dropped, server.auth_attempts) == ([], [], [])
    assert server.scripts == [step]
    with pytest.raises(RecipientRejected):
        kit.submitter(server).send(message(to="gone@example.test"))
    assert step.used == 1
    assert step.exhausted


def test_wait_for_times_out_naming_what_happened(kit: Kit) -> None:
    server = kit.start()
    server.reply("rcpt", "550 5.1.1 No such user", recipient="gone@example.test")
    with pytest.raises(RecipientRejected):
        kit.submitter(server).send(message(to="gone@example.test"))
    with pytest.raises(TimeoutError, match=r"gone@example\.test"):
        server.wait_for(1, timeout=0.05)
    with pytest.raises(ConfigurationError):
        server.wait_for(0)


# -- refusals ---------------------------------------------------------------------------------


def test_one_refused_recipient_among_two(kit: Kit) -> None:
    server = kit.start()
    server.reply("rcpt", "550 5.1.1 No such user", recipient="gone@example.test", times=None)
    result = kit.submitter(server).send(message(to="bob@example.test, gone@example.test"))
    assert result.accepted == ("bob@example.test",)
    assert result.rejected["gone@example.test"].code == 550
    [received] = server.messages
    assert received.recipients == ("bob@example.test",)


def test_every_recipient_refused(kit: Kit) -> None:
    server = kit.start()
    server.reply(Phase.RCPT, code=550, enhanced="5.1.1", text="No such user", times=None)
    with pytest.raises(RecipientRejected) as caught:
        kit.submitter(server).send(message())
    refusal = caught.value.rejected["bob@example.test"]
    assert (refusal.code, refusal.enhanced_code, refusal.text) == (550, "5.1.1", "No such user")
    assert server.messages == []


def test_refused_sender(kit: Kit) -> None:
    server = kit.start()
    server.reply("mail", "553 5.7.1 Sender address rejected: not owned by user")
    with pytest.raises(SenderRejected) as caught:
        kit.submitter(server).send(message())
    assert (caught.value.code, caught.value.enhanced_code) == (553, "5.7.1")
    assert server.messages == []
    kit.submitter(server).send(message())  # used once
    assert len(server.messages) == 1


def test_a_refusal_scripted_n_times_then_the_servers_own(kit: Kit) -> None:
    server = kit.start()
    step = server.reply("message", "452 4.3.1 Insufficient system storage", times=2)
    for _ in range(2):
        with pytest.raises(ServiceUnavailable):
            kit.submitter(server).send(message())
    kit.submitter(server).send(message())
    assert step.used == 2
    assert step.exhausted
    assert len(server.messages) == 1


def test_a_scripted_success_reply_replaces_the_servers_words(kit: Kit) -> None:
    server = kit.start()
    server.reply("message", "250 2.0.0 Queued as {id}, thanks")
    result = kit.submitter(server).send(message())
    [received] = server.messages
    assert result.reply.text == f"Queued as {received.queue_id}, thanks"
    assert result.reply.enhanced_code == "2.0.0"


@pytest.mark.parametrize(
    ("phase", "error"),
    [
        (Phase.GREETING, ServiceUnavailable),
        (Phase.EHLO, ServiceUnavailable),
        (Phase.STARTTLS, TLSUnavailable),
        (Phase.AUTH, ServiceUnavailable),
        (Phase.MAIL, ServiceUnavailable),
        (Phase.RCPT, ServiceUnavailable),
        (Phase.DATA, ServiceUnavailable),
        (Phase.MESSAGE, ServiceUnavailable),
    ],
)
def test_421_at_each_phase_closes_and_is_transient(
    kit: Kit, phase: Phase, error: type[Exception]
) -> None:
    server = kit.start(credentials={USER: PASSWORD})
    server.reply(phase, "421 4.3.2 System shutting down")
    with pytest.raises(error) as caught:
        kit.submitter(server, auth=login()).send(message())
    assert getattr(caught.value, "code", None) == 421
    assert getattr(caught.value, "is_transient", False)
    assert server.messages == []
    assert server.dropped == []
    kit.submitter(server, auth=login()).send(message())  # the next connection is served
    assert len(server.messages) == 1
    assert server.connections == 2


@pytest.mark.parametrize("phase", [Phase.RSET, Phase.QUIT])
def test_421_after_the_message_does_not_undo_it(kit: Kit, phase: Phase) -> None:
    server = kit.start()
    server.reply(phase, "421 4.3.2 System shutting down", times=None)
    submitter = kit.submitter(server)
    submitter.send(message())
    submitter.close()
    assert len(server.messages) == 1


# -- lost connections, timeouts, delays -------------------------------------------------------


def test_disconnect_after_the_content_is_delivery_unknown(kit: Kit) -> None:
    server = kit.start()
    server.disconnect("message")
    with pytest.raises(DeliveryUnknown) as caught:
        kit.submitter(server).send(message("lost"))
    assert server.messages == []
    [dropped] = server.dropped
    assert dropped.subject == "lost"
    assert dropped.queue_id is None
    assert caught.value.message_id == dropped.message["Message-ID"]
    with pytest.raises(AssertionError, match=r"1 more received without a final reply"):
        server.assert_sent()


@pytest.mark.parametrize("phase", [Phase.GREETING, Phase.EHLO, Phase.MAIL, Phase.RCPT, Phase.DATA])
def test_disconnect_before_the_content_is_a_plain_disconnect(kit: Kit, phase: Phase) -> None:
    server = kit.start()
    server.disconnect(phase)
    with pytest.raises(ServerDisconnected) as caught:
        kit.submitter(server).send(message())
    assert not isinstance(caught.value, DeliveryUnknown)
    assert server.messages == []
    assert server.dropped == []


def test_timeout_after_the_content_is_delivery_unknown(kit: Kit) -> None:
    server = kit.start()
    server.timeout("message")
    with pytest.raises(DeliveryUnknown):
        kit.submitter(server, timeout=SHORT).send(message("silent"))
    [dropped] = server.dropped
    assert dropped.subject == "silent"
    assert server.messages == []


def test_timeout_before_the_content_is_operation_timeout(kit: Kit) -> None:
    server = kit.start()
    server.timeout("rcpt")
    started = time.monotonic()
    with pytest.raises(OperationTimeout) as caught:
        kit.submitter(server, timeout=SHORT).send(message())
    assert not isinstance(caught.value, DeliveryUnknown)
    assert caught.value.is_transient
    assert time.monotonic() - started < 3  # the client's timeout, not the server's
    assert server.messages == []
    assert server.dropped == []


def test_a_delay_within_the_clients_patience_is_only_slow(kit: Kit) -> None:
    server = kit.start()
    step = server.delay("mail", 0.05)
    kit.submitter(server, timeout=TIMEOUT).send(message())
    assert step.used == 1
    assert len(server.messages) == 1


def test_a_delay_beyond_the_clients_patience_times_out(kit: Kit) -> None:
    server = kit.start()
    server.delay("mail", 2.0)
    with pytest.raises(OperationTimeout) as caught:
        kit.submitter(server, timeout=Timeouts(command=SHORT)).send(message())
    assert not isinstance(caught.value, DeliveryUnknown)
    assert server.messages == []


def test_a_slow_final_reply_leaves_the_outcome_unknown_but_the_server_has_it(kit: Kit) -> None:
    server = kit.start()
    server.delay("message", 2.0)
    with pytest.raises(DeliveryUnknown):
        kit.submitter(server, timeout=Timeouts(final_reply=SHORT)).send(message("slow"))
    [received] = server.messages  # accepted before the (late) reply
    assert received.subject == "slow"


def test_a_delayed_scripted_reply_is_still_that_reply(kit: Kit) -> None:
    server = kit.start()
    server.reply("rcpt", "550 5.1.1 No such user")
    server.delay("rcpt", 0.05)
    with pytest.raises(RecipientRejected):
        kit.submitter(server).send(message())


# -- AUTH ----------------------------------------------------------------------------------------


def test_credentials_given_means_auth_required(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD})
    with pytest.raises(AuthenticationRequired):
        kit.submitter(server).send(message())
    assert server.messages == []
    assert server.auth_attempts == []


def test_wrong_password(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD})
    with pytest.raises(InvalidCredentials):
        kit.submitter(server, auth=PasswordAuth(USER, "wrong")).send(message())
    assert server.auth_attempts == [("PLAIN", USER, False)]
    assert server.messages == []


def test_a_scripted_auth_refusal_beats_good_credentials(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD})
    server.reply("auth", "535-5.7.8 Username and Password not accepted.\n535 5.7.8 Learn more")
    with pytest.raises(InvalidCredentials) as caught:
        kit.submitter(server, auth=login()).send(message())
    assert "Username and Password not accepted" in caught.value.message
    assert server.auth_attempts == [("PLAIN", USER, False)]


def test_require_auth_false_takes_mail_without_login(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD}, require_auth=False)
    kit.submitter(server).send(message())
    [received] = server.messages
    assert received.auth_user is None


# -- extensions: CHUNKING, PIPELINING, SIZE, 8BITMIME, SMTPUTF8 --------------------------------


@pytest.mark.parametrize("pipelining", [True, False])
def test_bdat_when_chunking_is_offered(kit: Kit, pipelining: bool) -> None:
    server = kit.start(chunking=True, pipelining=pipelining)
    body = "".join(f"line {n} " + "x" * 70 + "\n" for n in range(3000))  # ~230 KB
    result = kit.submitter(server).send(message("chunked", body=body))
    [received] = server.messages
    assert received.chunked is True
    assert received.message.get_content().replace("\r\n", "\n") == body
    assert received.message["Message-ID"] == result.message_id
    assert server.protocol_errors == []


def test_data_when_chunking_is_not_offered(kit: Kit) -> None:
    server = kit.start(chunking=False)
    kit.submitter(server).send(message())
    [received] = server.messages
    assert received.chunked is False


def test_a_refused_bdat_chunk_is_the_messages_refusal(kit: Kit) -> None:
    server = kit.start(chunking=True)
    server.reply("message", "554 5.7.1 Message rejected as spam")
    with pytest.raises(Exception, match="rejected as spam"):
        kit.submitter(server).send(message())
    assert server.messages == []


def test_size_is_checked_before_sending(kit: Kit) -> None:
    server = kit.start(size=2000)
    with pytest.raises(MessageTooLarge):
        kit.submitter(server).send(message(body="y" * 5000))
    assert server.messages == []
    assert server.dropped == []


def test_mail_parameters_are_recorded(kit: Kit) -> None:
    server = kit.start(size=1_000_000)
    kit.submitter(server).send(message(body="Grüße\n"))
    [received] = server.messages
    assert any(option.startswith("SIZE=") for option in received.mail_options)
    assert "BODY=8BITMIME" in received.mail_options
    assert received.rcpt_options == ((),)


def test_smtputf8_addresses(kit: Kit) -> None:
    server = kit.start()
    kit.submitter(server).send(message(to="zoë@example.test"))
    [received] = server.messages
    assert received.smtputf8
    assert "SMTPUTF8" in received.mail_options
    assert received.recipients == ("zoë@example.test",)


def test_without_8bitmime_the_client_sends_7bit(kit: Kit) -> None:
    server = kit.start(eight_bit_mime=False)
    kit.submitter(server).send(message(body="Grüße\n"))
    [received] = server.messages
    assert not any(option.startswith("BODY=") for option in received.mail_options)
    assert all(octet < 0x80 for octet in received.raw)
    assert received.message.get_content().replace("\r\n", "\n") == "Grüße\n"


# -- the raw protocol: the same bytes get the same answers ---------------------------------------


def test_dsn_parameters_are_recorded_as_sent(kit: Kit) -> None:
    server = kit.start(dsn=True, plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test> RET=HDRS ENVID=Abc-123")[0] == 250
    assert (
        client.command("RCPT TO:<b@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;B@x")[0] == 250
    )
    assert client.command("RCPT TO:<c@example.test>")[0] == 250
    assert client.command("DATA")[0] == 354
    client.send(b"Subject: dsn\r\n\r\nbody\r\n.\r\n")
    assert client.reply()[0] == 250
    client.close()
    [received] = server.wait_for(1)
    assert received.mail_options == ("RET=HDRS", "ENVID=Abc-123")
    assert received.rcpt_options == (("NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;B@x"), ())
    assert received.options_for("B@EXAMPLE.TEST") == ("NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;B@x")


def test_parameters_of_an_extension_not_offered_are_refused(kit: Kit) -> None:
    server = kit.start(dsn=False, eight_bit_mime=False, plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test> RET=HDRS")[0] == 555
    assert client.command("MAIL FROM:<a@example.test> BODY=8BITMIME")[0] == 555
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test> NOTIFY=NEVER")[0] == 555
    client.close()
    assert len(server.protocol_errors) == 3
    assert "RET=HDRS" in server.protocol_errors[0]


@pytest.mark.parametrize("pipelining", [True, False])
def test_bdat_exactly_n_octets_one_reply_per_chunk(kit: Kit, pipelining: bool) -> None:
    server = kit.start(chunking=True, pipelining=pipelining, plain=True)
    client = kit.raw(server)
    first = b"Subject: chunks\r\n\r\n.leading dot stays\r\nBDAT 5 is data, "
    last = b"not a command\r\n"
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    if pipelining:  # RFC 3030 §4.2: chunks back to back, then the replies
        client.send(b"BDAT %d\r\n%sBDAT %d LAST\r\n%s" % (len(first), first, len(last), last))
        replies = [client.reply(), client.reply()]
    else:
        client.send(b"BDAT %d\r\n%s" % (len(first), first))
        replies = [client.reply()]
        client.send(b"BDAT %d LAST\r\n%s" % (len(last), last))
        replies.append(client.reply())
    assert [code for code, _ in replies] == [250, 250]
    assert f"{len(first)} octets" in replies[0][1]
    assert client.command("DATA")[0] == 503  # the transaction ended; no MAIL yet
    client.close()
    [received] = server.wait_for(1)
    assert received.raw == first + last  # no dot-stuffing removed, no line handling
    assert received.chunked


@pytest.mark.parametrize("argument", ["", "-1", "1.5", "x", "12345678901", "5 LAST now", "5 FIRST"])
def test_malformed_bdat_sizes_are_refused(kit: Kit, argument: str) -> None:
    server = kit.start(chunking=True, plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    assert client.command(f"BDAT {argument}".rstrip())[0] == 501
    assert client.command("NOOP")[0] == 250  # still in step: nothing was read as data
    client.close()
    assert any("BDAT" in error for error in server.protocol_errors)


def test_bdat_without_chunking_is_refused_after_its_octets(kit: Kit) -> None:
    server = kit.start(chunking=False, plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    client.send(b"BDAT 6 LAST\r\nQUIT\r\n")  # six octets of data that look like a command
    assert client.reply()[0] == 502
    assert client.command("NOOP")[0] == 250
    client.close()
    assert server.messages == []
    assert any("CHUNKING was not advertised" in error for error in server.protocol_errors)


def test_data_after_bdat_is_refused(kit: Kit) -> None:
    server = kit.start(chunking=True, plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    client.send(b"BDAT 3\r\nabc")
    assert client.reply()[0] == 250
    assert client.command("DATA")[0] == 503
    client.close()


def test_a_refused_non_final_chunk_is_scripted_as_data(kit: Kit) -> None:
    server = kit.start(chunking=True, plain=True)
    server.reply("data", "452 4.3.1 Out of room for chunks")
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    client.send(b"BDAT 3\r\nabc")
    assert client.reply() == (452, "4.3.1 Out of room for chunks")
    client.close()
    assert server.messages == []


def test_scripted_ehlo_reply_refuses_that_ehlo_only(kit: Kit) -> None:
    server = kit.start(plain=True)
    server.reply("ehlo", "550 5.7.1 Not from here")
    client = kit.raw(server, ehlo=False)
    assert client.command("EHLO client.example.test") == (550, "5.7.1 Not from here")
    assert client.command("MAIL FROM:<a@example.test>")[0] == 503  # no EHLO took effect
    assert client.command("EHLO client.example.test")[0] == 250
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    client.close()


def test_a_scripted_greeting(kit: Kit) -> None:
    server = kit.start(plain=True)
    server.reply("greeting", "220 mx.example.test ESMTP ready")
    server.reply("greeting", "554 5.7.1 No service for you")
    raw = kit.raw(server, ehlo=False)  # takes the first scripted greeting, a normal 220
    assert raw.command("QUIT")[0] == 221
    raw.close()
    with pytest.raises(Exception, match="No service for you"):
        kit.submitter(server).send(message())
    kit.submitter(server).send(message())  # both steps used: the server's own greeting
    assert len(server.messages) == 1


def test_auth_plain_exchange_on_the_raw_protocol(kit: Kit) -> None:
    server = kit.start(credentials={USER: PASSWORD}, plain=True)
    if isinstance(server, FakeTransport):
        pytest.skip("the fake offers AUTH only after STARTTLS (auth_requires_tls, as Gmail)")
    client = kit.raw(server)
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert client.command(f"AUTH PLAIN {token}")[0] == 235
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    client.close()


# -- flights: only the fake can show which commands travelled together ---------------------------


@pytest.mark.parametrize("pipelining", [True, False])
def test_flights_show_pipelining(kit: Kit, pipelining: bool) -> None:
    server = kit.start(pipelining=pipelining)
    kit.submitter(server).send(message())
    if not isinstance(server, FakeTransport):
        pytest.skip("LocalServer does not record flights; the fake shows them")
    envelope = [f for f in server.flights if f and f[0].startswith("MAIL FROM:")]
    [flight] = envelope
    if pipelining:
        assert [command.split(":")[0].split(" ")[0] for command in flight] == [
            "MAIL",
            "RCPT",
            "DATA",
        ]
    else:
        assert len(flight) == 1
        assert ("RCPT TO:<bob@example.test>",) in server.flights
        assert ("DATA",) in server.flights
    transcript = server.transcript
    mail = next(i for i, line in enumerate(transcript) if line.startswith("C: MAIL FROM:"))
    if pipelining:  # the commands of a flight come before their replies
        assert transcript[mail + 1].startswith("C: RCPT TO:")
        assert transcript[mail + 2] == "C: DATA"
    else:
        assert transcript[mail + 1].startswith("S: 250")


def test_scripts_are_one_type_with_the_same_bookkeeping(kit: Kit) -> None:
    server = kit.start()
    steps = [
        server.reply("rcpt", "550 5.1.1 No", recipient="x@example.test", times=None),
        server.disconnect("data", times=2),
        server.timeout("quit"),
        server.delay("message", 0.01),
    ]
    assert all(isinstance(step, Scripted) for step in steps)
    assert server.scripts == steps
    steps[1].cancel()
    assert steps[1].exhausted
    assert steps[1].used == 0
    with pytest.raises(ConfigurationError):
        server.reply("mail", "550 no", recipient="x@example.test")
    with pytest.raises(ConfigurationError):
        server.delay("mail", 0)
    with pytest.raises(ConfigurationError):
        server.reply("mail", "not a reply")


def test_the_null_sender_is_taken(kit: Kit) -> None:
    server = kit.start(plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    assert client.command("DATA")[0] == 354
    client.send(b"Subject: bounce\r\n\r\n..a dot-stuffed line\r\n.\r\n")
    assert client.reply()[0] == 250
    client.close()
    [received] = server.wait_for(1)
    assert received.sender == ""
    assert received.raw == b"Subject: bounce\r\n\r\n.a dot-stuffed line\r\n"


def test_bare_lf_in_the_content_is_noted_by_both_refused_by_the_fake(kit: Kit) -> None:
    # The documented difference (docs/testing.md, "What each can play").
    server = kit.start(plain=True)
    client = kit.raw(server)
    assert client.command("MAIL FROM:<a@example.test>")[0] == 250
    assert client.command("RCPT TO:<b@example.test>")[0] == 250
    assert client.command("DATA")[0] == 354
    client.send(b"Subject: lf\r\n\r\nbare\nline feed\r\n.\r\n")
    code, _ = client.reply()
    client.close()
    assert code == (550 if kit.kind == "fake" else 250)
    assert any("bare CR or LF" in error for error in server.protocol_errors)

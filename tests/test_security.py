"""Security properties of the Submitter: no plaintext AUTH off loopback, verified TLS, no
downgrade, no header/command injection, and the password never leaks anywhere.

Tests that must not touch a non-loopback host drive the Submitter through an in-memory
transport (:class:`MemoryServer`): the client believes it talks to ``mail.example.com`` while
every byte it sends is recorded here, and nothing leaves the process.
"""

from __future__ import annotations

import base64
import email.message
import ipaddress
import logging
import pickle
import ssl
import traceback
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pytest

from smtpkit import (
    InsecureAuthRefused,
    InvalidCredentials,
    MessageError,
    OperationTimeout,
    Security,
    SMTPError,
    StartTLSNotOffered,
    Submitter,
    TLSError,
    TLSModeMismatch,
    TLSUnavailable,
)
from smtpkit.auth import AppPasswordAuth, AuthStrategy, PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.errors import ServerDisconnected
from smtpkit.testing import LocalServer

if TYPE_CHECKING:
    from conftest import ServerLog

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5.0
USER = "alice@example.test"
CANARY = "CANARY-pw-7731"
REMOTE = "mail.example.com"
ServerFactory = Callable[..., LocalServer]
MakeMessage = Callable[..., EmailMessage]


# -- an in-memory plaintext server -------------------------------------------------------------


class MemoryServer:
    """A scripted plaintext SMTP server in memory; a Transport whose streams talk to it.

    Records everything the client sends in :attr:`sent`. Answers like a submission server
    named ``name`` that offers ``extensions`` (and STARTTLS, answered ``starttls_reply``,
    when that is given). It never does TLS: ``start_tls`` fails like a broken handshake.
    """

    def __init__(
        self,
        name: str = REMOTE,
        *,
        extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"),
        starttls_reply: bytes | None = None,
    ) -> None:
        self.name = name
        self.extensions = extensions + (("STARTTLS",) if starttls_reply else ())
        self.starttls_reply = starttls_reply
        self.sent = bytearray()
        self.connections = 0
        self.messages = 0
        self._out = bytearray()
        self._in = bytearray()
        self._in_data = False
        self._login_steps = 0
        self._open = False

    # Transport
    def connect(self, endpoint: Endpoint) -> MemoryServer:
        assert endpoint.host == self.name
        self.connections += 1
        self._open = True
        self._out += f"220 {self.name} ESMTP ready\r\n".encode()
        return self

    # Stream
    @property
    def is_encrypted(self) -> bool:
        return False

    @property
    def peer_address(self) -> str:
        # Where a connection to ``name`` leads (the loopback rule reads the peer, not the
        # name): the address itself, loopback for localhost, a remote address otherwise.
        host = self.name.strip("[]").rstrip(".").lower()
        if host == "localhost":
            return "127.0.0.1"
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return "203.0.113.10"  # TEST-NET-3 (RFC 5737)

    def set_timeout(self, seconds: float) -> None:
        assert seconds > 0

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        raise TLSError("the in-memory server cannot do TLS")

    def close(self) -> None:
        self._open = False

    def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._out:
            if not self._open:
                return b""
            raise OperationTimeout("the in-memory server has nothing to say")
        data = bytes(self._out[:max_bytes])
        del self._out[:max_bytes]
        return data

    def send(self, data: bytes) -> None:
        if not self._open:
            raise ServerDisconnected("closed")
        self.sent += data
        self._in += data
        for _ in range(10_000):  # bounded: one call holds at most a few thousand lines
            end = self._in.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self._in[:end])
            del self._in[: end + 2]
            self._line(line)

    def _reply(self, *lines: str) -> None:
        self._out += b"".join(line.encode() + b"\r\n" for line in lines)

    def _line(self, line: bytes) -> None:
        if self._in_data:
            if line == b".":
                self._in_data = False
                self.messages += 1
                self._reply("250 2.0.0 OK queued")
            return
        if self._login_steps:
            self._login_steps -= 1
            self._reply("334 UGFzc3dvcmQ6" if self._login_steps else "235 2.7.0 Accepted")
            return
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            caps = [self.name, *self.extensions]
            self._reply(*(f"250-{c}" for c in caps[:-1]), f"250 {caps[-1]}")
        elif verb == b"STARTTLS" and self.starttls_reply:
            self._out += self.starttls_reply + b"\r\n"
        elif verb == b"AUTH" and line.upper().startswith(b"AUTH LOGIN"):
            self._login_steps = 2
            self._reply("334 VXNlcm5hbWU6")
        elif verb == b"AUTH":
            self._reply("235 2.7.0 Accepted")
        elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            self._reply("250 OK")
        elif verb == b"DATA":
            self._in_data = True
            self._reply("354 Go ahead")
        elif verb == b"QUIT":
            self._reply("221 Bye")
        else:
            self._reply("500 5.5.1 Unknown command")

    def verbs(self) -> list[bytes]:
        """The verbs of the command lines sent outside DATA (rough, for assertions)."""
        return [line.split(b" ", 1)[0].split(b":", 1)[0].upper() for line in self.lines()]

    def lines(self) -> list[bytes]:
        return bytes(self.sent).split(b"\r\n")[:-1]


def secret_forms(secret: str, user: str = USER) -> list[str]:
    """The secret as text and every base64 form it can take on the wire or in a log.

    Besides the PLAIN and LOGIN encodings, this includes, for each of the three alignments
    a secret can have inside longer base64 text, the characters fully determined by it.
    """
    raw = secret.encode()
    forms = {
        secret,
        base64.b64encode(raw).decode(),
        base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        first_group = 0 if shift == 0 else 1
        last_group = (shift + len(raw)) // 3
        fragment = encoded[4 * first_group : 4 * last_group]
        assert len(fragment) >= 8
        forms.add(fragment)
    return sorted(forms)


def assert_no_secret(haystack: str | bytes | bytearray, secret: str = CANARY) -> None:
    text = haystack if isinstance(haystack, str) else bytes(haystack).decode("latin-1")
    for form in secret_forms(secret):
        assert form not in text, f"secret form {form!r} leaked"


# -- AUTH over plaintext -----------------------------------------------------------------------


def test_auth_is_refused_over_plaintext_to_a_remote_host(make_message: MakeMessage) -> None:
    server = MemoryServer()
    auth = PasswordAuth(USER, CANARY)
    submitter = Submitter(
        REMOTE, 587, security=Security.NONE, auth=auth, transport=server, timeout=TIMEOUT
    )
    with pytest.raises(InsecureAuthRefused) as caught:
        submitter.send(make_message())

    assert isinstance(caught.value, ValueError)
    assert caught.value.hint
    assert "Security.STARTTLS" in caught.value.hint
    assert b"AUTH" not in server.sent
    assert server.verbs() == [b"EHLO", b"QUIT"]
    assert_no_secret(server.sent)
    assert_no_secret(str(caught.value) + repr(caught.value))
    assert server.messages == 0


def test_the_explicit_opt_out_sends_auth_over_plaintext(make_message: MakeMessage) -> None:
    server = MemoryServer()
    submitter = Submitter(
        REMOTE,
        587,
        security=Security.NONE,
        auth=PasswordAuth(USER, CANARY),
        transport=server,
        timeout=TIMEOUT,
        allow_unencrypted_auth=True,
    )
    submitter.send(make_message())
    assert server.verbs()[:2] == [b"EHLO", b"AUTH"]
    assert server.messages == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "127.1.2.3"])
def test_auth_over_plaintext_to_loopback_is_allowed(host: str, make_message: MakeMessage) -> None:
    server = MemoryServer(host)
    Submitter(
        host, 25, security=Security.NONE, auth=PasswordAuth(USER, "pw"), transport=server
    ).send(make_message())
    assert b"AUTH" in server.verbs()
    assert server.messages == 1


@pytest.mark.parametrize(
    "host", ["localhost.example.com", "127.0.0.1.nip.io", "10.0.0.1", "0.0.0.0", "[2001:db8::1]"]
)
def test_hosts_that_only_look_local_are_remote(host: str, make_message: MakeMessage) -> None:
    server = MemoryServer(host)
    submitter = Submitter(
        host, 25, security=Security.NONE, auth=PasswordAuth(USER, CANARY), transport=server
    )
    with pytest.raises(InsecureAuthRefused):
        submitter.send(make_message())
    assert b"AUTH" not in server.verbs()
    assert_no_secret(server.sent)


# -- STARTTLS: required, never downgraded ------------------------------------------------------


def test_starttls_not_offered_sends_nothing_after_ehlo(make_message: MakeMessage) -> None:
    server = MemoryServer()
    submitter = Submitter(
        REMOTE, 587, auth=PasswordAuth(USER, CANARY), transport=server, timeout=TIMEOUT
    )
    with pytest.raises(StartTLSNotOffered) as caught:
        submitter.send(make_message())
    assert isinstance(caught.value, TLSError)
    assert server.verbs() == [b"EHLO"]  # not AUTH, not MAIL, not even QUIT
    assert caught.value.hint


def test_starttls_not_offered_by_a_real_plaintext_server(
    local_server: ServerFactory, make_message: MakeMessage, server_log: ServerLog
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: CANARY})
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.STARTTLS,
        auth=PasswordAuth(USER, CANARY),
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )
    with pytest.raises(StartTLSNotOffered):
        submitter.send(make_message())
    server_log.wait_closed()
    assert server_log.verbs() == ["EHLO"]
    assert server.auth_attempts == []
    assert server.messages == []


def test_starttls_refused_is_tls_unavailable_and_nothing_else_is_sent(
    make_message: MakeMessage,
) -> None:
    server = MemoryServer(starttls_reply=b"454 4.7.0 TLS not available due to local problem")
    submitter = Submitter(
        REMOTE, 587, auth=PasswordAuth(USER, CANARY), transport=server, timeout=TIMEOUT
    )
    with pytest.raises(TLSUnavailable) as caught:
        submitter.send(make_message())
    assert caught.value.code == 454
    assert caught.value.is_transient
    assert b"AUTH" not in server.verbs()
    assert b"MAIL" not in server.verbs()
    assert_no_secret(server.sent)


# -- certificates and TLS modes ----------------------------------------------------------------


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS])
def test_an_untrusted_certificate_is_a_tls_error(
    local_server: ServerFactory,
    make_message: MakeMessage,
    server_log: ServerLog,
    security: Security,
) -> None:
    server = local_server(security=security, credentials={USER: CANARY})
    # No tls_context: the default trust store, which does not know this server's CA.
    submitter = Submitter(
        server.host,
        server.port,
        security=security,
        auth=PasswordAuth(USER, CANARY),
        timeout=TIMEOUT,
    )
    with pytest.raises(TLSError) as caught:
        submitter.send(make_message())
    assert not isinstance(caught.value, TLSModeMismatch)
    assert "certificate" in str(caught.value)
    assert caught.value.hint
    assert "never disable verification" in caught.value.hint
    assert server.auth_attempts == []
    assert server.messages == []
    if security is Security.STARTTLS:
        server_log.wait_closed()
        assert server_log.verbs() == ["EHLO", "STARTTLS"]


@pytest.mark.parametrize("server_security", [Security.STARTTLS, Security.NONE])
def test_implicit_tls_to_a_plaintext_port_is_a_mode_mismatch(
    local_server: ServerFactory, make_message: MakeMessage, server_security: Security
) -> None:
    server = local_server(security=server_security)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.TLS,
        auth=PasswordAuth(USER, CANARY),
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )
    with pytest.raises(TLSModeMismatch) as caught:
        submitter.send(make_message())
    hint = caught.value.hint or ""
    assert "STARTTLS" in hint
    assert "587" in hint
    assert server.auth_attempts == []


def test_plaintext_to_an_implicit_tls_port_times_out_with_a_hint(
    local_server: ServerFactory, make_message: MakeMessage
) -> None:
    # An implicit-TLS server waits for the client's handshake and sends nothing, so on a port
    # other than 465 the client cannot tell it from a slow server: it times out on the
    # greeting, and the hint names the likely cause.
    server = local_server(security=Security.TLS)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.STARTTLS,
        tls_context=server.client_tls_context(),
        timeout=0.5,
    )
    with pytest.raises(OperationTimeout) as caught:
        submitter.send(make_message())
    assert "Security.TLS" in (caught.value.hint or "")
    assert server.messages == []


def test_plaintext_to_port_465_is_a_mode_mismatch(
    local_server: ServerFactory, make_message: MakeMessage
) -> None:
    try:
        server = local_server(security=Security.TLS, port=465)
    except OSError as error:
        pytest.skip(f"cannot listen on 127.0.0.1:465 here ({error})")
    submitter = Submitter(
        server.host,
        465,
        security=Security.STARTTLS,
        tls_context=server.client_tls_context(),
        timeout=0.5,
    )
    with pytest.raises(TLSModeMismatch) as caught:
        submitter.send(make_message())
    assert "Security.TLS" in (caught.value.hint or "")


# -- injection ---------------------------------------------------------------------------------


def _compat32(**headers: str) -> email.message.Message:
    # The legacy Message class accepts any header value; EmailMessage refuses CR/LF itself.
    message = email.message.Message()
    for name, value in {"From": USER, "To": "bob@example.test", **headers}.items():
        message[name] = value
    message.set_payload("body\n")
    return message


@pytest.mark.parametrize(
    ("message", "sender", "recipients"),
    [
        (None, "alice@example.test\r\nRCPT TO:<evil@example.net>", None),
        (None, "alice@example.test\nRCPT TO:<evil@example.net>", None),
        (None, None, ["bob@example.test\r\nRCPT TO:<evil@example.net>"]),
        (None, None, ["bob@example.test>\rRCPT TO:<evil@example.net"]),
        (_compat32(Subject="hi\r\nBcc: evil@example.net"), None, None),
        (_compat32(Subject="hi\nBcc: evil@example.net"), None, None),
        (_compat32(To="bob@example.test\r\nevil@example.net"), None, None),
        (_compat32(From="alice@example.test\r\n\r\nevil body"), None, None),
    ],
)
def test_cr_lf_injection_is_a_message_error_and_nothing_is_sent(
    make_message: MakeMessage,
    message: email.message.Message | None,
    sender: str | None,
    recipients: list[str] | None,
) -> None:
    server = MemoryServer()
    submitter = Submitter(
        REMOTE,
        587,
        security=Security.NONE,
        transport=server,
        timeout=TIMEOUT,
    )
    with pytest.raises(MessageError):
        submitter.send(message or make_message(), sender=sender, recipients=recipients)
    assert b"MAIL" not in server.verbs()
    assert b"evil" not in server.sent
    assert server.messages == 0


def test_raw_bytes_cannot_end_the_message_early(local_server: ServerFactory) -> None:
    # A line holding only "." inside raw bytes is dot-stuffed, never an end of data, and bare
    # CR/LF become CRLF: the message arrives whole, as one message.
    server = local_server(security=Security.NONE)
    raw = b"Subject: x\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@example.net>\n.\rafter\r\n"
    Submitter(server.host, server.port, security=Security.NONE, timeout=TIMEOUT).send(
        raw, sender=USER, recipients=["bob@example.test"]
    )
    [received] = server.wait_for(1)
    assert received.recipients == ("bob@example.test",)
    assert received.raw.startswith(b"Subject: x\r\n\r\nbefore\r\n.\r\nMAIL FROM:")
    assert received.raw.endswith(b"after\r\n")
    assert len(server.messages) == 1


# -- the password never leaks ----------------------------------------------------------------


def _exception_chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 20:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _everything_about(error: BaseException) -> list[str | bytes]:
    found: list[str | bytes] = []
    for item in _exception_chain(error):
        found += [str(item), repr(item), pickle.dumps(item)]
        restored = pickle.loads(pickle.dumps(item))
        found += [str(restored), repr(restored), repr(vars(restored))]
        if isinstance(item, SMTPError):
            found += ["\n".join(item.transcript), str(item.hint)]
        found.append("".join(traceback.format_exception(item)))
    return found


def _smtpkit_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}"
        for record in caplog.records
        if record.name.startswith("smtpkit")
    )


@pytest.mark.parametrize(
    ("make_auth", "mechanisms"),
    [
        (PasswordAuth, ("PLAIN", "LOGIN")),
        (PasswordAuth, ("LOGIN",)),
        (AppPasswordAuth, ("PLAIN", "LOGIN")),
    ],
)
def test_the_password_never_leaks_from_a_failed_login(
    local_server: ServerFactory,
    make_message: MakeMessage,
    caplog: pytest.LogCaptureFixture,
    make_auth: Callable[[str, str], AuthStrategy],
    mechanisms: tuple[str, ...],
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpkit")
    caplog.set_level(logging.DEBUG, logger="smtpkit.wire")
    server = local_server(credentials={USER: "the right one"}, auth_mechanisms=mechanisms)
    auth = make_auth(USER, CANARY)
    submitter = Submitter(
        server.host,
        server.port,
        auth=auth,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )
    with pytest.raises(InvalidCredentials) as caught:
        submitter.send(make_message())

    assert len(server.auth_attempts) == 1
    log = _smtpkit_log(caplog)
    assert "C: AUTH" in log  # the wire log did record the exchange, redacted
    haystacks: list[str | bytes] = [
        log,
        repr(submitter),
        str(submitter),
        repr(auth),
        str(auth),
        *_everything_about(caught.value),
    ]
    for haystack in haystacks:
        assert_no_secret(haystack)
    assert caught.value.transcript  # there is a transcript, and it is clean
    with pytest.raises(Exception):
        pickle.dumps(auth)


def test_the_password_never_leaks_from_a_successful_session(
    local_server: ServerFactory, make_message: MakeMessage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpkit")
    server = local_server(credentials={USER: CANARY}, auth_mechanisms=("LOGIN",))
    submitter = Submitter(
        server.host,
        server.port,
        auth=PasswordAuth(USER, CANARY),
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )
    with submitter:
        result = submitter.send(make_message())
        assert_no_secret(repr(submitter))
    assert server.auth_attempts[0].success
    assert_no_secret(_smtpkit_log(caplog))
    assert_no_secret(repr(result))


def test_the_password_never_leaks_from_a_refused_insecure_login(
    make_message: MakeMessage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="smtpkit")
    submitter = Submitter(
        REMOTE,
        security=Security.NONE,
        auth=PasswordAuth(USER, CANARY),
        transport=MemoryServer(),
        timeout=TIMEOUT,
    )
    with pytest.raises(InsecureAuthRefused) as caught:
        submitter.send(make_message())
    for haystack in [_smtpkit_log(caplog), repr(submitter), *_everything_about(caught.value)]:
        assert_no_secret(haystack)


def test_secret_forms_cover_every_alignment() -> None:
    # The helper itself: each way the canary can sit inside base64 text is caught.
    forms = secret_forms(CANARY)
    for prefix in ("", "a", "ab", "abc", "\0alice@example.test\0"):
        encoded = base64.b64encode((prefix + CANARY + "tail").encode()).decode()
        assert any(form in encoded for form in forms), prefix

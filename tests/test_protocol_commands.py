"""Byte-level tests for the command writer: exact wire bytes and argument validation."""

from __future__ import annotations

import base64

import pytest

from smtpkit.errors import MessageError
from smtpkit.protocol import MAX_AUTH_LINE, MAX_COMMAND_LINE, Command, validate_address
from smtpkit.replies import Phase

# -- exact bytes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "wire", "verb", "phase"),
    [
        # C: EHLO client.example.com
        (Command.ehlo("client.example.com"), b"EHLO client.example.com\r\n", "EHLO", Phase.EHLO),
        # C: EHLO [192.0.2.1]
        (Command.ehlo("[192.0.2.1]"), b"EHLO [192.0.2.1]\r\n", "EHLO", Phase.EHLO),
        # C: HELO client.example.com
        (Command.helo("client.example.com"), b"HELO client.example.com\r\n", "HELO", Phase.EHLO),
        # C: STARTTLS
        (Command.starttls(), b"STARTTLS\r\n", "STARTTLS", Phase.STARTTLS),
        # C: MAIL FROM:<alice@example.com>
        (
            Command.mail("alice@example.com"),
            b"MAIL FROM:<alice@example.com>\r\n",
            "MAIL",
            Phase.MAIL,
        ),
        # C: MAIL FROM:<alice@example.com> SIZE=1200 BODY=8BITMIME SMTPUTF8
        (
            Command.mail("alice@example.com", ["SIZE=1200", "BODY=8BITMIME", "SMTPUTF8"]),
            b"MAIL FROM:<alice@example.com> SIZE=1200 BODY=8BITMIME SMTPUTF8\r\n",
            "MAIL",
            Phase.MAIL,
        ),
        # C: MAIL FROM:<>      (null reverse-path, RFC 5321 §4.5.5)
        (Command.mail(""), b"MAIL FROM:<>\r\n", "MAIL", Phase.MAIL),
        # C: RCPT TO:<bob@example.org>
        (Command.rcpt("bob@example.org"), b"RCPT TO:<bob@example.org>\r\n", "RCPT", Phase.RCPT),
        # C: RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY
        (
            Command.rcpt("bob@example.org", ["NOTIFY=FAILURE,DELAY"]),
            b"RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY\r\n",
            "RCPT",
            Phase.RCPT,
        ),
        # C: DATA
        (Command.data(), b"DATA\r\n", "DATA", Phase.DATA),
        # C: BDAT 1000
        (Command.bdat(1000, last=False), b"BDAT 1000\r\n", "BDAT", Phase.DATA),
        # C: BDAT 12 LAST
        (Command.bdat(12, last=True), b"BDAT 12 LAST\r\n", "BDAT", Phase.MESSAGE),
        # C: BDAT 0 LAST
        (Command.bdat(0, last=True), b"BDAT 0 LAST\r\n", "BDAT", Phase.MESSAGE),
        # C: RSET
        (Command.rset(), b"RSET\r\n", "RSET", Phase.RSET),
        # C: NOOP
        (Command.noop(), b"NOOP\r\n", "NOOP", Phase.NOOP),
        # C: QUIT
        (Command.quit(), b"QUIT\r\n", "QUIT", Phase.QUIT),
        # C: AUTH LOGIN
        (Command.auth("LOGIN"), b"AUTH LOGIN\r\n", "AUTH", Phase.AUTH),
        # C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
        (
            Command.auth("PLAIN", "AGFsaWNlAHNlY3JldA=="),
            b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
            "AUTH",
            Phase.AUTH,
        ),
        # C: AUTH EXTERNAL =
        (Command.auth("EXTERNAL", "="), b"AUTH EXTERNAL =\r\n", "AUTH", Phase.AUTH),
        # C: dXNlcg==      (continuation after 334)
        (Command.auth_response("dXNlcg=="), b"dXNlcg==\r\n", "", Phase.AUTH),
        # C: <empty line>
        (Command.auth_response(""), b"\r\n", "", Phase.AUTH),
        # C: *             (cancel, RFC 4954 §4)
        (Command.auth_response("*"), b"*\r\n", "", Phase.AUTH),
    ],
)
def test_exact_bytes(command: Command, wire: bytes, verb: str, phase: Phase) -> None:
    assert command.to_bytes() == wire
    assert command.line.encode() + b"\r\n" == wire
    assert command.verb == verb
    assert command.phase is phase


def test_mail_and_rcpt_carry_their_address() -> None:
    assert Command.mail("alice@example.com", ["SIZE=10"]).address == "alice@example.com"
    assert Command.mail("").address == ""
    assert Command.rcpt("bob@example.org").address == "bob@example.org"
    assert Command.data().address is None


def test_smtputf8_address_is_utf8_on_the_wire() -> None:
    # C: RCPT TO:<用户@例子.广告>     (RFC 6531 §3.3)
    assert Command.rcpt("用户@例子.广告").to_bytes() == "RCPT TO:<用户@例子.广告>\r\n".encode()


def test_empty_auth_initial_response_is_sent_as_equals() -> None:
    # RFC 4954 §4: a zero-length initial response MUST be sent as "=", never "AUTH X ".
    assert Command.auth("EXTERNAL", "").to_bytes() == b"AUTH EXTERNAL =\r\n"


def test_plain_commands_are_not_redacted() -> None:
    command = Command.mail("alice@example.com")
    assert command.redacted == command.line
    assert repr(command) == "Command('MAIL FROM:<alice@example.com>')"


# -- control characters: nothing reaches the wire ----------------------------------------------

CONTROLS = [
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\x01",
    "\x08",
    "\t",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",  # DEL
    "\x80",  # C1
    "\x85",  # NEL
    "\x9b",  # CSI
    "\x9f",
]


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
def test_controls_in_sender_refused(control: str) -> None:
    with pytest.raises(MessageError, match="control character"):
        Command.mail(f"alice{control}@example.com")


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
def test_controls_in_recipient_refused(control: str) -> None:
    with pytest.raises(MessageError, match="control character"):
        Command.rcpt(f"bob@example.org{control}")


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
def test_controls_in_parameters_refused(control: str) -> None:
    with pytest.raises(MessageError, match="control character"):
        Command.mail("alice@example.com", [f"SIZE=1{control}"])
    with pytest.raises(MessageError, match="control character"):
        Command.rcpt("bob@example.org", [f"NOTIFY{control}=NEVER"])


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
def test_controls_in_ehlo_host_refused(control: str) -> None:
    with pytest.raises(MessageError):
        Command.ehlo(f"client{control}.example.com")
    with pytest.raises(MessageError):
        Command.helo(f"client.example.com{control}")


@pytest.mark.parametrize(
    "attack",
    [
        "alice@example.com>\r\nRCPT TO:<victim@example.org",
        "alice@example.com\r\nDATA\r\n",
        "alice@example.com\nRSET",
        "alice@example.com\rRSET",
        "\r\n.\r\nMAIL FROM:<x@example.com>",
    ],
)
def test_command_smuggling_through_the_address_is_refused(attack: str) -> None:
    with pytest.raises(MessageError):
        Command.mail(attack)
    with pytest.raises(MessageError):
        Command.rcpt(attack)


def test_validate_address_refuses_controls_too() -> None:
    with pytest.raises(MessageError, match="control character"):
        validate_address("a\r\n@example.com")


# -- address shape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com",
        "a@b",
        "first.last+tag@sub.example.co.uk",
        '"quoted@local"@example.com',
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        "用户@例子.广告",
        "x" * 64 + "@example.com",
    ],
)
def test_valid_addresses(address: str) -> None:
    assert validate_address(address) == address
    assert Command.rcpt(address).address == address


@pytest.mark.parametrize(
    "address",
    [
        "alice example@example.com",  # space
        "Alice <alice@example.com>",  # display name
        "<alice@example.com>",  # brackets
        "alice@example.com>",
        "<alice@example.com",
        "alice",  # no @
        "@example.com",  # no local part
        "alice@",  # no domain
        "alice@.example.com",
        "alice@example.com.",
        "alice@example..com",
        "x" * 65 + "@example.com",  # local part over 64 octets
        "a@" + "b" * 256,  # domain over 255 octets
    ],
)
def test_invalid_addresses(address: str) -> None:
    with pytest.raises(MessageError):
        validate_address(address)
    with pytest.raises(MessageError):
        Command.mail(address)
    with pytest.raises(MessageError):
        Command.rcpt(address)


def test_null_sender_allowed_but_empty_recipient_refused() -> None:
    assert Command.mail("").to_bytes() == b"MAIL FROM:<>\r\n"
    with pytest.raises(MessageError, match="cannot be empty"):
        Command.rcpt("")


def test_address_must_be_str() -> None:
    with pytest.raises(MessageError, match="must be a str"):
        validate_address(b"alice@example.com")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "param",
    [
        "",
        "=x",
        "SIZE=",
        "SIZE=1 2",
        "SIZE=a=b",
        "-SIZE=1",
        "SI ZE",
        "SIZE=\u00e9",
        "K\u00e9Y",
    ],
)
def test_invalid_parameters(param: str) -> None:
    with pytest.raises(MessageError):
        Command.mail("alice@example.com", [param])


@pytest.mark.parametrize("host", ["", "two words", "tab\there", "<host>", "host\r\n"])
def test_invalid_ehlo_hosts(host: str) -> None:
    with pytest.raises(MessageError, match="hostname"):
        Command.ehlo(host)


def test_bdat_negative_size_refused() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        Command.bdat(-1, last=True)


# -- the 512-octet line limit (RFC 5321 §4.5.3.1.4) -----------------------------------------


def _mail_line_of(total: int) -> Command:
    address = "a@example.com"
    base = len(f"MAIL FROM:<{address}> X-PAD=") + 2
    return Command.mail(address, ["X-PAD=" + "p" * (total - base)])


def test_command_of_exactly_512_octets_is_allowed() -> None:
    command = _mail_line_of(MAX_COMMAND_LINE)
    assert len(command.to_bytes()) == MAX_COMMAND_LINE == 512


def test_command_of_513_octets_is_refused() -> None:
    with pytest.raises(MessageError, match="513 octets"):
        _mail_line_of(MAX_COMMAND_LINE + 1)


def test_line_limit_counts_utf8_octets_not_characters() -> None:
    # 200 characters of 3 octets each: 600 octets.
    with pytest.raises(MessageError, match="RFC 5321"):
        Command.ehlo("\u4e2d" * 200)


# -- AUTH: redaction and validation ---------------------------------------------------------------

CANARY_PASSWORD = "canary-Pa55w0rd-7f3a"
CANARY_B64 = base64.b64encode(f"\0alice@example.com\0{CANARY_PASSWORD}".encode()).decode()


def test_auth_initial_response_is_redacted() -> None:
    command = Command.auth("PLAIN", CANARY_B64)
    assert command.to_bytes() == f"AUTH PLAIN {CANARY_B64}\r\n".encode()
    assert command.redacted == "AUTH PLAIN ****"
    assert CANARY_B64 not in command.redacted
    assert CANARY_B64 not in repr(command)
    assert repr(command) == "Command('AUTH PLAIN ****')"
    assert CANARY_B64 not in str(command)


def test_auth_continuation_is_redacted() -> None:
    command = Command.auth_response(CANARY_B64)
    assert command.to_bytes() == CANARY_B64.encode() + b"\r\n"
    assert command.redacted == "****"
    assert CANARY_B64 not in repr(command)
    # Empty and cancel lines carry no secret and are shown as they are.
    assert Command.auth_response("").redacted == ""
    assert Command.auth_response("*").redacted == "*"


def test_auth_initial_response_too_long_is_refused() -> None:
    # "AUTH PLAIN " + response + CRLF must fit in 512 octets (RFC 4954 §4).
    fits = "A" * (MAX_COMMAND_LINE - len("AUTH PLAIN ") - 2)
    assert len(Command.auth("PLAIN", fits).to_bytes()) == MAX_COMMAND_LINE
    with pytest.raises(MessageError, match="334"):
        Command.auth("PLAIN", fits + "A")


def test_auth_continuation_length_limit() -> None:
    fits = "A" * (MAX_AUTH_LINE - 2)
    assert len(Command.auth_response(fits).to_bytes()) == MAX_AUTH_LINE
    with pytest.raises(MessageError, match="12288"):
        Command.auth_response(fits + "A")


@pytest.mark.parametrize(
    "mechanism", ["", "plain", "PLAIN LOGIN", "X" * 21, "PLAIN\r\n", "PLAIN\n", "PL@IN"]
)
def test_invalid_mechanism(mechanism: str) -> None:
    with pytest.raises(MessageError, match="mechanism"):
        Command.auth(mechanism)
    with pytest.raises(MessageError, match="mechanism"):
        Command.auth(mechanism, "AAAA")


@pytest.mark.parametrize(
    "response",
    [
        "not base64!",
        "abc def",
        "abc\r\nMAIL FROM:<x@example.com>",
        "abc\n",  # "$" in a regex would accept this trailing newline
        "abc\r",
        "\n",
        "abc===",
        "ab=c",
        "**",
        "\u00e9",
    ],
    ids=repr,
)
def test_invalid_auth_payloads(response: str) -> None:
    with pytest.raises(MessageError, match="base64"):
        Command.auth("PLAIN", response)
    with pytest.raises(MessageError, match="base64"):
        Command.auth_response(response)


def test_auth_error_messages_do_not_echo_the_payload() -> None:
    secret = CANARY_B64 + "!"
    with pytest.raises(MessageError) as caught:
        Command.auth("PLAIN", secret)
    assert CANARY_B64 not in str(caught.value)
    with pytest.raises(MessageError) as caught:
        Command.auth_response(secret)
    assert CANARY_B64 not in str(caught.value)

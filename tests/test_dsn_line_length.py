"""DSN parameters raise the command line limit: RFC 3461 lets a RCPT line carrying NOTIFY or
ORCPT (and a MAIL line carrying RET or ENVID) run 500 octets past RFC 5321 §4.5.3.1.4's 512.

A long ORCPT that fits goes out (over a real LocalServer offering DSN, which accepts it); a
line that does not fit, or a long line without DSN parameters, is refused before anything
is sent, with ``MessageError``.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from smtpkit import Submitter
from smtpkit.dsn import DSN, ESMTPParams, RecipientDSN
from smtpkit.errors import MessageError
from smtpkit.protocol import MAX_COMMAND_LINE, Command
from smtpkit.testing import LocalServer
from tests.conftest import TIMEOUT, ServerFactory, ServerLog

TO = "bob@example.test"


def wire_size(command: Command) -> int:
    return len(command.to_bytes())


def long_orcpt(length: int) -> str:
    """An original address of ``length`` characters (ASCII, so xtext keeps its length)."""
    domain = "@lists.example.test"
    return "x" * (length - len(domain)) + domain


# -- the protocol core ---------------------------------------------------------------------


def test_a_rcpt_line_with_orcpt_may_run_500_octets_past_512() -> None:
    orcpt = "ORCPT=rfc822;" + long_orcpt(480)
    command = Command.rcpt(TO, ["NOTIFY=FAILURE,DELAY", orcpt])
    assert MAX_COMMAND_LINE < wire_size(command) <= MAX_COMMAND_LINE + 500


def test_a_rcpt_line_with_notify_only_may_also_grow() -> None:
    filler = "X-PAD=" + "p" * 520  # another extension's parameter, on a DSN line
    command = Command.rcpt(TO, ["NOTIFY=NEVER", filler])
    assert wire_size(command) > MAX_COMMAND_LINE


def test_a_rcpt_line_with_dsn_past_1012_octets_is_refused() -> None:
    filler = "X-PAD=" + "p" * 480
    orcpt = "ORCPT=rfc822;" + long_orcpt(480)
    with pytest.raises(MessageError, match="1012"):
        Command.rcpt(TO, ["NOTIFY=FAILURE", orcpt, filler])


def test_a_long_line_without_dsn_parameters_keeps_the_512_limit() -> None:
    filler = "X-PAD=" + "p" * 520
    with pytest.raises(MessageError, match="512"):
        Command.rcpt(TO, [filler])
    with pytest.raises(MessageError, match="512"):
        Command.mail("alice@example.test", [filler])


def test_a_mail_line_with_envid_may_grow_and_is_bounded() -> None:
    filler = "X-PAD=" + "p" * 450
    command = Command.mail("alice@example.test", ["RET=HDRS", "ENVID=order-42", filler])
    assert wire_size(command) > MAX_COMMAND_LINE
    assert wire_size(command) <= MAX_COMMAND_LINE + 112
    with pytest.raises(MessageError, match="624"):  # RFC 3461 §4: MAIL grows by 112 only
        Command.mail("alice@example.test", ["ENVID=order-42", filler + "p" * 200])


def test_a_dsn_keyword_inside_a_value_does_not_count() -> None:
    filler = "X-PAD=ORCPT" + "p" * 520  # not an ORCPT parameter
    with pytest.raises(MessageError, match="512"):
        Command.rcpt(TO, [filler])


# -- on the wire ---------------------------------------------------------------------------


def via(server: LocalServer) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=TIMEOUT,
    )


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", TO, "dsn"
    msg.set_content("hello")
    return msg


def test_a_long_orcpt_that_fits_is_sent(local_server: ServerFactory, server_log: ServerLog) -> None:
    server = local_server(dsn=True)
    original = long_orcpt(480)
    dsn = DSN(recipients={TO: RecipientDSN(orcpt=original)})
    result = via(server).send(message(), dsn=dsn)
    assert result.accepted == (TO,)
    [received] = server.messages
    assert list(received.recipients) == [TO]
    [rcpt] = [line for line in server_log.commands() if line.startswith("RCPT")]
    assert f"ORCPT=rfc822;{original}" in rcpt
    assert len(rcpt) + 2 > MAX_COMMAND_LINE  # the line really was over 512 octets


def test_a_line_that_does_not_fit_is_refused_before_sending(
    local_server: ServerFactory, server_log: ServerLog
) -> None:
    server = local_server(dsn=True)
    dsn = DSN(recipients={TO: RecipientDSN(orcpt=long_orcpt(480))})
    params = ESMTPParams(rcpt={"X-PAD": "p" * 500})
    with pytest.raises(MessageError, match="1012"):
        via(server).send(message(), dsn=dsn, params=params)
    assert server.messages == []
    assert not any(line.startswith("RCPT") for line in server_log.commands())

"""A reply about a too-long *command* line is not advice about message lines.

Two different limits (RFC 5321 §4.5.3.1): a command line is at most 512 octets with its
CRLF (§4.5.3.1.4), which extensions raise for their parameters (DSN: RFC 3461 §4, ORCPT and
ENVID); a text line of the message is at most 1000 octets with its CRLF, 998 characters
(§4.5.3.1.6). A server says "line too long" about either, so the phase decides: the reply to
the content (after the final ``.`` / ``BDAT LAST``) is about a message line, a reply to any
command (MAIL, RCPT, DATA itself, EHLO, ...) about that command's line. Explicit "command
line" wording is about the command in every phase.

The wordings are real servers' (the source is named on each row).
"""

from __future__ import annotations

import pytest

from smtpkit.errors import (
    CommandRejected,
    MessageRejected,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    error_for_reply,
)
from smtpkit.replies import Phase, Reply

COMMAND, MESSAGE_LINE = "command", "message line"

AIOSMTPD_COMMAND = "500 Command line too long"  # aiosmtpd 1.4 smtp.py, any command
AIOSMTPD_DATA = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd 1.4, after the content
PY_SMTPD = "500 Error: line too long"  # CPython smtpd.py (<= 3.11), per-command size limits
SWIFTMAILER = "552 message line is too long"  # tests/data/replies.jsonl id 162, after content
# Not quoted from a server: the same wording with RFC 3463 X.5.2 (syntax error), to show the
# enhanced code does not change the reading.
ENHANCED = "500 5.5.2 Command line too long"

CASES = [
    (Phase.MAIL, AIOSMTPD_COMMAND, SenderRejected, COMMAND),
    (Phase.MAIL, PY_SMTPD, SenderRejected, COMMAND),
    (Phase.RCPT, AIOSMTPD_COMMAND, RecipientRejected, COMMAND),
    (Phase.RCPT, PY_SMTPD, RecipientRejected, COMMAND),
    (Phase.RCPT, ENHANCED, RecipientRejected, COMMAND),
    (Phase.DATA, AIOSMTPD_COMMAND, MessageRejected, COMMAND),
    (Phase.DATA, PY_SMTPD, MessageRejected, COMMAND),
    (Phase.EHLO, AIOSMTPD_COMMAND, CommandRejected, COMMAND),
    (Phase.EHLO, PY_SMTPD, CommandRejected, COMMAND),
    (Phase.RSET, PY_SMTPD, CommandRejected, COMMAND),
    (Phase.MESSAGE, AIOSMTPD_DATA, MessageRejected, MESSAGE_LINE),
    (Phase.MESSAGE, SWIFTMAILER, MessageRejected, MESSAGE_LINE),
]


def reply(wire: str) -> Reply:
    return Reply(int(wire[:3]), (wire[4:],))


@pytest.mark.parametrize(("phase", "wire", "cls", "about"), CASES)
def test_line_too_long_hint_follows_the_phase(
    phase: Phase, wire: str, cls: type[ReplyError], about: str
) -> None:
    error = error_for_reply(reply(wire), phase)
    assert type(error) is cls
    hint = error.hint or ""
    if about == COMMAND:
        assert "512" in hint, hint
        assert "998" not in hint, hint
        assert "RFC 5321 §4.5.3.1.4" in hint, hint
        if phase is Phase.RCPT:
            assert "ORCPT" in hint, hint  # RFC 3461 §4.2: the DSN parameter on RCPT
        if phase is Phase.MAIL:
            assert "ENVID" in hint, hint  # RFC 3461 §4.4: the DSN parameter on MAIL
    else:
        assert "998" in hint, hint
        assert "512" not in hint, hint
        assert "transfer encoding" in hint, hint


def test_command_line_hint_names_the_command_refused() -> None:
    rcpt = error_for_reply(reply(AIOSMTPD_COMMAND), Phase.RCPT).hint or ""
    mail = error_for_reply(reply(AIOSMTPD_COMMAND), Phase.MAIL).hint or ""
    assert "RCPT" in rcpt, rcpt
    assert "MAIL FROM" not in rcpt, rcpt
    assert "MAIL" in mail, mail

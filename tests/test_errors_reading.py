"""Two situations read by meaning, whatever code, enhanced code or wording carries them.

* Password (basic) SMTP AUTH is off: Microsoft's announced ``550 5.7.30 Basic authentication is
  not supported for Client Submission.`` (X.7.30 is registered for REQUIRETLS, RFC 8689, so
  the wording decides, not the code), and other wordings of the same refusal.
* Encryption is required first: Yandex's ``530 5.7.7 Email sending without SSL/TLS encryption
  is not allowed`` (X.7.7 is registered as "message integrity failure"), and other wordings.
"""

from __future__ import annotations

import pytest

from smtpkit.errors import (
    BasicAuthDisabled,
    EncryptionRequired,
    InvalidCredentials,
    MechanismUnsupported,
    classify,
    error_for_reply,
)
from smtpkit.replies import Phase, Reply

PHASES = (Phase.AUTH, Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.MESSAGE)

BASIC_AUTH_OFF = [
    (550, "5.7.30 Basic authentication is not supported for Client Submission."),
    (535, "5.7.30 Basic authentication is not supported for Client Submission."),
    (535, "5.7.3 Basic auth is no longer supported for this account"),
    (535, "Basic authentication has been disabled for this mailbox"),
    (554, "5.7.0 Legacy authentication is blocked by your organization"),
    (535, "5.7.8 SMTP authentication is disabled for this account"),
]

ENCRYPTION_FIRST = [
    (
        530,
        "5.7.7 Email sending without SSL/TLS encryption is not allowed. Please see: "
        "http://help.yandex.ru/mail/mail-clients/ssl.xml",
    ),
    (530, "Email sending without SSL/TLS encryption is not allowed."),
    (530, "5.7.0 Sending mail without SSL/TLS is not allowed"),
    (530, "5.7.1 Email sending without SSL/TLS encryption is not allowed."),
    (
        530,
        "Error: A secure connection is requiered(such as ssl). More information at "
        "http://service.mail.qq.com/cgi-bin/help?id=28",
    ),
    (535, "5.7.8 Plaintext authentication disallowed on non-secure (SSL/TLS) connections."),
    (530, "5.7.0 SSL/TLS connection required"),
    (550, "5.7.1 Unencrypted connections are not allowed"),
]


def _id(case: tuple[int, str]) -> str:
    return f"{case[0]} {case[1][:48]}"


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.value)
@pytest.mark.parametrize("case", BASIC_AUTH_OFF, ids=_id)
def test_basic_auth_off_is_basic_auth_disabled(case: tuple[int, str], phase: Phase) -> None:
    code, text = case
    cls, hint = classify(Reply(code, (text,)), phase)
    assert cls is BasicAuthDisabled, (cls.__name__, text, phase)
    assert hint is not None
    assert "OAuth2" in hint


def test_microsofts_announced_reply_gets_microsofts_advice() -> None:
    reply = Reply(550, ("5.7.30 Basic authentication is not supported for Client Submission.",))
    error = error_for_reply(reply, Phase.AUTH)
    assert type(error) is BasicAuthDisabled
    assert error.enhanced_code == "5.7.30"
    assert error.is_transient is False
    assert error.hint is not None
    # Not the tenant switch: Microsoft retires basic auth for client submission.
    assert "SMTP.Send" in error.hint
    assert "XOAUTH2" in error.hint


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.value)
@pytest.mark.parametrize("case", ENCRYPTION_FIRST, ids=_id)
def test_encryption_first_is_encryption_required(case: tuple[int, str], phase: Phase) -> None:
    code, text = case
    cls, hint = classify(Reply(code, (text,)), phase)
    assert cls is EncryptionRequired, (cls.__name__, text, phase)
    assert hint is not None
    assert "STARTTLS" in hint
    assert "TLS on port 465" in hint


@pytest.mark.parametrize(
    ("code", "text", "phase", "expected"),
    [
        # Neighbours that must keep their class: the new wording is not a catch-all.
        (535, "5.7.8 Username and Password not accepted.", Phase.AUTH, InvalidCredentials),
        (535, "5.7.3 Authentication unsuccessful", Phase.AUTH, InvalidCredentials),
        (504, "5.7.4 Unrecognized authentication type", Phase.AUTH, MechanismUnsupported),
        (503, "5.5.1 Error: authentication not enabled", Phase.AUTH, None),
        (550, "5.7.30 REQUIRETLS support required", Phase.RCPT, None),
    ],
)
def test_neighbours_keep_their_class(
    code: int, text: str, phase: Phase, expected: type[Exception] | None
) -> None:
    cls, _ = classify(Reply(code, (text,)), phase)
    if expected is not None:
        assert cls is expected
    assert cls is not BasicAuthDisabled

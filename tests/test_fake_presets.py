"""Provider presets: the real client against a fake Gmail / Microsoft 365 must raise the
typed error (and hint) a user would get from the real provider.

Every test sends through ``Submitter`` end to end; the exact reply texts come from
``tests/data/replies.jsonl`` (or the sources named in ``smtpkit/testing/_presets.py``).
"""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import (
    AppPasswordRequired,
    AuthenticationRequired,
    BasicAuthDisabled,
    InvalidCredentials,
    MessageRejected,
    RateLimited,
    Security,
    Submitter,
    WebLoginRequired,
)
from smtpkit.auth import AppPasswordAuth, PasswordAuth, XOAuth2Auth
from smtpkit.config import Endpoint
from smtpkit.oauth import StaticToken
from smtpkit.retry import Retry
from smtpkit.testing import (
    FakeTransport,
    GmailFake,
    Microsoft365Fake,
    gmail_fake,
    microsoft365_fake,
)
from smtpkit.testing import _presets as presets

GMAIL_USER = "me@gmail.com"
APP_PASSWORD = "abcdefghijklmnop"  # 16 letters, as Google shows them (spaces dropped)
MS_USER = "me@contoso.com"
#: The committed copy of captured server replies.
REPLIES = Path(__file__).resolve().parent / "data" / "replies.jsonl"


def message(sender: str = GMAIL_USER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "you@example.com", "Hello"
    msg.set_content("Hi there.")
    return msg


def gmail_submitter(fake: FakeTransport, password: str = "abcd efgh ijkl mnop") -> Submitter:
    return Submitter("smtp.gmail.com", transport=fake, auth=AppPasswordAuth(GMAIL_USER, password))


def ms_submitter(fake: FakeTransport, password: str = "pw") -> Submitter:
    return Submitter("smtp.office365.com", transport=fake, auth=PasswordAuth(MS_USER, password))


def wire_of(reply: str) -> str:
    return reply.replace("\n", "\r\n")


# -- the texts are the real ones ----------------------------------------------------------


@pytest.mark.parametrize(
    ("constant", "reply_id"),
    [
        ("GMAIL_BAD_CREDENTIALS", 45),
        ("GMAIL_SECOND_FACTOR", 4),
        ("GMAIL_WEB_LOGIN_REQUIRED", 260),
        ("GMAIL_TOO_MANY_LOGINS", 36),
        ("MICROSOFT_BASIC_AUTH_DISABLED", 53),
        ("MICROSOFT_BAD_CREDENTIALS", 58),
        ("MICROSOFT_SEND_AS_DENIED", 95),
        ("MICROSOFT_SUBMISSION_QUOTA", 80),
    ],
)
def test_preset_replies_are_quoted_verbatim(constant: str, reply_id: int) -> None:
    corpus = {}
    for line in REPLIES.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        corpus[entry["id"]] = entry["wire"]
    assert wire_of(getattr(presets, constant)) == corpus[reply_id]


# -- Gmail ----------------------------------------------------------------------------------


def test_gmail_happy_path_with_an_app_password() -> None:
    fake = gmail_fake({GMAIL_USER: APP_PASSWORD})
    result = gmail_submitter(fake).send(message())
    assert result.accepted == ("you@example.com",)
    fake.assert_sent(to="you@example.com", subject="Hello")
    assert fake.auth_attempts[0].username == GMAIL_USER
    assert isinstance(fake, GmailFake)
    assert not fake.scripts  # a preset scripts nothing by itself


def test_gmail_advertises_auth_only_after_starttls() -> None:
    fake = gmail_fake()
    gmail_submitter(fake).send(message())
    transcript = fake.transcript
    tls_at = transcript.index("* TLS established; the session starts over (RFC 3207 §4.2)")
    before, after = transcript[:tls_at], transcript[tls_at:]
    assert "S: 220 smtp.gmail.com ESMTP" in before
    assert "S: 250-STARTTLS" in before
    assert not any("AUTH" in line for line in before if line.startswith("S: 250"))
    assert "S: 250-AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER" in after
    assert "S: 250-SIZE 35882577" in after
    assert "S: 250-CHUNKING" in after
    assert not any("DSN" in line for line in transcript)


def test_gmail_refuses_auth_before_starttls_with_its_words() -> None:
    fake = gmail_fake()
    stream = fake.connect(Endpoint("smtp.gmail.com", 587))
    assert stream.receive().startswith(b"220 smtp.gmail.com ESMTP")
    stream.send(b"EHLO client.example\r\n")
    stream.receive()
    stream.send(b"AUTH PLAIN AG1lQGdtYWlsLmNvbQBwdw==\r\n")
    assert stream.receive() == b"530 5.7.0 Must issue a STARTTLS command first\r\n"


def test_gmail_refuses_mail_before_auth() -> None:
    fake = gmail_fake()
    submitter = Submitter("smtp.gmail.com", transport=fake)  # no auth= given
    with pytest.raises(AuthenticationRequired, match=r"530 5\.7\.0"):
        submitter.send(message())
    assert not fake.messages


def test_gmail_wrong_app_password_without_scripting_is_invalid_credentials() -> None:
    fake = gmail_fake({GMAIL_USER: APP_PASSWORD})
    with pytest.raises(InvalidCredentials) as caught:
        gmail_submitter(fake, password="abcd efgh ijkl mnoq").send(message())
    assert caught.value.hint is not None
    assert "app password" in caught.value.hint.lower()
    assert fake.auth_attempts[0].success is False


def test_gmail_reject_password_uses_googles_text_and_hint() -> None:
    fake = gmail_fake({GMAIL_USER: APP_PASSWORD})
    step = fake.reject_password()
    with pytest.raises(InvalidCredentials) as caught:
        gmail_submitter(fake).send(message())
    error = caught.value
    assert error.reply is not None
    assert error.reply.code == 535
    assert error.reply.enhanced_code == "5.7.8"
    assert "Username and Password not accepted" in error.message
    assert "p=BadCredentials" in error.message
    assert error.hint is not None
    assert "app password" in error.hint.lower()
    assert step.used == 1
    assert "S: 535-5.7.8 Username and Password not accepted. For more information, go to" in (
        fake.transcript
    )
    # times=None: the password stays wrong for every later login too.
    with pytest.raises(InvalidCredentials):
        gmail_submitter(fake).send(message())
    assert step.used == 2
    step.cancel()
    gmail_submitter(fake).send(message())
    fake.assert_sent(count=1)


def test_gmail_require_app_password() -> None:
    fake = gmail_fake()
    fake.require_app_password()
    with pytest.raises(AppPasswordRequired) as caught:
        Submitter(
            "smtp.gmail.com", transport=fake, auth=PasswordAuth(GMAIL_USER, "account-pw")
        ).send(message())
    assert caught.value.hint is not None
    assert "2-Step Verification" in caught.value.hint
    assert "InvalidSecondFactor" in caught.value.message


def test_gmail_require_web_login() -> None:
    fake = gmail_fake()
    fake.require_web_login()
    with pytest.raises(WebLoginRequired) as caught:
        gmail_submitter(fake).send(message())
    assert caught.value.hint is not None
    assert "browser" in caught.value.hint


def test_gmail_login_throttling_is_transient_and_passes() -> None:
    fake = gmail_fake()
    step = fake.throttle_logins()
    with pytest.raises(RateLimited) as caught:
        gmail_submitter(fake).send(message())
    assert caught.value.is_transient
    assert step.exhausted
    gmail_submitter(fake).send(message())  # times=1: the next login works
    fake.assert_sent(count=1)


def test_gmail_daily_quota_is_rate_limited_not_retried() -> None:
    fake = gmail_fake()
    fake.exceed_daily_quota()
    sleeps: list[float] = []
    submitter = Submitter(
        "smtp.gmail.com",
        transport=fake,
        auth=AppPasswordAuth(GMAIL_USER, APP_PASSWORD),
        retry=Retry(attempts=3, sleep=sleeps.append),
    )
    with pytest.raises(RateLimited) as caught:
        submitter.send(message())
    error = caught.value
    assert not error.is_transient
    assert error.reply is not None
    assert (error.reply.code, error.reply.enhanced_code) == (550, "5.4.5")
    assert error.hint is not None
    assert "24 hours" in error.hint
    assert sleeps == []  # the server may have acted after the content: never resent
    assert not fake.messages


def test_gmail_xoauth2_with_the_token_as_credential() -> None:
    fake = gmail_fake({GMAIL_USER: "ya29.valid"})
    Submitter(
        "smtp.gmail.com",
        transport=fake,
        auth=XOAuth2Auth(GMAIL_USER, StaticToken("ya29.valid")),
    ).send(message())
    assert fake.auth_attempts[0].mechanism == "XOAUTH2"


def test_gmail_over_implicit_tls() -> None:
    fake = gmail_fake({GMAIL_USER: APP_PASSWORD})
    Submitter(
        "smtp.gmail.com",
        security=Security.TLS,
        transport=fake,
        auth=AppPasswordAuth(GMAIL_USER, APP_PASSWORD),
    ).send(message())
    assert fake.endpoints[0].port == 465
    fake.assert_sent(count=1)


# -- Microsoft 365 ----------------------------------------------------------------------------


def test_microsoft365_offers_login_and_xoauth2_only() -> None:
    fake = microsoft365_fake({MS_USER: "pw"})
    ms_submitter(fake).send(message(MS_USER))
    assert isinstance(fake, Microsoft365Fake)
    assert "S: 220 smtp.office365.com ESMTP" in fake.transcript
    assert "S: 250-AUTH LOGIN XOAUTH2" in fake.transcript
    assert "S: 250-SIZE 157286400" in fake.transcript
    # No PLAIN on offer: the password strategy falls back to LOGIN, as it must.
    assert [a.mechanism for a in fake.auth_attempts] == ["LOGIN"]


def test_microsoft365_basic_auth_disabled() -> None:
    fake = microsoft365_fake({MS_USER: "pw"})
    fake.disable_basic_auth()
    with pytest.raises(BasicAuthDisabled) as caught:
        ms_submitter(fake).send(message(MS_USER))
    assert "5.7.139" in caught.value.message
    assert caught.value.hint is not None
    assert "OAuth2" in caught.value.hint


def test_microsoft365_oauth_works_when_not_scripted() -> None:
    fake = microsoft365_fake({MS_USER: "eyJ0eXAi.token"})
    Submitter(
        "smtp.office365.com",
        transport=fake,
        auth=XOAuth2Auth(MS_USER, StaticToken("eyJ0eXAi.token")),
    ).send(message(MS_USER))
    assert fake.auth_attempts[0].mechanism == "XOAUTH2"
    fake.assert_sent(sender=MS_USER)


def test_microsoft365_wrong_password() -> None:
    fake = microsoft365_fake({MS_USER: "pw"})
    fake.reject_password()
    with pytest.raises(InvalidCredentials) as caught:
        ms_submitter(fake).send(message(MS_USER))
    assert "535 5.7.3 Authentication unsuccessful" in caught.value.message
    assert caught.value.hint is not None
    assert "Microsoft 365" in caught.value.hint


def test_microsoft365_send_as_denied() -> None:
    fake = microsoft365_fake()
    fake.deny_send_as()
    with pytest.raises(MessageRejected) as caught:
        ms_submitter(fake).send(message("boss@contoso.com"))
    assert caught.value.hint is not None
    assert "Send As" in caught.value.hint
    assert not fake.messages


def test_microsoft365_concurrency_limit_is_transient() -> None:
    fake = microsoft365_fake()
    step = fake.limit_concurrent_connections()
    with pytest.raises(RateLimited) as caught:
        ms_submitter(fake).send(message(MS_USER))
    assert caught.value.is_transient
    assert caught.value.hint is not None
    assert "concurrent" in caught.value.hint.lower()
    assert step.exhausted
    ms_submitter(fake).send(message(MS_USER))
    fake.assert_sent(count=1)


def test_microsoft365_submission_quota() -> None:
    fake = microsoft365_fake()
    fake.exceed_submission_quota()
    with pytest.raises(RateLimited) as caught:
        ms_submitter(fake).send(message(MS_USER))
    assert not caught.value.is_transient
    assert "SubmissionQuotaExceededException" in caught.value.message

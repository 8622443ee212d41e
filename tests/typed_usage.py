"""How applications use smtpkit, written to be checked with ``mypy --strict``.

Never run; ``tests/test_typed_usage.py`` type-checks it, so the public API keeps precise
types (no ``Any`` leaking into user code) and this file breaks when a public name changes.
"""

from __future__ import annotations

from email.message import EmailMessage

import smtpkit
from smtpkit import (
    DeliveryUnknown,
    Outgoing,
    RateLimited,
    RecipientRejected,
    Reply,
    Retry,
    Security,
    SendResult,
    SMTPError,
    Submitter,
    Timeouts,
)
from smtpkit.auth import AppPasswordAuth, PasswordAuth, XOAuth2Auth
from smtpkit.oauth import FileTokenStore, RefreshTokenProvider, StaticToken
from smtpkit.providers import Preset, lookup
from smtpkit.testing import FakeTransport, ReceivedMessage


def build_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "me@example.com"
    message["To"] = "you@example.com"
    message["Subject"] = "Hello"
    message.set_content("Hi")
    return message


def send_with_an_app_password() -> str | None:
    submitter = Submitter(
        "smtp.gmail.com",
        security=Security.STARTTLS,
        auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop"),
        timeout=Timeouts(connect=10.0, command=30.0, final_reply=300.0),
        retry=Retry(attempts=3, backoff=1.0),
    )
    result: SendResult = submitter.send(build_message())
    accepted: tuple[str, ...] = result.accepted
    refused: Reply | None = result.rejected.get("x@example.com")
    assert refused is None or refused.code >= 400
    assert accepted
    return result.message_id


def handle_errors(submitter: Submitter) -> str:
    try:
        submitter.send(build_message())
    except RecipientRejected as error:
        return ", ".join(error.rejected)
    except RateLimited as error:
        return error.hint or str(error.reply)
    except DeliveryUnknown as error:
        return error.message_id or "unknown"
    except SMTPError as error:
        return "retry later" if error.is_transient else str(error)
    return "sent"


def send_many_with_progress(submitter: Submitter) -> int:
    def progress(index: int, outcome: SendResult | SMTPError) -> None:
        print(index, isinstance(outcome, SendResult))

    outcomes = submitter.send_many(
        [build_message(), Outgoing(b"Subject: x\r\n\r\nbody\r\n", "a@x.test", ["b@x.test"])],
        concurrency=2,
        on_result=progress,
        max_per_second=10.0,
    )
    return sum(isinstance(outcome, SendResult) for outcome in outcomes)


def configured_elsewhere() -> list[Submitter]:
    gmail = Submitter.for_provider("gmail", auth=PasswordAuth("me@gmail.com", "secret"))
    url = Submitter.from_url("smtps://me%40example.com@mail.example.com", password="secret")
    preset: Preset | None = lookup("someone@outlook.com")
    assert preset is None or preset.host
    return [gmail, url, smtpkit.Submitter.from_env({"SMTPKIT_URL": "smtp://127.0.0.1:2525"})]


def oauth2() -> Submitter:
    store = FileTokenStore("/tmp/tokens.json")
    provider = RefreshTokenProvider(
        "https://login.example.com/token", "client-id", None, store=store
    )
    static = StaticToken("ya29.token")
    assert static.get_token().expires_at is None
    return Submitter("smtp.office365.com", auth=XOAuth2Auth("me@contoso.com", provider))


def in_a_test() -> list[str]:
    fake = FakeTransport()
    fake.reply(smtpkit.Phase.RCPT, "550 5.1.1 No such user", recipient="b@example.com")
    Submitter("smtp.example.com", transport=fake).send(build_message())
    sent: list[ReceivedMessage] = fake.assert_sent(to="you@example.com", count=1)
    return [message.sender for message in sent]


def notifications_and_signing(pem: bytes) -> list[str]:
    signer = smtpkit.DKIMSigner("s2026", "example.com", pem, canonicalization="relaxed/simple")
    submitter = Submitter("mail.example.com", dkim=signer)
    dsn = smtpkit.DSN(
        notify=("failure", smtpkit.Notify.DELAY),
        ret=smtpkit.Ret.HEADERS,
        envid="order-42",
        recipients={"b@example.com": smtpkit.RecipientDSN(notify=("never",))},
        if_unsupported=smtpkit.IfUnsupported.SEND_WITHOUT,
    )
    params = smtpkit.ESMTPParams(mail={"MT-PRIORITY": "3", "X-FLAG": None})
    result: SendResult = submitter.send(build_message(), dsn=dsn, params=params)
    submitter.send_many([Outgoing(build_message(), dsn=dsn, dkim=signer)])
    return [result.message_id or "", signer.dns_record()]

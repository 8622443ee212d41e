"""Preset-aware hints, driven by real provider replies from ``tests/data/replies.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import Phase, Reply, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.errors import (
    AppPasswordRequired,
    BasicAuthDisabled,
    ConnectError,
    CredentialKind,
    InvalidCredentials,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    WebLoginRequired,
    error_for_reply,
)
from smtpkit.providers import enrich, get, provider_hint
from smtpkit.testing import LocalServer

CORPUS = Path(__file__).resolve().parent / "data" / "replies.jsonl"
PASSWORD = CredentialKind.PASSWORD
APP_PASSWORD = CredentialKind.APP_PASSWORD


def _corpus() -> dict[int, dict[str, object]]:
    entries = (json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines())
    return {int(entry["id"]): entry for entry in entries if entry}


REPLIES = _corpus()


def real(reply_id: int) -> tuple[Reply, Phase]:
    """The corpus reply ``reply_id`` as a Reply, and the phase it was sent in."""
    entry = REPLIES[reply_id]
    wire = str(entry["wire"])
    lines = tuple(line[4:] for line in wire.split("\r\n"))
    return Reply(int(wire[:3]), lines), Phase(str(entry["phase"]))


def enriched(
    reply_id: int, preset: str, kind: CredentialKind | None = None
) -> tuple[ReplyError, str]:
    """The error smtpkit builds for a real reply with ``preset`` configured, and its hint."""
    reply, phase = real(reply_id)
    preset_value = get(preset)
    error = error_for_reply(reply, phase, provider=preset_value.family, credential_kind=kind)
    enrich(error, preset_value)
    assert error.hint is not None
    return error, error.hint


# -- Gmail -----------------------------------------------------------------------------------


def test_gmail_535_with_an_account_password() -> None:
    error, hint = enriched(10, "gmail", PASSWORD)
    assert isinstance(error, InvalidCredentials)
    assert "no longer accepts account passwords" in hint
    assert "app password" in hint
    assert "2-Step Verification" in hint
    assert "OAuth2" in hint


def test_gmail_535_with_an_app_password() -> None:
    error, hint = enriched(10, "gmail", APP_PASSWORD)
    assert isinstance(error, InvalidCredentials)
    assert "mistyped or revoked" in hint
    assert "create a new one" in hint
    assert "no longer accepts account passwords" not in hint


def test_gmail_534_5_7_14_sign_in_blocked() -> None:
    error, hint = enriched(1, "gmail", PASSWORD)
    assert isinstance(error, WebLoginRequired)
    assert "web browser" in hint
    assert "app password" in hint
    assert "OAuth2" in hint


def test_gmail_daily_quota_names_the_limit_and_the_reset() -> None:
    reply = Reply(550, ("5.4.5 Daily user sending quota exceeded. j1sm1234567wra.12 - gsmtp",))
    error = enrich(error_for_reply(reply, Phase.MESSAGE, provider="gmail"), get("gmail"))
    assert isinstance(error, RateLimited)
    assert error.hint is not None
    assert "500 messages a day" in error.hint
    assert "within 24 hours" in error.hint


def test_workspace_relay_daily_limit() -> None:
    error, hint = enriched(233, "google-workspace-relay")
    assert isinstance(error, RateLimited)
    assert "10,000 recipients a day" in hint
    assert "rolling 24-hour" in hint


def test_gmail_too_many_recipients_names_the_per_message_limit() -> None:
    error, hint = enriched(39, "gmail")
    assert isinstance(error, RecipientRejected | RateLimited)
    assert "100 recipients per message" in hint


def test_gmail_message_too_large_names_the_size() -> None:
    error, hint = enriched(32, "gmail")
    assert isinstance(error, MessageTooLarge)
    assert "25 MB" in hint


def test_workspace_limits_differ_from_consumer_gmail() -> None:
    reply = Reply(550, ("5.4.5 Daily user sending quota exceeded. - gsmtp",))
    error = enrich(error_for_reply(reply, Phase.MESSAGE), get("google-workspace"))
    assert error.hint is not None
    assert "2,000 messages a day" in error.hint


# -- Microsoft -------------------------------------------------------------------------------


@pytest.mark.parametrize("reply_id", [53, 56])
def test_microsoft_5_7_139_basic_auth_disabled(reply_id: int) -> None:
    error, hint = enriched(reply_id, "microsoft365", PASSWORD)
    assert isinstance(error, BasicAuthDisabled)
    assert "SmtpClientAuthenticationDisabled" in hint
    assert "OAuth2" in hint
    assert "https://outlook.office.com/SMTP.Send" in hint


def test_microsoft_5_7_3_invalid_credentials() -> None:
    error, hint = enriched(58, "microsoft365", PASSWORD)
    assert isinstance(error, InvalidCredentials)
    assert "full" in hint
    assert "address" in hint
    assert "SMTP AUTH enabled" in hint


def test_microsoft_5_7_60_send_as() -> None:
    error, hint = enriched(95, "microsoft365")
    assert isinstance(error, SenderRejected | MessageRejected)
    assert "Send As" in hint


def test_microsoft_submission_quota_names_the_rate_and_the_reset() -> None:
    error, hint = enriched(80, "microsoft365")
    assert isinstance(error, RateLimited)
    assert "30 messages a minute" in hint
    assert "10,000 recipients a day" in hint
    assert "per minute" in hint


def test_microsoft_concurrent_connections() -> None:
    error, hint = enriched(85, "microsoft365")
    assert isinstance(error, RateLimited)
    assert "3 connections at once" in hint


# -- Yandex, Mail.ru -------------------------------------------------------------------------


def test_yandex_needs_an_app_password() -> None:
    reply = Reply(535, ("5.7.8 Error: authentication failed: Invalid user or password!",))
    error = enrich(error_for_reply(reply, Phase.AUTH, credential_kind=PASSWORD), get("yandex"))
    assert isinstance(error, InvalidCredentials)
    assert error.hint is not None
    assert "app password" in error.hint
    assert "Yandex ID > Security > App passwords" in error.hint
    assert error.provider == "yandex"  # recorded from the preset: the reply names nobody


def test_yandex_sender_must_be_the_login() -> None:
    error, hint = enriched(107, "yandex")
    assert isinstance(error, SenderRejected)
    assert "logged-in address" in hint


@pytest.mark.parametrize("reply_id", [193, 194])
def test_mailru_app_password(reply_id: int) -> None:
    error, hint = enriched(reply_id, "mailru", PASSWORD)
    assert isinstance(error, AppPasswordRequired)
    assert "Passwords for external applications" in hint


# -- Amazon SES ------------------------------------------------------------------------------


def test_ses_unverified_identity_and_sandbox() -> None:
    error, hint = enriched(138, "ses:us-east-1")
    assert isinstance(error, MessageRejected)
    assert "verified" in hint
    assert "sandbox" in hint
    assert "abc@xyz.in" not in hint  # advice never quotes the reply


def test_ses_rate_versus_daily_quota() -> None:
    _, rate = enriched(136, "ses")
    _, daily = enriched(137, "ses")
    assert "1 message a second" in rate
    assert "200 messages a day" not in rate
    assert "200 messages a day" in daily
    assert "sandbox" in daily
    assert "rolling 24 hours" in daily


def test_ses_login_advice() -> None:
    reply = Reply(535, ("Authentication Credentials Invalid",))
    error = enrich(error_for_reply(reply, Phase.AUTH, credential_kind=PASSWORD), get("ses"))
    assert error.hint is not None
    assert "SMTP credentials" in error.hint
    assert "IAM access keys" in error.hint


# -- the contract ----------------------------------------------------------------------------


def test_enrich_is_idempotent_and_none_is_a_no_op() -> None:
    error, hint = enriched(10, "gmail", PASSWORD)
    assert enrich(error, get("gmail")).hint == hint
    assert enrich(error, None).hint == hint


def test_errors_without_a_reply_get_no_provider_advice() -> None:
    error = ConnectError("cannot connect")
    assert provider_hint(get("gmail"), error) is None
    assert enrich(error, get("gmail")).hint is None


def test_provider_hint_adds_nothing_when_the_preset_knows_nothing_more() -> None:
    reply, phase = real(10)
    error = error_for_reply(reply, phase)
    assert provider_hint(get("yahoo"), RateLimited(Reply(451, ("4.7.1 slow down",)), phase)) is None
    assert provider_hint(get("gmail"), error) == get("gmail").auth_hint


def test_enrich_keeps_the_class_and_the_reply() -> None:
    reply, phase = real(137)
    error = error_for_reply(reply, phase)
    before = (type(error), error.reply, error.is_transient)
    enrich(error, get("ses"))
    assert (type(error), error.reply, error.is_transient) == before


# -- through a Submitter ---------------------------------------------------------------------

ServerFactory = Callable[..., LocalServer]


def _message() -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "me@gmail.com", "you@example.test", "x"
    message.set_content("hello")
    return message


def test_a_submitter_for_a_preset_adds_its_limits_to_quota_errors(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    server.reply("message", "550-5.4.5 Daily user sending quota exceeded.\n5.4.5 x - gsmtp")
    submitter = Submitter.for_provider(
        "gmail",
        host=server.host,
        port=server.port,
        tls_context=server.client_tls_context(),
        timeout=5.0,
    )
    with pytest.raises(RateLimited) as caught:
        submitter.send(_message())
    assert caught.value.hint is not None
    assert "within 24 hours of reaching the limit" in caught.value.hint


def test_a_submitter_for_a_preset_gets_its_familys_login_advice(
    local_server: ServerFactory,
) -> None:
    server = local_server(
        credentials={"me@contoso.test": "right"},
        auth_failure_reply="535 5.7.3 Authentication unsuccessful",
    )
    submitter = Submitter.for_provider(
        "microsoft365",
        host=server.host,
        port=server.port,
        tls_context=server.client_tls_context(),
        auth=PasswordAuth("me@contoso.test", "wrong"),
        timeout=5.0,
    )
    with pytest.raises(InvalidCredentials) as caught:
        submitter.send(_message())
    assert caught.value.provider == "microsoft"
    assert caught.value.hint is not None
    assert "full mailbox address" in caught.value.hint  # the "microsoft" family's advice
    assert "SMTP AUTH enabled" in caught.value.hint  # the preset's own advice

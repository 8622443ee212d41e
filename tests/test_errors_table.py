"""The reply -> exception table, checked against real replies and unseen wording.

``tests/data/replies.jsonl`` is a committed copy of replies that real submission servers sent
(each row names its public source). Every failure row must map to its expected class (or one
of its ``also_ok`` classes), keep its codes and transience, and carry a hint that contains one
of the row's ``hint_keywords``. The hand-written cases below use wording that is not in the
corpus, to check that the rules generalise rather than memorise.
"""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit.errors import (
    AppPasswordRequired,
    AuthenticationError,
    AuthenticationRequired,
    BasicAuthDisabled,
    CommandRejected,
    ConnectionRejected,
    CredentialKind,
    EncryptionRequired,
    InvalidCredentials,
    MechanismUnsupported,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    ServiceUnavailable,
    TLSUnavailable,
    TokenRejected,
    WebLoginRequired,
    classify,
    detect_provider,
    error_for_reply,
)
from smtpkit.errors._providers import PROVIDER_NAMES
from smtpkit.errors._rule import Rule
from smtpkit.errors._table import RULES, render_markdown
from smtpkit.replies import Phase, Reply

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "data" / "replies.jsonl"
DOCS = ROOT / "docs" / "errors.md"

PASSWORD = CredentialKind.PASSWORD
APP_PASSWORD = CredentialKind.APP_PASSWORD
OAUTH2 = CredentialKind.OAUTH2


def parse_wire(wire: str) -> Reply:
    """Parse one reply as it travels: CRLF-separated ``NNN-text`` lines, ``NNN text`` last."""
    lines = wire.split("\r\n")
    codes = {line[:3] for line in lines}
    assert len(codes) == 1, f"mixed codes in one reply: {wire!r}"
    for index, line in enumerate(lines):
        separator = line[3:4]
        expected = " " if index == len(lines) - 1 else "-"
        assert separator in (expected, ""), f"bad separator in {line!r}"
    return Reply(int(lines[0][:3]), tuple(line[4:] for line in lines))


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


ROWS = load_corpus()
FAILURES = [row for row in ROWS if row["category"] != "OK"]
SUCCESSES = [row for row in ROWS if row["category"] == "OK"]


def row_id(row: dict[str, Any]) -> str:
    provider = re.sub(r"[^a-z0-9]+", "-", row["provider"].lower()).strip("-")
    return f"{row['id']}-{provider}"


def test_corpus_is_present_and_well_formed() -> None:
    assert len(ROWS) >= 140
    assert len(FAILURES) >= 100
    ids = [row["id"] for row in ROWS]
    assert len(ids) == len(set(ids))
    phases = {phase.value for phase in Phase}
    for row in ROWS:
        assert row["phase"] in phases, row["id"]


@pytest.mark.parametrize("row", FAILURES, ids=row_id)
def test_corpus_failure_reply_maps_to_its_class(row: dict[str, Any]) -> None:
    reply = parse_wire(row["wire"])
    error = error_for_reply(reply, Phase(row["phase"]))

    allowed = {row["category"], *row["also_ok"]}
    assert type(error).__name__ in allowed, (type(error).__name__, allowed, str(reply))
    assert error.code == row["code"]
    assert error.enhanced_code == row["enhanced"]
    assert error.is_transient is row["transient"]
    assert error.phase is Phase(row["phase"])
    assert error.hint
    if row["hint_keywords"]:
        shown = str(error).lower()
        assert any(word.lower() in shown for word in row["hint_keywords"]), (
            row["hint_keywords"],
            str(error),
        )
        # The advice itself, not just the echoed reply text, must say it.
        hint = error.hint.lower()
        assert any(word.lower() in hint for word in row["hint_keywords"]), error.hint


@pytest.mark.parametrize("row", SUCCESSES, ids=row_id)
def test_corpus_success_reply_is_refused_by_classify(row: dict[str, Any]) -> None:
    reply = parse_wire(row["wire"])
    assert reply.code < 400
    with pytest.raises(ValueError, match="failure replies"):
        classify(reply, Phase(row["phase"]))
    with pytest.raises(ValueError, match="failure replies"):
        error_for_reply(reply, Phase(row["phase"]))


# --- unseen wording ---------------------------------------------------------------------------

# (code, text lines, phase, expected class, substrings the hint must contain)
UNSEEN: list[tuple[int, tuple[str, ...], Phase, type[ReplyError], tuple[str, ...]]] = [
    # One reply, three phases: the phase picks the class (RFC 5321 §4.1.1).
    (550, ("5.1.1 Mailbox does not exist",), Phase.MAIL, SenderRejected, ("sender",)),
    (550, ("5.1.1 Mailbox does not exist",), Phase.RCPT, RecipientRejected, ("recipient",)),
    (550, ("5.1.1 Mailbox does not exist",), Phase.MESSAGE, MessageRejected, ("message",)),
    (550, ("Rejected",), Phase.RCPT, RecipientRejected, ("recipient",)),
    (550, ("Rejected",), Phase.MAIL, SenderRejected, ("sender",)),
    (550, ("Rejected",), Phase.MESSAGE, MessageRejected, ()),
    # Enhanced codes decide when the text is vague.
    (535, ("5.7.8 Nope",), Phase.AUTH, InvalidCredentials, ("credentials",)),
    (550, ("5.2.2 Sorry",), Phase.RCPT, RecipientRejected, ("mailbox is full",)),
    (552, ("5.3.4 Sorry",), Phase.MESSAGE, MessageTooLarge, ("size",)),
    (554, ("5.2.3 Sorry",), Phase.MAIL, MessageTooLarge, ("size",)),
    (452, ("4.5.3 Sorry",), Phase.RCPT, RecipientRejected, ("too many recipients",)),
    (550, ("5.4.5 Sorry",), Phase.MESSAGE, RateLimited, ("limit",)),
    (535, ("5.7.139 Sorry",), Phase.AUTH, BasicAuthDisabled, ("oauth2",)),
    (504, ("5.7.4 Sorry",), Phase.AUTH, MechanismUnsupported, ("mechanism",)),
    (534, ("5.7.14 Sorry",), Phase.AUTH, WebLoginRequired, ("browser",)),
    (534, ("5.7.9 Sorry",), Phase.AUTH, AppPasswordRequired, ("app password",)),
    (534, ("5.7.9 Authentication mechanism is too weak",), Phase.AUTH, MechanismUnsupported, ()),
    (
        538,
        ("5.7.11 Encryption required for requested authentication mechanism",),
        Phase.AUTH,
        EncryptionRequired,
        ("tls",),
    ),
    (554, ("5.6.0 Sorry",), Phase.MESSAGE, MessageRejected, ("spf",)),
    (451, ("4.3.0 Sorry",), Phase.MESSAGE, ServiceUnavailable, ("retry later",)),
    (550, ("5.1.8 Sorry",), Phase.MAIL, SenderRejected, ("sender",)),
    # No enhanced code at all: wording decides.
    (535, ("Invalid username or password",), Phase.AUTH, InvalidCredentials, ("password",)),
    (554, ("Your IP is listed in our blocklist",), Phase.GREETING, ConnectionRejected, ("ip",)),
    (550, ("Account sending limit reached, try tomorrow",), Phase.MESSAGE, RateLimited, ("limit",)),
    (421, ("Service shutting down",), Phase.RCPT, ServiceUnavailable, ("reconnect",)),
    (421, ("Service shutting down",), Phase.GREETING, ServiceUnavailable, ("reconnect",)),
    (
        450,
        ("Too many messages from your account, slow down",),
        Phase.MAIL,
        RateLimited,
        ("slow down",),
    ),
    (
        554,
        ("You must authenticate before sending",),
        Phase.RCPT,
        AuthenticationRequired,
        ("log in",),
    ),
    (
        550,
        ("Sorry, we do not relay for unknown clients: unable to relay",),
        Phase.RCPT,
        RecipientRejected,
        ("relay",),
    ),
    (
        553,
        ("Your From address does not match your login",),
        Phase.MAIL,
        SenderRejected,
        ("send as",),
    ),
    (550, ("Not permitted to send as this sender",), Phase.MESSAGE, MessageRejected, ("send as",)),
    (
        530,
        ("Please use STARTTLS to secure the connection",),
        Phase.MAIL,
        EncryptionRequired,
        ("starttls",),
    ),
    (
        535,
        ("Basic authentication is disabled for this organisation",),
        Phase.AUTH,
        BasicAuthDisabled,
        ("oauth2",),
    ),
    (
        535,
        ("You need an app password to sign in from this client",),
        Phase.AUTH,
        AppPasswordRequired,
        ("app password",),
    ),
    (
        504,
        ("Mechanism CRAM-MD5 is not available",),
        Phase.AUTH,
        MechanismUnsupported,
        ("mechanism",),
    ),
    (552, ("Message exceeds maximum fixed size",), Phase.MESSAGE, MessageTooLarge, ("size",)),
    (
        552,
        ("Requested mail action aborted: exceeded storage allocation",),
        Phase.MESSAGE,
        MessageTooLarge,
        ("size",),
    ),
    (
        554,
        ("Sending domain is not verified in your account",),
        Phase.MESSAGE,
        MessageRejected,
        ("verify",),
    ),
    (454, ("Temporary authentication failure",), Phase.AUTH, ServiceUnavailable, ("retry later",)),
    (
        454,
        ("Authentication throttled, try again in 10 minutes",),
        Phase.AUTH,
        RateLimited,
        ("later",),
    ),
    (503, ("Bad sequence of commands",), Phase.RCPT, CommandRejected, ("sequence",)),
    (500, ("Command not recognized",), Phase.NOOP, CommandRejected, ()),
    (501, ("Syntax: HELO hostname",), Phase.EHLO, CommandRejected, ("hostname",)),
    (550, ("Access denied",), Phase.AUTH, AuthenticationError, ("credentials",)),
    (454, ("Unable to start TLS right now",), Phase.STARTTLS, TLSUnavailable, ("465",)),
    # Codes and wording that look alike but mean something else.
    (
        550,
        ("5.7.26 This mail is unauthenticated and has been blocked. Use SPF or DKIM.",),
        Phase.MESSAGE,
        MessageRejected,
        ("dkim",),
    ),
    (
        552,
        ("5.7.0 This message was blocked because its content presents a security issue",),
        Phase.MESSAGE,
        MessageRejected,
        ("content",),
    ),
    (
        452,
        ("4.2.2 The email account that you tried to reach is over quota",),
        Phase.RCPT,
        RecipientRejected,
        ("recipient's mailbox is full",),
    ),
    (
        450,
        ("4.2.0 <a@example.com>: Recipient address rejected: Greylisted",),
        Phase.RCPT,
        RecipientRejected,
        ("retry later",),
    ),
    (
        554,
        ("5.7.1 Client host [192.0.2.1] blocked using zen.spamhaus.org",),
        Phase.RCPT,
        RecipientRejected,
        ("ip address",),
    ),
    (
        554,
        ("5.7.0 Limit on the number of allowed outgoing messages was exceeded",),
        Phase.MESSAGE,
        RateLimited,
        ("limit",),
    ),
    (
        500,
        ("5.5.6 Authentication Exchange line is too long",),
        Phase.AUTH,
        CommandRejected,
        ("client bug",),
    ),
    (432, ("4.7.12 A password transition is needed",), Phase.AUTH, AuthenticationError, ("plain",)),
    # Invalid enhanced codes are ignored, so the phase still decides.
    (550, ("6.6.0 Rejected",), Phase.RCPT, RecipientRejected, ("recipient",)),
    (550, ("4.5.3 Class does not match the basic code",), Phase.RCPT, RecipientRejected, ()),
    (550, ("5.4 Too short to be an enhanced code",), Phase.MAIL, SenderRejected, ()),
]


def _unseen_id(case: tuple[Any, ...]) -> str:
    code, lines, phase, cls, _ = case
    return f"{phase.value}-{code}-{cls.__name__}-{lines[0][:24]}"


@pytest.mark.parametrize("case", UNSEEN, ids=_unseen_id)
def test_unseen_wording_generalises(
    case: tuple[int, tuple[str, ...], Phase, type[ReplyError], tuple[str, ...]],
) -> None:
    code, lines, phase, expected, hint_words = case
    reply = Reply(code, lines)
    error = error_for_reply(reply, phase)
    assert type(error) is expected, (type(error).__name__, str(reply), phase)
    assert error.hint
    for word in hint_words:
        assert word in error.hint.lower(), (word, error.hint)


def test_invalid_enhanced_codes_are_not_reported() -> None:
    assert error_for_reply(Reply(550, ("6.6.0 Rejected",)), Phase.RCPT).enhanced_code is None
    assert error_for_reply(Reply(550, ("4.5.3 mismatch",)), Phase.RCPT).enhanced_code is None
    assert error_for_reply(Reply(452, ("#4.5.3 Too many",)), Phase.RCPT).enhanced_code == "4.5.3"


def test_transience_follows_the_basic_code() -> None:
    transient = error_for_reply(Reply(451, ("4.7.1 Try again later",)), Phase.RCPT)
    permanent = error_for_reply(Reply(550, ("5.7.1 Try again later",)), Phase.RCPT)
    assert type(transient) is type(permanent) is RecipientRejected
    assert transient.is_transient is True
    assert permanent.is_transient is False
    # A 5xx quota is still RateLimited and still reported as not transient.
    quota = error_for_reply(Reply(550, ("5.4.5 Daily user sending quota exceeded",)), Phase.MESSAGE)
    assert isinstance(quota, RateLimited)
    assert quota.is_transient is False


def test_urls_and_ids_in_the_text_are_not_wording() -> None:
    reply = Reply(550, ("5.7.1 See https://example.com/quota-exceeded/too-large for details",))
    assert type(error_for_reply(reply, Phase.MESSAGE)) is MessageRejected
    reply = Reply(550, ("5.7.1 Rejected. <https://example.com/?p=RateLimit&q=TooLarge>",))
    assert type(error_for_reply(reply, Phase.RCPT)) is RecipientRejected


def test_gmail_daily_quota_is_rate_limited_only_after_the_content_or_where_it_says_so() -> None:
    gmail = Reply(550, ("5.4.5 Daily user sending quota exceeded. x12sm1234 - gsmtp",))
    error = error_for_reply(gmail, Phase.MESSAGE)
    assert type(error) is RateLimited
    assert error.provider == "gmail"
    assert error.hint is not None
    assert "24 hours" in error.hint
    # The same 550 without quota wording or 5.4.5 is an ordinary refusal in each phase.
    plain = Reply(550, ("5.7.1 Rejected - gsmtp",))
    assert type(error_for_reply(plain, Phase.MESSAGE)) is MessageRejected
    assert type(error_for_reply(plain, Phase.RCPT)) is RecipientRejected
    assert type(error_for_reply(plain, Phase.MAIL)) is SenderRejected


def test_ses_sending_rate_clears_soon_but_daily_quota_does_not() -> None:
    rate = error_for_reply(
        Reply(454, ("Throttling failure: Maximum sending rate exceeded",)), Phase.MESSAGE
    )
    daily = error_for_reply(
        Reply(454, ("Throttling failure: Daily message quota exceeded.",)), Phase.MESSAGE
    )
    assert type(rate) is type(daily) is RateLimited
    assert rate.provider == daily.provider == "ses"
    assert rate.hint is not None
    assert daily.hint is not None
    assert "seconds" in rate.hint
    assert "24-hour" in daily.hint
    assert "will not help" in daily.hint
    assert "will not help" not in rate.hint


GMAIL_535 = Reply(535, ("5.7.8 Username and Password not accepted. x1sm2 - gsmtp",))


def test_gmail_bad_credentials_hint_depends_on_the_credential_kind() -> None:
    hints = {}
    for kind in (PASSWORD, APP_PASSWORD, OAUTH2, None):
        cls, hint = classify(GMAIL_535, Phase.AUTH, provider="gmail", credential_kind=kind)
        assert hint is not None
        hints[kind] = hint
        assert cls is (TokenRejected if kind is OAUTH2 else InvalidCredentials)
    assert len(set(hints.values())) == 4
    assert "no longer accepts account passwords" in hints[PASSWORD]
    assert "2-Step Verification" in hints[PASSWORD]
    assert "mistyped or revoked" in hints[APP_PASSWORD]
    assert "https://mail.google.com/" in hints[OAUTH2]
    for word in ("app password", "OAuth2", "token"):
        assert word in hints[None]


def test_gmail_app_password_required_hint_names_two_step_verification() -> None:
    reply = Reply(534, ("5.7.9 Application-specific password required. ab1 - gsmtp",))
    error = error_for_reply(reply, Phase.AUTH)
    assert type(error) is AppPasswordRequired
    assert error.hint is not None
    assert "2-Step Verification" in error.hint


def test_provider_changes_the_hint_not_the_class() -> None:
    reply = Reply(535, ("5.7.3 Authentication unsuccessful",))
    results = {
        provider: classify(reply, Phase.AUTH, provider=provider, credential_kind=PASSWORD)
        for provider in ("gmail", "microsoft", "yahoo", None)
    }
    assert {cls for cls, _ in results.values()} == {InvalidCredentials}
    assert len({hint for _, hint in results.values()}) == 4
    assert "mailbox address" in (results["microsoft"][1] or "")
    assert "app password" in (results["yahoo"][1] or "")


def test_microsoft_oauth2_failure_is_a_rejected_token_with_microsoft_advice() -> None:
    reply = Reply(535, ("5.7.3 Authentication unsuccessful [AB1.prod.outlook.com]",))
    error = error_for_reply(reply, Phase.AUTH, credential_kind=OAUTH2)
    assert type(error) is TokenRejected
    assert error.provider == "microsoft"
    assert error.hint is not None
    assert "SMTP.Send" in error.hint


def test_microsoft_basic_auth_disabled_hint_says_how_to_enable_it() -> None:
    reply = Reply(
        535,
        (
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            "Tenant. [AB1.prod.outlook.com]",
        ),
    )
    error = error_for_reply(reply, Phase.AUTH, credential_kind=PASSWORD)
    assert type(error) is BasicAuthDisabled
    assert error.hint is not None
    assert "Set-CASMailbox" in error.hint
    assert "SmtpClientAuthenticationDisabled $false" in error.hint
    assert "OAuth2" in error.hint


def test_hints_never_echo_the_reply_text() -> None:
    reply = Reply(535, ("5.7.8 Bad credentials for user=alice pass=hunter2-SECRET",))
    for kind in (PASSWORD, APP_PASSWORD, OAUTH2, None):
        _, hint = classify(reply, Phase.AUTH, credential_kind=kind)
        assert hint is not None
        assert "hunter2" not in hint
        assert "alice" not in hint


# --- error_for_reply ---------------------------------------------------------------------------


def test_error_for_reply_gives_the_challenge_to_token_rejected() -> None:
    challenge = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
    error = error_for_reply(GMAIL_535, Phase.AUTH, command="AUTH XOAUTH2", challenge=challenge)
    # A JSON challenge proves a token login even when no credential kind was given.
    assert type(error) is TokenRejected
    assert error.status == "400"
    assert error.scope == "https://mail.google.com/"
    assert error.schemes == "Bearer"
    assert error.command == "AUTH XOAUTH2"
    assert "AUTH XOAUTH2" in str(error)


def test_error_for_reply_gives_recipients_to_recipient_rejected() -> None:
    first = Reply(550, ("5.1.1 No such user",))
    second = Reply(550, ("5.1.1 Unknown",))
    error = error_for_reply(
        first,
        Phase.RCPT,
        command="RCPT TO:<a@example.com>",
        recipient="a@example.com",
        rejected={"b@example.com": second},
        transcript=("C: RCPT TO:<a@example.com>", "S: 550 5.1.1 No such user"),
    )
    assert type(error) is RecipientRejected
    assert error.recipient == "a@example.com"
    assert error.rejected == {"a@example.com": first, "b@example.com": second}
    assert error.transcript[-1] == "S: 550 5.1.1 No such user"


def test_error_for_reply_detects_the_provider_unless_told() -> None:
    reply = Reply(550, ("5.7.1 Rejected [AB1.namprd05.prod.outlook.com]",))
    assert error_for_reply(reply, Phase.MESSAGE).provider == "microsoft"
    assert error_for_reply(reply, Phase.MESSAGE, provider="custom").provider == "custom"


def test_other_classes_ignore_challenge_and_rejected() -> None:
    error = error_for_reply(
        Reply(550, ("5.1.0 Sender rejected",)),
        Phase.MAIL,
        challenge=None,
        rejected={"x@example.com": Reply(550, ("no",))},
    )
    assert type(error) is SenderRejected
    assert not hasattr(error, "rejected")


# --- provider detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (("2.0.0 OK 1700000000 a1sm2 - gsmtp",), "gmail"),
        (("5.3.4 Your message exceeded Google's message size limits.",), "gmail"),
        (
            ("5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]",),
            "microsoft",
        ),
        (("4.7.66 TLS 1.0 is not supported [X.NAMP221.PROD.OUTLOOK.COM]",), "microsoft"),
        (("5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException",), "microsoft"),
        (("5.7.0 Mail server rejected: see help.yahoo.com",), "yahoo"),
        (("5.7.8 Error: authentication failed (icloud)",), "icloud"),
        (("5.7.1 Sender address rejected: not owned by auth user. smtp.yandex.ru",), "yandex"),
        (("5.7.0 see https://help.mail.ru/mail/security",), "mailru"),
        (("Throttling failure: Maximum sending rate exceeded",), "ses"),
        (("email-smtp.us-east-1.amazonaws.com ESMTP SimpleEmailService",), "ses"),
        (("5.7.1 Relaying disallowed smtp.zoho.eu",), "zoho"),
        (("Cannot receive from address: Unauthenticated senders (sendgrid)",), "sendgrid"),
        (("Domain sandbox123.mailgun.org is not allowed to send",), "mailgun"),
        (("Rejected by secureserver.net relay",), "godaddy"),
        # Addresses name someone's mailbox, not the server: a Zoho reply about a Gmail user.
        (("Recipient <someone@gmail.com> OK",), None),
        (("5.1.1 <bob@outlook.com>: Recipient address rejected",), None),
        (("5.7.1 Relay access denied",), None),
    ],
)
def test_detect_provider(lines: tuple[str, ...], expected: str | None) -> None:
    assert detect_provider(Reply(550, lines)) == expected


def test_detected_names_are_documented_and_stable() -> None:
    assert {"gmail", "microsoft", "yahoo", "icloud", "yandex", "mailru", "ses"} <= PROVIDER_NAMES
    assert all(name == name.lower() and name.isascii() for name in PROVIDER_NAMES)


# --- properties of the table ------------------------------------------------------------------

PHASES = st.sampled_from(list(Phase))
KINDS = st.sampled_from([None, *CredentialKind])
TEXT = st.lists(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            ["5.7.8 x", "4.5.3 too many", "quota", "STARTTLS", "5.7.139", "relay", "Sender"]
        ),
    ),
    min_size=1,
    max_size=3,
)


@given(code=st.integers(400, 599), lines=TEXT, phase=PHASES, kind=KINDS)
def test_every_failure_gets_a_class_and_a_hint(
    code: int, lines: list[str], phase: Phase, kind: CredentialKind | None
) -> None:
    reply = Reply(code, tuple(lines))
    cls, hint = classify(reply, phase, credential_kind=kind)
    assert issubclass(cls, ReplyError)
    assert hint
    assert (cls, hint) == classify(reply, phase, credential_kind=kind)  # deterministic
    error = error_for_reply(reply, phase, credential_kind=kind)
    assert type(error) is cls
    assert error.is_transient is (code < 500)


@given(code=st.integers(200, 399), phase=PHASES)
def test_classify_refuses_every_success_code(code: int, phase: Phase) -> None:
    with pytest.raises(ValueError, match="failure replies"):
        classify(Reply(code, ("OK",)), phase)


def test_malformed_auth_exchange_is_not_a_token_problem() -> None:
    reply = Reply(500, ("5.5.6 Authentication Exchange line is too long",))
    assert classify(reply, Phase.AUTH, credential_kind=OAUTH2)[0] is CommandRejected
    reply = Reply(501, ("5.5.124 Invalid XOAUTH2 auth data - User address is not valid",))
    assert classify(reply, Phase.AUTH, credential_kind=OAUTH2)[0] is TokenRejected
    assert classify(reply, Phase.AUTH)[0] is InvalidCredentials


def test_starttls_failures_are_always_tls_errors() -> None:
    for code in (421, 454, 501, 554):
        cls, _ = classify(Reply(code, ("nope",)), Phase.STARTTLS)
        assert cls is TLSUnavailable


def test_every_rule_says_why_and_every_phase_has_a_default() -> None:
    for rule in RULES:
        assert len(rule.why) > 10
    phases_with_catch_all: set[Phase] = set()
    for rule in RULES:
        unconditional = (
            rule.codes is None
            and rule.kinds is None
            and not rule.enhanced
            and not rule.words
            and rule.classes == {4, 5}
        )
        if unconditional:
            phases_with_catch_all |= rule.phases
    assert phases_with_catch_all == set(Phase)


def test_rules_refuse_enhanced_codes_with_a_fixed_class() -> None:
    with pytest.raises(ValueError, match=r"x\.S\.D"):
        Rule(ReplyError, lambda ctx: "hint", why="test", enhanced=("5.7.8",))


# --- documentation ----------------------------------------------------------------------------

BEGIN = "<!-- BEGIN RULES: generated by `python -m smtpkit.errors`; do not edit by hand -->"
END = "<!-- END RULES -->"


def test_docs_embed_the_current_rule_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert BEGIN in text
    assert END in text
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert embedded == render_markdown(), "docs/errors.md is stale: run python -m smtpkit.errors"


def test_module_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smtpkit.errors"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout == render_markdown()


def test_docs_examples_run() -> None:
    result = doctest.testfile(
        str(DOCS),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        verbose=False,
    )
    assert result.attempted >= 10
    assert result.failed == 0

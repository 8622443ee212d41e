"""Quota rules from preset limits, provider quota replies, the two new errors (no I/O)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

import smtpkit
from smtpkit import providers
from smtpkit.errors import (
    ConfigurationError,
    ConnectError,
    MessageRejected,
    QuotaExceeded,
    QuotaStoreUnavailable,
    RateLimited,
    SMTPError,
    error_for_reply,
)
from smtpkit.protocol import ReplyParser
from smtpkit.providers import DayWindow, Limits, parse_presets
from smtpkit.quotas import Rule, Unit, quota_reply_window
from smtpkit.quotas._rules import WindowLimits, group, retry_after, rules_from_limits
from smtpkit.replies import Phase, Reply
from smtpkit.testing._presets import GMAIL_DAILY_QUOTA

ROOT = Path(__file__).resolve().parent
CORPORA = [
    ROOT / "data" / "replies.jsonl",
    ROOT.parent.parent / "shared" / "replies" / "replies.jsonl",
]

#: Corpus id -> the window (seconds) the reply implies; every other reply implies none.
QUOTA_REPLIES = {
    80: 86_400.0,  # Microsoft 554 5.2.0 ...SubmissionQuotaExceededException
    136: 1.0,  # SES 454 Throttling failure: Maximum sending rate exceeded
    137: 86_400.0,  # SES 454 Throttling failure: Daily message quota exceeded.
    223: 86_400.0,  # GoDaddy 554 ... You've reached your daily relay quota
    233: 86_400.0,  # Workspace relay 550 5.4.5 Daily SMTP relay limit exceeded for user.
    234: 86_400.0,  # Workspace relay 550 5.7.1 Daily SMTP relay limit exceeded for customer
}


def parse(wire: str) -> Reply:
    parser = ReplyParser()
    parser.feed(wire.encode() + b"\r\n")
    reply = parser.next_reply()
    assert reply is not None
    return reply


def corpus() -> list[dict[str, object]]:
    entries: dict[int, dict[str, object]] = {}
    for path in CORPORA:
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                entries[int(entry["id"])] = entry
    return [entries[key] for key in sorted(entries)]


ENTRIES = corpus()


def test_the_corpus_holds_the_quota_replies() -> None:
    ids = {int(str(e["id"])) for e in ENTRIES}
    assert set(QUOTA_REPLIES) <= ids
    assert len(ENTRIES) >= 140


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"id{e['id']}")
def test_quota_reply_window_of_every_real_reply(entry: dict[str, object]) -> None:
    reply = parse(str(entry["wire"]))
    expected = QUOTA_REPLIES.get(int(str(entry["id"])))
    assert quota_reply_window(reply) == expected
    # The error the table builds for it gives the same answer (the class never matters).
    if reply.code >= 400:
        phase = Phase(str(entry["phase"]))
        assert quota_reply_window(error_for_reply(reply, phase)) == expected


def test_gmail_daily_sending_quota() -> None:
    reply = parse(GMAIL_DAILY_QUOTA)
    assert quota_reply_window(reply) == 86_400.0
    # Gmail reuses X.4.5 for its quotas: a 5.4.5 from Gmail is a quota whatever the words;
    # from an unknown server 5.4.5 is congestion (RFC 3463) and implies no window.
    terse = Reply(550, ("5.4.5 Try again tomorrow. xyz - gsmtp",))
    assert quota_reply_window(terse) == 86_400.0
    assert quota_reply_window(Reply(550, ("5.4.5 congestion",))) is None
    assert quota_reply_window(Reply(550, ("5.4.5 congestion",)), "gmail") == 86_400.0
    assert quota_reply_window(Reply(450, ("4.4.5 busy - gsmtp",))) is None


def test_not_quota_replies() -> None:
    for wire in (
        "554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException."
        "MapiExceptionShutoffQuotaExceeded",
        "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded",
        "454 4.7.0 Too many login attempts, please try again later. - gsmtp",
        "451 Authentication failed: Maximum credits exceeded",
        "250 2.0.0 OK daily quota limit report",  # success replies never imply a window
    ):
        assert quota_reply_window(parse(wire)) is None, wire


def test_an_errors_provider_is_used() -> None:
    error = RateLimited(Reply(550, ("5.4.5 quota",)), Phase.MESSAGE, provider="gmail")
    assert quota_reply_window(error) == 86_400.0
    assert quota_reply_window(error, "microsoft") is None


# -- rules from limits ------------------------------------------------------------------------


def test_rules_from_a_preset() -> None:
    gmail = rules_from_limits(providers.get("gmail").limits)
    assert gmail == (Rule("messages_per_day", Unit.MESSAGES, 500, 86_400.0),)
    m365 = rules_from_limits(providers.get("microsoft365").limits)
    assert m365 == (
        Rule("recipients_per_day", Unit.RECIPIENTS, 10_000, 86_400.0),
        Rule("messages_per_minute", Unit.MESSAGES, 30, 60.0),
    )
    ses = rules_from_limits(providers.get("ses").limits)
    assert [r.name for r in ses] == ["messages_per_day", "messages_per_second"]
    # Limits that are not quotas over time are not counted.
    assert rules_from_limits(Limits(recipients_per_message=100, concurrent_connections=3)) == ()


def test_presets_say_which_window_they_count() -> None:
    for name in (
        "gmail",
        "google-workspace",
        "google-workspace-relay",
        "outlook",
        "microsoft365",
        "ses",
    ):
        assert providers.get(name).limits.day_window is DayWindow.ROLLING, name
    # Not documented: counted rolling all the same (never looser than a calendar day).
    assert providers.get("brevo").limits.day_window is None


def test_day_window_is_checked_when_parsed() -> None:
    base = '[presets.x]\ndisplay_name = "X"\nhost = "h.example.com"\nport = 587\n'
    base += 'security = "starttls"\nsources = ["https://a.example"]\n[presets.x.limits]\n'
    assert (
        parse_presets(base + 'day_window = "rolling"\n')[0].limits.day_window is DayWindow.ROLLING
    )
    with pytest.raises(ConfigurationError, match="day_window"):
        parse_presets(base + 'day_window = "midnight"\n')


def test_group_keeps_the_tightest_rule_per_window() -> None:
    rules = (
        Rule("messages_per_day", Unit.MESSAGES, 500, 86_400.0),
        Rule("recipients_per_day", Unit.RECIPIENTS, 900, 86_400.0),
        Rule("messages_per_minute", Unit.MESSAGES, 30, 60.0),
        Rule("messages_per_day", Unit.MESSAGES, 400, 86_400.0),
    )
    assert group(rules) == (
        WindowLimits(86_400.0, messages=400, recipients=900),
        WindowLimits(60.0, messages=30),
    )


def test_retry_after_is_when_enough_old_records_leave() -> None:
    records = [(100.0, 2), (110.0, 1), (130.0, 5)]
    assert retry_after(records, need=1, window=60.0, now=150.0) == 10.0  # 100 + 60 - 150
    assert retry_after(records, need=3, window=60.0, now=150.0) == 20.0  # 110 leaves too
    assert retry_after(records, need=4, window=60.0, now=150.0) == 40.0
    assert retry_after(records, need=1, window=60.0, now=170.0) == 0.0


# -- the errors ---------------------------------------------------------------------------------


def full_quota_error() -> QuotaExceeded:
    return QuotaExceeded(
        "sending now would cross messages_per_day",
        limit="messages_per_day",
        used=500,
        allowed=500,
        retry_after=3600.5,
        key="smtp.gmail.com/me@gmail.com",
        hint="wait",
    )


@pytest.mark.parametrize(
    "error",
    [full_quota_error(), QuotaStoreUnavailable("down", store="redis 127.0.0.1:6379/0", hint="h")],
    ids=lambda e: type(e).__name__,
)
def test_errors_pickle_and_survive_a_json_round_trip(error: SMTPError) -> None:
    for clone in (
        pickle.loads(pickle.dumps(error)),
        type(error)(*json.loads(json.dumps(error.args))),
    ):
        assert type(clone) is type(error)
        assert clone.__dict__ == error.__dict__
        assert str(clone) == str(error)
        assert clone.is_transient is True


def test_quota_exceeded_carries_its_facts() -> None:
    error = full_quota_error()
    clone = QuotaExceeded(*json.loads(json.dumps(error.args)))
    assert (clone.limit, clone.used, clone.allowed, clone.retry_after, clone.key) == (
        "messages_per_day",
        500,
        500,
        3600.5,
        "smtp.gmail.com/me@gmail.com",
    )
    assert isinstance(error, SMTPError)
    assert not isinstance(error, (RateLimited, MessageRejected, ConnectError))
    assert smtpkit.QuotaExceeded is QuotaExceeded
    assert smtpkit.QuotaStoreUnavailable is QuotaStoreUnavailable
    assert {"QuotaExceeded", "QuotaStoreUnavailable"} <= set(smtpkit.__all__)


def test_the_tree_drawing_lists_the_new_errors() -> None:
    from smtpkit.errors import _tree  # noqa: PLC0415

    drawing = _tree.__doc__ or ""
    assert "├── QuotaExceeded" in drawing
    assert "├── QuotaStoreUnavailable" in drawing

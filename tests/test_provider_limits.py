"""Provider presets' documented limits become Submitter settings, not only hints."""

from __future__ import annotations

import re
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import Submitter
from smtpkit.config._configure import limit_options, options_for_provider, options_from_url
from smtpkit.providers import Preset, all_presets, get
from smtpkit.testing import FakeTransport

#: The Submitter's own pool size when nothing says otherwise.
DEFAULT_MAX_CONNECTIONS = Submitter("mail.example.com").pool_limits.max_connections


def message(number: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "me@example.com", "you@example.com", f"#{number}"
    msg.set_content("Hi.")
    return msg


def limited(preset: Preset) -> bool:
    limits = preset.limits
    return any(
        value is not None
        for value in (
            limits.concurrent_connections,
            limits.messages_per_minute,
            limits.messages_per_second,
        )
    )


def test_microsoft365_gets_three_connections_and_thirty_messages_a_minute() -> None:
    submitter = Submitter.for_provider("microsoft365")
    assert submitter.pool_limits.max_connections == 3
    assert submitter.rate_limit == 0.5  # 30 a minute, as messages per second


def test_ses_sandbox_rate_is_one_message_a_second() -> None:
    submitter = Submitter.for_provider("ses:eu-west-1")
    assert submitter.rate_limit == 1.0
    assert submitter.pool_limits.max_connections == DEFAULT_MAX_CONNECTIONS


def test_the_data_has_presets_with_limits_to_apply() -> None:
    assert {p.name for p in all_presets() if limited(p)} >= {"microsoft365", "ses"}


@pytest.mark.parametrize("preset", all_presets(), ids=lambda p: p.name)
def test_every_presets_connection_and_rate_limits_are_applied(preset: Preset) -> None:
    limits = preset.limits
    submitter = Submitter.for_provider(preset.key)
    expected_connections = limits.concurrent_connections or DEFAULT_MAX_CONNECTIONS
    assert submitter.pool_limits.max_connections == expected_connections
    rates = [
        *([limits.messages_per_second] if limits.messages_per_second else []),
        *([limits.messages_per_minute / 60] if limits.messages_per_minute else []),
    ]
    if rates:
        assert submitter.rate_limit == pytest.approx(min(rates))
        # Never faster than any documented rate.
        assert submitter.rate_limit is not None
        assert submitter.rate_limit * 60 <= (limits.messages_per_minute or float("inf"))
        assert submitter.rate_limit <= (limits.messages_per_second or float("inf"))
    else:
        assert submitter.rate_limit is None


def test_presets_without_limits_keep_the_submitter_defaults() -> None:
    assert limit_options(get("gmail")) == {}
    submitter = Submitter.for_provider("gmail")
    assert submitter.pool_limits.max_connections == DEFAULT_MAX_CONNECTIONS
    assert submitter.rate_limit is None


def test_overrides_win_over_the_presets_limits() -> None:
    options = options_for_provider("microsoft365", max_connections=1, rate_limit=2.0)
    assert (options["max_connections"], options["rate_limit"]) == (1, 2.0)
    unthrottled = Submitter.for_provider("microsoft365", rate_limit=None)
    assert unthrottled.rate_limit is None
    assert unthrottled.pool_limits.max_connections == 3


@pytest.mark.parametrize(
    "url",
    [
        "smtp+starttls://me%40contoso.com:pw@smtp.office365.com:587",  # the preset's host
        "smtp+starttls://me%40contoso.com:pw@relay.contoso.example?provider=microsoft365",
        "smtp+starttls://me%40contoso.com:pw@relay.contoso.example?provider=m365",  # an alias
    ],
)
def test_urls_of_a_recognised_preset_get_its_limits(url: str) -> None:
    submitter = Submitter.from_url(url)
    assert submitter.provider == "microsoft365"
    assert submitter.pool_limits.max_connections == 3
    assert submitter.rate_limit == 0.5


def test_url_overrides_win_and_unknown_hosts_get_no_limits() -> None:
    url = "smtp+starttls://smtp.office365.com"
    assert options_from_url(url, rate_limit=None, max_connections=2)["rate_limit"] is None
    assert Submitter.from_url(url, max_connections=2).pool_limits.max_connections == 2
    plain = options_from_url("smtps://mail.example.com")
    assert "rate_limit" not in plain
    assert "max_connections" not in plain
    submitter = Submitter.from_url("smtps://mail.example.com")
    assert submitter.rate_limit is None
    assert submitter.pool_limits.max_connections == DEFAULT_MAX_CONNECTIONS


def test_the_rate_holds_across_separate_send_calls() -> None:
    # 20 a second: three sends, one call each, take at least two intervals (0.1 s).
    fake = FakeTransport()
    submitter = Submitter("mail.example.com", transport=fake, rate_limit=20.0)
    started = time.monotonic()
    with submitter:
        for number in range(3):
            submitter.send(message(number))
    assert time.monotonic() - started >= 0.09
    assert len(fake.messages) == 3


def test_rate_limit_is_read_only() -> None:
    submitter = Submitter("mail.example.com", rate_limit=5.0)
    with pytest.raises(AttributeError):
        submitter.rate_limit = 1.0  # type: ignore[misc]


def test_the_python_examples_in_docs_providers_run() -> None:
    doc = Path(__file__).resolve().parents[1] / "docs" / "providers.md"
    blocks = re.findall(r"^```python\n(.*?)^```$", doc.read_text(encoding="utf-8"), re.S | re.M)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "docs/providers.md", "exec"), {})  # builds Submitters, no I/O

"""The engine's pool and pacing policy: pure decisions on clock values, no waiting."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from engine_script import EHLO_PIPELINING, GREETING, Script

from smtpkit import ConfigurationError, Security, Timeouts
from smtpkit.engine import Link, LinkSettings, Pacing, Reuse, ReusePolicy, open_link

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def fresh_link() -> tuple[Link, Script]:
    script = Script().serve(GREETING, EHLO_PIPELINING)
    settings = LinkSettings("mx.example.test", 587, Security.NONE, Timeouts(), "client.test")
    return script.run(open_link(settings, clock=script.clock)), script


def test_reuse_checks_or_drops_by_idle_time() -> None:
    link, _ = fresh_link()
    policy = ReusePolicy(idle_timeout=60, health_check_after=10)
    assert policy.on_acquire(link, link.last_used + 5, NOW) is Reuse.USE
    assert policy.on_acquire(link, link.last_used + 11, NOW) is Reuse.CHECK
    assert policy.on_acquire(link, link.last_used + 61, NOW) is Reuse.DROP
    link.mark_dead()
    assert policy.on_acquire(link, link.last_used, NOW) is Reuse.DROP


def test_reuse_respects_the_message_cap_and_token_expiry() -> None:
    link, _ = fresh_link()
    policy = ReusePolicy(max_messages_per_connection=3, token_expiry_margin=60)
    link.messages_sent = 2
    assert policy.keep(link, NOW)
    assert policy.left(link) == 1
    link.messages_sent = 3
    assert not policy.keep(link, NOW)
    assert policy.left(link) == 0
    link.messages_sent = 0
    link.auth_expires_at = NOW + timedelta(seconds=59)
    assert not policy.keep(link, NOW)
    assert policy.on_acquire(link, link.last_used, NOW) is Reuse.DROP
    link.auth_expires_at = NOW + timedelta(seconds=120)
    assert policy.keep(link, NOW)
    assert ReusePolicy(max_messages_per_connection=None).left(link) is None


def test_pacing_admits_only_without_waiting_and_reserves_between_transactions() -> None:
    pacing = Pacing(2.0)  # one start every 0.5 s
    assert pacing.admit(10.0)
    assert not pacing.admit(10.2)  # the lookahead gets "no", never a wait
    assert pacing.admit(10.5)
    assert pacing.reserve(10.6) == pytest.approx(0.4)  # booked for 11.0
    assert pacing.reserve(10.6) == pytest.approx(0.9)  # booked for 11.5
    unlimited = Pacing(None)
    assert not unlimited.limited
    assert all(unlimited.admit(1.0) for _ in range(100))
    assert unlimited.reserve(1.0) == 0


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf, "2", True])
def test_pacing_refuses_a_rate_that_is_not_a_positive_number(rate: object) -> None:
    with pytest.raises(ConfigurationError):
        Pacing(rate)  # type: ignore[arg-type]

"""LocalServer's ``faults=`` hook: injected replies and connection drops at each phase."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest

from smtpkit import Security
from smtpkit.errors import ConfigurationError
from smtpkit.testing import LocalServer
from smtpkit.testing._server_state import FailurePhase

pytestmark = pytest.mark.timeout(30)

RAW = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\n\r\nbody\r\n"


def faults_at(
    phase: FailurePhase, answer: str, times: int = 1
) -> Callable[[FailurePhase], str | None]:
    """A hook answering ``answer`` to the first ``times`` commands of ``phase``."""
    seen: list[FailurePhase] = []

    def hook(current: FailurePhase) -> str | None:
        seen.append(current)
        if current == phase and seen.count(phase) <= times:
            return answer
        return None

    return hook


def send(server: LocalServer) -> None:
    # local_hostname given: smtplib would otherwise look up this machine's name in DNS.
    with smtplib.SMTP(server.host, server.port, "client.example.test", timeout=5) as client:
        client.sendmail("a@example.test", ["b@example.test"], RAW)


@pytest.mark.parametrize(
    ("phase", "error"),
    [
        ("mail", smtplib.SMTPSenderRefused),
        ("rcpt", smtplib.SMTPRecipientsRefused),
        ("data", smtplib.SMTPDataError),
        ("message", smtplib.SMTPDataError),
    ],
)
def test_a_hook_reply_answers_that_phase_and_nothing_is_kept(
    phase: FailurePhase, error: type[Exception]
) -> None:
    with LocalServer(
        security=Security.NONE, faults=faults_at(phase, "451 4.3.0 Try later")
    ) as server:
        with pytest.raises(error) as caught:
            send(server)
        assert "451" in str(caught.value) or getattr(caught.value, "smtp_code", 0) == 451
        assert server.messages == []
        send(server)  # the hook answers only once: the next try goes through
        assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize("phase", ["mail", "rcpt", "data"])
def test_a_drop_before_the_content_closes_the_connection_and_keeps_nothing(
    phase: FailurePhase,
) -> None:
    with LocalServer(security=Security.NONE, faults=faults_at(phase, LocalServer.DROP)) as server:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send(server)
        assert server.messages == []
        send(server)
        assert len(server.wait_for(1)) == 1


def test_a_drop_after_the_content_keeps_the_message_unanswered() -> None:
    with LocalServer(
        security=Security.NONE, faults=faults_at("message", LocalServer.DROP)
    ) as server:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send(server)
        [kept] = server.wait_for(1)
        assert kept.raw == RAW


def test_scripted_failures_come_before_the_hook() -> None:
    calls: list[FailurePhase] = []

    def hook(phase: FailurePhase) -> str | None:
        calls.append(phase)
        return None

    with LocalServer(security=Security.NONE, faults=hook) as server:
        server.reply("mail", "452 4.3.1 Busy")
        with pytest.raises(smtplib.SMTPSenderRefused):
            send(server)
        assert calls == []  # the scripted reply answered MAIL; the hook was not asked
        send(server)
        assert calls == ["mail", "rcpt", "data", "message"]


def test_a_hook_reply_that_is_not_a_failure_is_reported_as_a_server_error() -> None:
    with LocalServer(security=Security.NONE, faults=faults_at("mail", "250 fine")) as server:
        with pytest.raises(smtplib.SMTPSenderRefused) as caught:
            send(server)
        assert caught.value.smtp_code == 451
        assert isinstance(server.server_errors[0], ConfigurationError)


def test_faults_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="faults"):
        LocalServer(faults="451 no")  # type: ignore[arg-type]

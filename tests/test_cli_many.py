"""``smtpkit send --each / --to-file``: many messages, a progress bar, and honest exit codes."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

import smtpkit
from smtpkit import Security
from smtpkit.cli import main
from smtpkit.cli._progress import Progress
from smtpkit.testing import LocalServer, gmail_fake

pytestmark = pytest.mark.timeout(60)


class Terminal(io.StringIO):
    """A stream that says it is a terminal, so the progress bar is drawn."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("SMTPKIT_URL", raising=False)
    monkeypatch.delenv("SMTPKIT_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer(security=Security.NONE) as smtp:
        yield smtp


def send_args(*extra: str) -> list[str]:
    return ["send", "--from", "me@example.test", "--subject", "Hi", "--text", "Body", *extra]


def test_each_sends_one_message_per_recipient(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTPKIT_URL", f"smtp://{server.host}:{server.port}")
    status = main(send_args("--to", "a@example.test", "--to", "b@example.test", "--each"))
    assert status == 0
    received = server.wait_for(2)
    assert sorted(m.recipients for m in received) == [("a@example.test",), ("b@example.test",)]
    assert "Sent 2 of 2 messages" in capsys.readouterr().out


def test_to_file_reads_recipients_and_skips_comments(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# customers\na@example.test\n\n  b@example.test  \nc@example.test\n")
    monkeypatch.setenv("SMTPKIT_URL", f"smtp://{server.host}:{server.port}")
    assert main(send_args("--to-file", str(listing))) == 0
    received = server.wait_for(3)
    assert sorted(m.message["To"] for m in received) == [
        "a@example.test",
        "b@example.test",
        "c@example.test",
    ]


def test_a_refused_recipient_fails_the_run_and_is_named(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.reply("rcpt", "550 5.1.1 No such user", recipient="b@example.test", times=None)
    monkeypatch.setenv("SMTPKIT_URL", f"smtp://{server.host}:{server.port}")
    status = main(send_args("--to", "a@example.test", "--to", "b@example.test", "--each"))
    assert status == 1
    captured = capsys.readouterr()
    assert "Sent 1 of 2 messages" in captured.out
    assert re.search(r"Failed: b@example\.test: RecipientRejected: 550 5\.1\.1", captured.err)
    assert [m.recipients for m in server.wait_for(1)] == [("a@example.test",)]


def test_progress_bar_on_a_terminal_only() -> None:
    terminal = Terminal()
    progress = Progress(4, terminal)
    result = smtpkit.SendResult("<1@x>", "a@x.test", ("b@x.test",))
    for index in range(3):
        progress(index, result)
    progress(3, smtpkit.ServerDisconnected("gone"))
    progress.finish()
    drawn = terminal.getvalue()
    assert drawn.count("\r") == 4
    assert drawn.endswith("[" + "#" * 30 + "] 4/4 sent 3, failed 1\n")
    assert (progress.sent, progress.failed) == (3, 1)

    piped = io.StringIO()
    quiet = Progress(2, piped)
    quiet(0, result)
    quiet.finish()
    assert piped.getvalue() == ""


def test_missing_recipients_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(send_args())
    assert caught.value.code == 2
    assert "--to-file" in capsys.readouterr().err


def test_the_suggested_gmail_url_works_with_a_spaced_app_password() -> None:
    # The URL that `smtpkit send` and the README suggest, with the app password as Google
    # shows it (four groups of four): it must log in as an app password (spaces removed).
    fake = gmail_fake({"you@gmail.com": "abcdefghijklmnop"})
    submitter = smtpkit.Submitter.from_url(
        "smtp+starttls://you%40gmail.com@smtp.gmail.com:587?auth=app_password",
        password="abcd efgh ijkl mnop",
        transport=fake,
    )
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "you@gmail.com", "x@example.test", "s"
    message.set_content("b")
    submitter.send(message)
    fake.assert_sent(to="x@example.test", count=1)
    assert [(a.username, a.success) for a in fake.auth_attempts] == [("you@gmail.com", True)]

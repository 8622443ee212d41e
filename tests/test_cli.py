"""``smtpkit send``: the embedded server, a configured server, failures, and no leaked password."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import Security
from smtpkit.cli import main
from smtpkit.testing import AuthAttempt, LocalServer

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
CANARY = "CANARY-pw-7731"
ServerFactory = Callable[..., LocalServer]
SEND = ["send", "--to", "bob@example.test", "--subject", "Hello CLI", "--text", "Body text."]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("SMTPKIT_URL", raising=False)
    monkeypatch.delenv("SMTPKIT_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read_eml(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def saved_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "smtpkit-outbox").glob("*.eml"))


# -- the embedded server ---------------------------------------------------------------------


def test_without_a_server_the_embedded_one_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SEND, "--timeout", "5"]) == 0

    out = capsys.readouterr().out
    [path] = saved_files(tmp_path)
    assert f"Saved: {path.relative_to(tmp_path)}" in out
    assert "Accepted: bob@example.test" in out
    message = read_eml(path)
    assert message["Subject"] == "Hello CLI"
    assert message["To"] == "bob@example.test"
    assert message["From"] == "smtpkit@localhost"
    assert message["Message-ID"] in out
    assert message.get_content().strip() == "Body text."


def test_an_attachment_arrives_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytes(range(256)) * 40 + b"\r\n.\r\nend"
    attachment = tmp_path / "report.bin"
    attachment.write_bytes(data)
    notes = tmp_path / "notes.txt"
    notes.write_text("line one\nline two\n")

    status = main([*SEND, "--attach", str(attachment), "--attach", str(notes), "--timeout", "5"])

    assert status == 0, capsys.readouterr().err
    [path] = saved_files(tmp_path)
    parts = {part.get_filename(): part for part in read_eml(path).iter_attachments()}
    assert set(parts) == {"report.bin", "notes.txt"}
    assert parts["report.bin"].get_content_type() == "application/octet-stream"
    assert parts["report.bin"].get_content() == data
    assert parts["notes.txt"].get_content_type() == "text/plain"
    assert parts["notes.txt"].get_content() == "line one\nline two\n"


def test_a_missing_attachment_is_an_error_and_nothing_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*SEND, "--attach", str(tmp_path / "missing.pdf"), "--timeout", "5"])
    assert status == 1
    err = capsys.readouterr().err
    assert "ConfigurationError" in err
    assert "hint:" in err
    assert saved_files(tmp_path) == []


def test_the_console_module_runs_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SMTPKIT_URL", "SMTPKIT_PASSWORD")}
    completed = subprocess.run(
        [sys.executable, "-m", "smtpkit", *SEND, "--timeout", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Saved:" in completed.stdout
    [path] = saved_files(tmp_path)
    assert read_eml(path)["Subject"] == "Hello CLI"


# -- a configured server ---------------------------------------------------------------------


@pytest.fixture
def server(local_server: ServerFactory) -> LocalServer:
    # The CLI trusts only the system's certificate store, so against a local server it can
    # only use plaintext, which loopback allows for AUTH.
    return local_server(security=Security.NONE, credentials={USER: CANARY}, require_auth=True)


def test_smtpkit_url_sends_through_that_server(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "SMTPKIT_URL", f"smtp://alice%40example.test:{CANARY}@{server.host}:{server.port}"
    )
    status = main([*SEND, "--cc", "carol@example.test", "--bcc", "dave@example.test"])

    out, err = capsys.readouterr()
    assert status == 0, err
    [received] = server.wait_for(1)
    assert received.sender == USER  # From defaults to the URL's user
    assert received.recipients == ("bob@example.test", "carol@example.test", "dave@example.test")
    assert b"dave@example.test" not in received.raw
    assert received.auth_user == USER
    assert received.message["Subject"] == "Hello CLI"
    assert f"via smtp://alice%40example.test:***@{server.host}:{server.port}" in out
    assert CANARY not in out + err


def test_the_url_option_wins_and_the_password_may_come_from_the_environment(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMTPKIT_URL", "smtps://127.0.0.1:1")  # never used
    monkeypatch.setenv("SMTPKIT_PASSWORD", CANARY)
    url = f"smtp://alice%40example.test@{server.host}:{server.port}"
    status = main([*SEND, "--url", url, "--from", "Alice <alice@example.test>"])

    out, err = capsys.readouterr()
    assert status == 0, err
    [received] = server.wait_for(1)
    assert received.message["From"] == "Alice <alice@example.test>"
    assert server.auth_attempts == [AuthAttempt("PLAIN", USER, True)]
    assert CANARY not in out + err


def test_a_user_without_any_password_is_a_usage_error(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"smtp://alice%40example.test@{server.host}:{server.port}"
    assert main([*SEND, "--url", url]) == 1
    err = capsys.readouterr().err
    assert "SMTPKIT_PASSWORD" in err
    assert server.auth_attempts == []


def test_a_failing_send_exits_1_with_the_error_and_a_hint(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-" + CANARY
    url = f"smtp://alice%40example.test:{wrong}@{server.host}:{server.port}"
    status = main([*SEND, "--url", url])

    out, err = capsys.readouterr()
    assert status == 1
    assert "InvalidCredentials" in err
    assert "535" in err
    assert "hint:" in err
    assert wrong not in out + err
    assert CANARY not in out + err
    assert server.auth_attempts == [AuthAttempt("PLAIN", USER, False)]
    assert server.messages == []


def test_a_refused_connection_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    status = main([*SEND, "--url", f"smtp://user:{CANARY}@127.0.0.1:{port}", "--from", USER])
    out, err = capsys.readouterr()
    assert status == 1
    assert "ConnectError" in err
    assert "hint:" in err
    assert CANARY not in out + err


def test_a_bad_url_is_reported_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([*SEND, "--url", f"smtp://user:{CANARY[:6]}/{CANARY[6:]}@127.0.0.1:25"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "ConfigurationError" in err
    assert CANARY[:6] not in out + err
    assert CANARY[6:] not in out + err


def test_a_user_name_that_is_not_an_address_needs_from(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main([*SEND, "--url", f"smtp://alice:{CANARY}@{server.host}:{server.port}"])
    assert status == 1
    assert "--from" in capsys.readouterr().err
    assert server.auth_attempts == []


def test_missing_required_options_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["send", "--subject", "x", "--text", "y"])
    assert caught.value.code == 2
    assert "--to" in capsys.readouterr().err

"""``smtpkit serve``: the local development server, run as users run it.

The main tests start ``python -m smtpkit serve`` in a subprocess, read what it prints, send
with a verifying smtpkit client trusting the printed CA file, and stop it with SIGINT (as
Ctrl-C does) or SIGTERM. Every wait is bounded.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import AuthenticationRequired, InvalidCredentials, Security, Submitter
from smtpkit.auth import PasswordAuth, XOAuth2Auth
from smtpkit.cli import build_parser
from smtpkit.cli._serve import describe, run_serve
from smtpkit.oauth import StaticToken
from smtpkit.testing import ReceivedMessage

pytestmark = pytest.mark.timeout(60)

#: Seconds to wait for any one thing the server prints, or for it to exit.
WAIT = 15.0
USER = "dev@example.test"
CANARY = "Canary-serve-pw-5521"


def message(subject: str = "Hello serve") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "me@example.test", "you@example.test", subject
    msg.set_content("Body text.")
    return msg


class Served:
    """A running ``python -m smtpkit serve`` whose output is read line by line."""

    def __init__(self, tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.save_dir = tmp_path / "mail"
        command = [sys.executable, "-m", "smtpkit", "serve", "--port", "0"]
        command += ["--save-dir", str(self.save_dir), *options]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stdout_reader = threading.Thread(target=self._read, daemon=True)
        self._stdout_reader.start()
        # stdout and stderr are each drained by their own thread: nothing else reads them.
        self._stderr: list[str] = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self.stderr = ""
        banner = self.expect(r"^Press Ctrl-C to stop\.$")
        assert banner
        url = self.find(r"^smtpkit serve: listening on (\S+) ")
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        ca = self.find(r"^CA certificate: (.+)$", required=False)
        self.ca_file = Path(ca) if ca else None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def expect(self, pattern: str) -> str:
        """Wait (bounded) for the next printed line matching ``pattern``; return it."""
        deadline = threading.Event()
        timer = threading.Timer(WAIT, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                try:
                    line = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line is None:
                    break
                self.lines.append(line)
                if re.search(pattern, line):
                    return line
        finally:
            timer.cancel()
        raise AssertionError(f"no line matching {pattern!r}; printed so far: {self.lines}")

    def find(self, pattern: str, *, required: bool = True) -> str:
        for line in self.lines:
            match = re.search(pattern, line)
            if match:
                return match.group(1)
        assert not required, f"no line matching {pattern!r} in {self.lines}"
        return ""

    def stop(self, signum: int = signal.SIGINT) -> int:
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=WAIT)
        finally:
            self.kill()
        while (line := self._queue.get(timeout=WAIT)) is not None:
            self.lines.append(line)
        self._stderr_reader.join(WAIT)
        self.stderr = "".join(self._stderr)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)

    def close(self) -> None:
        """Kill the server if it still runs, then close our ends of its pipes once both
        readers have seen EOF (an unclosed pipe is a ResourceWarning when collected)."""
        self.kill()
        for reader in (self._stdout_reader, self._stderr_reader):
            reader.join(WAIT)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Servers started by a test; any still running at teardown is killed."""
    started: list[Served] = []
    yield started
    for server in started:
        server.close()


def test_starttls_auth_print_save_and_ctrl_c(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path, "--user", USER, "--password", CANARY)
    served.append(server)
    assert server.url == f"smtp+starttls://127.0.0.1:{server.port}"
    assert server.find(r"^AUTH: (.+)$") == f"required, as {USER}"
    assert server.ca_file is not None
    assert server.ca_file.is_file()
    assert server.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert server.find(r"^Saving messages in: (.+)$") == str(server.save_dir)

    trusting = ssl.create_default_context(cafile=str(server.ca_file))
    submitter = Submitter(
        "127.0.0.1", server.port, auth=PasswordAuth(USER, CANARY), tls_context=trusting, timeout=5
    )
    result = submitter.send(message())
    assert result.accepted == ("you@example.test",)

    line = server.expect(r"me@example\.test -> you@example\.test")
    assert re.match(r"^\d\d:\d\d:\d\d  ", line)
    assert "'Hello serve'" in line
    size = int(re.search(r"(\d+) bytes", line).group(1))  # type: ignore[union-attr]
    saved = Path(line.rsplit("  ", 1)[1])
    assert saved.parent == server.save_dir
    assert saved.suffix == ".eml"
    assert saved.stat().st_size == size
    parsed = email.message_from_bytes(saved.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Hello serve"

    # The server really checks: a wrong password and a missing login are refused.
    wrong = Submitter(
        "127.0.0.1", server.port, auth=PasswordAuth(USER, "nope"), tls_context=trusting, timeout=5
    )
    with pytest.raises(InvalidCredentials):
        wrong.send(message())
    anonymous = Submitter("127.0.0.1", server.port, tls_context=trusting, timeout=5)
    with pytest.raises(AuthenticationRequired):
        anonymous.send(message())

    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.stderr
    assert server.lines[-1] == "smtpkit serve: stopped after 1 message(s)."
    assert CANARY not in "\n".join(server.lines) + server.stderr
    assert server.ca_file.is_file()  # kept for clients that were given it


def test_implicit_tls_any_auth_oauth_and_sigterm(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path, "--tls", "tls", "--any-auth")
    served.append(server)
    assert server.url.startswith("smtps://127.0.0.1:")
    assert server.ca_file is not None
    submitter = Submitter(
        "127.0.0.1",
        server.port,
        security=Security.TLS,
        auth=XOAuth2Auth("anyone@example.test", StaticToken("any-token")),
        tls_context=ssl.create_default_context(cafile=str(server.ca_file)),
        timeout=5,
    )
    submitter.send(message("Over TLS"))
    server.expect(r"'Over TLS'")
    assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in server.stderr


def test_password_from_the_environment_and_an_untrusting_client(
    tmp_path: Path, served: list[Served]
) -> None:
    server = Served(tmp_path, "--user", USER, env={"SMTPKIT_SERVE_PASSWORD": CANARY})
    served.append(server)
    # A client that does not trust the run's CA refuses the server: TLS stays verified.
    with pytest.raises(Exception, match="certificate") as caught:
        Submitter("127.0.0.1", server.port, auth=PasswordAuth(USER, CANARY), timeout=5).send(
            message()
        )
    assert type(caught.value).__name__ == "TLSError"
    assert server.stop() == 0


# -- in-process: option checks and a plaintext server ----------------------------------------


def serve(*argv: str, stop: threading.Event | None = None) -> tuple[int, str, str]:
    args = build_parser().parse_args(["serve", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = run_serve(args, out, err, stop=stop)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_a_non_loopback_host_is_refused(host: str, tmp_path: Path) -> None:
    code, out, err = serve("--host", host, "--port", "0", "--save-dir", str(tmp_path))
    assert code == 1
    assert out == ""
    assert "loopback" in err


def test_option_mistakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTPKIT_SERVE_PASSWORD", raising=False)
    base = ("--port", "0", "--save-dir", str(tmp_path))
    code, _, err = serve(*base, "--user", USER)
    assert code == 1
    assert "password" in err
    code, _, err = serve(*base, "--password", CANARY)
    assert code == 1
    code, _, err = serve(*base, "--user", USER, "--password", CANARY, "--any-auth")
    assert code == 2
    assert CANARY not in err


def test_a_port_in_use_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = serve("--port", str(port), "--save-dir", str(tmp_path))
    assert code == 1
    assert out == ""
    assert err.startswith("smtpkit serve: ")


def test_plaintext_server_in_process_stops_on_request(tmp_path: Path) -> None:
    stop = threading.Event()
    outcome: list[tuple[int, str, str]] = []
    ready = threading.Event()

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            written = super().write(text)
            if "Press Ctrl-C" in self.getvalue():
                ready.set()
            return written

    args = build_parser().parse_args(
        ["serve", "--port", "0", "--tls", "none", "--save-dir", str(tmp_path)]
    )
    out, err = Out(), io.StringIO()
    thread = threading.Thread(
        target=lambda: outcome.append((run_serve(args, out, err, stop=stop), "", ""))
    )
    thread.start()
    try:
        assert ready.wait(WAIT), err.getvalue()
        text = out.getvalue()
        assert "CA certificate" not in text
        port = int(re.search(r"smtp://127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
        Submitter("127.0.0.1", port, security=Security.NONE, timeout=5).send(message("Plain"))
    finally:
        stop.set()
        thread.join(WAIT)
    assert not thread.is_alive()
    assert outcome[0][0] == 0
    assert "'Plain'" in out.getvalue()
    assert out.getvalue().endswith("stopped after 1 message(s).\n")
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_message_line_neutralises_control_characters() -> None:
    raw = b"Subject: x\r\n\r\nbody\r\n"
    msg = EmailMessage()
    msg["Subject"] = "Hi \x1b[2J there " + "x" * 80
    received = ReceivedMessage(
        sender="a\x07@example.test", recipients=("b@example.test",), raw=raw, message=msg
    )
    line = describe(received, datetime(2025, 1, 2, 3, 4, 5))
    assert line.startswith("03:04:05  a?@example.test -> b@example.test  'Hi ?[2J there ")
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "...' " in line
    assert line.endswith(f"{len(raw)} bytes")

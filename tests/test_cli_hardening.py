"""What new users tripped on at the command line, each as they met it.

``smtpkit send`` trusting ``smtpkit serve``'s CA (``--cafile``, ``?cafile=``); hints in the
command line's words; ``smtpkit check URL`` without ``--login`` and without a password;
``--version``; ``send --html``; output into a closed pipe (``| head``); header values with line
breaks refused as usage errors.
"""

from __future__ import annotations

import email
import email.policy
import io
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import __version__
from smtpkit.cli import build_parser, main
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.cli._hints import cli_hint, cli_text
from smtpkit.errors import (
    InsecureAuthRefused,
    NoCommonMechanism,
    OperationTimeout,
    SMTPError,
    TLSError,
    error_for_reply,
)
from smtpkit.replies import Phase, Reply
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., LocalServer]
USER = "dev@example.test"
CANARY = "Canary-cli-hardening-4417"
SEND = ["send", "--to", "bob@example.test", "--subject", "Hello", "--text", "Body."]
#: Python spellings a command-line hint must not show.
PYTHON_SPEAK = re.compile(
    r"Security\.|Timeouts|tls_context|create_default_context|allow_unencrypted_auth"
    r"|Submitter\(|Submitter\.|=True|local_hostname=\.\.\.|strategy"
)
SMTPKIT = [sys.executable, "-m", "smtpkit"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("SMTPKIT_URL", raising=False)
    monkeypatch.delenv("SMTPKIT_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SMTPKIT")}


def url(server: LocalServer, scheme: str = "smtp+starttls", *, password: bool = True) -> str:
    login = f"dev%40example.test:{CANARY}@" if password else "dev%40example.test@"
    return f"{scheme}://{login}{server.host}:{server.port}"


def hints_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hint:")]


# -- send --cafile: trusting smtpkit serve's CA ---------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Callable[[], list[str]]]]:
    """A real ``smtpkit serve`` subprocess: (its URL, its CA file, the lines it printed)."""
    command = [*SMTPKIT, "serve", "--port", "0", "--save-dir", str(tmp_path / "mail")]
    command += ["--user", USER, "--password", CANARY]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_environ(),
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(20), lines
        listening = next(line for line in lines if "listening on" in line)
        ca = next(line for line in lines if line.startswith("CA certificate: "))
        yield listening.split()[4], Path(ca.split(": ", 1)[1]), lambda: list(lines)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=15)
        reader.join(15)
        if process.stdout is not None:  # the reader saw EOF: close our end of the pipe
            process.stdout.close()


def serve_url(served_url: str, *, query: str = "") -> str:
    port = served_url.rsplit(":", 1)[1]
    return f"smtp+starttls://dev%40example.test:{CANARY}@127.0.0.1:{port}{query}"


def wait_for_line(lines: Callable[[], list[str]], pattern: str) -> str:
    event = threading.Event()
    for _ in range(100):  # at most 10 s
        found = [line for line in lines() if re.search(pattern, line)]
        if found:
            return found[0]
        event.wait(0.1)
    raise AssertionError(f"no {pattern!r} in {lines()}")


def test_send_trusts_the_ca_of_smtpkit_serve_with_cafile(
    served: tuple[str, Path, Callable[[], list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    served_url, ca_file, lines = served
    status = main([*SEND, "--url", serve_url(served_url), "--cafile", str(ca_file)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Accepted: bob@example.test" in out
    assert "'Hello'" in wait_for_line(lines, r"dev@example\.test -> bob@example\.test")
    assert CANARY not in out + err
    # serve says how to trust it from the command line too.
    assert any("--cafile" in line for line in lines())


def test_send_trusts_a_cafile_named_in_the_url(
    served: tuple[str, Path, Callable[[], list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    served_url, ca_file, lines = served
    target = serve_url(served_url, query=f"?cafile={ca_file}")
    status = main([*SEND, "--url", target, "--subject", "Via URL"])
    out, err = capsys.readouterr()
    assert status == 0, err
    wait_for_line(lines, r"'Via URL'")
    assert CANARY not in out + err


def test_without_the_ca_the_hint_says_cafile_not_host_name(
    served: tuple[str, Path, Callable[[], list[str]]], capsys: pytest.CaptureFixture[str]
) -> None:
    served_url, _, _ = served
    status = main([*SEND, "--url", serve_url(served_url), "--timeout", "5"])
    _, err = capsys.readouterr()
    assert status == 1
    assert "TLSError" in err
    [hint] = hints_of(err)
    assert "--cafile" in hint
    assert "host name" not in hint
    assert not PYTHON_SPEAK.search(hint), hint


def test_a_missing_cafile_is_a_clear_error(
    local_server: ServerFactory, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server = local_server(credentials={USER: CANARY})
    missing = tmp_path / "nope.pem"
    status = main([*SEND, "--url", url(server), "--cafile", str(missing)])
    _, err = capsys.readouterr()
    assert status in (1, 2)
    assert "nope.pem" in err
    assert "Traceback" not in err
    assert server.auth_attempts == []


# -- hints in the command line's words ------------------------------------------------------


def test_a_wrong_host_name_says_host_name(
    local_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = local_server(credentials={USER: CANARY}, certificate_names=["other.example"])
    status = main([*SEND, "--url", url(server), "--cafile", str(server.ca_path)])
    _, err = capsys.readouterr()
    assert status == 1
    [hint] = hints_of(err)
    assert "host name" in hint
    assert "--cafile" not in hint


def test_plaintext_to_a_starttls_server_says_the_url_scheme(
    local_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = local_server(credentials={USER: CANARY})  # AUTH only after STARTTLS
    status = main([*SEND, "--url", url(server, "smtp"), "--timeout", "5"])
    _, err = capsys.readouterr()
    assert status == 1
    assert "NoCommonMechanism" in err
    [hint] = hints_of(err)
    assert "smtp+starttls://" in hint
    assert not PYTHON_SPEAK.search(hint), hint


def test_implicit_tls_to_a_starttls_port_says_the_url_scheme(
    local_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = local_server(credentials={USER: CANARY})
    status = main([*SEND, "--url", url(server, "smtps"), "--timeout", "5"])
    _, err = capsys.readouterr()
    assert status == 1
    [hint] = hints_of(err)
    assert "smtp+starttls://" in hint
    assert not PYTHON_SPEAK.search(hint), hint


def test_a_silent_server_says_timeout_option(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:  # accepts, never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        target = f"smtp+starttls://dev%40example.test:{CANARY}@127.0.0.1:{port}"
        status = main([*SEND, "--url", target, "--timeout", "0.3"])
    _, err = capsys.readouterr()
    assert status == 1
    assert "OperationTimeout" in err
    [hint] = hints_of(err)
    assert "--timeout" in hint
    assert not PYTHON_SPEAK.search(hint), hint


@pytest.mark.parametrize(
    "error",
    [
        # The library's own hint texts, as its errors carry them.
        NoCommonMechanism(
            offered=[], supported=["PLAIN"], strategy="PasswordAuth", encrypted=False
        ),
        NoCommonMechanism(
            offered=["XOAUTH2"], supported=["PLAIN"], strategy="PasswordAuth", encrypted=True
        ),
        error_for_reply(Reply(501, ("5.5.4 Invalid EHLO argument",)), Phase.EHLO),
        InsecureAuthRefused(
            "refusing to send credentials",
            hint="use Security.STARTTLS or Security.TLS; pass allow_unencrypted_auth=True "
            "only for a trusted network",
        ),
        TLSError(
            "TLS handshake failed",
            hint="port 465 answered in plaintext: it expects STARTTLS. Use Security.STARTTLS "
            "(usually port 587), or Security.TLS with port 465",
        ),
        OperationTimeout(
            "the reply did not complete within 2 s",
            hint="the server answers a little at a time and stalls; try again later, or allow "
            "more time with Timeouts (command, or final_reply for the reply to the content)",
        ),
        TLSError(
            "the TLS certificate of h:587 did not verify: unable to get local issuer certificate",
            hint="check the host name; for a private CA pass tls_context="
            "ssl.create_default_context(cafile=...) - never disable verification",
        ),
    ],
    ids=lambda e: type(e).__name__,
)
def test_library_hints_are_rewritten_for_the_command_line(error: SMTPError) -> None:
    assert error.hint is not None
    hint = cli_hint(error)
    assert hint
    assert not PYTHON_SPEAK.search(hint), hint


def test_rewrites_keep_the_meaning() -> None:
    assert cli_text("use Security.STARTTLS or Security.TLS") == (
        "use smtp+starttls:// (port 587) or smtps:// (port 465)"
    )
    assert "?local_hostname=NAME" in cli_text("argument (Submitter(local_hostname=...)), not")
    assert "--timeout" in cli_text("allow more time with Timeouts (command, or final_reply)")
    unknown_issuer = TLSError("the TLS certificate of h:1 did not verify: self-signed certificate")
    assert "--cafile" in (cli_hint(unknown_issuer) or "")
    expired = TLSError("the TLS certificate of h:1 did not verify: certificate has expired")
    assert "validity" in (cli_hint(expired) or "")


# -- check without --login ------------------------------------------------------------------


def run_check_cli(*argv: str, environ: dict[str, str]) -> tuple[int, str, str]:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    code = run_check(parser.parse_args(["check", *argv]), out, err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_check_a_url_without_login_needs_no_password(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: CANARY})
    code, out, err = run_check_cli(
        url(server, password=False), "--cafile", str(server.ca_path), environ={}
    )
    assert code == 0, out + err
    assert "password" not in err.lower()
    assert "--login" in out  # the login step says how to try the credentials
    assert server.auth_attempts == []


def test_check_with_login_still_needs_the_password(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: CANARY})
    code, _, err = run_check_cli(
        url(server, password=False), "--cafile", str(server.ca_path), "--login", environ={}
    )
    assert code == 2
    assert "SMTPKIT_PASSWORD" in err
    assert server.auth_attempts == []


def test_check_takes_the_cafile_from_the_url(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: CANARY})
    target = f"{url(server)}?cafile={server.ca_path}"
    code, out, err = run_check_cli(target, "--login", environ={})
    assert code == 0, out + err
    assert server.auth_attempts[-1].success


def test_check_advice_speaks_cli(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: CANARY})
    code, out, _ = run_check_cli(url(server, "smtps"), "--timeout", "5", environ={})
    assert code == 1
    assert "smtp+starttls://" in out
    assert not PYTHON_SPEAK.search(out), out


# -- --version, --html ----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"smtpkit {__version__}"
    done = subprocess.run(
        [*SMTPKIT, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == f"smtpkit {__version__}"


def read_saved(tmp_path: Path) -> EmailMessage:
    [path] = sorted((tmp_path / "smtpkit-outbox").glob("*.eml"))
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_send_html_with_text_is_multipart_alternative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "page.html"
    page.write_text("<p>Hello <b>HTML</b> \u00e9</p>\n", encoding="utf-8")
    assert main([*SEND, "--html", str(page), "--timeout", "5"]) == 0, capsys.readouterr().err
    message = read_saved(tmp_path)
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().strip() == "Body."
    assert html.get_content().replace("\r\n", "\n") == "<p>Hello <b>HTML</b> \u00e9</p>\n"


def test_send_html_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_text("<h1>Only HTML</h1>", encoding="utf-8")
    argv = ["send", "--to", "bob@example.test", "--subject", "Hi", "--html", str(page)]
    assert main([*argv, "--timeout", "5"]) == 0, capsys.readouterr().err
    message = read_saved(tmp_path)
    assert message.get_content_type() == "text/html"
    assert "<h1>Only HTML</h1>" in message.get_content()


def test_send_needs_text_or_html(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["send", "--to", "bob@example.test", "--subject", "Hi"])
    assert caught.value.code == 2
    assert "--text" in capsys.readouterr().err


def test_a_missing_html_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SEND, "--html", str(tmp_path / "missing.html")]) == 1
    err = capsys.readouterr().err
    assert "missing.html" in err
    assert "Traceback" not in err
    assert not (tmp_path / "smtpkit-outbox").exists() or not list(
        (tmp_path / "smtpkit-outbox").glob("*.eml")
    )


# -- header values with line breaks ---------------------------------------------------------


@pytest.mark.parametrize("option", ["--subject", "--to", "--cc", "--bcc", "--from"])
@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028"])
def test_line_breaks_in_header_options_are_usage_errors(
    option: str, brk: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = f"bob@example.test{brk}X-Injected: 1"
    argv = [*SEND, option, value]
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert option in err
    assert "line break" in err
    assert "Traceback" not in err
    assert not (tmp_path / "smtpkit-outbox").exists()


def test_line_breaks_are_refused_by_the_real_command() -> None:
    done = subprocess.run(
        [*SMTPKIT, *SEND[:3], "--subject", "hi\x0bX-Injected: 1", "--text", "x"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_environ(),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--subject" in done.stderr


# -- output into a closed pipe --------------------------------------------------------------


def buffered_environ() -> dict[str, str]:
    """The environment of a user's shell: stdout into a pipe is block-buffered."""
    env = clean_environ()
    env.pop("PYTHONUNBUFFERED", None)
    return env


def run_into_closed_pipe(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real command with stdout a pipe nobody reads any more (``| head`` gone)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: EPIPE, every time
    try:
        return subprocess.run(
            [*SMTPKIT, *argv],
            check=False,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=40,
            cwd=cwd,
            env=buffered_environ(),
        )
    finally:
        os.close(write_end)


def assert_quiet(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert done.stderr == ""
    assert done.returncode == 141  # as a process killed by SIGPIPE, for `set -o pipefail`


def test_version_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    assert_quiet(run_into_closed_pipe(["--version"], tmp_path))


def test_send_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    done = run_into_closed_pipe([*SEND, "--timeout", "5"], tmp_path)
    assert_quiet(done)
    assert len(list((tmp_path / "smtpkit-outbox").glob("*.eml"))) == 1  # it was still sent


def test_send_like_head_n_1_is_quiet(tmp_path: Path) -> None:
    # As `smtpkit send ... | head -n 1`: the reader takes the first line and goes away
    # while the command still has lines to print (unbuffered, so each print writes).
    env = clean_environ()
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [*SMTPKIT, *SEND, "--timeout", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # head -n 1 exits
    try:
        returncode = process.wait(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=15)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert first.startswith(b"No server configured")
    assert stderr == ""
    assert returncode == 141
    assert len(list((tmp_path / "smtpkit-outbox").glob("*.eml"))) == 1


def test_check_into_a_closed_pipe_is_quiet(local_server: ServerFactory, tmp_path: Path) -> None:
    server = local_server(credentials={USER: CANARY})
    argv = ["check", url(server), "--cafile", str(server.ca_path), "--timeout", "5"]
    assert_quiet(run_into_closed_pipe(argv, tmp_path))


def test_serve_into_a_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    argv = ["serve", "--port", "0", "--save-dir", str(tmp_path / "mail")]
    assert_quiet(run_into_closed_pipe(argv, tmp_path))


def test_the_parser_lists_the_new_options() -> None:
    help_text = build_parser().format_help()
    assert "--version" in help_text
    send_help = subprocess.run(
        [*SMTPKIT, "send", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for option in ("--cafile", "--html"):
        assert option in send_help


def test_plaintext_url_with_cafile_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([*SEND, "--url", f"smtp://u:{CANARY}@127.0.0.1:1?cafile=/x.pem", "--from", USER])
    _, err = capsys.readouterr()
    assert status == 1
    assert "cafile" in err
    assert CANARY not in err

"""``smtpkit check`` on the command line: arguments, output modes, colour, exit codes."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable

import pytest

from smtpkit import Security
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.testing import LocalServer

ServerFactory = Callable[..., LocalServer]
SECRET = "CANARY-cli-check-8812"
USER = "me@example.test"


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["check", *argv])


def run(
    *argv: str, env: dict[str, str] | None = None, out: io.StringIO | None = None
) -> tuple[int, str, str]:
    stdout = out if out is not None else io.StringIO()
    stderr = io.StringIO()
    environ = {"SMTPKIT_PASSWORD": SECRET} if env is None else env
    code = run_check(parse(*argv), stdout, stderr, environ=environ)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture
def healthy(local_server: ServerFactory) -> LocalServer:
    return local_server(credentials={USER: SECRET})


def target(server: LocalServer, scheme: str = "smtp+starttls", *, user: bool = True) -> str:
    login = "me%40example.test@" if user else ""
    return f"{scheme}://{login}{server.host}:{server.port}"


def test_a_healthy_server_exits_0_with_a_table(healthy: LocalServer) -> None:
    code, out, err = run(
        target(healthy),
        "--login",
        "--cafile",
        str(healthy.ca_path),
        "--timeout",
        "2",
        env={"SMTPKIT_PASSWORD": SECRET},
    )
    assert code == 0, out
    assert err == ""
    assert out.startswith(f"smtpkit check {target(healthy)}\n")
    assert "STEP" in out
    assert "login" in out
    assert "logged in as me@example.test" in out
    assert "Result: sending would work." in out
    assert SECRET not in out


def test_a_fault_exits_1(healthy: LocalServer) -> None:
    code, out, _ = run(target(healthy), "--timeout", "2")  # system CAs: untrusted
    assert code == 1
    assert "certificate" in out
    assert "Result: sending would fail" in out


def test_json_output(healthy: LocalServer) -> None:
    code, out, _ = run(
        target(healthy, "smtps"), "--json", "--timeout", "2", env={"SMTPKIT_PASSWORD": SECRET}
    )
    document = json.loads(out)
    assert code == document["exit_code"] == 1
    tls = next(f for f in document["findings"] if f["step"] == "tls")
    assert tls["status"] == "fail"
    assert "smtp+starttls://" in tls["advice"]
    assert SECRET not in out


def test_no_colour_when_not_a_terminal(healthy: LocalServer) -> None:
    _, out, _ = run(target(healthy), "--timeout", "2")
    assert "\x1b[" not in out


def test_colour_on_a_terminal_unless_no_color(healthy: LocalServer) -> None:
    _, coloured, _ = run(target(healthy), "--timeout", "2", out=Terminal())
    assert "\x1b[31mFAIL" in coloured
    assert "\x1b[32mOK" in coloured
    _, plain, _ = run(
        target(healthy),
        "--timeout",
        "2",
        env={"NO_COLOR": "", "SMTPKIT_PASSWORD": SECRET},
        out=Terminal(),
    )
    assert "\x1b[" not in plain


def test_the_target_defaults_to_smtpkit_url(local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS)
    code, out, _ = run(
        "--cafile",
        str(server.ca_path),
        "--timeout",
        "2",
        env={"SMTPKIT_URL": target(server, "smtps", user=False)},
    )
    assert code == 0, out
    assert "smtps://" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "give a URL, preset or address"),
        (("someone@example.org",), "no provider preset knows"),
        (("gmial",), "did you mean gmail"),
        ((f"smtps://u:{SECRET}@host?nope=1",), "unknown URL option"),
        (("smtps://host", "--timeout", "0"), "--timeout"),
    ],
)
def test_bad_targets_exit_2(argv: tuple[str, ...], message: str) -> None:
    code, out, err = run(*argv, env={})
    assert code == 2
    assert out == ""
    assert message in err
    assert SECRET not in err

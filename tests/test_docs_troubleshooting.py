"""``docs/troubleshooting.md``: every ``smtpkit check`` example is a real run, re-run here.

Each ``console`` block that starts with ``$ smtpkit check`` and ends with ``$ echo $?`` is
replayed against a :class:`~smtpkit.testing.LocalServer` set up with the fault its heading
names: the command line comes from the page (its port and ``ca.pem`` swapped for the
server's), and the output must equal the block once the run-specific parts are normalised
(the port, the milliseconds, the random serials in the throwaway CA's names).

After an intended change to the doctor's wording, rewrite the blocks from real runs with::

    SMTPKIT_REGENERATE_DOCS=1 .venv/bin/python -m pytest tests/test_docs_troubleshooting.py

and review the diff.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from smtpkit import Security
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.testing import LocalServer

pytest.importorskip("aiosmtpd")
pytest.importorskip("trustme")

ServerFactory = Callable[..., LocalServer]
DOC = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
REGENERATE = os.environ.get("SMTPKIT_REGENERATE_DOCS") == "1"
#: Gmail's real reply to a refused login (tests/data/replies.jsonl id 10).
GMAIL_535 = (
    "535-5.7.8 Username and Password not accepted. Learn more at\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials i5sm8565805wrv.34 - gsmtp"
)
#: What smtp.gmail.com advertises as SIZE.
GMAIL_SIZE = 35_882_577
PASSWORD = "doc-example-password"

_BLOCK_RE = re.compile(
    r"^```console\n\$ (smtpkit check [^\n]*)\n((?:(?!```)[\s\S])*?)^\$ echo \$\?\n(\d+)\n```$",
    re.MULTILINE,
)
_JSON_RE = re.compile(r"^## JSON\n.*?^```json\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_PORT_RE = re.compile(r"127\.0\.0\.1:(\d+)")
_SERIAL_RE = re.compile(r"#[\w-]{16}(?![\w-])")  # trustme's random CA and certificate names


@dataclass(frozen=True)
class Scenario:
    """The local server that reproduces one example, and the password in the environment."""

    server: dict[str, Any] = field(default_factory=dict)
    password: str | None = None


#: Heading in the page -> how to reproduce it.
SCENARIOS = {
    "Rejected credentials (Gmail's real reply)": Scenario(
        {
            "credentials": {"me@gmail.com": "the-right-one"},
            "auth_failure_reply": GMAIL_535,
            "size_limit": GMAIL_SIZE,
        },
        password="a-mistyped-one",
    ),
    "TLS spoken to a STARTTLS port": Scenario({"size_limit": GMAIL_SIZE}),
    "Plaintext spoken to an implicit-TLS port": Scenario({"security": Security.TLS}),
    "A certificate this system does not trust": Scenario({"size_limit": GMAIL_SIZE}),
    "A certificate for another name": Scenario(
        {"security": Security.TLS, "certificate_names": ("mail.example.test",)}
    ),
    "An expired certificate": Scenario({"certificate_expired": True}),
    "No STARTTLS": Scenario({"security": Security.NONE}),
    "No AUTH mechanism in common": Scenario(
        {"auth_mechanisms": ("XOAUTH2",), "oauth_tokens": {}}, password=PASSWORD
    ),
    "Everything works": Scenario(
        {"credentials": {"me@gmail.com": PASSWORD}, "size_limit": GMAIL_SIZE},
        password=PASSWORD,
    ),
}


@dataclass(frozen=True)
class Example:
    heading: str
    command: str
    output: str
    exit_code: int
    start: int  # offsets of the block's command line .. end, for regeneration
    end: int


def examples(text: str) -> list[Example]:
    found = []
    for match in _BLOCK_RE.finditer(text):
        headings = re.findall(r"^### (.+)$", text[: match.start()], re.MULTILINE)
        found.append(
            Example(
                heading=headings[-1] if headings else "",
                command=match.group(1),
                output=match.group(2),
                exit_code=int(match.group(3)),
                start=match.start(),
                end=match.end(),
            )
        )
    return found


def normalise(text: str) -> str:
    text = re.sub(r"\bin \d+ ms\b", "in N ms", text)
    return _SERIAL_RE.sub("#" + "X" * 16, text)


def run(example: Example, local_server: ServerFactory) -> tuple[int, str, str]:
    """Run the example's command against its scenario; output uses the page's port."""
    scenario = SCENARIOS[example.heading]
    server = local_server(**scenario.server)
    [doc_port] = set(_PORT_RE.findall(example.command))
    argv = shlex.split(example.command)[2:]  # after "smtpkit check"; quoted URLs unquoted
    argv = [
        str(server.ca_path) if arg == "ca.pem" else arg.replace(doc_port, str(server.port))
        for arg in argv
    ]
    parser = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    environ = {} if scenario.password is None else {"SMTPKIT_PASSWORD": scenario.password}
    code = run_check(parser.parse_args(["check", *argv]), out, err, environ=environ)
    assert err.getvalue() == ""
    output = out.getvalue().replace(str(server.port), doc_port)
    if len(str(server.port)) != len(doc_port):
        pytest.skip("the ephemeral port has another width than the page's: wrapping differs")
    return code, output, doc_port


EXAMPLES = examples(DOC.read_text(encoding="utf-8"))


def test_the_page_has_every_example_and_quotes_its_shell_metacharacters() -> None:
    assert [e.heading for e in EXAMPLES] == list(SCENARIOS)
    text = DOC.read_text(encoding="utf-8")
    for line in re.findall(r"^\$ (.*)$", text, re.MULTILINE):
        # Outside quotes, '?' would glob and '&' would end the command in a shell.
        unquoted = re.sub(r"'[^']*'|\$\?", "", line.split("  #", 1)[0])
        assert not re.search(r"[?&*;|<>]", unquoted), line


@pytest.mark.timeout(60)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.heading)
def test_each_check_example_matches_a_real_run(
    example: Example, local_server: ServerFactory
) -> None:
    code, output, _ = run(example, local_server)
    if REGENERATE:
        _rewrite(example, output, code)
        return
    assert code == example.exit_code
    assert normalise(output) == normalise(example.output), (
        f"docs/troubleshooting.md, example {example.heading!r} drifted; real run:\n{output}"
    )


def _rewrite(example: Example, output: str, code: int) -> None:
    """Replace the example's block with a real run, unless only run-specific parts differ."""
    text = DOC.read_text(encoding="utf-8")  # as earlier rewrites left it: offsets moved
    [current] = [e for e in examples(text) if e.heading == example.heading]
    if current.exit_code == code and normalise(current.output) == normalise(output):
        return
    block = f"```console\n$ {current.command}\n{output}$ echo $?\n{code}\n```"
    DOC.write_text(text[: current.start] + block + text[current.end :], encoding="utf-8")


def test_the_json_example_matches_a_real_run(local_server: ServerFactory) -> None:
    """The JSON block is abridged ("..."): each shown value must match the real report."""
    text = DOC.read_text(encoding="utf-8")
    match = _JSON_RE.search(text)
    assert match is not None
    shown = json.loads(match.group(1))
    doc_port = str(shown["settings"]["port"])
    server = local_server()  # STARTTLS, checked as smtps://: the TLS mode mistake
    parser = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    out = io.StringIO()
    args = parser.parse_args(
        ["check", f"smtps://127.0.0.1:{server.port}", "--json", "--timeout", "3"]
    )
    code = run_check(args, out, io.StringIO(), environ={})
    real = json.loads(out.getvalue().replace(str(server.port), doc_port))
    assert code == real["exit_code"] == shown["exit_code"]
    assert set(real) == set(shown)
    for key in ("schema", "target", "settings", "ok", "transcript"):
        assert real[key] == shown[key], key
    steps = {finding["step"]: finding for finding in real["findings"]}
    for finding in shown["findings"]:
        actual = steps[finding["step"]]
        assert set(actual) == set(finding)
        for key, value in finding.items():
            if isinstance(value, str) and value.endswith(" ..."):
                assert actual[key].startswith(value.removesuffix(" ...")), (key, actual[key])
            elif isinstance(value, str) and value.endswith("..."):
                assert actual[key].startswith(value.removesuffix("...")), (key, actual[key])
            else:
                assert actual[key] == value, (finding["step"], key)

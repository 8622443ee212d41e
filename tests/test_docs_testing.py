"""``docs/testing.md`` must not drift: every Python block in it runs here.

Two kinds of fenced ``python`` blocks:

* a block whose first line is ``# file: NAME`` is a file of a small project; those files are
  written to a fresh directory and pytest runs there (the fixtures come from the installed
  plugin, as in any project);
* every other block runs, in document order, in one namespace, in a fresh interpreter (so
  Django settings configured for the Django example cannot leak into this suite).

The tables are checked too: every fixture and preset method the page names exists.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smtpkit.replies import Phase
from smtpkit.testing import (
    FakeTransport,
    GmailFake,
    LocalServer,
    Microsoft365Fake,
    ReceivedMessage,
)
from smtpkit.testing import pytest_plugin as plugin

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
TIMEOUT = 120
_BLOCK_RE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_FILE_RE = re.compile(r"\A# file: (\S+)\n")

#: Runs the blocks given as JSON on stdin in one namespace; Django is set up first when
#: installed (a Django project has a settings module; this script plays one).
_RUNNER = r"""
import importlib.util, json, sys, warnings
# The page teaches the current names: an old one (kept a release, deprecated) fails it.
warnings.filterwarnings(
    "error", message=r"smtpkit\.testing\..* is deprecated", category=DeprecationWarning
)
blocks = json.load(sys.stdin)
if importlib.util.find_spec("django") is not None:
    import django
    from django.conf import settings
    settings.configure()
    django.setup()
namespace = {"__name__": "docs_testing"}
for line, source in blocks:
    # Padded so that tracebacks name the line in the page.
    exec(compile("\n" * (line - 1) + source, "docs/testing.md", "exec"), namespace)
print(f"ran {len(blocks)} blocks")
"""


def blocks() -> list[tuple[int, str]]:
    """Every ``python`` block with the line it starts on."""
    text = DOC.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in _BLOCK_RE.finditer(text)
    ]


def env() -> dict[str, str]:
    clean = dict(os.environ)
    for name in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "DJANGO_SETTINGS_MODULE"):
        clean.pop(name, None)
    return clean


def test_the_page_has_the_examples_it_promises() -> None:
    found = blocks()
    files = [source for _, source in found if _FILE_RE.match(source)]
    assert len(found) >= 10
    assert len(files) == 3
    text = DOC.read_text(encoding="utf-8")
    for heading in (
        "## One vocabulary",
        "### What each can play",
        "### Pipelining, as the server saw it: flights",
        "## A real server: `LocalServer`",
        "### CHUNKING over real sockets",
        "### Old names",
        "### Partial rejection",
        "### A transient failure, then success",
        "### Authentication failure, with Gmail's real words",
        "### An expired OAuth2 token, refreshed",
        "### A message over the size limit",
        "### A disconnect after the content",
        "## pytest fixtures",
        "## Async code: `AsyncSubmitter`",
        "### Async tests with the fixtures",
        "## Django",
    ):
        assert heading in text


def test_the_python_examples_run_in_order(tmp_path: Path) -> None:
    script = [(line, source) for line, source in blocks() if not _FILE_RE.match(source)]
    if importlib.util.find_spec("django") is None:  # pragma: no cover - dev installs have it
        script = [(line, source) for line, source in script if "django" not in source]
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(script),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"ran {len(script)} blocks"


def test_the_pytest_example_project_passes(tmp_path: Path) -> None:
    for _, source in blocks():
        match = _FILE_RE.match(source)
        if match:
            (tmp_path / match.group(1)).write_text(source, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nfilterwarnings =\n"
        "    error:smtpkit\\.testing\\..* is deprecated:DeprecationWarning\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=60"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=env(),
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "8 passed" in report
    assert "skipped" not in report


def test_every_fixture_named_exists_and_every_fixture_is_named() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`(smtpkit_[a-z_]+)`", text))
    fixtures = {name for name in plugin.__all__ if name.startswith("smtpkit_")}
    assert named == fixtures


def _table(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    return text[start : text.index("\n\n#", start)]


def test_every_shared_word_exists_on_both_servers() -> None:
    table = _table("## One vocabulary")
    row = {line.split("|")[1].strip(): line for line in table.splitlines() if line.count("|") > 2}
    words = set()
    for name in ("script a step", "what arrived", "checks"):
        words |= set(re.findall(r"`([a-z_]+)(?:\(|`)", row[name]))
    assert {"reply", "disconnect", "timeout", "delay", "assert_sent", "wait_for"} <= words
    for word in words - {"recipient", "times"}:
        assert hasattr(FakeTransport, word), f"FakeTransport.{word}"
        assert hasattr(LocalServer, word), f"LocalServer.{word}"
    fields = set(re.findall(r"`([a-z_0-9]+)`", row["a `ReceivedMessage`"]))
    for field in fields:
        assert hasattr(ReceivedMessage, field) or field in ReceivedMessage.__dataclass_fields__
    phases = set(re.findall(r"`([a-z]+)`", row["phases"]))
    assert phases == {phase.value for phase in Phase}


@pytest.mark.parametrize(
    ("factory", "cls"), [("gmail_fake", GmailFake), ("microsoft365_fake", Microsoft365Fake)]
)
def test_every_preset_method_in_the_table_exists(factory: str, cls: type) -> None:
    text = DOC.read_text(encoding="utf-8")
    methods = re.findall(rf"`{factory}\(\)\.([a-z_]+)\(\)`", text)
    assert methods
    for method in methods:
        assert callable(getattr(cls, method, None)), method
    public = {name for name in vars(cls) if not name.startswith("_")}
    assert public == set(methods)

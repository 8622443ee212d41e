"""``docs/development.md`` exists, is in the site's navigation and names the real commands."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "development.md"


def test_the_page_the_quality_gates_point_to_exists() -> None:
    gates = (ROOT / "tests" / "test_quality_gates.py").read_text(encoding="utf-8")
    assert "docs/development.md" in gates
    assert DOC.is_file()


def test_it_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s+- Development: development\.md$", nav, re.MULTILINE)


def test_it_names_every_gate_command_and_the_docs_build() -> None:
    text = DOC.read_text(encoding="utf-8")
    for command in (
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy --strict smtpkit",
        ".venv/bin/lint-imports",
        ".venv/bin/python -m pytest",
        ".venv/bin/pip install -e '.[docs]' && .venv/bin/mkdocs build --strict",
        "benchmarks/README.md",
    ):
        assert command in text, command
    gates = (ROOT / "tests" / "test_quality_gates.py").read_text(encoding="utf-8")
    for tool in re.findall(r'_tool\("([\w-]+)"\)', gates):
        assert f".venv/bin/{tool}" in text, tool

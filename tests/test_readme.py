"""README.md stays true: its commands match CI, and its Python examples compile and import.

The examples talk to real providers, so they are not run; every block must still be valid
Python, and every name it imports from smtpkit must exist.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def _first_shell_block(section: str) -> str:
    body = README.split(f"## {section}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", body, flags=re.DOTALL)
    assert match is not None, f"no shell block under ## {section}"
    return match.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = _first_shell_block("Running the tests")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert command in ci.splitlines()


def test_quick_start_is_one_command_that_sends() -> None:
    command = _first_shell_block("Quick start")
    assert "\n" not in command
    assert "smtpkit send" in command


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(len(BLOCKS))])
def test_python_examples_compile_and_their_imports_exist(block: str) -> None:
    tree = ast.parse(block)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smtpkit"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "smtpkit"
        ):
            assert hasattr(importlib.import_module("smtpkit"), node.attr), f"smtpkit.{node.attr}"


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 5

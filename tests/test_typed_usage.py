"""The public API type-checks in user code: ``tests/typed_usage.py`` under ``mypy --strict``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_typed_usage_file_passes_mypy_strict() -> None:
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), "--strict", "tests/typed_usage.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout


@pytest.mark.timeout(300)
def test_a_type_error_in_user_code_is_caught(tmp_path: Path) -> None:
    # The check has teeth: the same file with a wrong annotation fails.
    broken = tmp_path / "broken_usage.py"
    source = (ROOT / "tests" / "typed_usage.py").read_text()
    broken.write_text(source + '\n\nwrong: int = smtpkit.Submitter("h").send(build_message())\n')
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), "--strict", str(broken)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 1
    assert 'Incompatible types in assignment (expression has type "SendResult"' in result.stdout

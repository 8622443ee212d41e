"""The documentation site builds with ``mkdocs build --strict`` (broken links fail it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent
#: The pages the site must have (the nav lists each of them).
PAGES = [
    "index.html",
    "auth/index.html",
    "oauth/index.html",
    "errors/index.html",
    "testing/index.html",
    "providers/index.html",
    "troubleshooting/index.html",
    "performance/index.html",
    "django/index.html",
    "celery/index.html",
    "logging/index.html",
    "architecture/index.html",
    "reference/index.html",
    "reference/submitter/index.html",
    "changelog/index.html",
]


def test_docs_build_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in PAGES:
        assert (site / page).is_file(), page
    # The API reference is rendered from the Google-style docstrings.
    reference = (site / "reference/submitter/index.html").read_text()
    assert "Submitter" in reference
    assert "Parameters" in reference
    assert "max_connections" in reference
    # The changelog page is the top-level CHANGELOG.md.
    changelog = (site / "changelog/index.html").read_text()
    assert "Unreleased" in changelog

"""The repository speaks of itself, truthfully: licence, architecture notes, provider limits.

* ``LICENSE`` holds the MIT licence that ``pyproject.toml`` declares, and the sdist and the
  wheel carry it.
* ``docs/architecture.md`` refers to nothing outside the repository, and states every
  design rule the code cites as "DESIGN rule N".
* ``docs/providers.md`` says one thing about recipient limits: per-message caps (every
  preset's, with its number) are checked before sending; daily quotas are left to the server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from smtpkit import providers

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PROVIDERS = ROOT / "docs" / "providers.md"


# -- the licence ----------------------------------------------------------------------------


def test_license_is_the_mit_text_pyproject_declares() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert project.get("license-files") == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 smtpkit developers" in text
    assert "Permission is hereby granted, free of charge" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_sdist_and_wheel_carry_the_license(tmp_path: Path) -> None:
    pytest.importorskip("build")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "smtpkit", source / "smtpkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    dist = tmp_path / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    licence = (ROOT / "LICENSE").read_bytes()
    [wheel] = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if name.endswith("/LICENSE")]
        assert names, archive.namelist()
        assert archive.read(names[0]) == licence
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA")))
        assert b"License-Expression: MIT" in metadata
        assert b"License-File: LICENSE" in metadata
    [sdist] = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/LICENSE"))
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read() == licence


# -- architecture notes ---------------------------------------------------------------------


def test_architecture_names_nothing_outside_the_repository() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert not re.search(r"design map", text, re.IGNORECASE)
    assert "DESIGN.md" not in text
    assert "../shared" not in text


def _cited_rules() -> set[int]:
    cited: set[int] = set()
    for folder in ("smtpkit", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            cited |= {int(n) for n in re.findall(r"DESIGN(?: rule)? (\d+)", text)}
    return cited


def test_every_design_rule_the_code_cites_is_stated() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Design rules", 1)
    assert len(section) == 2, "docs/architecture.md has no '## Design rules' section"
    body = section[1].split("\n## ", 1)[0]
    stated = {int(n) for n in re.findall(r"^(\d+)\. ", body, re.MULTILINE)}
    assert stated == set(range(1, len(stated) + 1))  # numbered 1..N, no gaps
    cited = _cited_rules()
    assert cited  # the code does cite them
    assert cited <= stated, sorted(cited - stated)


# -- provider limits ------------------------------------------------------------------------


def _per_message_paragraph() -> str:
    text = PROVIDERS.read_text(encoding="utf-8")
    start = text.index("**Recipients per message.**")
    return " ".join(text[start:].split("\n\n", 1)[0].split())


def test_providers_page_does_not_contradict_itself_on_recipient_limits() -> None:
    text = " ".join(PROVIDERS.read_text(encoding="utf-8").split())
    assert "recipient limits are not enforced" not in text
    paragraph = _per_message_paragraph()
    assert "before" in paragraph
    assert "MessageError" in paragraph


def test_the_per_message_paragraph_names_every_preset_cap() -> None:
    paragraph = _per_message_paragraph()
    listed = re.search(r"\(([^()]*: \d+(?:; [^()]*: \d+)*)\)", paragraph)
    assert listed, paragraph
    named: dict[str, int] = {}
    for group in listed.group(1).split("; "):
        names, count = group.rsplit(": ", 1)
        for name in re.split(r", (?:and )?| and ", names):
            named[name.strip()] = int(count.replace(",", ""))
    expected = {
        preset.display_name: preset.limits.recipients_per_message
        for preset in providers.all_presets()
        if preset.limits.recipients_per_message is not None
    }
    assert named == expected

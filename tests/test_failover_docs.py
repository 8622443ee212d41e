"""``docs/failover.md`` must not drift: every ``python`` block in it runs here, in document
order, in one namespace, in a fresh interpreter (against LocalServers on loopback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "failover.md"
_BLOCK_RE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)

#: Runs the blocks given as JSON on stdin in one namespace; tracebacks name the page's lines.
RUNNER = r"""
import json, sys
blocks = json.load(sys.stdin)
namespace = {"__name__": "docs_example"}
for line, source in blocks:
    exec(compile("\n" * (line - 1) + source, sys.argv[1], "exec"), namespace)
print(f"ran {len(blocks)} blocks")
"""


def blocks(doc: Path) -> list[tuple[int, str]]:
    """Every ``python`` block of ``doc`` with the line it starts on."""
    text = doc.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 2, match.group(1))
        for match in _BLOCK_RE.finditer(text)
    ]


def run_blocks(doc: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SMTPKIT_URL")}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(doc.relative_to(doc.parents[1]))],
        input=json.dumps(blocks(doc)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=doc.parents[1],
        env=env,
    )


def test_every_example_on_the_failover_page_runs() -> None:
    found = blocks(DOC)
    assert len(found) >= 3
    done = run_blocks(DOC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ran {len(found)} blocks" in done.stdout
    assert "unknown: 127.0.0.1:" in done.stdout  # the DeliveryUnknown example ran

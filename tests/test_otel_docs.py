"""``docs/otel.md`` must not drift: every ``python`` block in it runs, in one namespace, in a
fresh interpreter (the in-memory SDK exporter and reader, a LocalServer on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_failover_docs import blocks, run_blocks

pytest.importorskip("opentelemetry.sdk")

DOC = Path(__file__).resolve().parents[1] / "docs" / "otel.md"


def test_every_example_on_the_opentelemetry_page_runs() -> None:
    found = blocks(DOC)
    assert len(found) >= 2
    done = run_blocks(DOC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ran {len(found)} blocks" in done.stdout
    assert "sent refused 5.1.1" in done.stdout

"""``docs/proxies.md`` must not drift: every ``python`` block in it runs, in one namespace, in
a fresh interpreter (pproxy and a LocalServer on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_failover_docs import blocks, run_blocks

pytest.importorskip("python_socks", reason="python-socks (the [proxy] extra) is not installed")
pytest.importorskip("pproxy", reason="pproxy is not installed (pip install -e '.[dev]')")

DOC = Path(__file__).resolve().parents[1] / "docs" / "proxies.md"


def test_every_example_on_the_proxies_page_runs() -> None:
    found = blocks(DOC)
    assert len(found) >= 2
    done = run_blocks(DOC)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"ran {len(found)} blocks" in done.stdout
    assert "accepted: ('you@example.test',) over TLS: True" in done.stdout
    assert "refused by socks5://me:***@127.0.0.1:" in done.stdout
    assert "proxy-password" not in done.stdout

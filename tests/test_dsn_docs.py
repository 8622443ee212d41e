"""``docs/dsn.md`` and ``docs/dkim.md`` must not drift: every ``python`` block of each runs,
in document order, in one namespace, in a fresh interpreter (LocalServers on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_failover_docs import blocks, run_blocks

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_example_on_the_dsn_page_runs() -> None:
    doc = DOCS / "dsn.md"
    found = blocks(doc)
    assert len(found) >= 5
    done = run_blocks(doc)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"ran {len(found)} blocks" in out
    assert "('RET=HDRS', 'ENVID=order-42')" in out
    assert "('NOTIFY=FAILURE,DELAY', 'ORCPT=rfc822;bob@example.org')" in out
    assert "('NOTIFY=NEVER', 'ORCPT=rfc822;team@example.org')" in out
    assert "the server does not offer DSN (RFC 3461)" in out
    assert "['SendResult', 'SendResult', 'SendResult']" in out
    assert "['ENVID=order-1', 'ENVID=order-2']" in out
    assert "AUTH=<>" in out


def test_every_example_on_the_dkim_page_runs() -> None:
    pytest.importorskip("dkim", reason="dkimpy (the [dkim] extra) is not installed")
    doc = DOCS / "dkim.md"
    found = blocks(doc)
    assert len(found) >= 4
    done = run_blocks(doc)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"ran {len(found)} blocks" in lines
    assert lines[:2] == [
        "DKIMSigner(selector='s2026', domain='example.com', canonicalization='relaxed/relaxed')",
        "v=DKIM1; k=rsa; p=MIIBIjANBg",
    ]
    assert lines[2].startswith("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert lines[3:6] == ["True", "False", "True"]
    assert lines[6].startswith("a DKIMSigner holds a private key and is not picklable")
    assert lines[7].startswith("the DKIM private key is not an RSA private key in PEM form")

"""benchmarks/compare_ref: the rows it measures, the trees it exports, the worker's guard.

The harness compares two commits' ``Submitter`` by importing each from an exported tree in
a child process; what would make its numbers wrong is measuring the wrong package, losing
the pairing of rounds, or measuring other rows than the throughput table's. Each test here
fails if one of those breaks. Everything runs on 127.0.0.1 (LocalServer).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.common import REPO, Result
from benchmarks.compare_ref._report import to_markdown
from benchmarks.compare_ref._rows import Row, build_rows, worker_args
from benchmarks.compare_ref._sides import Side, export, parse_result, spawn
from smtpkit import Security
from smtpkit.testing import LocalServer

ServerFactory = Callable[..., LocalServer]

needs_git = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(),
    reason="needs git and the repository's history",
)


def _options(**overrides: float) -> argparse.Namespace:
    values: dict[str, float] = {
        "count": 4,
        "count_delayed": 4,
        "count_many": 4,
        "message_bytes": 1024,
        "seconds": 10.0,
        "warmup": 2,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_rows_are_the_throughput_tables() -> None:
    rows = build_rows([0, 10], [1, 5], [16, 64], ["email", "bytes"])

    assert len(rows) == 16
    loopback = [row for row in rows if row.delay_ms == 0]
    assert {(row.input, row.recipients, row.connections) for row in loopback} == {
        (kind, rcpts, 1) for kind in ("email", "bytes") for rcpts in (1, 5)
    }
    delayed = [row for row in rows if row.delay_ms == 10]
    assert sorted({row.connections for row in delayed}) == [1, 16, 64]
    assert rows[0].input == "email"  # the headline input first


def test_ratios_pair_the_runs_of_one_round() -> None:
    row = Row(0, 1, 1, "bytes")
    # Round 1: new twice as fast; round 2: level. Medians of each side alone would hide it.
    row.samples["old"] = [Result(100, 1.0, 0.010), Result(100, 2.0, 0.020)]
    row.samples["new"] = [Result(100, 0.5, 0.005), Result(100, 2.0, 0.030)]

    assert row.rate_ratios() == [2.0, 1.0]
    assert row.cpu_ratios() == pytest.approx([0.5, 1.5])
    assert "**1.500** (1.00-2.00)" in to_markdown([row], {}, 0.10)


def test_a_row_below_the_tolerance_says_no() -> None:
    row = Row(10, 5, 64, "bytes")
    row.samples["old"] = [Result(100, 1.0, 0.01)] * 3
    row.samples["new"] = [Result(100, 1.2, 0.01)] * 3  # 0.833 of the old rate

    line = to_markdown([row], {"10": 21.0}, 0.10).splitlines()[-1]

    assert "| bytes | 21.0 ms | 5 | 64 |" in line
    assert line.endswith("| **no** |")


@needs_git
def test_export_holds_the_package_of_that_commit_only(tmp_path: Path) -> None:
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    side = export("new", "HEAD", tmp_path)

    assert side.commit == head
    assert [entry.name for entry in side.tree.iterdir()] == ["smtpkit"]
    assert (side.tree / "smtpkit" / "__init__.py").is_file()


@needs_git
def test_an_unknown_ref_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown git ref"):
        export("old", "no-such-ref-for-compare-ref", tmp_path)


def test_the_worker_refuses_to_measure_another_package(tmp_path: Path) -> None:
    # The tree holds no smtpkit, so the child imports the repository's: it must refuse.
    side = Side("old", "worktree", "worktree", tmp_path)
    row = Row(0, 1, 1, "bytes")

    with pytest.raises(SystemExit, match="not from"):
        spawn(side, worker_args(row, "127.0.0.1", 9, _options()), timeout=60)


@needs_git
def test_the_worker_sends_with_the_exported_package(
    local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server(security=Security.NONE)
    side = export("new", "HEAD", tmp_path)
    row = Row(0, 2, 1, "bytes")

    done = spawn(side, worker_args(row, "127.0.0.1", server.port, _options()), timeout=60)

    result = parse_result(done)
    assert result.messages == 4
    assert result.seconds > 0
    assert result.cpu_seconds > 0
    origin = Path(json.loads(done.stdout.strip().splitlines()[-1])["smtpkit_file"])
    assert origin.is_relative_to(side.tree)
    assert len(server.messages) == 2 + 4  # the untimed warm-up, then the timed run

"""The two sides: ``smtpkit/`` of a git ref exported to a directory, and running a worker.

Invariants: exporting only reads the repository (``git archive``: the working tree, index
and branches stay as they are); a worker's ``PYTHONPATH`` starts with its side's tree and
its working directory is that tree, so ``python -m`` (which puts the working directory
first on ``sys.path``) cannot load the repository's own ``smtpkit/``; the worker checks it
too and exits with :data:`WRONG_TREE`, which stops the whole comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import REPO, Result

__all__ = ["WRONG_TREE", "Side", "export", "parse_result", "resolve", "spawn"]

#: The worker exits with this code when it imported smtpkit from another tree.
WRONG_TREE = 3


@dataclass(frozen=True)
class Side:
    """One version of smtpkit: a label, the ref asked for, its commit and its source tree."""

    label: str
    ref: str
    commit: str
    tree: Path


def resolve(ref: str) -> str:
    """The full commit hash of ``ref``; exits with a message when the ref is unknown."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"unknown git ref {ref!r}: give a commit, tag or branch of {REPO}")
    return done.stdout.strip()


def export(label: str, ref: str, root: Path) -> Side:
    """``smtpkit/`` of ``ref`` under ``root/label`` (``worktree``: a copy of the working tree's)."""
    tree = root / label
    tree.mkdir()
    if ref == "worktree":
        shutil.copytree(REPO / "smtpkit", tree / "smtpkit", ignore=_pycache)
        return Side(label, ref, "worktree", tree)
    commit = resolve(ref)
    archive = subprocess.Popen(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "smtpkit"],
        stdout=subprocess.PIPE,
    )
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait(60) != 0 or untar.returncode != 0:
        raise SystemExit(f"could not export smtpkit/ of {ref} ({commit[:10]})")
    return Side(label, ref, commit, tree)


def _pycache(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if name == "__pycache__"}


def spawn(
    side: Side,
    worker_args: Sequence[str],
    *,
    timeout: float,
    prefix: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the worker on ``side``, under ``prefix`` (valgrind); ``RuntimeError`` if it fails."""
    command = [
        *prefix,
        sys.executable,
        "-m",
        "benchmarks.compare_ref.worker",
        "--expect-tree",
        str(side.tree),
        *worker_args,
    ]
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join([str(side.tree), str(REPO)])
    child_env.pop("PYTHONSTARTUP", None)
    try:
        done = subprocess.run(
            command,
            cwd=side.tree,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{side.label}: no result within {timeout:g} s") from None
    if done.returncode == WRONG_TREE:
        raise SystemExit(f"{side.label}: {done.stderr.strip()}")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{side.label}: exit {done.returncode}: {' | '.join(tail)}")
    return done


def parse_result(done: subprocess.CompletedProcess[str]) -> Result:
    """The :class:`Result` of the worker's one JSON line (its last line of output)."""
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Result(data["messages"], data["seconds"], data["cpu_seconds"])

"""The package layout: public import paths stay, public classes name them, the root stays small.

The private modules were regrouped into subpackages (docs/architecture.md, "The folder map");
these tests keep what users rely on: the documented import paths, pickles that name the
public module (a task queue's result store outlives a refactoring), and a package root that
shows the architecture instead of a heap of underscore modules.
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import smtpkit
import smtpkit.config
import smtpkit.failover
import smtpkit.message

ROOT = Path(smtpkit.__file__).parent

PUBLIC_NAMES = [
    ("smtpkit.message", ["prepare_message", "PreparedMessage", "Envelope", "BodyType"]),
    ("smtpkit.message", ["make_message_id", "extract_addresses", "normalize_line_endings"]),
    ("smtpkit.config", ["Security", "Timeouts", "Endpoint", "check_host", "is_loopback"]),
    ("smtpkit.failover", ["Failover", "AsyncFailover", "FailoverResult", "FailoverStrategy"]),
    ("smtpkit.failover", ["is_server_failure", "handled_by", "server_labels"]),
    ("smtpkit.dkim", ["DKIMSigner", "Canonicalization"]),
    ("smtpkit.dsn", ["DSN", "ESMTPParams", "Notify", "Ret", "RecipientDSN", "xtext"]),
    ("smtpkit.cli", ["main"]),
]


@pytest.mark.parametrize(("module", "names"), PUBLIC_NAMES)
def test_the_documented_import_paths_still_work(module: str, names: list[str]) -> None:
    imported = importlib.import_module(module)
    missing = [name for name in names if not hasattr(imported, name)]
    assert missing == []


@pytest.mark.parametrize(
    ("cls", "public"),
    [
        (smtpkit.SendResult, "smtpkit"),
        (smtpkit.BatchInterrupted, "smtpkit"),
        (smtpkit.failover.FailoverResult, "smtpkit.failover"),
        (smtpkit.failover.FailoverStrategy, "smtpkit.failover"),
        (smtpkit.config.Security, "smtpkit.config"),
        (smtpkit.config.Timeouts, "smtpkit.config"),
        (smtpkit.config.Endpoint, "smtpkit.config"),
        (smtpkit.message.PreparedMessage, "smtpkit.message"),
        (smtpkit.message.Envelope, "smtpkit.message"),
        (smtpkit.message.BodyType, "smtpkit.message"),
    ],
)
def test_public_classes_name_their_public_module(cls: type, public: str) -> None:
    assert cls.__module__ == public
    assert getattr(importlib.import_module(public), cls.__name__) is cls


def test_results_pickle_under_the_public_path() -> None:
    result = smtpkit.SendResult("<1@example.com>", "a@example.com", ("b@example.com",))
    interrupted = smtpkit.BatchInterrupted("stopped", [result, None])
    for value in (result, interrupted, smtpkit.config.Security.TLS):
        data = pickle.dumps(value)
        assert b"smtpkit._" not in data  # no private module named in the pickle
        assert b"smtpkit.engine" not in data
    assert pickle.loads(pickle.dumps(result)) == result
    back = pickle.loads(pickle.dumps(interrupted))
    assert type(back) is smtpkit.BatchInterrupted
    assert back.outcomes == (result, None)
    assert back.not_sent == (1,)


def test_the_package_root_holds_no_private_module() -> None:
    private = sorted(
        path.name for path in ROOT.glob("_*.py") if path.name not in ("__init__.py", "__main__.py")
    )
    assert private == []


def test_python_dash_m_smtpkit_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtpkit", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("smtpkit ")

"""``import smtpkit`` is cheap, and so is the pytest plugin every pytest run loads.

pytest loads :mod:`smtpkit.testing.pytest_plugin` (the ``pytest11`` entry point) in every
project that installs smtpkit, so the package root re-exports its names on first use
(PEP 562) and the plugin imports nothing heavy until a fixture is used. Each check runs in a
fresh interpreter and looks at what was imported, not at timings (the box is shared).

The public API is unchanged: every name in ``smtpkit.__all__`` resolves, as
``from smtpkit import X`` and as ``smtpkit.X``, to the object its home module defines, and
the subpackages that ``import smtpkit`` used to make reachable (``smtpkit.errors``...) still
are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import smtpkit

#: Modules whose import costs real time and that the common path does not need at import.
HEAVY = (
    "asyncio",
    "ssl",
    "socket",
    "sqlite3",
    "email.headerregistry",
    "email.message",
    "uuid",
    "tempfile",
    "concurrent.futures",
    "aiosmtpd",
    "trustme",
    "google",
    "requests",
    "smtpkit.drivers",
    "smtpkit.engine",
    "smtpkit.quotas",
    "smtpkit.errors",
    "smtpkit.message",
)


def imported_by(statement: str, *, already: str = "") -> dict[str, object]:
    """What ``statement`` imports in a fresh interpreter (after ``already`` ran)."""
    script = "\n".join(
        [
            "import json, sys",
            already,
            "before = set(sys.modules)",
            statement,
            "new = sorted(set(sys.modules) - before)",
            'print(json.dumps({"new": new}))',
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])["new"]
    return {"new": loaded, "smtpkit": [m for m in loaded if m.startswith("smtpkit")]}


def heavy_in(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted(
        name for name in modules for heavy in HEAVY if name == heavy or name.startswith(heavy + ".")
    )


def test_import_smtpkit_loads_nothing_heavy() -> None:
    loaded = imported_by("import smtpkit")
    assert heavy_in(loaded["new"]) == []
    assert loaded["smtpkit"] == ["smtpkit"]


def test_the_pytest_plugin_loads_nothing_heavy_until_a_fixture_is_used() -> None:
    # pytest itself is loaded first: in a test run it is there already.
    loaded = imported_by("import smtpkit.testing.pytest_plugin", already="import pytest")
    assert heavy_in(loaded["new"]) == []
    assert set(loaded["smtpkit"]) <= {
        "smtpkit",
        "smtpkit.testing",
        "smtpkit.testing._deprecation",
        "smtpkit.testing.pytest_plugin",
    }


def test_the_common_path_still_works_after_a_lazy_import() -> None:
    loaded = imported_by(
        "import smtpkit\n"
        "from smtpkit.testing import FakeTransport\n"
        "s = smtpkit.Submitter('smtp.example.com', transport=FakeTransport())\n"
        "assert isinstance(s, smtpkit.Submitter)"
    )
    assert "smtpkit.drivers" in loaded["smtpkit"]
    assert "asyncio" not in loaded["new"]  # the threaded path never loads asyncio


@pytest.mark.parametrize("name", sorted(smtpkit.__all__))
def test_every_public_name_resolves_both_ways(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from smtpkit import {name} as value", namespace)  # the import form itself
    assert getattr(smtpkit, name) is namespace["value"]
    if name != "__version__":
        value = namespace["value"]
        home = getattr(value, "__module__", "")
        assert isinstance(home, str)
        assert home.startswith("smtpkit"), (name, home)
    assert name in dir(smtpkit)


#: What ``import smtpkit`` made reachable as attributes before its names became lazy.
SUBPACKAGES = (
    "auth", "config", "dkim", "drivers", "dsn", "engine", "errors", "failover", "hooks",
    "message", "protocol", "providers", "quotas", "replies", "retry", "transports",
)  # fmt: skip


def test_subpackages_reachable_after_import_smtpkit_still_are() -> None:
    script = (
        f"import smtpkit\nfor name in {SUBPACKAGES!r}:\n    print(getattr(smtpkit, name).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == [f"smtpkit.{name}" for name in SUBPACKAGES]


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = smtpkit.Nope  # type: ignore[attr-defined]
    assert not hasattr(smtpkit, "nope")

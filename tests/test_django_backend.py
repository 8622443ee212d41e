"""smtpkit.django.EmailBackend end to end: a real Django project sending to a LocalServer.

A process can configure Django only once, so each settings style runs in its own process
(``tests/django_project/run.py``): ``settings.py`` is the Django 5.2 style (EMAIL_BACKEND and
EMAIL_*), ``settings_mailers.py`` the Django 6.1 ``MAILERS`` style. Each scenario reports
separately here.

The scenarios run on this interpreter's Django. To run them on another Django (6.1 needs
Python 3.12+), point ``SMTPKIT_TEST_DJANGO_PYTHON`` at an interpreter that has it and
smtpkit installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("django")

from django_project.run import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a whole style may take: a dozen sends over loopback need far less.
RUN_TIMEOUT = 90

Results = dict[str, dict[str, object]]


def _run(style: str) -> Results:
    python = os.environ.get("SMTPKIT_TEST_DJANGO_PYTHON") or sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [python, "-m", "tests.django_project.run", style],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULTS:")]
    assert done.returncode == 0, f"runner failed:\n{done.stdout}\n{done.stderr}"
    assert lines, f"runner printed no results:\n{done.stdout}\n{done.stderr}"
    results: Results = json.loads(lines[-1].removeprefix("RESULTS:"))
    return results


@pytest.fixture(scope="module")
def django_results() -> Callable[[str], Results]:
    cache: dict[str, Results] = {}

    def get(style: str) -> Results:
        if style not in cache:
            cache[style] = _run(style)
        return cache[style]

    return get


CASES = [(style, name) for style, scenarios in SCENARIOS.items() for name in scenarios]


@pytest.mark.parametrize(("style", "name"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_scenario(django_results: Callable[[str], Results], style: str, name: str) -> None:
    outcome = django_results(style)[name]
    if "skipped" in outcome:
        pytest.skip(str(outcome["skipped"]))
    assert outcome.get("ok"), outcome.get("error")


def test_every_scenario_ran(django_results: Callable[[str], Results]) -> None:
    for style, scenarios in SCENARIOS.items():
        results = django_results(style)
        assert set(scenarios) <= set(results), style
        assert "version" in results["_django"]

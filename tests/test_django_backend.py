"""smtpkit.django.EmailBackend end to end: a real Django project sending to a LocalServer.

A process can configure Django only once, so each settings style runs in its own process
(``tests/django_project/run.py``): ``settings.py`` is the Django 5.2 style (EMAIL_BACKEND and
EMAIL_*), ``settings_mailers.py`` the Django 6.1 ``MAILERS`` style. Each scenario reports
separately here.

The scenarios run on this interpreter's Django, and again on a second Django when
``SMTPKIT_TEST_DJANGO_PYTHON`` points at an interpreter that has it and smtpkit installed
(Django 6.1, whose MAILERS style needs Python 3.12+; ``scripts/test.sh`` sets it up when such
a Python is on the machine).
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


#: The interpreters to run the scenarios on: this one, and the second Django if configured.
PYTHONS = {"here": sys.executable}
if os.environ.get("SMTPKIT_TEST_DJANGO_PYTHON"):
    PYTHONS["second"] = os.environ["SMTPKIT_TEST_DJANGO_PYTHON"]


def _run(python: str, style: str) -> Results:
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
def django_results() -> Callable[[str, str], Results]:
    cache: dict[tuple[str, str], Results] = {}

    def get(which: str, style: str) -> Results:
        if (which, style) not in cache:
            cache[which, style] = _run(PYTHONS[which], style)
        return cache[which, style]

    return get


CASES = [
    (which, style, name)
    for which in PYTHONS
    for style, scenarios in SCENARIOS.items()
    for name in scenarios
]


@pytest.mark.parametrize(
    ("which", "style", "name"), CASES, ids=[f"{w}-{s}-{n}" for w, s, n in CASES]
)
def test_scenario(
    django_results: Callable[[str, str], Results], which: str, style: str, name: str
) -> None:
    outcome = django_results(which, style)[name]
    if "skipped" in outcome:
        pytest.skip(str(outcome["skipped"]))
    assert outcome.get("ok"), outcome.get("error")


@pytest.mark.parametrize("which", list(PYTHONS))
def test_every_scenario_ran(django_results: Callable[[str, str], Results], which: str) -> None:
    for style, scenarios in SCENARIOS.items():
        results = django_results(which, style)
        assert set(scenarios) <= set(results), style
        assert "version" in results["_django"]


@pytest.mark.skipif("second" not in PYTHONS, reason="no second Django configured")
def test_the_second_django_is_6_1_or_newer(
    django_results: Callable[[str, str], Results],
) -> None:
    # The point of the second run: the MAILERS style really ran, on Django >= 6.1.
    results = django_results("second", "mailers")
    major, minor = (int(part) for part in str(results["_django"]["version"]).split(".")[:2])
    assert (major, minor) >= (6, 1)
    assert all("skipped" not in results[name] for name in SCENARIOS["mailers"])

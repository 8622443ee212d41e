"""Findings and the report: what each step saw, what to do, as a table or as JSON.

Invariants:
    * ``Report.ok`` (and exit code 0) holds exactly when no finding failed.
    * ANSI colour only when the caller says the stream is a terminal and ``NO_COLOR`` is
      unset (https://no-color.org); the JSON never contains colour or secrets.
    * Every text here was built from redacted values: targets are shown with ``***`` for the
      password, and transcripts come redacted from the protocol core.
"""

from __future__ import annotations

import enum
import json
import textwrap
from dataclasses import dataclass, field

__all__ = ["JSON_SCHEMA_VERSION", "Finding", "Report", "Status"]

#: Bumped when the JSON output changes incompatibly.
JSON_SCHEMA_VERSION = 1

_COLOURS = {"ok": "32", "warn": "33", "fail": "31", "skip": "2"}
_WIDTH = 100


class Status(enum.Enum):
    """How a step went: ``ok``; ``warn`` (works, but worth fixing); ``fail`` (sending would
    not work); ``skip`` (not run, e.g. because an earlier step failed)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Finding:
    """One step's result.

    Attributes:
        step: a stable machine name (``dns``, ``tcp``, ``proxy``, ``tls``, ``certificate``,
            ``greeting``, ``ehlo``, ``starttls``, ``ehlo-tls``, ``auth-mechanisms``,
            ``login``, ``size``, ``quota``).
        status: the :class:`Status`.
        observed: what the step saw, in one line.
        advice: what to do, or ``None`` when nothing needs doing.
        details: extra machine-readable facts (e.g. ``{"mechanisms": [...]}``).
    """

    step: str
    status: Status
    observed: str
    advice: str | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The finding as a JSON-ready dict."""
        return {
            "step": self.step,
            "status": self.status.value,
            "observed": self.observed,
            "advice": self.advice,
            "details": self.details,
        }


@dataclass(frozen=True)
class Report:
    """All findings for one target, in the order the steps ran.

    Attributes:
        target: the redacted target (``smtp+starttls://user:***@host:587``).
        findings: the steps' results.
        settings: what was checked: host, port, security, provider, auth.
        transcript: the redacted conversation of the main connection.
    """

    target: str
    findings: tuple[Finding, ...]
    settings: dict[str, object] = field(default_factory=dict)
    transcript: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no step failed: sending would work (as far as the checks reach)."""
        return not any(f.status is Status.FAIL for f in self.findings)

    @property
    def exit_code(self) -> int:
        """0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    def finding(self, step: str) -> Finding | None:
        """The finding for ``step``, if that step ran."""
        return next((f for f in self.findings if f.step == step), None)

    def to_json(self) -> str:
        """The report as JSON (see ``docs/troubleshooting.md`` for the schema)."""
        document = {
            "schema": JSON_SCHEMA_VERSION,
            "target": self.target,
            "settings": self.settings,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "findings": [f.to_json() for f in self.findings],
            "transcript": list(self.transcript),
        }
        return json.dumps(document, indent=2, sort_keys=False) + "\n"

    def render(self, *, colour: bool = False) -> str:
        """The report as a table with the advice under each row that has some."""
        width = max([len(f.step) for f in self.findings] + [4])
        lines = [f"smtpkit check {self.target}", ""]
        lines.append(f"{'STEP'.ljust(width)}  STATUS  OBSERVED")
        indent = " " * (width + 10)
        for f in self.findings:
            status = f.status.value.upper().ljust(6)
            if colour:
                status = f"\x1b[{_COLOURS[f.status.value]}m{status}\x1b[0m"
            observed = textwrap.wrap(f.observed, _WIDTH - len(indent)) or [""]
            lines.append(f"{f.step.ljust(width)}  {status}  {observed[0]}")
            lines.extend(indent + more for more in observed[1:])
            if f.advice:
                wrapped = textwrap.wrap(f"-> {f.advice}", _WIDTH - len(indent) - 3)
                lines.append(indent + wrapped[0])
                lines.extend(indent + "   " + more for more in wrapped[1:])
        failures = sum(f.status is Status.FAIL for f in self.findings)
        warnings = sum(f.status is Status.WARN for f in self.findings)
        lines.append("")
        if failures:
            lines.append(f"Result: sending would fail ({failures} problem(s) above).")
        elif warnings:
            lines.append(f"Result: sending should work ({warnings} warning(s) above).")
        else:
            lines.append("Result: sending would work.")
        return "\n".join(lines) + "\n"

"""``smtpkit check``: the command-line face of :mod:`smtpkit.doctor`.

::

    smtpkit check you@gmail.com                     # the preset for the address's domain
    smtpkit check 'smtp+starttls://you%40example.com@mail.example.com:587' --login
    smtpkit check ses:eu-west-1 --json              # a preset by name
    SMTPKIT_URL=smtps://... smtpkit check           # the configured server
    smtpkit check you@gmail.com --quota-store redis://127.0.0.1:6379/0   # + quota used/left
    smtpkit check 'smtps://...?quota=sqlite:///var/lib/app/q.db'  # the URL's store, the same

Exit status: 0 when sending would work (no step failed), 1 when a step failed, 2 when the
target cannot be understood. The password comes from the URL or ``SMTPKIT_PASSWORD``; it is
never printed, and only ``--login`` needs one. A URL's ``?cafile=PATH`` counts as
``--cafile PATH``. Advice is printed in the command line's words (:mod:`smtpkit.cli._hints`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from typing import Any, TextIO

from smtpkit.cli._hints import cli_text
from smtpkit.config._url import parse_url
from smtpkit.doctor import Report, check
from smtpkit.errors import ConfigurationError

__all__ = ["add_check_parser", "run_check"]


def add_check_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the ``check`` subcommand to ``subparsers`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="diagnose a server configuration (DNS, TCP, TLS, certificate, AUTH)",
        description=(
            "Walk each step of a submission session and say what works and what to do. "
            "TARGET is a URL (smtp+starttls://user@host:587, smtps://...:465), a preset "
            "name (gmail, ses:eu-west-1) or a mailbox address (you@gmail.com); default "
            "$SMTPKIT_URL. Never sends a message."
        ),
    )
    parser.add_argument("target", nargs="?", help="URL, preset name or address")
    parser.add_argument("--provider", help="preset for precise advice (e.g. microsoft365)")
    parser.add_argument(
        "--login",
        action="store_true",
        help="also try the credentials (AUTH then QUIT; password from the URL or "
        "$SMTPKIT_PASSWORD)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--cafile", help="trust this PEM CA bundle instead of the system's")
    parser.add_argument(
        "--quota-store",
        metavar="URL",
        help="also show the account's sending quota, used and left, from this store "
        "(redis://host:6379/0, sqlite:///path/quota.db; default: the target URL's quota= "
        "option, else $SMTPKIT_QUOTA_STORE)",
    )
    return parser


def _colour(out: TextIO, environ: Mapping[str, str]) -> bool:
    # https://no-color.org: any value of NO_COLOR, even empty, turns colour off.
    isatty = getattr(out, "isatty", None)
    return "NO_COLOR" not in environ and callable(isatty) and bool(isatty())


def run_check(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``smtpkit check`` with parsed ``args``; returns the exit status."""
    env = os.environ if environ is None else environ
    target = args.target or env.get("SMTPKIT_URL", "").strip()
    if not target:
        print("smtpkit check: give a URL, preset or address (or set SMTPKIT_URL)", file=err)
        return 2
    if not args.timeout > 0:
        print("smtpkit check: --timeout must be a number of seconds > 0", file=err)
        return 2
    try:
        report = check(
            target,
            provider=args.provider,
            login=args.login,
            cafile=args.cafile or _url_cafile(target),
            timeout=args.timeout,
            environ=env,
            quota_store=args.quota_store,
        )
    except ConfigurationError as error:
        print(f"smtpkit check: {error.message}", file=err)
        if error.hint:
            print(f"hint: {cli_text(error.hint)}", file=err)
        return 2
    report = _in_cli_words(report)
    if args.json:
        out.write(report.to_json())
    else:
        out.write(report.render(colour=_colour(out, env)))
    return report.exit_code


def _url_cafile(target: str) -> str | None:
    """The ``cafile`` option of a URL target (the doctor takes the CA file as a path)."""
    if "://" not in target:
        return None
    return parse_url(target).options.get("cafile")


def _in_cli_words(report: Report) -> Report:
    """``report`` with its advice said in the command line's words."""
    findings = tuple(
        dataclasses.replace(finding, advice=cli_text(finding.advice)) if finding.advice else finding
        for finding in report.findings
    )
    return dataclasses.replace(report, findings=findings)

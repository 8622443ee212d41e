"""``smtpkit check``: the command-line face of :mod:`smtpkit.doctor`.

::

    smtpkit check you@gmail.com                     # the preset for the address's domain
    smtpkit check 'smtp+starttls://you%40example.com@mail.example.com:587' --login
    smtpkit check ses:eu-west-1 --json              # a preset by name
    SMTPKIT_URL=smtps://... smtpkit check           # the configured server

Exit status: 0 when sending would work (no step failed), 1 when a step failed, 2 when the
target cannot be understood. The password comes from the URL or ``SMTPKIT_PASSWORD``; it is
never printed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any, TextIO

from smtpkit.doctor import check
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
            cafile=args.cafile,
            timeout=args.timeout,
            environ=env,
        )
    except ConfigurationError as error:
        print(f"smtpkit check: {error.message}", file=err)
        if error.hint:
            print(f"hint: {error.hint}", file=err)
        return 2
    if args.json:
        out.write(report.to_json())
    else:
        out.write(report.render(colour=_colour(out, env)))
    return report.exit_code

"""``smtpkit quota``: what an account's sending quota has used and has left.

::

    $ smtpkit quota you@gmail.com --store redis://127.0.0.1:6379/0
    smtp.gmail.com/you@gmail.com in redis 127.0.0.1:6379/0
      messages_per_day: 312 of 500 used, 188 left (rolling 24 hours)

    $ smtpkit quota 'smtps://you%40gmail.com@smtp.gmail.com?quota=sqlite:///var/lib/app/q.db'
    SMTPKIT_URL=smtps://... SMTPKIT_QUOTA_STORE=sqlite:///var/lib/app/quota.db smtpkit quota

The store read is ``--store`` when given, else the target URL's ``quota=`` option (the
store the Submitters built from that URL count in), else ``$SMTPKIT_QUOTA_STORE``
(:func:`smtpkit.doctor._quota.choose_store`).

The target is what ``smtpkit check`` takes (a server URL, a preset name, a mailbox
address; default ``$SMTPKIT_URL``), and the account and limits are those a Submitter for
it counts (the preset's limits, keyed by user name and host). ``--json`` prints the same
as a document. Exit status: 0 when the counts were read, 1 when the store cannot be asked,
2 when the target or the store cannot be understood.

Invariants:
    * It reads the counts only: nothing is reserved, marked or sent, and no server is
      contacted.
    * No password is printed: neither the target's nor the store URL's.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import Any, TextIO

from smtpkit.cli._hints import cli_text
from smtpkit.doctor import ENV_QUOTA_STORE, options_for_target
from smtpkit.doctor._quota import (
    account_quota,
    choose_store,
    journal_mode,
    journal_note,
    quota_lines,
)
from smtpkit.errors import ConfigurationError, QuotaStoreUnavailable

__all__ = ["add_quota_parser", "run_quota"]

#: The password a URL naming a user gets here: never sent (no server is contacted).
_NOT_SENT = "unused: smtpkit quota does not log in"


def add_quota_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the ``quota`` subcommand to ``subparsers`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "quota",
        help="show an account's sending quota: used and left (docs/quotas.md)",
        description=(
            "Print what the account's sending quota has used and has left, from the quota "
            "store its Submitters share. TARGET is a URL, a preset name or a mailbox "
            "address (default $SMTPKIT_URL). Reads the counts only: sends nothing."
        ),
    )
    parser.add_argument("target", nargs="?", help="URL, preset name or address")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the quota store: redis://host:6379/0, rediss://..., sqlite:///path/quota.db "
        "(default: the target URL's quota= option, else $SMTPKIT_QUOTA_STORE)",
    )
    parser.add_argument("--provider", help="preset whose limits to count (e.g. microsoft365)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    return parser


def run_quota(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``smtpkit quota`` with parsed ``args``; returns the exit status."""
    env = os.environ if environ is None else environ
    target = args.target or env.get("SMTPKIT_URL", "").strip()
    if not target:
        print("smtpkit quota: give a URL, preset or address (or set SMTPKIT_URL)", file=err)
        return 2
    try:
        options = options_for_target(
            target, provider=args.provider, password=env.get("SMTPKIT_PASSWORD") or _NOT_SENT
        )
        store = choose_store(args.store or None, options, env)
    except ConfigurationError as error:
        print(f"smtpkit quota: {error.message}", file=err)
        if error.hint:
            print(f"hint: {cli_text(error.hint)}", file=err)
        return 2
    if store is None:
        print(
            "smtpkit quota: give --store URL, a target URL with ?quota=STORE-URL, "
            f"or set {ENV_QUOTA_STORE}",
            file=err,
        )
        return 2
    try:
        account = account_quota(options, store)
        if account is None:
            print(
                "smtpkit quota: no sending limits are known for this server",
                file=err,
            )
            print("hint: name the provider whose limits to count (--provider gmail)", file=err)
            return 2
        try:
            usage = account.quota.usage()
        except QuotaStoreUnavailable as error:
            print(f"smtpkit quota: {error.message}", file=err)
            return 1
        mode, note = journal_mode(store), journal_note(store)  # known once the store was read
    finally:
        store.close()
    if args.json:
        document = {
            "key": usage.key,
            "store": account.store,
            "at": usage.at,
            "limits": [
                {
                    "name": limit.name,
                    "used": limit.used,
                    "allowed": limit.allowed,
                    "left": limit.left,
                    "window": limit.window,
                }
                for limit in usage.limits
            ],
            "exhausted_until": usage.exhausted_until,
        }
        if mode is not None:
            document["journal_mode"] = mode
        out.write(json.dumps(document, indent=2) + "\n")
    else:
        out.write(f"{usage.key} in {account.store}\n")
        out.writelines(f"  {line}\n" for line in quota_lines(usage))
        if note is not None:
            out.write(f"  note: {note}\n")
    return 0

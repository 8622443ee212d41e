"""``smtpkit oauth google|microsoft``: sign in once, store the refresh token, say what next.

* ``smtpkit oauth google --client-secrets FILE --user ADDR --store FILE`` runs
  google-auth-oauthlib's installed-app flow on a loopback port (consent prompt, offline
  access) in the local browser.
* ``smtpkit oauth microsoft --client-id ID --tenant T --user ADDR --store FILE`` runs the
  device-code flow (RFC 8628): sign in from any other device, so it works on headless hosts.

Both write a :class:`~smtpkit.oauth.FileTokenStore` (mode 0600) and print the exact
``SMTPKIT_URL`` for ``smtpkit send`` (``?token_store=<path>``) and a Python snippet.
``Submitter.from_url(...?token_store=<path>)`` and :func:`smtpkit.oauth.provider_from_store`
turn such a store back into tokens.

Invariants:
    * No token is ever printed; exit status 0 on success, 1 on a sign-in failure (message
      and hint printed), 2 for bad usage (argparse).
"""

from __future__ import annotations

import argparse
import shlex
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import requests

from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.oauth import (
    MICROSOFT_AUTHORITY,
    MICROSOFT_DELEGATED_SCOPES,
    MICROSOFT_SMTP_HOST,
    DeviceCodeFlow,
    FileTokenStore,
    StoredGrant,
)

if TYPE_CHECKING:
    from smtpkit.integrations.google import FlowFactory

__all__ = ["add_oauth_parser", "run_oauth"]
_GMAIL_HOST = "smtp.gmail.com"


def add_oauth_parser(subparsers: Any) -> None:
    """Add ``oauth google`` and ``oauth microsoft`` to the ``smtpkit`` subcommands.

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers()`` returned.
    """
    oauth = subparsers.add_parser(
        "oauth",
        help="sign in with OAuth2 once and store a refresh token",
        description="Sign in with OAuth2 once and store the refresh token for smtpkit send.",
    )
    providers = oauth.add_subparsers(dest="oauth_provider", required=True)
    google = providers.add_parser(
        "google",
        help="Gmail / Google Workspace (browser on this machine)",
        description=(
            "Run Google's installed-app sign-in on a loopback port and store the refresh "
            "token. The client secrets file is an OAuth client of type 'Desktop app'."
        ),
    )
    google.add_argument("--client-secrets", required=True, type=Path, metavar="FILE")
    google.add_argument("--user", required=True, metavar="ADDR", help="the Gmail address")
    google.add_argument("--store", required=True, type=Path, metavar="FILE")
    google.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL instead of opening it"
    )
    microsoft = providers.add_parser(
        "microsoft",
        help="Microsoft 365 / Outlook.com (device code: sign in from any device)",
        description=(
            "Run the device-code sign-in (works on headless servers) and store the "
            "refresh token. The app registration must allow public client flows."
        ),
    )
    microsoft.add_argument("--client-id", required=True, metavar="ID")
    microsoft.add_argument(
        "--tenant", required=True, metavar="T", help="tenant ID or domain; 'consumers'"
    )
    microsoft.add_argument("--user", required=True, metavar="ADDR", help="the mailbox address")
    microsoft.add_argument("--store", required=True, type=Path, metavar="FILE")
    microsoft.add_argument("--authority", default=MICROSOFT_AUTHORITY, help=argparse.SUPPRESS)
    microsoft.add_argument("--timeout", type=float, default=20.0, help=argparse.SUPPRESS)


def run_oauth(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    google_flow: FlowFactory | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run ``smtpkit oauth ...``; returns the exit status.

    ``google_flow``, ``session`` and ``sleep`` are for tests (a stub browser flow, a
    session that ignores the environment, a fast clock).
    """
    try:
        if args.oauth_provider == "google":
            grant = _google(args, google_flow)
            host = _GMAIL_HOST
        else:
            grant = _microsoft(args, out, session, sleep)
            host = MICROSOFT_SMTP_HOST
        store_path = _write_store(args.store, grant)
    except SMTPError as error:
        print(f"smtpkit: {type(error).__name__}: {error.message}", file=err)
        if error.hint:
            print(f"hint: {error.hint}", file=err)
        return 1
    _print_next_steps(grant, store_path, host, out)
    return 0


def _google(args: argparse.Namespace, flow: FlowFactory | None) -> StoredGrant:
    from smtpkit.integrations.google import run_installed_app_flow  # noqa: PLC0415 - lazy

    if flow is None:
        return run_installed_app_flow(
            args.client_secrets, args.user, open_browser=not args.no_browser
        )
    return run_installed_app_flow(
        args.client_secrets, args.user, open_browser=not args.no_browser, flow_factory=flow
    )


def _microsoft(
    args: argparse.Namespace,
    out: TextIO,
    session: requests.Session | None,
    sleep: Callable[[float], None] | None,
) -> StoredGrant:
    options: dict[str, Any] = {"authority": args.authority, "session": session}
    if sleep is not None:
        options["sleep"] = sleep
    flow = DeviceCodeFlow.microsoft(args.client_id, args.tenant, timeout=args.timeout, **options)
    authorization = flow.start()
    instructions = authorization.message or (
        f"To sign in, open {authorization.verification_uri} and enter the code "
        f"{authorization.user_code}"
    )
    print(f"{instructions}\nSign in as {args.user}. Waiting...", file=out, flush=True)
    response = flow.poll(authorization)
    if response.refresh_token is None:
        raise ConfigurationError(
            "Microsoft issued no refresh token",
            hint="the request must include the offline_access scope",
        )
    return StoredGrant(
        provider="microsoft",
        client_id=args.client_id,
        token_url=flow.token_url,
        refresh_token=response.refresh_token,
        username=args.user,
        tenant=args.tenant,
        scopes=MICROSOFT_DELEGATED_SCOPES,
    )


def _write_store(path: Path, grant: StoredGrant) -> Path:
    path = path.expanduser().absolute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        FileTokenStore(path).write(grant)
    except OSError as error:
        raise ConfigurationError(f"cannot write the token store {path}: {error.strerror}") from None
    return path


def store_url(host: str, username: str, store: Path) -> str:
    """The ``SMTPKIT_URL`` for sending as ``username`` through ``host`` with ``store``."""
    user = urllib.parse.quote(username, safe="")
    query = urllib.parse.urlencode({"token_store": str(store)}, safe="/")
    return f"smtp+starttls://{user}@{host}:587?{query}"


def _print_next_steps(grant: StoredGrant, store: Path, host: str, out: TextIO) -> None:
    user = grant.username or ""
    url = store_url(host, user, store)
    if grant.provider == "google":
        snippet = (
            "from smtpkit.integrations.google import GoogleCredentialsProvider\n"
            f"provider = GoogleCredentialsProvider.from_authorized_user_file({str(store)!r})"
        )
    else:
        snippet = (
            "from smtpkit.oauth import FileTokenStore, microsoft_delegated\n"
            f"store = FileTokenStore({str(store)!r})\n"
            f"provider = microsoft_delegated({grant.client_id!r}, {grant.tenant!r}, "
            "store=store)"
        )
    lines = [
        f"Signed in as {user}; refresh token stored in {store} (mode 0600).",
        "",
        "Send from the command line:",
        f"  export SMTPKIT_URL={shlex.quote(url)}",
        "  smtpkit send --to someone@example.com --subject Hello --text 'It works'",
        "",
        "Or from Python:",
        "  from smtpkit import Submitter",
        "  from smtpkit.auth import XOAuth2Auth",
        *(f"  {line}" for line in snippet.splitlines()),
        f"  submitter = Submitter({host!r}, auth=XOAuth2Auth({user!r}, provider))",
    ]
    print("\n".join(lines), file=out)

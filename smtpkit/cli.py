"""The ``smtpkit`` command line: ``smtpkit send`` (and more subcommands over time).

``smtpkit send`` sends one message. The server comes from ``--url`` or ``SMTPKIT_URL``; the
password may come from ``SMTPKIT_PASSWORD`` instead of the URL. With neither set, it starts
an embedded local server (STARTTLS and AUTH on, loopback only), sends through it, saves what
arrived under ``./smtpkit-outbox/`` and says how to send for real.

Invariants:
    * Exit status 0 only when the server accepted the message; 1 for a failure to send or
      a bad setting (the error and its hint are printed); 2 for bad command-line usage.
    * No password is ever printed: URLs are shown redacted.
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import secrets
import sys
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from smtpkit._cli_check import add_check_parser, run_check
from smtpkit._cli_oauth import add_oauth_parser, run_oauth
from smtpkit._cli_progress import Progress
from smtpkit._cli_serve import add_serve_parser, run_serve
from smtpkit._configure import ENV_PASSWORD, ENV_URL, options_from_url
from smtpkit._result import SendResult
from smtpkit._submitter import Submitter
from smtpkit._url import parse_url, redact_url
from smtpkit.auth import PasswordAuth
from smtpkit.config import Security
from smtpkit.errors import ConfigurationError, DeliveryUnknown, SMTPError

__all__ = ["main"]

#: Where the embedded server saves what it receives.
OUTBOX_DIR = Path("smtpkit-outbox")
#: The user the embedded server accepts (with a fresh random password each run).
EMBEDDED_USER = "smtpkit"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="smtpkit",
        description="Send mail through SMTP submission servers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser(
        "send",
        help="send a message (or one per recipient with --each / --to-file)",
        description=(
            "Send a message. Server from --url or SMTPKIT_URL "
            "(smtp+starttls://user:pass@host:587, smtps://...:465, smtp://...); password "
            "also from SMTPKIT_PASSWORD. Without a server, an embedded local server is used."
        ),
    )
    send.add_argument("--to", action="append", default=[], metavar="ADDR", help="recipient")
    send.add_argument(
        "--to-file",
        type=Path,
        metavar="FILE",
        help="recipients, one per line (# comments allowed); implies --each",
    )
    send.add_argument(
        "--each",
        action="store_true",
        help="send a separate message to each recipient (with a progress bar on a terminal)",
    )
    send.add_argument("--cc", action="append", default=[], metavar="ADDR", help="Cc recipient")
    send.add_argument("--bcc", action="append", default=[], metavar="ADDR", help="Bcc recipient")
    send.add_argument("--from", dest="sender", metavar="ADDR", help="From address")
    send.add_argument("--subject", required=True, help="subject line")
    send.add_argument("--text", required=True, help="plain-text body")
    send.add_argument(
        "--attach", action="append", default=[], metavar="FILE", type=Path, help="attachment"
    )
    send.add_argument("--url", help="server URL (default: $SMTPKIT_URL)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds per step")
    add_check_parser(sub)
    add_oauth_parser(sub)
    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "send":
        if not args.to and args.to_file is None:
            parser.error("send: one of --to ADDR or --to-file FILE is required")
        return _send(args, out=sys.stdout, err=sys.stderr)
    if args.command == "check":
        return run_check(args, out=sys.stdout, err=sys.stderr)
    if args.command == "oauth":
        return run_oauth(args, sys.stdout, sys.stderr)
    if args.command == "serve":
        return run_serve(args, sys.stdout, sys.stderr)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _recipients(args: argparse.Namespace) -> list[str]:
    recipients = list(args.to)
    if args.to_file is not None:
        try:
            lines = args.to_file.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigurationError(f"cannot read {args.to_file}: {error.strerror}") from None
        recipients += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not recipients:
        raise ConfigurationError("no recipient: pass --to ADDR or --to-file FILE")
    return recipients


def _build_messages(args: argparse.Namespace, default_from: str) -> list[EmailMessage]:
    recipients = _recipients(args)
    if args.each or args.to_file is not None:
        return [_build_message(args, default_from, [address]) for address in recipients]
    return [_build_message(args, default_from, recipients)]


def _build_message(
    args: argparse.Namespace, default_from: str, recipients: list[str]
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = args.sender or default_from
    message["To"] = ", ".join(recipients)
    if args.cc:
        message["Cc"] = ", ".join(args.cc)
    if args.bcc:
        message["Bcc"] = ", ".join(args.bcc)
    message["Subject"] = args.subject
    message.set_content(args.text)
    for path in args.attach:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ConfigurationError(
                f"cannot read attachment {path}: {error.strerror}",
                hint="check the --attach path",
            ) from None
        ctype, encoding = mimetypes.guess_type(path.name)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    return message


def _send(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    url = args.url or os.environ.get(ENV_URL)
    try:
        if url:
            return _send_real(args, url, out=out, err=err)
        return _send_embedded(args, out=out, err=err)
    except SMTPError as error:
        kind = type(error).__name__
        print(f"smtpkit: {kind}: {error.message}", file=err)
        if error.hint:
            print(f"hint: {error.hint}", file=err)
        if isinstance(error, DeliveryUnknown):
            print("the message may have been delivered: do not resend blindly", file=err)
        return 1


def _deliver(
    submitter: Submitter,
    messages: list[EmailMessage],
    where: str,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """Send one message (errors raise) or many (progress, summary, exit 1 if any failed)."""
    if len(messages) == 1:
        _report(submitter.send(messages[0]), where, out=out)
        return 0
    progress = Progress(len(messages), err)
    outcomes = submitter.send_many(messages, on_result=progress)
    progress.finish()
    for message, outcome in zip(messages, outcomes, strict=True):
        if isinstance(outcome, SMTPError):
            print(f"Failed: {message['To']}: {type(outcome).__name__}: {outcome}", file=err)
    print(f"Sent {progress.sent} of {len(messages)} messages {where}", file=out)
    return 0 if progress.failed == 0 else 1


def _send_real(args: argparse.Namespace, url: str, *, out: TextIO, err: TextIO) -> int:
    server = parse_url(url)
    default_from = server.username if server.username and "@" in server.username else None
    if not args.sender and default_from is None:
        raise ConfigurationError(
            "no From address: pass --from ADDR (the URL's user name is not an address)"
        )
    messages = _build_messages(args, default_from or "")
    options = options_from_url(
        url, password=os.environ.get(ENV_PASSWORD) or None, timeout=args.timeout
    )
    with Submitter(**options) as submitter:
        return _deliver(submitter, messages, f"via {redact_url(url)}", out=out, err=err)


def _send_embedded(args: argparse.Namespace, *, out: TextIO, err: TextIO) -> int:
    try:
        from smtpkit.testing import LocalServer  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ConfigurationError(
            "no server configured and the embedded server needs the testing extra",
            hint="pip install 'smtpkit[testing]', or set SMTPKIT_URL to a real server",
        ) from None
    password = secrets.token_urlsafe(12)
    OUTBOX_DIR.mkdir(exist_ok=True)
    with LocalServer(
        security=Security.STARTTLS,
        credentials={EMBEDDED_USER: password},
        require_auth=True,
        save_dir=OUTBOX_DIR,
    ) as server:
        messages = _build_messages(args, "smtpkit@localhost")
        address = f"{server.host}:{server.port}"
        print(
            "No server configured (--url or SMTPKIT_URL): using an embedded local server on "
            f"{address} (STARTTLS, AUTH).",
            file=out,
        )
        with Submitter(
            server.host,
            server.port,
            security=Security.STARTTLS,
            auth=PasswordAuth(EMBEDDED_USER, password),
            tls_context=server.client_tls_context(),
            timeout=args.timeout,
        ) as submitter:
            status = _deliver(submitter, messages, "to the embedded server", out=out, err=err)
        received = server.messages
    for item in received:
        if item.path is not None:
            print(f"Saved: {item.path}", file=out)
    print(
        "To send for real, e.g. through Gmail with an app password:\n"
        "  SMTPKIT_URL='smtp+starttls://you%40gmail.com@smtp.gmail.com:587?auth=app_password' "
        "SMTPKIT_PASSWORD='your app password' smtpkit send --to ... --subject ... --text ...",
        file=out,
    )
    return status


def _report(result: SendResult, where: str, *, out: TextIO) -> None:
    print(f"Sent {result.message_id} {where}: {result.reply}", file=out)
    print(f"Accepted: {', '.join(result.accepted)}", file=out)
    for address, reply in result.rejected.items():
        print(f"Refused: {address}: {reply}", file=out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

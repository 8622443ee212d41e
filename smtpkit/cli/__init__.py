"""The ``smtpkit`` command line: ``smtpkit send`` (and more subcommands over time).

``smtpkit send`` sends one message. The server comes from ``--url`` or ``SMTPKIT_URL``; the
password may come from ``SMTPKIT_PASSWORD`` instead of the URL. With neither set, it starts
an embedded local server (STARTTLS and AUTH on, loopback only), sends through it, saves what
arrived under ``./smtpkit-outbox/`` and says how to send for real.

Invariants:
    * Exit status 0 only when the server accepted the message; 1 for a failure to send or
      a bad setting (the error and its hint are printed); 2 for bad command-line usage
      (a header option holding a line break included: refused before anything is built).
    * Output into a pipe whose reader has gone (``smtpkit check ... | head -1``) ends the
      command quietly with status 141, as a process killed by SIGPIPE: no traceback. SIGPIPE
      itself stays ignored (Python's default), so a server closing the SMTP socket is still
      an smtpkit error, never a silent death.
    * Hints are printed in the command line's words (``smtp+starttls://``, ``--timeout``,
      ``--cafile``), not the library's Python ones (:mod:`smtpkit.cli._hints`).
    * No password is ever printed: URLs are shown redacted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import mimetypes
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from smtpkit import __version__
from smtpkit.auth import PasswordAuth
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.cli._hints import cli_hint
from smtpkit.cli._oauth import add_oauth_parser, run_oauth
from smtpkit.cli._progress import Progress
from smtpkit.cli._quota import add_quota_parser, run_quota
from smtpkit.cli._serve import add_serve_parser, run_serve
from smtpkit.config import Security
from smtpkit.config._configure import ENV_URL, SubmitterOptions, options_from_url
from smtpkit.config._credentials import ENV_PASSWORD, ca_context
from smtpkit.config._url import parse_url, redact_url
from smtpkit.drivers import Submitter
from smtpkit.engine._result import SendResult
from smtpkit.errors import ConfigurationError, DeliveryUnknown, SMTPError
from smtpkit.message._headers import LINE_BREAK_CHARACTERS

__all__ = ["main"]

#: Where the embedded server saves what it receives.
OUTBOX_DIR = Path("smtpkit-outbox")
#: The user the embedded server accepts (with a fresh random password each run).
EMBEDDED_USER = "smtpkit"
#: The exit status when the reader of our output went away: 128 + SIGPIPE, what a shell
#: reports for a process killed by SIGPIPE (so ``set -o pipefail`` sees the same).
EXIT_BROKEN_PIPE = 141


def _one_line(option: str) -> Callable[[str], str]:
    """An argparse ``type`` refusing header values with a line break (RFC 5322 §2.2).

    Python's ``email`` folder splits header values with ``str.splitlines()``, so VT, FF,
    FS, GS, RS, NEL, U+2028 and U+2029 end a header line as CR and LF do: any of them in a
    subject or an address would let the value add headers (header injection).
    """

    def check(value: str) -> str:
        for char in value:
            if char in LINE_BREAK_CHARACTERS:
                raise argparse.ArgumentTypeError(
                    f"{option} must be one line: it contains a line break (U+{ord(char):04X}); "
                    "header values cannot span lines"
                )
        return value

    check.__name__ = option  # argparse names the type in some messages
    return check


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="smtpkit",
        description="Send mail through SMTP submission servers.",
    )
    parser.add_argument("--version", action="version", version=f"smtpkit {__version__}")
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
    send.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="ADDR",
        type=_one_line("--to"),
        help="recipient",
    )
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
    for option, what in (("--cc", "Cc recipient"), ("--bcc", "Bcc recipient")):
        send.add_argument(
            option, action="append", default=[], metavar="ADDR", type=_one_line(option), help=what
        )
    send.add_argument(
        "--from", dest="sender", metavar="ADDR", type=_one_line("--from"), help="From address"
    )
    send.add_argument("--subject", required=True, type=_one_line("--subject"), help="subject line")
    send.add_argument("--text", help="plain-text body (--text and/or --html is required)")
    send.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="HTML body read from FILE (UTF-8); with --text, sent as its alternative",
    )
    send.add_argument(
        "--attach", action="append", default=[], metavar="FILE", type=Path, help="attachment"
    )
    send.add_argument("--url", help="server URL (default: $SMTPKIT_URL)")
    send.add_argument("--timeout", type=float, default=30.0, help="seconds per step")
    send.add_argument(
        "--cafile",
        help="trust this PEM CA file instead of the system's (e.g. the one smtpkit serve "
        "prints); also ?cafile=PATH in the URL",
    )
    add_check_parser(sub)
    add_oauth_parser(sub)
    add_serve_parser(sub)
    add_quota_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        try:
            status = _run(argv)
        finally:
            # Write what is buffered now, so a closed pipe shows here and not as an
            # "Exception ignored" message when the interpreter flushes at exit.
            sys.stdout.flush()
            sys.stderr.flush()
    except BrokenPipeError:
        _discard_output()
        return EXIT_BROKEN_PIPE
    return status


def _discard_output() -> None:
    """Point stdout and stderr at /dev/null, so nothing more is written to a dead pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        # A stream that is not a real file (a test's StringIO) has nothing to redirect.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "send":
        if not args.to and args.to_file is None:
            parser.error("send: one of --to ADDR or --to-file FILE is required")
        if args.text is None and args.html is None:
            parser.error("send: one of --text TEXT or --html FILE is required")
        return _send(args, out=sys.stdout, err=sys.stderr)
    if args.command == "check":
        return run_check(args, out=sys.stdout, err=sys.stderr)
    if args.command == "oauth":
        return run_oauth(args, sys.stdout, sys.stderr)
    if args.command == "serve":
        return run_serve(args, sys.stdout, sys.stderr)
    if args.command == "quota":
        return run_quota(args, sys.stdout, sys.stderr)
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
    html = _read_html(args.html)
    if args.each or args.to_file is not None:
        return [_build_message(args, default_from, [address], html) for address in recipients]
    return [_build_message(args, default_from, recipients, html)]


def _read_html(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the HTML body {path}: {error.strerror}", hint="check the --html path"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"the HTML body {path} is not UTF-8 text", hint="save the file as UTF-8"
        ) from None


def _build_message(
    args: argparse.Namespace, default_from: str, recipients: list[str], html: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = args.sender or default_from
    message["To"] = ", ".join(recipients)
    if args.cc:
        message["Cc"] = ", ".join(args.cc)
    if args.bcc:
        message["Bcc"] = ", ".join(args.bcc)
    message["Subject"] = args.subject
    if args.text is not None:
        message.set_content(args.text)
        if html is not None:
            # RFC 2046 §5.1.4: alternatives in increasing faithfulness, the plain text first.
            message.add_alternative(html, subtype="html")
    else:
        message.set_content(html or "", subtype="html")
    for path in args.attach:
        if any(char in LINE_BREAK_CHARACTERS for char in path.name):
            raise ConfigurationError(
                f"the attachment name {path.name!r} contains a line break",
                hint="rename the file: its name goes into a header",
            )
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
        hint = cli_hint(error)
        if hint:
            print(f"hint: {hint}", file=err)
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
            advice = cli_hint(outcome)
            shown = f"{outcome.message} (hint: {advice})" if advice else outcome.message
            print(f"Failed: {message['To']}: {type(outcome).__name__}: {shown}", file=err)
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
    overrides: SubmitterOptions = {"timeout": args.timeout}
    if args.cafile:
        overrides["tls_context"] = ca_context(args.cafile, what="--cafile")
    options = options_from_url(url, password=os.environ.get(ENV_PASSWORD) or None, **overrides)
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

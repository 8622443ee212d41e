"""``smtpkit serve``: a local development SMTP server for the terminal.

Runs :class:`~smtpkit.testing.LocalServer` in the foreground: loopback only, STARTTLS or
implicit TLS with a certificate authority generated for this run (its file is printed, so
clients can verify the server), AUTH with the given credentials or any, one line per received
message, and every message saved as ``.eml``::

    $ smtpkit serve --port 2525 --user dev@example.test --password s3cret
    smtpkit serve: listening on smtp+starttls://127.0.0.1:2525 (STARTTLS required)
    AUTH: required, as dev@example.test
    CA certificate: /home/me/project/smtpkit-mail/ca.pem
    Saving messages in: /home/me/project/smtpkit-mail
    ...
    12:00:03  me@example.test -> you@example.test  "Hello"  412 bytes  smtpkit-mail/...eml

Invariants:
    * The server never listens on a non-loopback address: such a ``--host`` is refused
      (exit status 1) before anything is bound.
    * Ctrl-C (SIGINT) or SIGTERM stops the server cleanly: the listener and sessions are
      closed and the exit status is 0. The CA file stays, so clients keep verifying files
      they were already given until the next run writes a new one.
    * The password is never printed.
    * When the reader of the output goes away (``smtpkit serve | head``), the server stops
      and the command ends quietly: a message line never fails a client's delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from smtpkit.config import Security
from smtpkit.errors import ConfigurationError

if TYPE_CHECKING:
    from smtpkit.testing import LocalServer, ReceivedMessage

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SAVE_DIR",
    "ENV_SERVE_PASSWORD",
    "add_serve_parser",
    "run_serve",
]

#: The default port: unprivileged, and the usual one for development mail servers.
DEFAULT_PORT = 2525
#: Where messages (and the CA certificate) go by default.
DEFAULT_SAVE_DIR = Path("smtpkit-mail")
#: Read the AUTH password from here when ``--password`` is not given (keeps it out of ``ps``).
ENV_SERVE_PASSWORD = "SMTPKIT_SERVE_PASSWORD"  # noqa: S105 - the variable's name
#: Seconds between checks for a stop request while waiting for Ctrl-C.
_POLL = 0.2
#: Longest subject shown on a message line.
_SUBJECT_WIDTH = 60

_SECURITY = {"starttls": Security.STARTTLS, "tls": Security.TLS, "none": Security.NONE}
_MODE_TEXT = {
    Security.STARTTLS: "STARTTLS required",
    Security.TLS: "implicit TLS",
    Security.NONE: "plaintext, no TLS",
}


def add_serve_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``subparsers`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local development SMTP server (loopback only)",
        description=(
            "Run an SMTP server on this machine for development: it prints a line for each "
            "message it receives and saves it as .eml. TLS uses a certificate authority made "
            "for this run; its file is printed. Stop with Ctrl-C."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--tls",
        choices=sorted(_SECURITY),
        default="starttls",
        help="starttls (default, like port 587), tls (implicit, like 465) or none",
    )
    parser.add_argument("--user", help="require AUTH as this user (with --password)")
    parser.add_argument(
        "--password", help=f"the password for --user (default: ${ENV_SERVE_PASSWORD})"
    )
    parser.add_argument(
        "--any-auth",
        action="store_true",
        help="require AUTH but accept any user, password or OAuth2 token",
    )
    parser.add_argument(
        "--save-dir",
        type=Path,
        default=DEFAULT_SAVE_DIR,
        help=f"where to save messages as .eml (default ./{DEFAULT_SAVE_DIR})",
    )
    parser.add_argument(
        "--ca-file", type=Path, help="where to write the CA certificate (default SAVE_DIR/ca.pem)"
    )
    return parser


def run_serve(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    stop: threading.Event | None = None,
) -> int:
    """Run ``smtpkit serve`` until Ctrl-C, SIGTERM or ``stop`` is set; returns the exit status.

    Exit status: 0 after a clean stop, 1 for a setting that cannot work (a non-loopback
    host, a port in use, a missing password), 2 for contradictory options.
    """
    if args.any_auth and args.user:
        print("smtpkit serve: give either --user/--password or --any-auth", file=err)
        return 2
    password = args.password or os.environ.get(ENV_SERVE_PASSWORD)
    if bool(args.user) != bool(password):
        print(
            f"smtpkit serve: --user needs a password (--password or ${ENV_SERVE_PASSWORD}), "
            "and a password needs --user",
            file=err,
        )
        return 1
    try:
        from smtpkit.testing import LocalServer  # noqa: PLC0415 - optional dependency
    except ImportError:
        print("smtpkit serve: needs the testing extra: pip install 'smtpkit[testing]'", file=err)
        return 1
    security = _SECURITY[args.tls]
    save_dir: Path = args.save_dir.resolve()
    ca_file: Path = (args.ca_file or save_dir / "ca.pem").resolve()
    stop = stop or threading.Event()
    printer = _Printer(out, on_closed=stop.set)
    try:
        server = LocalServer(
            security=security,
            host=args.host,
            port=args.port or None,
            credentials={args.user: password} if args.user and password else None,
            require_auth=bool(args.user) or args.any_auth,
            auth_mechanisms=None if args.user else ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"),
            save_dir=save_dir,
            on_message=printer.message,
            ca_path=ca_file if security is not Security.NONE else None,
        )
        if security is not Security.NONE:
            ca_file.parent.mkdir(parents=True, exist_ok=True)
        server.start()
    except (ConfigurationError, OSError) as error:
        print(f"smtpkit serve: {error}", file=err)
        return 1
    try:
        with _stop_on_sigterm(stop):
            printer.line(_announcement(server, args, ca_file))
            while not stop.wait(_POLL):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    printer.line(f"smtpkit serve: stopped after {printer.count} message(s).")
    if printer.closed:
        raise BrokenPipeError("the output's reader went away")  # main() ends quietly
    return 0


def _announcement(server: LocalServer, args: argparse.Namespace, ca_file: Path) -> str:
    security = server.security
    if args.user:
        auth = f"required, as {args.user}"
    elif args.any_auth:
        auth = "required, any credentials accepted (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER)"
    else:
        auth = "optional, any credentials accepted"
    lines = [
        f"smtpkit serve: listening on {server.url} ({_MODE_TEXT[security]})",
        f"AUTH: {auth}",
    ]
    if security is not Security.NONE:
        lines += [
            f"CA certificate: {ca_file}",
            f"  (new for this run; clients verify with: smtpkit send --cafile {ca_file}; "
            f"in Python ssl.create_default_context(cafile={str(ca_file)!r}); or SSL_CERT_FILE)",
        ]
    lines += [f"Saving messages in: {args.save_dir.resolve()}", "Press Ctrl-C to stop."]
    return "\n".join(lines)


class _Printer:
    """Prints one line per received message; called on the server thread.

    A closed output (its reader gone) is not the client's problem: the line is dropped,
    ``closed`` is set and ``on_closed`` asks the server to stop.
    """

    def __init__(self, out: TextIO, on_closed: Callable[[], None]) -> None:
        self._out = out
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self.count = 0
        self.closed = False

    def line(self, text: str) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                print(text, file=self._out, flush=True)
            except BrokenPipeError:
                self.closed = True
                self._on_closed()

    def message(self, received: ReceivedMessage) -> None:
        with self._lock:
            self.count += 1
        self.line(describe(received, datetime.now().astimezone()))


def describe(received: ReceivedMessage, when: datetime) -> str:
    """The line printed for a message: time, sender, recipients, subject, size, file."""
    subject = _printable(str(received.message.get("Subject", "")))
    if len(subject) > _SUBJECT_WIDTH:
        subject = subject[: _SUBJECT_WIDTH - 3] + "..."
    sender = _printable(received.sender) or "<>"
    recipients = ", ".join(_printable(rcpt) for rcpt in received.recipients)
    saved = f"  {received.path}" if received.path is not None else ""
    return (
        f"{when:%H:%M:%S}  {sender} -> {recipients}  {subject!r}  {len(received.raw)} bytes{saved}"
    )


def _printable(text: str) -> str:
    # Header values can carry anything after decoding: never let one move the cursor.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


@contextlib.contextmanager
def _stop_on_sigterm(event: threading.Event) -> Iterator[None]:
    """While active, SIGTERM sets ``event`` (signals can only be handled on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

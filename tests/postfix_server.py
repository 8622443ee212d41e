"""A private Postfix instance on 127.0.0.1 for integration tests (CHUNKING/BDAT, PIPELINING).

aiosmtpd and smtp-sink do not implement CHUNKING (RFC 3030); Postfix's ``smtpd`` does. This
runs a throw-away Postfix next to (never instead of) any system instance: its own
``config_directory``, ``queue_directory`` and ``data_directory`` under a temporary directory,
its ``master`` in the foreground as a child process (``master -c DIR -d``) in its own
process group, one ``smtpd`` listener on ``127.0.0.1:<free port>`` and nothing else on the
network::

    with PostfixServer(reject={"nobody@example.test": "550 5.1.1 No such user"}) as server:
        Submitter(server.host, server.port, security=Security.NONE).send(msg)
        [delivery] = server.wait_for_deliveries(1)

Every message is accepted for any domain from 127.0.0.0/8 and "delivered" by a ``pipe``
transport (``capture``) that writes it, one file per recipient, to ``out/``: Postfix adds
``Return-Path:`` (envelope sender), ``X-Original-To:`` (envelope recipient) and its own
``Received:`` line, and the file has LF line ends (Postfix stores lines without CRLF).
Postfix logs to ``maillog`` (``maillog_file`` with the ``postlog`` service), which
:meth:`PostfixServer.sessions` and :meth:`PostfixServer.message_ids` read.

Requirements: Linux, root (``master`` binds and drops to ``mail_owner``), the ``postfix``
and ``nobody`` users, Postfix >= 3.4 (``maillog_file``). :func:`unavailable_reason` says
why a test must be skipped.

Invariants:
    * Only 127.0.0.1 is listened on; ``default_transport`` and every other transport is the
      local ``capture`` pipe, so nothing ever leaves the machine.
    * ``stop()`` is idempotent and kills the whole process group (master, smtpd, qmgr, pipe
      children), waiting a bounded time; ``master -e`` makes an orphaned instance exit by
      itself after :data:`MAX_LIFETIME` seconds even if ``stop()`` never ran.
    * Every wait is bounded in time.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["Delivery", "PostfixServer", "Session", "group_alive", "unavailable_reason"]

HOST = "127.0.0.1"
POSTCONF = Path("/usr/sbin/postconf")
#: Seconds after which an orphaned master exits by itself (``master -e``).
MAX_LIFETIME = 600
#: Seconds start() waits for the listener.
START_TIMEOUT = 15.0
#: Seconds stop() waits for the process group to exit after SIGTERM, then after SIGKILL.
STOP_GRACE = 5.0

# Queue subdirectories, owners and modes as "postfix set-permissions" creates them
# (postfix-files). Creating them here takes milliseconds; set-permissions takes ~2.5 s.
_QUEUE_DIRS = {
    "active": ("postfix", "root", 0o700),
    "bounce": ("postfix", "root", 0o700),
    "corrupt": ("postfix", "root", 0o700),
    "defer": ("postfix", "root", 0o700),
    "deferred": ("postfix", "root", 0o700),
    "flush": ("postfix", "root", 0o700),
    "hold": ("postfix", "root", 0o700),
    "incoming": ("postfix", "root", 0o700),
    "private": ("postfix", "root", 0o700),
    "saved": ("postfix", "root", 0o700),
    "trace": ("postfix", "root", 0o700),
    "maildrop": ("postfix", "postdrop", 0o730),
    "public": ("postfix", "postdrop", 0o710),
    "pid": ("root", "root", 0o755),
}

_MASTER_CF = """\
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
capture   unix  -       n       n       -       -       pipe
  flags=OR user=nobody argv={script} ${{queue_id}}
"""

# Runs as "nobody": write to a temporary name, then rename, so a reader never sees half a file.
_CAPTURE_SH = """\
#!/bin/sh
out='{out}'
name="$1.$$"
cat > "$out/.$name.part" && mv "$out/.$name.part" "$out/$name.eml"
"""

_DISCONNECT = re.compile(r"postfix/smtpd\[\d+\]: disconnect from \S+ (?P<counts>.*)$")
_CLEANUP_ID = re.compile(r"postfix/cleanup\[\d+\]: (?P<qid>[0-9A-Za-z]+): message-id=(?P<mid>.*)$")


def _postconf(*args: str) -> str:
    result = subprocess.run(
        [str(POSTCONF), *args], capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.strip()


def unavailable_reason() -> str | None:
    """Why a private Postfix cannot run here, or ``None`` when it can."""
    if not POSTCONF.exists() or shutil.which("postfix", path="/usr/sbin") is None:
        return (
            "Postfix is not installed (no /usr/sbin/postconf); "
            "run scripts/ensure-test-services.sh as root to install it"
        )
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "a private Postfix master must run as root (it binds and drops privileges)"
    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"the {user!r} user does not exist"
    try:
        version = _postconf("-dh", "mail_version")
        daemon_directory = _postconf("-dh", "daemon_directory")
    except (OSError, subprocess.SubprocessError) as error:
        return f"postconf failed: {error}"
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (3, 4):
        return f"Postfix {version} is too old (maillog_file needs 3.4)"
    if not (Path(daemon_directory) / "master").exists():
        return f"no Postfix master in {daemon_directory}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Delivery:
    """One message the ``capture`` transport received (one per envelope recipient)."""

    path: Path
    raw: bytes  # LF line ends, with Postfix's Return-Path, X-Original-To and Received

    @property
    def message(self) -> EmailMessage:
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"] or "")

    @property
    def recipient(self) -> str:
        """The envelope recipient (``X-Original-To``)."""
        return str(self.message["X-Original-To"] or "")

    @property
    def sender(self) -> str:
        """The envelope sender (``Return-Path`` without the angle brackets)."""
        return str(self.message["Return-Path"] or "").strip("<>")

    @property
    def body(self) -> bytes:
        """Everything after the first empty line, as stored (LF line ends)."""
        _, _, body = self.raw.partition(b"\n\n")
        return body


@dataclass(frozen=True)
class Session:
    """One smtpd session's command counters from its ``disconnect`` log line.

    For ``ehlo=1 mail=50 rcpt=50 bdat=50 quit=1 commands=152`` the counts are
    ``{"ehlo": 1, "mail": 50, ...}``; ``rcpt=1/2`` (one of two accepted) gives 2 for
    ``rcpt`` and 1 in ``accepted["rcpt"]``.
    """

    counts: Mapping[str, int]
    accepted: Mapping[str, int]


class PostfixServer:
    """A private Postfix instance on 127.0.0.1 (see the module docstring).

    Args:
        reject: recipient address to access-map action (e.g. ``"550 5.1.1 No such
            user"``), checked at RCPT.
        root: where to put everything; default a new directory under the system temp
            directory (``pytest``'s ``tmp_path`` is not reachable for the ``nobody`` user),
            removed by ``stop()``.
        settings: further ``main.cf`` parameters, applied last (e.g. ``{"smtpd_timeout":
            "3s"}`` to reproduce a server that gives up on a silent client).
    """

    def __init__(
        self,
        *,
        reject: Mapping[str, str] | None = None,
        root: Path | None = None,
        settings: Mapping[str, str] | None = None,
    ):
        self._reject = dict(reject or {})
        self._settings = dict(settings or {})
        self._given_root = root
        self.root = Path()
        self.port = 0
        self.host = HOST
        self._master: subprocess.Popen[bytes] | None = None
        self._master_out: IO[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        if self._master is not None:
            raise RuntimeError("already running")
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        if self._given_root is not None:
            self.root = self._given_root
            self.root.mkdir(parents=True, exist_ok=True)
        else:
            self.root = Path(tempfile.mkdtemp(prefix="smtpkit-postfix-"))
        try:
            self._configure()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def _configure(self) -> None:
        root = self.root
        if not root.is_absolute():  # never configure (chmod, chown) the working directory
            raise RuntimeError(f"not a private directory: {root!r}")
        root.chmod(0o755)  # the capture script runs as "nobody"
        etc, queue, data, out = root / "etc", root / "queue", root / "data", root / "out"
        for path in (etc, queue, data, out):
            path.mkdir()
        queue.chmod(0o755)
        for name, (user, group, mode) in _QUEUE_DIRS.items():
            path = queue / name
            path.mkdir()
            shutil.chown(path, user, group)
            path.chmod(mode)
        shutil.chown(data, "postfix", "postfix")
        data.chmod(0o700)
        shutil.chown(out, "nobody")
        out.chmod(0o755)
        script = root / "capture.sh"
        script.write_text(_CAPTURE_SH.format(out=out))
        script.chmod(0o755)
        access = etc / "recipient_access"
        access.write_text("".join(f"{addr} {action}\n" for addr, action in self._reject.items()))
        self.port = _free_port()
        (etc / "master.cf").write_text(
            _MASTER_CF.format(listen=f"{HOST}:{self.port}", script=script)
        )
        (etc / "main.cf").write_text("")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(queue),
            "data_directory": str(data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix-test.localdomain",
            "mydomain": "localdomain",
            "inet_interfaces": HOST,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # No local domains, no relay domains: every recipient domain is "remote" and
            # permitted for clients in mynetworks; every transport is the capture pipe.
            "mydestination": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "default_transport": "capture",
            "relay_transport": "capture",
            "local_transport": "capture",
            "virtual_transport": "capture",
            "capture_destination_recipient_limit": "1",  # flag O needs one recipient each
            "smtpd_relay_restrictions": "permit_mynetworks, reject",
            "smtpd_recipient_restrictions": f"check_recipient_access texthash:{access}, permit",
            "smtpd_peername_lookup": "no",
            "smtp_dns_support_level": "disabled",
            "biff": "no",
            "maillog_file": str(root / "maillog"),
            "maillog_file_prefixes": str(root),
            **self._settings,
        }
        _postconf("-c", str(etc), "-e", *(f"{k}={v}" for k, v in settings.items()))
        # Postfix waits until a configuration file is more than a second old (it may still
        # be being edited): backdating saves ~2 s per start.
        past = time.time() - 60
        for path in etc.iterdir():
            os.utime(path, (past, past))

    def _launch(self) -> None:
        etc = self.root / "etc"
        master = Path(_postconf("-dh", "daemon_directory")) / "master"
        # -d: stay in the foreground (a child of this process); -e: exit after
        # MAX_LIFETIME seconds even if stop() is never called. A new session gives master
        # and every daemon it forks one process group that stop() can kill as a whole.
        self._master_out = (self.root / "master.out").open("wb")
        self._master = subprocess.Popen(
            [str(master), "-c", str(etc), "-d", "-e", str(MAX_LIFETIME)],
            stdin=subprocess.DEVNULL,
            stdout=self._master_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG": str(etc)},
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._master.poll() is not None:
                raise RuntimeError(
                    f"Postfix master exited with status {self._master.returncode}: "
                    f"{self._diagnostics()}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0) as sock:
                    sock.settimeout(2.0)
                    greeting = sock.recv(512)
                    sock.sendall(b"QUIT\r\n")
                if greeting.startswith(b"220"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Postfix did not answer on {HOST}:{self.port} within "
                    f"{START_TIMEOUT:g} s: {self._diagnostics()}"
                )
            time.sleep(0.05)

    def _diagnostics(self) -> str:
        parts = []
        for name in ("master.out", "maillog"):
            path = self.root / name
            if path.exists():
                parts.append(f"{name}: {path.read_text(errors='replace')[-2000:]!r}")
        return "; ".join(parts) or "no output"

    def stop(self) -> None:
        """Stop master and every process it started; remove the directory. Idempotent."""
        master, self._master = self._master, None
        try:
            if master is not None:
                _stop_group(master)
        finally:
            if self._master_out is not None:
                self._master_out.close()
                self._master_out = None
            if self._given_root is None and self.root != Path() and self.root.exists():
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def master_pid(self) -> int | None:
        """The master's process id (also its process group id) while running."""
        return self._master.pid if self._master is not None else None

    # -- what arrived --------------------------------------------------------------------

    def deliveries(self) -> list[Delivery]:
        """Every message the capture transport has written so far, oldest first."""
        paths = sorted((self.root / "out").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
        return [Delivery(path, path.read_bytes()) for path in paths]

    def wait_for_deliveries(self, count: int, timeout: float = 15.0) -> list[Delivery]:
        """Wait until at least ``count`` deliveries exist; return all of them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries()
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"expected {count} deliveries within {timeout:g} s, found {len(found)}; "
                    f"log tail: {self.log()[-3000:]}"
                )
            time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def sessions(self) -> list[Session]:
        """The command counters of every finished smtpd session, oldest first."""
        sessions = []
        for line in self.log().splitlines():
            match = _DISCONNECT.search(line)
            if match is None:
                continue
            counts: dict[str, int] = {}
            accepted: dict[str, int] = {}
            for item in match["counts"].split():
                name, _, value = item.partition("=")
                good, _, total = value.partition("/")
                counts[name] = int(total or good)
                accepted[name] = int(good)
            sessions.append(Session(counts, accepted))
        return sessions

    def wait_for_sessions(self, count: int, timeout: float = 10.0) -> list[Session]:
        """Wait until at least ``count`` smtpd sessions have logged their end."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.sessions()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def message_ids(self) -> dict[str, str]:
        """Queue id to Message-ID for every message cleanup accepted (from the log)."""
        return {
            match["qid"]: match["mid"]
            for line in self.log().splitlines()
            if (match := _CLEANUP_ID.search(line)) is not None
        }


def _stop_group(master: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master's process group, wait, then SIGKILL whatever is left."""
    pgid = master.pid  # start_new_session: the master leads its own group
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            if master.poll() is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL was sent
        master.wait(timeout=STOP_GRACE)


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies do not count: in a
    container, PID 1 may never reap the daemons master leaves behind)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process just went away
            continue
        # After "(comm)": state, ppid, pgrp.
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False

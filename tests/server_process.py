"""A LocalServer in a child process, for tests that measure the client's own memory or CPU.

LocalServer runs in a thread and keeps every message it accepts; in the test's own process
its memory and CPU would be counted with the client's. :class:`ServerProcess` starts one in
a child Python (``Security.NONE`` on 127.0.0.1), optionally failing RCPT at random from a
fixed seed, and hands back, when stopped, the Message-ID of every message it accepted::

    with ServerProcess(rcpt_failure_rate=0.01) as server:
        ...send to server.host, server.port...
    server.received  # ["<a@example.test>", ...] in arrival order

Invariants:
    * The child listens on 127.0.0.1 only, and exits when its stdin closes (the parent
      going away ends it too); every wait for it is bounded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from types import TracebackType
from typing import Self

__all__ = ["ServerProcess"]

#: Seconds to wait for the child to start, and to report and exit.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0

_CHILD = r"""
import random, re, sys
from smtpkit.config import Security
from smtpkit.testing import LocalServer

rate, seed = float(sys.argv[1]), int(sys.argv[2])
rng = random.Random(seed)

def faults(phase):
    if phase == "rcpt" and rng.random() < rate:
        return "451 4.3.0 Try again later"
    return None

message_id = re.compile(rb"^Message-ID: (<[^>\r\n]+>)\r?$", re.IGNORECASE | re.MULTILINE)
with LocalServer(security=Security.NONE, faults=faults if rate else None) as server:
    print(server.port, flush=True)
    sys.stdin.readline()  # the parent says stop (or goes away: EOF)
    received = server.messages
    errors = server.server_errors
for message in received:
    found = message_id.search(message.raw.split(b"\r\n\r\n", 1)[0])
    print(found.group(1).decode() if found else "<none>")
print(f"errors {len(errors)}", flush=True)
"""


class ServerProcess:
    """A LocalServer (``Security.NONE``) in a child process; see the module docstring."""

    host = "127.0.0.1"

    def __init__(self, *, rcpt_failure_rate: float = 0.0, seed: int = 1) -> None:
        self._args = [str(rcpt_failure_rate), str(seed)]
        self._child: subprocess.Popen[str] | None = None
        self.port = 0
        #: Message-IDs of the accepted messages, set by :meth:`stop`.
        self.received: list[str] = []
        #: Exceptions raised inside the server, counted by :meth:`stop`.
        self.server_errors = 0

    def start(self) -> Self:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._child = child
        assert child.stdout is not None
        line = _read_line(child, START_TIMEOUT)
        self.port = int(line)
        return self

    def stop(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        try:
            out, _ = child.communicate("stop\n", timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate(timeout=STOP_TIMEOUT)
            raise
        lines = out.splitlines()
        self.received = [line for line in lines if line.startswith("<")]
        self.server_errors = int(lines[-1].split()[1]) if lines[-1:] else -1

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's first line (its port), waited for at most ``timeout`` seconds."""
    lines: list[str] = []
    stdout = child.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0].strip():
        child.kill()
        child.wait(timeout)
        raise RuntimeError("the LocalServer child process did not start")
    return lines[0]

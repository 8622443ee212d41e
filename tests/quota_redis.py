"""A private ``redis-server`` on 127.0.0.1 for the quota tests, started and stopped by them.

::

    with RedisServer(tmp_path) as server:           # --save '' --appendonly no
        store = RedisQuotaStore(server.url)
        server.restart()                            # SIGKILL, then the same port again

``RedisServer(tmp_path, persistent=True)`` keeps its data across ``restart()`` with an
append-only file synced at every write (``--appendonly yes --appendfsync always``).

Invariants:
    * Only 127.0.0.1 is listened on, on a free port; the server runs in its own process
      group and dies with the test process (``PR_SET_PDEATHSIG`` on Linux), so a crashed
      test leaves no server behind.
    * Every wait is bounded; ``stop()`` is idempotent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

__all__ = ["RedisServer", "unavailable_reason"]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def unavailable_reason() -> str | None:
    """Why the Redis tests cannot run here, or ``None``."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (scripts/ensure-test-services.sh installs it)"
    try:
        import redis  # noqa: F401, PLC0415
    except ImportError:
        return "the redis package is not installed (pip install -e '.[dev]')"
    return None


def skip_without_redis() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc_name, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RedisServer:
    """One throw-away ``redis-server`` (see the module docstring)."""

    def __init__(self, directory: Path, *, persistent: bool = False) -> None:
        self.directory = directory
        self.persistent = persistent
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        persistence = (
            # always: Redis writes and fsyncs a command's AOF record before it replies.
            # With everysec a busy disk (a background fsync still running) postpones the
            # write for up to 2 s while replies go out, so a SIGKILL then loses counts the
            # workers were already told about (seen as an over-grant after the restart).
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
                "--logfile",
                "redis.log",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run at this point
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if self._ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT} s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown (nothing is saved at exit)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

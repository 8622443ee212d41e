"""Run Postfix's ``smtp-sink`` on 127.0.0.1 for the duration of a ``with`` block.

``smtp-sink`` accepts any envelope, throws every message away and answers as fast as the
machine allows, so the client is what is measured. Usage: ``smtp-sink [options]
host:port backlog``; the options used here:

* ``-c``  print running counters (session, message and recipient counts) on stdout;
* ``-p``  do not announce PIPELINING (it is announced by default);
* ``-u user``  the user to switch to after binding; required when running as root;
* ``-t seconds``  per-command timeout (default 100).

It announces PIPELINING, 8BITMIME, AUTH PLAIN LOGIN (and accepts any credentials),
ENHANCEDSTATUSCODES and DSN, but not SIZE, STARTTLS or CHUNKING, and accepts messages of any
size. Run as a script for a manual check::

    python -m benchmarks.sink --seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from benchmarks.common import HOST, free_port, wait_for_port

__all__ = ["SMTP_SINK", "Sink"]

SMTP_SINK = "/usr/sbin/smtp-sink"


class Sink:
    """``smtp-sink`` on ``127.0.0.1:<free port>``; always stopped on exit.

    Args:
        pipelining: announce PIPELINING (RFC 2920).
        count: pass ``-c``; the counters go to ``log`` (or are discarded).
        backlog: the listen(2) backlog.
        port: the port; ``None`` picks a free one.
        log: a file for smtp-sink's stdout and stderr.
    """

    def __init__(
        self,
        *,
        pipelining: bool = True,
        count: bool = False,
        backlog: int = 256,
        port: int | None = None,
        log: Path | None = None,
    ) -> None:
        self.pipelining = pipelining
        self.count = count
        self.backlog = backlog
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def command(self) -> list[str]:
        """The smtp-sink command line."""
        executable = shutil.which("smtp-sink") or SMTP_SINK
        args = [executable]
        if self.count:
            args.append("-c")
        if not self.pipelining:
            args.append("-p")
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        return [*args, f"{self.host}:{self.port}", str(self.backlog)]

    def start(self) -> Self:
        if not Path(SMTP_SINK).exists() and shutil.which("smtp-sink") is None:
            raise FileNotFoundError("smtp-sink not found: run benchmarks/setup.sh")
        self._log_file = open(self.log, "wb") if self.log else None  # noqa: SIM115
        output = self._log_file if self._log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            self.command(), stdout=output, stderr=output, stdin=subprocess.DEVNULL
        )
        try:
            wait_for_port(self.port)
        except BaseException:
            self.stop()
            raise
        if self._process.poll() is not None:
            self.stop()
            raise RuntimeError(f"smtp-sink exited at start: {self.command()}")
        return self

    def stop(self) -> None:
        """Terminate smtp-sink (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long")
    args = parser.parse_args()
    with Sink(port=args.port, pipelining=not args.no_pipelining) as sink:
        print(f"smtp-sink listening on {sink.host}:{sink.port} for {args.seconds:g} s", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.seconds)


if __name__ == "__main__":
    main()

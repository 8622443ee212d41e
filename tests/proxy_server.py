"""A real proxy server for the proxy tests: pproxy (PyPI), run as a subprocess on loopback.

One pproxy process serves six listeners on free 127.0.0.1 ports: SOCKS5, SOCKS4 and HTTP
CONNECT, each without and with authentication. ``--auth 0`` makes pproxy ask every
connection for its credentials (by default it remembers an address that authenticated
once, which would let a wrong password through after a right one). With ``-v`` it logs each
tunnel it opens (``socks5 127.0.0.1:PORT -> 127.0.0.1:2525``): the tests read that log to
prove the traffic went through the proxy.

pproxy is a development dependency; without it the tests that need it skip, saying why.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The proxy credentials the authenticated listeners accept.
PROXY_USER = "proxyuser"
PROXY_PASSWORD = "pr0xy-s3cret-pw"
#: The SOCKS4 listener's user ID (SOCKS4 carries no password).
SOCKS4_USER_ID = "socks4-user"
#: Seconds to wait for pproxy to listen.
START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ProxyServer:
    """The running pproxy: a port per listener and its log."""

    ports: dict[str, int]
    log_path: Path

    def url(self, name: str, *, user: str | None = None, password: str | None = None) -> str:
        """The proxy URL of listener ``name`` (``socks5``, ``socks5-auth``, ...)."""
        scheme = name.split("-", 1)[0]
        credentials = ""
        if user is not None:
            credentials = user + (f":{password}" if password is not None else "") + "@"
        return f"{scheme}://{credentials}127.0.0.1:{self.ports[name]}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """The log once it contains ``text`` (pproxy writes it asynchronously)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the proxy log:\n{log}")
            time.sleep(0.02)
        return log


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@contextlib.contextmanager
def running_pproxy() -> Iterator[ProxyServer]:
    """Start pproxy with the six listeners; stop it at the end."""
    if importlib.util.find_spec("pproxy") is None:
        pytest.skip("pproxy is not installed (pip install -e '.[dev]' brings it)")
    listeners = {
        "socks5": "socks5://127.0.0.1:{port}",
        "socks5-auth": f"socks5://127.0.0.1:{{port}}#{PROXY_USER}:{PROXY_PASSWORD}",
        "socks4": "socks4://127.0.0.1:{port}",
        "socks4-auth": f"socks4://127.0.0.1:{{port}}#{SOCKS4_USER_ID}",
        "http": "http://127.0.0.1:{port}",
        "http-auth": f"http://127.0.0.1:{{port}}#{PROXY_USER}:{PROXY_PASSWORD}",
    }
    ports = {name: free_port() for name in listeners}
    command = [sys.executable, "-m", "pproxy", "--auth", "0", "-v"]
    for name, template in listeners.items():
        command += ["-l", template.format(port=ports[name])]
    with tempfile.TemporaryDirectory() as directory:
        log_path = Path(directory) / "pproxy.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not all(_listening(port) for port in ports.values()):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pproxy did not start:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.05)
            yield ProxyServer(ports, log_path)
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

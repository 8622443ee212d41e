"""A loopback TCP proxy that delays every chunk by a fixed time in each direction.

This kernel has no netem, so a round-trip time is simulated here: each chunk read from one
side is written to the other side at ``arrival time + delay``, in order, with no other
throughput limit (back-pressure from a slow reader still applies). A 10 ms delay gives a
20 ms round trip. The TCP handshake with the proxy itself is not delayed, so a server's
greeting costs half a round trip and connecting costs none. Timers fire a little late
(measured here: a 20 ms round trip comes out at about 20.6-21 ms), so scripts that count
round trips measure the real round trip through the proxy and divide by that.

From Python, in a background thread::

    with DelayProxy(target_port=2525, delay=0.010) as proxy:
        smtplib.SMTP(proxy.host, proxy.port)

or in a child process (keeps the proxy's CPU time and GIL out of the measured process)::

    with ProxyProcess(target_port=2525, delay=0.010) as proxy: ...

From the shell (prints ``listening 127.0.0.1:<port>``; stops after ``--seconds``)::

    python -m benchmarks.delay_proxy --target-port 2525 --delay-ms 10
    python -m benchmarks.delay_proxy --check    # measure a ping-pong round trip through it
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import IO, Self

from benchmarks.common import HOST, REPO

__all__ = ["DelayProxy", "ProxyProcess", "measure_rtt"]

#: Queue markers: half-close the write side, or close the connection.
_EOF = b""
_CLOSE = None


class _Side(asyncio.Protocol):
    """One socket of a proxied connection; writes what the other side read, ``delay`` later."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        on_connect: Callable[[_Side], None] | None = None,
    ) -> None:
        self.loop = loop
        self.delay = delay
        self._on_connect = on_connect
        self.peer: _Side | None = None
        self.transport: asyncio.Transport | None = None
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- reading: hand the chunk to the peer with its due time -------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self._on_connect is not None:
            self._on_connect(self)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.enqueue(self.loop.time() + self.delay, data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            self.peer.enqueue(self.loop.time() + self.delay, _EOF)
        return True  # keep the other direction open (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.peer is not None:
            self.peer.enqueue(self.loop.time() + self.delay, _CLOSE)

    # -- back-pressure: a full write buffer here stops reading on the peer -----------------

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    # -- writing: a single timer for the head of the queue keeps the order ----------------

    def enqueue(self, due: float, item: bytes | None) -> None:
        if self._closed:
            return
        self._queue.append((due, item))
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self._timer = None
        now = self.loop.time()
        transport = self.transport
        while self._queue and self._queue[0][0] <= now:
            _, item = self._queue.popleft()
            if transport is None or self._closed:
                self._queue.clear()
                return
            if item is _CLOSE:
                transport.close()
                self._queue.clear()
                return
            if item == _EOF:
                try:
                    if transport.can_write_eof():
                        transport.write_eof()
                except OSError:  # the other end is already gone
                    transport.close()
                    self._queue.clear()
                    return
            else:
                transport.write(item)
        if self._queue:
            self._timer = self.loop.call_at(self._queue[0][0], self._flush)


class _Listener:
    """Accepts connections and pairs each with a new connection to the target."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target_port: int, delay: float) -> None:
        self.loop = loop
        self.target_port = target_port
        self.delay = delay
        self.sides: set[_Side] = set()

    def make_client_side(self) -> _Side:
        side = _Side(self.loop, self.delay, on_connect=self._connect_upstream)
        self.sides.add(side)
        return side

    def _connect_upstream(self, client: _Side) -> None:
        # Read nothing from the client until the upstream connection exists.
        assert client.transport is not None
        client.transport.pause_reading()
        task = self.loop.create_task(self._open(client))
        task.add_done_callback(lambda t: t.exception())  # errors are handled in _open

    async def _open(self, client: _Side) -> None:
        upstream = _Side(self.loop, self.delay)
        try:
            await self.loop.create_connection(lambda: upstream, HOST, self.target_port)
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        self.sides.add(upstream)
        client.peer, upstream.peer = upstream, client
        if client.transport is not None and not client.transport.is_closing():
            client.transport.resume_reading()

    def close_all(self) -> None:
        for side in self.sides:
            if side.transport is not None:
                side.transport.abort()
        self.sides.clear()


class DelayProxy:
    """The proxy on an event loop in a background thread (a context manager).

    Args:
        target_port: the server's port on 127.0.0.1.
        delay: seconds added to each direction (the round trip grows by twice this).
        port: the port to listen on; 0 picks a free one (read it from ``.port``).
    """

    def __init__(self, target_port: int, delay: float, port: int = 0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.host = HOST
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> Self:
        ready = threading.Event()
        errors: list[BaseException] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._stop = asyncio.Event()
            listener = _Listener(loop, self.target_port, self.delay)
            try:
                server = await loop.create_server(listener.make_client_side, HOST, self.port)
            except OSError as error:
                errors.append(error)
                ready.set()
                return
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            try:
                await self._stop.wait()
            finally:
                server.close()
                listener.close_all()
                await server.wait_closed()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self.stop()
            raise errors[0]
        return self

    def stop(self) -> None:
        """Close the listener and every proxied connection; join the thread. Idempotent."""
        loop, stop_event, thread = self._loop, self._stop, self._thread
        self._loop = self._stop = self._thread = None
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop_event.set)
        if thread is not None:
            thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProxyProcess:
    """The proxy in a child Python process (a context manager); ``.port`` once started."""

    def __init__(self, target_port: int, delay: float, *, max_seconds: float = 900.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.max_seconds = max_seconds
        self.host = HOST
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> Self:
        command = [
            sys.executable,
            "-m",
            "benchmarks.delay_proxy",
            "--target-port",
            str(self.target_port),
            "--delay-ms",
            str(self.delay * 1000),
            "--seconds",
            str(self.max_seconds),
        ]
        self._process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        stdout: IO[str] | None = self._process.stdout
        line = stdout.readline() if stdout is not None else ""
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"delay proxy did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _echo_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                conn.sendall(data)


def measure_rtt(delay: float, rounds: int = 20, *, in_process: bool = False) -> float:
    """Median seconds for a 1-byte ping-pong through a proxy with ``delay`` each way."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((HOST, 0))
    listener.listen(4)
    stop = threading.Event()
    echo = threading.Thread(target=_echo_server, args=(listener, stop), daemon=True)
    echo.start()
    port = listener.getsockname()[1]
    proxy: DelayProxy | ProxyProcess = (
        DelayProxy(port, delay) if in_process else ProxyProcess(port, delay)
    )
    samples: list[float] = []
    try:
        with proxy, socket.create_connection((HOST, proxy.port), timeout=5) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(rounds):
                started = time.perf_counter()
                client.sendall(b"x")
                if client.recv(1) != b"x":
                    raise RuntimeError("echo through the proxy failed")
                samples.append(time.perf_counter() - started)
    finally:
        stop.set()
        echo.join(5)
        listener.close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-port", type=int, help="the server's port on 127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="delay each way (ms)")
    parser.add_argument("--port", type=int, default=0, help="listen port (0: a free one)")
    parser.add_argument("--seconds", type=float, default=900.0, help="exit after this long")
    parser.add_argument("--check", action="store_true", help="measure RTT through the proxy")
    args = parser.parse_args()
    if args.check:
        for delay_ms in (0.0, 5.0, 10.0):
            for in_process in (False, True):
                rtt = measure_rtt(delay_ms / 1000, in_process=in_process)
                where = "thread " if in_process else "process"
                print(
                    f"delay {delay_ms:4.1f} ms each way ({where}): median ping-pong "
                    f"{rtt * 1000:6.2f} ms (expected {2 * delay_ms:.1f} ms)"
                )
        return
    if args.target_port is None:
        parser.error("--target-port is required")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        loop.call_later(args.seconds, stop.set)
        listener = _Listener(loop, args.target_port, args.delay_ms / 1000)
        server = await loop.create_server(listener.make_client_side, HOST, args.port)
        print(f"listening {HOST}:{server.sockets[0].getsockname()[1]}", flush=True)
        try:
            await stop.wait()
        finally:
            server.close()
            listener.close_all()
            await server.wait_closed()

    asyncio.run(run())


if __name__ == "__main__":
    main()

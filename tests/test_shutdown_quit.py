"""Closing a Submitter's kept connections never hangs on a server that does not answer QUIT.

Over a real LocalServer scripted never to answer QUIT (RFC 5321 §4.1.1.10: the client
SHOULD wait for the reply, but a closing application must not hang on it):

* ``close()`` waits for QUIT replies within one budget for all connections together
  (the command timeout, at most 5 s), not one command timeout per connection;
* interpreter exit waits at most ~1 s (or the command timeout, if shorter) in all;
* garbage collection does no socket I/O beyond closing: no QUIT, no wait, on whatever
  thread the collector runs.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from email.message import EmailMessage

from smtpkit import Submitter
from smtpkit.testing import LocalServer
from tests.conftest import ServerFactory, ServerLog


def message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", f"n{n}"
    msg.set_content("hello")
    return msg


def silent_on_quit(local_server: ServerFactory) -> LocalServer:
    server = local_server()
    server.timeout("quit", times=None)  # reads QUIT, never answers
    return server


def kept(server: LocalServer, *, timeout: float, connections: int) -> Submitter:
    """A Submitter keeping ``connections`` idle connections to ``server``."""
    submitter = Submitter(
        server.host,
        server.port,
        security=server.security,
        tls_context=server.client_tls_context(),
        timeout=timeout,
        max_connections=connections,
    )
    submitter.send(message(0))  # a real transaction on the first connection
    # The rest, opened while every other one is held: each is a new, logged-in connection
    # (no reliance on workers overlapping in time, which a busy machine does not promise).
    held = [submitter._pool.acquire() for _ in range(connections)]
    for conn in held:
        submitter._pool.release(conn)
    assert submitter._pool.idle == connections
    return submitter


def test_close_waits_one_budget_for_all_connections(local_server: ServerFactory) -> None:
    server = silent_on_quit(local_server)
    timeout = 0.6
    submitter = kept(server, timeout=timeout, connections=3)
    began = time.monotonic()
    submitter.close()
    took = time.monotonic() - began
    # Before: one command timeout per connection (3 x 0.6 s).
    assert took < timeout + 0.3, took
    assert submitter._pool.size == 0


def test_garbage_collection_closes_without_quit_or_wait(
    local_server: ServerFactory, server_log: ServerLog
) -> None:
    server = silent_on_quit(local_server)
    box = [kept(server, timeout=2.0, connections=2)]
    collected = threading.Event()
    took: list[float] = []

    def collect() -> None:  # the finalizer runs on the thread that drops the last reference
        began = time.monotonic()
        box.clear()
        gc.collect()
        took.append(time.monotonic() - began)
        collected.set()

    thread = threading.Thread(target=collect)
    thread.start()
    thread.join(10)
    assert collected.is_set()
    # Before: QUIT and a wait of the command timeout (2 s) per connection, on this thread
    # (4 s); now only sockets are closed (the rest is the collector itself, on a busy box).
    assert took[0] < 1.0, took
    server_log.wait_closed(2, timeout=2)  # both sockets really closed
    assert "QUIT" not in server_log.verbs()


def test_interpreter_exit_waits_at_most_about_a_second(local_server: ServerFactory) -> None:
    server = silent_on_quit(local_server)
    child = textwrap.dedent(
        f"""
        import ssl, sys
        from email.message import EmailMessage
        from smtpkit import Security, Submitter

        context = ssl.create_default_context(cafile={str(server.ca_path)!r})
        submitter = Submitter(
            {server.host!r}, {server.port}, security=Security.{server.security.name},
            tls_context=context, timeout=10, max_connections=2,
        )
        def message(n):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", str(n)
            msg.set_content("hello")
            return msg
        submitter.send(message(0))
        held = [submitter._pool.acquire() for _ in range(2)]  # a second, new connection
        for conn in held:
            submitter._pool.release(conn)
        assert submitter._pool.idle == 2, submitter._pool.idle
        print("ready", flush=True)
        # exits with the Submitter alive and two idle connections
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        began = time.monotonic()
        assert line.strip() == "ready", process.stderr.read() if process.stderr else ""
        process.wait(timeout=20)
        took = time.monotonic() - began
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    assert process.returncode == 0
    # Before: min(10 s, 5 s) per connection: 10 s. The budget is 1 s for both together.
    assert took < 1.6, took

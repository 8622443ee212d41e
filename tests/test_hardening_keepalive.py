"""A long-lived Submitter keeps its connections across calls, as ``httpx.Client`` does.

A module-level Submitter in a web app used to open a connection and log in for every
``send()`` outside a ``with`` block, which invites Gmail's ``454 4.7.0 Too many login
attempts``. Now its pool lives as long as the Submitter: an idle connection is reused (with a
NOOP check after ``health_check_after``), closed once idle longer than ``idle_timeout``, by
``close()`` and at interpreter exit (with QUIT), when the Submitter is garbage-collected
(closed without QUIT); a forked child never uses its parent's connections.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import ServerFactory
from scripted_smtp import ScriptedServer

from smtpkit import Security, SendResult, Submitter
from smtpkit.auth import PasswordAuth

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 5.0
USER, PASSWORD = "alice@example.test", "right password"
ROOT = Path(__file__).resolve().parent.parent


def message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = "bob@example.test"
    msg["Subject"] = f"kept {n}"
    msg["Message-ID"] = f"<k{n}@example.test>"
    msg.set_content(f"body {n}\n")
    return msg


def on_loopback(server: ScriptedServer, **options: object) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=TIMEOUT,
        **options,  # type: ignore[arg-type]
    )


def verbs(session: list[str]) -> list[str]:
    commands = [line[3:] for line in session if line[:3] == "C: " and line[3:4] != "<"]
    return [command.split(" ", 1)[0].split(":", 1)[0] for command in commands]


def wait_until(condition: object, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_sends_outside_a_with_block_share_one_login(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD),
        timeout=TIMEOUT,
    )
    for n in range(3):
        assert isinstance(submitter.send(message(n)), SendResult)
    submitter.send_many([message(n) for n in range(3, 6)], concurrency=1)

    assert len(server.auth_attempts) == 1
    assert len(server.messages) == 6
    submitter.close()


def test_close_quits_the_kept_connection_and_the_submitter_stays_usable() -> None:
    with ScriptedServer() as server:
        submitter = on_loopback(server)
        submitter.send(message(1))
        assert server.closed == 0  # kept after the call

        submitter.close()
        server.wait_closed(1)
        assert verbs(server.sessions[0])[-1] == "QUIT"

        submitter.send(message(2))  # a new connection
        assert server.connections == 2
        submitter.close()


def test_an_idle_connection_past_idle_timeout_is_closed_not_reused() -> None:
    with ScriptedServer() as server:
        submitter = on_loopback(server, idle_timeout=0.2)
        submitter.send(message(1))
        time.sleep(0.3)
        submitter.send(message(2))

        assert server.connections == 2
        server.wait_closed(1)
        assert verbs(server.sessions[0])[-1] == "QUIT"
        assert verbs(server.sessions[0]).count("MAIL") == 1
        submitter.close()


def test_a_garbage_collected_submitter_closes_its_connections_without_quit() -> None:
    # The collector runs finalizers on any thread: no QUIT and no wait there, the socket is
    # just closed (tests/test_shutdown_quit.py measures it against a server silent on QUIT).
    with ScriptedServer() as server:
        submitter = on_loopback(server)
        submitter.send(message(1))
        del submitter
        gc.collect()

        server.wait_closed(1)
        assert verbs(server.sessions[0]) == ["EHLO", "MAIL", "RCPT", "DATA"]


def run_script(server: ScriptedServer, body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(
        f"""
        import os, sys
        from email.message import EmailMessage
        from smtpkit import Security, Submitter

        def message(n):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", str(n)
            msg["Message-ID"] = f"<s{{n}}@example.test>"
            msg.set_content("hi")
            return msg

        submitter = Submitter({server.host!r}, {server.port}, security=Security.NONE, timeout=5)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_connections_are_closed_with_quit_at_interpreter_exit() -> None:
    with ScriptedServer() as server:
        done = run_script(server, "submitter.send(message(1))\n")  # no close(), no with

        assert done.returncode == 0, done.stderr
        server.wait_closed(1)
        assert verbs(server.sessions[0]) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_uses_its_parents_connection() -> None:
    body = """
        submitter.send(message(1))  # the parent keeps this connection
        pid = os.fork()
        if pid == 0:
            submitter.send(message(2))  # the child must open its own
            sys.exit(0)  # runs exit handlers: QUIT on the child's connection only
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        submitter.send(message(3))  # the parent's connection still works
        submitter.close()
    """
    with ScriptedServer() as server:
        done = run_script(server, body)

        assert done.returncode == 0, done.stderr
        server.wait_closed(2)
        parent, child = server.sessions
        assert verbs(parent) == ["EHLO", "MAIL", "RCPT", "DATA", "MAIL", "RCPT", "DATA", "QUIT"]
        assert verbs(child) == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]

"""The pytest plugin (``smtpkit.testing.pytest_plugin``, entry point ``pytest11: smtpkit``).

Three tiers: importing the plugin loads nothing heavy; the fixtures work in this suite (where
the editable install registers the entry point); and they work in a fresh project whose
virtual environment has smtpkit installed from a freshly built wheel - no conftest, no
``pytest_plugins``, nothing but the installed entry point. The async fixtures run there under
pytest-asyncio, AnyIO's plugin and ``asyncio.run``, with unclosed sockets made errors.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import warnings
from email.message import EmailMessage
from importlib.metadata import distributions
from pathlib import Path

import pytest

from smtpkit import AsyncSubmitter, AuthenticationRequired, RecipientRejected, Security, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.drivers import AsyncioTransport
from smtpkit.testing import FakeTransport, LocalServer
from smtpkit.testing import pytest_plugin as plugin
from smtpkit.testing._loop_guard import LoopGuardedTransport, close_async_submitter

ROOT = Path(__file__).resolve().parents[1]
#: Seconds any subprocess here may take: bounded, generous for a slow CI machine.
SUBPROCESS_TIMEOUT = 120


def message(to: str = "you@example.com") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "me@example.com", to, "Hello"
    msg.set_content("Hi there.")
    return msg


def clean_env() -> dict[str, str]:
    """The environment for child processes, without settings that would leak this suite's."""
    env = dict(os.environ)
    for name in (
        "PYTHONPATH",
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    ):
        env.pop(name, None)
    return env


# -- importing the plugin costs nothing ---------------------------------------------------------


def test_importing_the_plugin_loads_no_test_dependency() -> None:
    code = (
        "import json, sys; import smtpkit.testing.pytest_plugin; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=clean_env(),
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    heavy = {
        "aiosmtpd",
        "trustme",
        "cryptography",
        "asyncio",
        "smtpkit.testing._fake",
        "smtpkit.testing._presets",
        "smtpkit.testing._server",
    }
    assert not heavy & loaded


def test_the_entry_point_names_the_plugin() -> None:
    # As pytest does: every installed distribution's pytest11 entry points (a stale
    # smtpkit.egg-info in the checkout may shadow the installed metadata by name).
    points = [
        point
        for dist in distributions()
        for point in dist.entry_points
        if point.group == "pytest11" and point.name == "smtpkit"
    ]
    assert points
    assert {point.value for point in points} == {"smtpkit.testing.pytest_plugin"}
    assert points[0].load() is plugin


# -- the fixtures, here ------------------------------------------------------------------------


def test_fake_fixture_is_a_fresh_fake(smtpkit_fake: FakeTransport) -> None:
    assert isinstance(smtpkit_fake, FakeTransport)
    assert smtpkit_fake.messages == []
    assert smtpkit_fake.scripts == []


def test_submitter_fixture_sends_through_the_fake(
    smtpkit_submitter: Submitter, smtpkit_fake: FakeTransport
) -> None:
    result = smtpkit_submitter.send(message())
    assert result.accepted == ("you@example.com",)
    [sent] = smtpkit_fake.assert_sent(to="you@example.com", subject="Hello")
    assert sent.auth_user == plugin.FAKE_USER
    assert sent.tls
    assert smtpkit_submitter.host == plugin.FAKE_HOST


def test_scripting_the_fake_fixture_changes_what_the_submitter_sees(
    smtpkit_submitter: Submitter, smtpkit_fake: FakeTransport
) -> None:
    smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown")
    with pytest.raises(RecipientRejected):
        smtpkit_submitter.send(message())
    assert smtpkit_fake.messages == []


def test_server_fixture_is_a_running_starttls_server_that_requires_auth(
    smtpkit_server: LocalServer, smtpkit_server_credentials: tuple[str, str]
) -> None:
    assert smtpkit_server.running
    assert smtpkit_server.security is Security.STARTTLS
    assert smtpkit_server.host == "127.0.0.1"
    with (
        Submitter(
            smtpkit_server.host,
            smtpkit_server.port,
            tls_context=smtpkit_server.client_tls_context(),
            timeout=5,
        ) as anonymous,
        pytest.raises(AuthenticationRequired),
    ):
        anonymous.send(message())
    user, password = smtpkit_server_credentials
    assert user == plugin.SERVER_USER
    assert len(password) >= 16


def test_server_submitter_fixture_trusts_the_ca_and_logs_in(
    smtpkit_server_submitter: Submitter,
    smtpkit_server: LocalServer,
    smtpkit_server_credentials: tuple[str, str],
) -> None:
    smtpkit_server_submitter.send(message())
    [received] = smtpkit_server.wait_for(1)
    assert received.tls
    assert received.auth_user == smtpkit_server_credentials[0]
    assert received.recipients == ("you@example.com",)


# -- the async fixtures, here (asyncio.run: this suite needs no async test plugin) -------------


def test_async_submitter_fixture_sends_through_the_fake(
    smtpkit_async_submitter: AsyncSubmitter, smtpkit_fake: FakeTransport
) -> None:
    assert isinstance(smtpkit_async_submitter, AsyncSubmitter)
    smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.com")
    msg = message()
    msg["Cc"] = "gone@example.com"
    result = asyncio.run(smtpkit_async_submitter.send(msg))
    assert list(result.rejected) == ["gone@example.com"]
    [sent] = smtpkit_fake.assert_sent(to="you@example.com", subject="Hello")
    assert sent.auth_user == plugin.FAKE_USER
    assert sent.tls
    assert smtpkit_async_submitter.host == plugin.FAKE_HOST


def test_async_submitter_fixture_works_in_one_loop_after_another(
    smtpkit_async_submitter: AsyncSubmitter, smtpkit_fake: FakeTransport
) -> None:
    # Each asyncio.run is a new loop: the submitter leaves the last loop's connections.
    for _ in range(2):
        asyncio.run(smtpkit_async_submitter.send(message()))
    assert len(smtpkit_fake.messages) == 2


def test_server_async_submitter_fixture_trusts_the_ca_and_logs_in(
    smtpkit_server_async_submitter: AsyncSubmitter,
    smtpkit_server: LocalServer,
    smtpkit_server_credentials: tuple[str, str],
) -> None:
    asyncio.run(smtpkit_server_async_submitter.send(message()))
    [received] = smtpkit_server.wait_for(1)
    assert received.tls
    assert received.auth_user == smtpkit_server_credentials[0]


def _async_submitter(server: LocalServer) -> tuple[AsyncSubmitter, LoopGuardedTransport]:
    """As ``smtpkit_server_async_submitter`` builds it, for a server without AUTH."""
    transport = LoopGuardedTransport(AsyncioTransport())
    submitter = AsyncSubmitter(
        server.host,
        server.port,
        tls_context=server.client_tls_context(),
        timeout=5,
        transport=transport,
    )
    transport.closes(submitter)
    return submitter, transport


def _unclosed_warnings() -> list[str]:
    """ResourceWarnings of sockets or transports nobody closed, collected now."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_the_guard_closes_connections_in_their_loop_before_asyncio_run_ends() -> None:
    with LocalServer() as server:
        submitter, transport = _async_submitter(server)
        quit_step = server.reply("quit", "221 2.0.0 Bye from the script")
        asyncio.run(submitter.send(message()))
        # Nothing closed the submitter; asyncio.run's finalization of async generators did,
        # in the loop, so its connection said QUIT before the loop closed.
        assert quit_step.used
        close_async_submitter(submitter, transport)
        assert server.protocol_errors == []
    assert _unclosed_warnings() == []


def test_teardown_closes_connections_of_a_loop_still_open() -> None:
    # A module- or session-scoped loop outlives the test: teardown QUITs in that loop.
    loop = asyncio.new_event_loop()
    try:
        with LocalServer() as server:
            submitter, transport = _async_submitter(server)
            quit_step = server.reply("quit", "221 2.0.0 Bye from the script")
            loop.run_until_complete(submitter.send(message()))
            assert not quit_step.used
            close_async_submitter(submitter, transport)
            assert quit_step.used
            assert transport.guards == {}
    finally:
        loop.close()
    assert _unclosed_warnings() == []


def test_without_the_guard_a_closed_loop_ends_its_connection_without_quit() -> None:
    # Why the guard exists: without it, the connection of a closed loop cannot say QUIT.
    # (Its socket is still closed - directly, the loop being gone - so nothing leaks.)
    with LocalServer() as server:
        submitter = AsyncSubmitter(
            server.host, server.port, tls_context=server.client_tls_context(), timeout=5
        )
        quit_step = server.reply("quit", "221 2.0.0 Bye from the script")
        asyncio.run(submitter.send(message()))
        close_async_submitter(submitter)
        del submitter
        leaked = _unclosed_warnings()
        assert not quit_step.used
    assert not any("unclosed" in text for text in leaked), leaked


def test_closing_a_submitter_that_never_connected_is_a_no_op() -> None:
    fake = FakeTransport()
    submitter = AsyncSubmitter("smtp.example.com", transport=fake, auth=PasswordAuth("u", "p"))
    close_async_submitter(submitter)
    assert fake.connections == 0


# -- the fixtures, in a fresh project installed from the wheel --------------------------------

FRESH_TESTS = '''
    """A project that only installed smtpkit: no conftest, no pytest_plugins."""

    import sys
    from email.message import EmailMessage
    from pathlib import Path

    import pytest

    import smtpkit
    import smtpkit.testing

    SERVERS = []
    FAKES = []
    QUITS = []


    def message(to="you@example.com"):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@example.com", to, "Hello"
        msg.set_content("Hi there.")
        return msg


    def test_smtpkit_comes_from_the_wheel():
        assert Path(smtpkit.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())


    def test_fake_and_submitter(smtpkit_submitter, smtpkit_fake):
        FAKES.append(smtpkit_fake)
        smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.com")
        msg = message()
        msg["Cc"] = "gone@example.com"
        result = smtpkit_submitter.send(msg)
        assert list(result.rejected) == ["gone@example.com"]
        smtpkit_fake.assert_sent(to="you@example.com", count=1)


    def test_server_and_its_submitter(smtpkit_server_submitter, smtpkit_server):
        SERVERS.append(smtpkit_server)
        QUITS.append(smtpkit_server.reply("quit", "221 2.0.0 Bye from the script"))
        smtpkit_server_submitter.send(message())
        [received] = smtpkit_server.wait_for(1)
        assert received.tls and received.auth_user == "tester@localhost"


    def test_the_server_was_stopped_after_its_test():
        assert SERVERS and not SERVERS[0].running


    def test_the_submitter_fixtures_closed_their_connections():
        [quit_step] = QUITS
        assert quit_step.used  # QUIT before the server stopped
        [fake] = FAKES
        assert fake.streams and all(stream.closed for stream in fake.streams)


    class TestOverride:
        @pytest.fixture
        def smtpkit_fake(self):
            return smtpkit.testing.gmail_fake()

        def test_submitter_uses_the_overridden_fake(self, smtpkit_submitter, smtpkit_fake):
            smtpkit_fake.exceed_daily_quota()
            with pytest.raises(smtpkit.RateLimited):
                smtpkit_submitter.send(message())
'''

FRESH_ASYNC_TESTS = '''
    """Async tests in the same project: pytest-asyncio, AnyIO's plugin, and asyncio.run."""

    import asyncio
    from email.message import EmailMessage

    import pytest

    QUITS = []
    FAKES = []


    def message(to="you@example.com"):
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@example.com", to, "Hello"
        msg.set_content("Hi there.")
        return msg


    @pytest.fixture
    def anyio_backend():
        return "asyncio"


    @pytest.mark.asyncio
    async def test_pytest_asyncio_and_the_fake(smtpkit_async_submitter, smtpkit_fake):
        FAKES.append(smtpkit_fake)
        smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.com")
        msg = message()
        msg["Cc"] = "gone@example.com"
        result = await smtpkit_async_submitter.send(msg)
        assert list(result.rejected) == ["gone@example.com"]
        smtpkit_fake.assert_sent(to="you@example.com", count=1)


    @pytest.mark.anyio
    async def test_anyio_and_the_fake(smtpkit_async_submitter, smtpkit_fake):
        FAKES.append(smtpkit_fake)
        await smtpkit_async_submitter.send(message())
        [sent] = smtpkit_fake.assert_sent(to="you@example.com")
        assert sent.auth_user == "tester@example.com" and sent.tls


    @pytest.mark.asyncio
    async def test_pytest_asyncio_and_the_server(smtpkit_server_async_submitter, smtpkit_server):
        QUITS.append(smtpkit_server.reply("quit", "221 2.0.0 Bye from the script"))
        await smtpkit_server_async_submitter.send(message())
        [received] = smtpkit_server.messages
        assert received.tls and received.auth_user == "tester@localhost"


    @pytest.mark.anyio
    async def test_anyio_and_the_server(smtpkit_server_async_submitter, smtpkit_server):
        QUITS.append(smtpkit_server.reply("quit", "221 2.0.0 Bye from the script"))
        await smtpkit_server_async_submitter.send(message())
        assert len(smtpkit_server.messages) == 1


    def test_asyncio_run_in_a_plain_test(smtpkit_server_async_submitter, smtpkit_server):
        QUITS.append(smtpkit_server.reply("quit", "221 2.0.0 Bye from the script"))
        asyncio.run(smtpkit_server_async_submitter.send(message()))
        assert len(smtpkit_server.messages) == 1


    def test_the_async_fixtures_closed_their_connections():
        assert len(QUITS) == 3
        assert all(step.used for step in QUITS)  # QUIT, in the test's own event loop
        assert len(FAKES) == 2
        assert all(stream.closed for fake in FAKES for stream in fake.streams)
'''

#: Unclosed sockets fail the run: an async fixture must close what it opened.
FRESH_PYTEST_INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings =
    error::ResourceWarning
    error::pytest.PytestUnraisableExceptionWarning
"""


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with a bounded time, this suite's pytest settings removed."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=clean_env(),
        check=False,
    )


def _checked(*args: str | Path, cwd: Path | None = None) -> str:
    done = _run(*args, cwd=cwd)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


def _build_wheel(into: Path) -> Path:
    """Build smtpkit's wheel from a copy of the sources (the checkout stays untouched)."""
    source = into / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "smtpkit", source / "smtpkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = into / "wheels"
    pip = (sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--no-index")
    build = _run(*pip, "--no-build-isolation", "--wheel-dir", wheels, "--quiet")
    assert build.returncode == 0, (
        "building the wheel offline needs the build-system requirements (setuptools>=77, "
        f"wheel) in this environment:\n{build.stdout}\n{build.stderr}"
    )
    [wheel] = wheels.glob("smtpkit-*.whl")
    return wheel


def _fresh_venv(at: Path, wheel: Path) -> Path:
    """A venv without system site-packages, smtpkit installed from ``wheel``, and this
    environment's other packages (pytest, aiosmtpd, trustme, ...) visible but not smtpkit."""
    _checked(sys.executable, "-m", "venv", "--without-pip", at)
    python = at / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python, "install")
    _checked(*pip, "--no-deps", "--no-index", "--quiet", wheel)
    # Dependencies without the network: link every top-level entry of this environment's
    # site-packages except smtpkit's own (the editable install's finder and metadata).
    deps = at / "deps"
    deps.mkdir()
    for directory in {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}:
        for entry in directory.iterdir():
            if entry.name.startswith(("smtpkit", "__editable__")) or entry.suffix == ".pth":
                continue
            target = deps / entry.name
            if not target.exists():
                target.symlink_to(entry)
    purelib = _checked(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(purelib, "_smtpkit_test_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    return python


def test_fixtures_work_in_a_fresh_project_installed_from_the_wheel(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    python = _fresh_venv(tmp_path / "venv", wheel)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(FRESH_PYTEST_INI, encoding="utf-8")
    (project / "test_mail.py").write_text(textwrap.dedent(FRESH_TESTS), encoding="utf-8")
    (project / "test_mail_async.py").write_text(
        textwrap.dedent(FRESH_ASYNC_TESTS), encoding="utf-8"
    )

    done = _run(python, "-m", "pytest", "-p", "no:cacheprovider", "-v", "--timeout=60", cwd=project)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "12 passed" in report
    assert "skipped" not in report
    assert "warning" not in report.lower()
    # Both async test plugins were loaded (the environment has them: smtpkit[dev]).
    [plugins] = [line for line in report.splitlines() if line.startswith("plugins:")]
    assert "asyncio-" in plugins
    assert "anyio-" in plugins
    # The plugin came from the wheel's own entry point, not from this checkout.
    where = _checked(
        python, "-c", "import smtpkit.testing.pytest_plugin as p; print(p.__file__)", cwd=project
    )
    assert Path(where).is_relative_to(tmp_path / "venv")

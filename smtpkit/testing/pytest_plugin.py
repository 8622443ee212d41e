"""pytest fixtures for code that sends mail with smtpkit.

Installed with smtpkit (the ``pytest11`` entry point ``smtpkit``), so the fixtures are there in
any project's tests without a ``conftest.py``:

==============================  ================================================================
fixture                         what it gives
==============================  ================================================================
``smtpkit_fake``                a fresh :class:`~smtpkit.testing.FakeTransport` (in memory; any
                                credentials accepted); script failures on it, inspect
                                ``.messages`` or call ``.assert_sent()``
``smtpkit_submitter``           a :class:`~smtpkit.Submitter` wired to ``smtpkit_fake``, logged
                                in as ``tester@example.com``
``smtpkit_server``              a running :class:`~smtpkit.testing.LocalServer` on 127.0.0.1:
                                STARTTLS required, AUTH required (``smtpkit_server_credentials``);
                                stopped after the test; scripted and inspected with the same
                                words as the fake. Needs ``smtpkit[testing]``.
``smtpkit_server_credentials``  ``(user, password)`` the server accepts (a fresh password per
                                test)
``smtpkit_server_submitter``    a :class:`~smtpkit.Submitter` for ``smtpkit_server``, trusting
                                its CA and logged in with its credentials
``smtpkit_async_submitter``     an :class:`~smtpkit.AsyncSubmitter` wired to ``smtpkit_fake``,
                                as ``smtpkit_submitter`` is
``smtpkit_server_async_submitter``
                                an :class:`~smtpkit.AsyncSubmitter` for ``smtpkit_server``, as
                                ``smtpkit_server_submitter`` is
==============================  ================================================================

Example::

    def test_welcome_mail(smtpkit_submitter, smtpkit_fake):
        send_welcome(smtpkit_submitter, "new@example.com")   # your code
        smtpkit_fake.assert_sent(to="new@example.com", subject="Welcome")

    def test_refused_recipient(smtpkit_submitter, smtpkit_fake):
        smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown")
        ...

The async fixtures are plain fixtures: an ``AsyncSubmitter`` binds to the event loop that
first uses it, so one works in any async test - pytest-asyncio's ``@pytest.mark.asyncio``,
AnyIO's ``@pytest.mark.anyio`` - or in ``asyncio.run(...)`` inside a plain test, and the
plugin needs neither plugin::

    @pytest.mark.asyncio
    async def test_welcome_mail(smtpkit_async_submitter, smtpkit_fake):
        await send_welcome(smtpkit_async_submitter, "new@example.com")
        smtpkit_fake.assert_sent(to="new@example.com")

To change how the fake behaves for a whole module (a Gmail preset, required credentials),
override the fixture; ``smtpkit_submitter`` and ``smtpkit_async_submitter`` pick the
override up::

    @pytest.fixture
    def smtpkit_fake():
        return smtpkit.testing.gmail_fake()

Invariants:
    * Importing this module imports nothing but pytest (and the ``smtpkit`` and
      ``smtpkit.testing`` packages, which Python imports for any of their modules, and
      which import their names on first use): pytest loads it in every project that
      installs smtpkit, so the fake, the drivers, asyncio, aiosmtpd and trustme are
      imported inside the fixtures (``tests/test_import_cost.py``).
    * Every fixture is function-scoped and cleans up after itself: submitters are closed and
      servers stopped (their temporary CA files removed) even when the test fails. An async
      submitter's connections are closed in their own event loop, before the test's runner
      closes it (:mod:`smtpkit.testing._loop_guard`): a sync teardown comes too late for that.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from smtpkit import AsyncSubmitter, Submitter
    from smtpkit.testing import FakeTransport, LocalServer

__all__ = [
    "FAKE_HOST",
    "FAKE_PASSWORD",
    "FAKE_USER",
    "SERVER_USER",
    "smtpkit_async_submitter",
    "smtpkit_fake",
    "smtpkit_server",
    "smtpkit_server_async_submitter",
    "smtpkit_server_credentials",
    "smtpkit_server_submitter",
    "smtpkit_submitter",
]

#: The server name ``smtpkit_submitter`` connects to (the fake never resolves it).
FAKE_HOST = "smtp.example.com"
#: Who ``smtpkit_submitter`` logs in as; ``smtpkit_fake`` accepts any credentials.
FAKE_USER = "tester@example.com"
FAKE_PASSWORD = "fake-password"  # noqa: S105 - a fixed test value for an in-memory fake
#: The user ``smtpkit_server`` accepts (the password is random per test).
SERVER_USER = "tester@localhost"
#: Seconds for every step of a fixture submitter talking to the local server: finite, and
#: generous for slow CI machines.
SERVER_TIMEOUT = 10.0


@pytest.fixture
def smtpkit_fake() -> FakeTransport:
    """A fresh in-memory :class:`~smtpkit.testing.FakeTransport` accepting any credentials."""
    from smtpkit.testing import FakeTransport  # noqa: PLC0415 - keep the plugin free to load

    return FakeTransport()


@pytest.fixture
def smtpkit_submitter(smtpkit_fake: FakeTransport) -> Iterator[Submitter]:
    """A :class:`~smtpkit.Submitter` that sends through ``smtpkit_fake`` (STARTTLS, AUTH)."""
    from smtpkit import Submitter  # noqa: PLC0415 - keep the plugin free to load
    from smtpkit.auth import PasswordAuth  # noqa: PLC0415

    submitter = Submitter(
        FAKE_HOST, transport=smtpkit_fake, auth=PasswordAuth(FAKE_USER, FAKE_PASSWORD)
    )
    try:
        yield submitter
    finally:
        submitter.close()


@pytest.fixture
def smtpkit_server_credentials() -> tuple[str, str]:
    """``(user, password)`` for ``smtpkit_server``; the password is fresh for every test."""
    import secrets  # noqa: PLC0415

    return SERVER_USER, secrets.token_urlsafe(12)


@pytest.fixture
def smtpkit_server(smtpkit_server_credentials: tuple[str, str]) -> Iterator[LocalServer]:
    """A running :class:`~smtpkit.testing.LocalServer` (127.0.0.1, STARTTLS and AUTH required).

    Skips the test when the ``testing`` extra (aiosmtpd, trustme) is not installed.
    """
    pytest.importorskip("aiosmtpd", reason="smtpkit_server needs pip install 'smtpkit[testing]'")
    pytest.importorskip("trustme", reason="smtpkit_server needs pip install 'smtpkit[testing]'")
    from smtpkit.config import Security  # noqa: PLC0415 - keep the plugin free to load
    from smtpkit.testing import LocalServer  # noqa: PLC0415

    user, password = smtpkit_server_credentials
    server = LocalServer(
        security=Security.STARTTLS, credentials={user: password}, require_auth=True
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtpkit_server_submitter(
    smtpkit_server: LocalServer, smtpkit_server_credentials: tuple[str, str]
) -> Iterator[Submitter]:
    """A :class:`~smtpkit.Submitter` for ``smtpkit_server``: verified TLS against its CA,
    logged in with ``smtpkit_server_credentials``."""
    from smtpkit import Submitter  # noqa: PLC0415 - keep the plugin free to load
    from smtpkit.auth import PasswordAuth  # noqa: PLC0415

    user, password = smtpkit_server_credentials
    submitter = Submitter(
        smtpkit_server.host,
        smtpkit_server.port,
        security=smtpkit_server.security,
        auth=PasswordAuth(user, password),
        tls_context=smtpkit_server.client_tls_context(),
        timeout=SERVER_TIMEOUT,
    )
    try:
        yield submitter
    finally:
        submitter.close()


@pytest.fixture
def smtpkit_async_submitter(smtpkit_fake: FakeTransport) -> Iterator[AsyncSubmitter]:
    """An :class:`~smtpkit.AsyncSubmitter` that sends through ``smtpkit_fake`` (STARTTLS,
    AUTH), usable in any event loop: ``await smtpkit_async_submitter.send(message)``."""
    from smtpkit import AsyncSubmitter  # noqa: PLC0415 - keep the plugin free to load
    from smtpkit.auth import PasswordAuth  # noqa: PLC0415
    from smtpkit.testing._loop_guard import close_async_submitter  # noqa: PLC0415

    # The fake itself, as a user passes it: it is called on the event loop (nonblocking).
    submitter = AsyncSubmitter(
        FAKE_HOST, transport=smtpkit_fake, auth=PasswordAuth(FAKE_USER, FAKE_PASSWORD)
    )
    try:
        yield submitter
    finally:
        close_async_submitter(submitter)


@pytest.fixture
def smtpkit_server_async_submitter(
    smtpkit_server: LocalServer, smtpkit_server_credentials: tuple[str, str]
) -> Iterator[AsyncSubmitter]:
    """An :class:`~smtpkit.AsyncSubmitter` for ``smtpkit_server``: verified TLS against its
    CA, logged in with ``smtpkit_server_credentials``. Its connections are closed (QUIT) in
    the test's event loop before the runner closes that loop."""
    from smtpkit import AsyncSubmitter  # noqa: PLC0415 - keep the plugin free to load
    from smtpkit.auth import PasswordAuth  # noqa: PLC0415
    from smtpkit.drivers import AsyncioTransport  # noqa: PLC0415
    from smtpkit.testing._loop_guard import (  # noqa: PLC0415
        LoopGuardedTransport,
        close_async_submitter,
    )

    user, password = smtpkit_server_credentials
    transport = LoopGuardedTransport(AsyncioTransport())  # the default transport, guarded
    submitter = AsyncSubmitter(
        smtpkit_server.host,
        smtpkit_server.port,
        security=smtpkit_server.security,
        auth=PasswordAuth(user, password),
        tls_context=smtpkit_server.client_tls_context(),
        timeout=SERVER_TIMEOUT,
        transport=transport,
    )
    transport.closes(submitter)
    try:
        yield submitter
    finally:
        close_async_submitter(submitter, transport)

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
==============================  ================================================================

Example::

    def test_welcome_mail(smtpkit_submitter, smtpkit_fake):
        send_welcome(smtpkit_submitter, "new@example.com")   # your code
        smtpkit_fake.assert_sent(to="new@example.com", subject="Welcome")

    def test_refused_recipient(smtpkit_submitter, smtpkit_fake):
        smtpkit_fake.reply("rcpt", "550 5.1.1 User unknown")
        ...

To change how the fake behaves for a whole module (a Gmail preset, required credentials),
override the fixture; ``smtpkit_submitter`` picks the override up::

    @pytest.fixture
    def smtpkit_fake():
        return smtpkit.testing.gmail_fake()

Invariants:
    * Importing this module imports nothing but pytest: pytest loads it in every project that
      installs smtpkit, so the fake, aiosmtpd and trustme are imported inside the fixtures.
    * Every fixture is function-scoped and cleans up after itself: submitters are closed and
      servers stopped (their temporary CA files removed) even when the test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from smtpkit import Submitter
    from smtpkit.testing import FakeTransport, LocalServer

__all__ = [
    "FAKE_HOST",
    "FAKE_PASSWORD",
    "FAKE_USER",
    "SERVER_USER",
    "smtpkit_fake",
    "smtpkit_server",
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

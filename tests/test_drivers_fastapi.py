"""The FastAPI application of ``docs/async.md``, run for real against a LocalServer.

The page's ``# file: mail_app.py`` block is written to a temporary directory and imported;
``fastapi.testclient.TestClient`` runs its lifespan (one AsyncSubmitter, from
``SMTPKIT_URL`` with STARTTLS, a password and the test CA) and sends requests through the
ASGI app. Each answer is checked against what the server received.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import quote

import pytest
from conftest import ServerLog

from smtpkit.testing import LocalServer

fastapi_testclient = pytest.importorskip("fastapi.testclient", reason="needs the dev extra")

pytestmark = pytest.mark.timeout(60)

DOC = Path(__file__).resolve().parents[1] / "docs" / "async.md"
USER = "app@example.com"
PASSWORD = "correct horse battery staple"
NOBODY = "nobody@example.test"
ServerFactory = Callable[..., LocalServer]


def app_source() -> str:
    """The page's ``# file: mail_app.py`` block."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"^```python\n(# file: mail_app\.py\n.*?)^```$", text, re.S | re.M)
    assert found is not None, "docs/async.md lost its FastAPI example"
    return found.group(1)


@pytest.fixture
def mail_app(tmp_path: Path) -> Iterator[ModuleType]:
    path = tmp_path / "mail_app.py"
    path.write_text(app_source(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("mail_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mail_app"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["mail_app"]


@pytest.fixture
def server(local_server: ServerFactory, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """A STARTTLS LocalServer that the app finds through SMTPKIT_URL and SMTPKIT_PASSWORD."""
    started = local_server(credentials={USER: PASSWORD})
    started.reply("rcpt", "550 5.1.1 User unknown", recipient=NOBODY, times=None)
    url = f"smtp+starttls://{quote(USER)}@{started.host}:{started.port}?cafile={started.ca_path}"
    monkeypatch.setenv("SMTPKIT_URL", url)
    monkeypatch.setenv("SMTPKIT_PASSWORD", PASSWORD)
    return started


def post(client: object, to: str, subject: str = "Hi") -> object:
    return client.post("/mail", json={"to": to, "subject": subject, "body": "Hello.\n"})  # type: ignore[attr-defined]


def test_the_app_sends_through_one_login_for_its_lifetime(
    mail_app: ModuleType, server: LocalServer, server_log: ServerLog
) -> None:
    with fastapi_testclient.TestClient(mail_app.app) as client:
        answers = [post(client, "bob@example.test", subject=f"n{n}") for n in range(3)]

        assert [a.status_code for a in answers] == [202, 202, 202]  # type: ignore[attr-defined]
        bodies = [a.json() for a in answers]  # type: ignore[attr-defined]
        received = server.wait_for(3)
        assert [b["message_id"] for b in bodies] == [str(m.message["Message-ID"]) for m in received]
        assert all(b["refused"] == [] for b in bodies)
        assert [m.subject for m in received] == ["n0", "n1", "n2"]
        assert all(m.tls and m.auth_user == USER for m in received)
        assert len(server.auth_attempts) == 1  # one connection, logged in once, kept

    server_log.wait_closed(1)  # the lifespan's end closed the submitter: QUIT
    assert server_log.verbs()[-1] == "QUIT"


def test_a_refused_recipient_is_a_422_naming_it(mail_app: ModuleType, server: LocalServer) -> None:
    with fastapi_testclient.TestClient(mail_app.app) as client:
        answer = post(client, NOBODY)
        partial = post(client, f"bob@example.test, {NOBODY}")

    assert answer.status_code == 422  # type: ignore[attr-defined]
    detail = answer.json()["detail"]  # type: ignore[attr-defined]
    assert detail["recipient"] == NOBODY
    assert "550" in detail["error"]
    # Partly refused: sent to the others, and the refused one listed.
    assert partial.status_code == 202  # type: ignore[attr-defined]
    assert partial.json()["refused"] == [NOBODY]  # type: ignore[attr-defined]
    [received] = server.wait_for(1)
    assert list(received.recipients) == ["bob@example.test"]


@pytest.mark.parametrize(
    ("to", "said"),
    [
        ("bob@example.test, <not an address", "cannot find an address"),
        ("bob@example.test\r\nBcc: eve@example.test", "linefeed or carriage return"),
    ],
    ids=["not-an-address", "header-injection"],
)
def test_a_bad_address_is_a_422(
    mail_app: ModuleType, server: LocalServer, to: str, said: str
) -> None:
    with fastapi_testclient.TestClient(mail_app.app) as client:
        answer = post(client, to)

    assert answer.status_code == 422  # type: ignore[attr-defined]
    assert said in answer.json()["detail"]["error"]  # type: ignore[attr-defined]
    assert server.messages == []


def test_a_transient_refusal_is_a_503_with_retry_after(
    mail_app: ModuleType, server: LocalServer
) -> None:
    server.reply("mail", "451 4.3.0 Try again later")
    with fastapi_testclient.TestClient(mail_app.app) as client:
        busy = post(client, "bob@example.test", subject="busy")
        again = post(client, "bob@example.test", subject="again")

    assert busy.status_code == 503  # type: ignore[attr-defined]
    assert busy.headers["Retry-After"] == "60"  # type: ignore[attr-defined]
    assert again.status_code == 202  # type: ignore[attr-defined]
    assert [m.subject for m in server.wait_for(1)] == ["again"]


def test_an_unknown_outcome_is_a_502_with_the_message_id(
    mail_app: ModuleType, server: LocalServer
) -> None:
    server.disconnect("message")
    with fastapi_testclient.TestClient(mail_app.app) as client:
        answer = post(client, "bob@example.test", subject="lost")

    assert answer.status_code == 502  # type: ignore[attr-defined]
    detail = answer.json()["detail"]  # type: ignore[attr-defined]
    [dropped] = server.dropped
    assert detail["message_id"] == str(dropped.message["Message-ID"])

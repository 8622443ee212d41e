"""``smtpkit oauth google|microsoft`` against the loopback token endpoint.

The Microsoft device-code flow runs end to end against the local endpoint. Google's
installed-app flow needs a browser, so a stub flow object stands in for
google-auth-oauthlib; everything after it (the store, the printed next steps, and using the
store to get tokens through google-auth) is real.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import google.oauth2.credentials
import pytest
import requests
from oauth_endpoint import TokenEndpoint

from smtpkit.cli._oauth import add_oauth_parser, run_oauth
from smtpkit.config._url import parse_url
from smtpkit.errors import ConfigurationError
from smtpkit.integrations.google import GMAIL_SCOPE, GoogleCredentialsProvider
from smtpkit.oauth import RefreshTokenProvider, provider_from_store

CLIENT = "client-abc"
SECRET = "gcs-CANARY-google-secret"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(rotate=True) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    http = requests.Session()
    http.trust_env = False
    yield http
    http.close()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smtpkit")
    add_oauth_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["oauth", *argv])


def run(args: argparse.Namespace, **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_oauth(args, out, err, **options)
    return status, out.getvalue(), err.getvalue()


def exported_url(output: str) -> str:
    [line] = [line for line in output.splitlines() if "export SMTPKIT_URL=" in line]
    return line.split("=", 1)[1].strip().strip("'")


# -- Microsoft: the whole device flow -----------------------------------------------------


def test_microsoft_device_flow_stores_the_grant_and_prints_next_steps(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    endpoint.configure(pending_polls=2)
    store = tmp_path / "conf" / "ms.json"
    args = parse(
        "microsoft", "--client-id", CLIENT, "--tenant", "contoso.test",
        "--user", "bob@contoso.test", "--store", str(store),
        "--authority", endpoint.base_url,
    )  # fmt: skip
    slept: list[float] = []
    status, out, err = run(args, session=session, sleep=slept.append)
    assert (status, err) == (0, "")
    assert "enter ABCD-EFGH" in out
    assert slept == [0.0, 0.0, 0.0]
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    data = json.loads(store.read_text())
    assert data["provider"] == "microsoft"
    assert data["tenant"] == "contoso.test"
    assert data["username"] == "bob@contoso.test"
    assert data["token_url"] == f"{endpoint.base_url}/contoso.test/oauth2/v2.0/token"
    assert data["refresh_token"] == endpoint.refresh_token
    assert endpoint.refresh_token not in out
    assert "dc-secret" not in out
    # The printed URL is what smtpkit send parses.
    url = parse_url(exported_url(out))
    assert (url.host, url.port, url.username) == ("smtp.office365.com", 587, "bob@contoso.test")
    assert url.options["token_store"] == str(store)
    assert f"microsoft_delegated('{CLIENT}', 'contoso.test', store=store)" in out

    # The store then drives token refreshes, rotation saved back.
    provider, username = provider_from_store(store, session=session)
    assert isinstance(provider, RefreshTokenProvider)
    assert username == "bob@contoso.test"
    before = endpoint.refresh_token
    provider.get_token()
    assert json.loads(store.read_text())["refresh_token"] == endpoint.refresh_token != before


def test_microsoft_failure_exits_1_with_a_hint(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    endpoint.configure(mode="invalid_client")
    args = parse(
        "microsoft", "--client-id", CLIENT, "--tenant", "contoso.test", "--user", "b@c.test",
        "--store", str(tmp_path / "s.json"), "--authority", endpoint.base_url,
    )  # fmt: skip
    status, _, err = run(args, session=session, sleep=lambda s: None)
    assert status == 1
    assert "invalid_client" in err
    assert "hint: the client ID or client secret is wrong" in err
    assert not (tmp_path / "s.json").exists()


# -- Google: a stub in place of the browser -------------------------------------------------


class StubFlow:
    """Stands in for InstalledAppFlow: records how it was run, returns fixed credentials."""

    def __init__(self, token_uri: str, refresh_token: str | None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.kwargs: dict[str, Any] = {}
        self._result = SimpleNamespace(
            refresh_token=refresh_token,
            client_id=CLIENT,
            client_secret=SECRET,
            token_uri=token_uri,
        )

    def __call__(self, client_secrets: str, scopes: list[str]) -> StubFlow:
        self.calls.append((client_secrets, scopes))
        return self

    def run_local_server(self, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        return self._result


def client_secrets(tmp_path: Path) -> Path:
    path = tmp_path / "client_secret.json"
    path.write_text(json.dumps({"installed": {"client_id": CLIENT, "client_secret": SECRET}}))
    return path


def test_google_stores_an_authorized_user_file(
    endpoint: TokenEndpoint, session: requests.Session, tmp_path: Path
) -> None:
    endpoint.configure(rotate=False)
    flow = StubFlow(endpoint.token_url, endpoint.refresh_token)
    store = tmp_path / "alice.json"
    args = parse(
        "google", "--client-secrets", str(client_secrets(tmp_path)),
        "--user", "alice@gmail.com", "--store", str(store), "--no-browser",
    )  # fmt: skip
    status, out, err = run(args, google_flow=flow)
    assert (status, err) == (0, "")
    assert flow.calls == [(str(client_secrets(tmp_path)), [GMAIL_SCOPE])]
    assert flow.kwargs["port"] == 0
    assert flow.kwargs["host"] == "localhost"
    assert flow.kwargs["prompt"] == "consent"
    assert flow.kwargs["open_browser"] is False
    assert 0 < flow.kwargs["timeout_seconds"] <= 600

    data = json.loads(store.read_text())
    assert data["type"] == "authorized_user"
    assert data["provider"] == "google"
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    assert SECRET not in out
    assert endpoint.refresh_token not in out
    url = parse_url(exported_url(out))
    assert (url.host, url.username) == ("smtp.gmail.com", "alice@gmail.com")
    assert f"GoogleCredentialsProvider.from_authorized_user_file({str(store)!r})" in out

    # google-auth itself reads the store as an authorized-user file...
    info = google.oauth2.credentials.Credentials.from_authorized_user_file(str(store))
    assert info.refresh_token == endpoint.refresh_token
    # ...and the printed snippet gets tokens from the stored token_url.
    provider = GoogleCredentialsProvider.from_authorized_user_file(store, session=session)
    assert provider.get_token().token.reveal() == endpoint.issued[-1]
    stored, username = provider_from_store(store, session=session)
    assert username == "alice@gmail.com"
    assert stored.get_token()


def test_google_without_refresh_token_fails(endpoint: TokenEndpoint, tmp_path: Path) -> None:
    args = parse(
        "google", "--client-secrets", str(client_secrets(tmp_path)),
        "--user", "a@gmail.com", "--store", str(tmp_path / "s.json"),
    )  # fmt: skip
    status, _, err = run(args, google_flow=StubFlow(endpoint.token_url, None))
    assert status == 1
    assert "no refresh token" in err


def test_google_unreadable_client_secrets(tmp_path: Path) -> None:
    args = parse(
        "google", "--client-secrets", str(tmp_path / "missing.json"),
        "--user", "a@gmail.com", "--store", str(tmp_path / "s.json"),
    )  # fmt: skip
    status, _, err = run(args, google_flow=StubFlow("https://x.test/token", "rt"))
    assert status == 1
    assert "client secrets" in err


def test_store_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no token store"):
        provider_from_store(tmp_path / "nope.json")
    (tmp_path / "partial.json").write_text(json.dumps({"refresh_token": "rt-CANARY"}))
    with pytest.raises(ConfigurationError) as caught:
        provider_from_store(tmp_path / "partial.json")
    assert "CANARY" not in str(caught.value)

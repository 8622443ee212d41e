"""``smtpkit quota URL`` and ``smtpkit check URL`` read the store a server URL's ``quota=``
option names, the one a Submitter built from that URL counts in.

Which store is read: ``--store`` / ``--quota-store`` first (what was typed now), then the
URL's ``quota=`` option (what the senders use), then ``$SMTPKIT_QUOTA_STORE`` (a default for
targets that name none). Run through the command line's ``main()``, with real SQLite files
and, when ``redis-server`` is installed, a real Redis; a password in the store URL is never
printed.
"""

from __future__ import annotations

import json
import socket
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from smtpkit import Security
from smtpkit.cli import main
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, RedisQuotaStore, SQLiteQuotaStore
from smtpkit.testing import LocalServer
from tests.quota_redis import RedisServer, unavailable_reason

pytestmark = pytest.mark.timeout(60)
ServerFactory = Callable[..., LocalServer]
SECRET = "CANARY-quota-url-7731"
GMAIL = "smtp+starttls://me%40gmail.com@smtp.gmail.com:587"


def encoded(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def count(path: Path, messages: int, key: str = "smtp.gmail.com/me@gmail.com") -> None:
    """``messages`` kept in the SQLite store at ``path``, as Gmail senders would count them."""
    store = SQLiteQuotaStore(path)
    quota = Quota(store, Limits(messages_per_day=500), key=key)
    for _ in range(messages):
        quota.reserve().keep()
    store.close()


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    monkeypatch.delenv("SMTPKIT_URL", raising=False)
    monkeypatch.delenv("SMTPKIT_PASSWORD", raising=False)
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _no_store_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTPKIT_QUOTA_STORE", raising=False)


def test_quota_reads_the_store_named_in_the_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count(tmp_path / "q.db", 3)

    code, out, err = run(["quota", f"{GMAIL}?quota=sqlite:///{tmp_path}/q.db"], capsys, monkeypatch)

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"smtp.gmail.com/me@gmail.com in SQLiteQuotaStore('{tmp_path / 'q.db'}')",
        "  messages_per_day: 3 of 500 used, 497 left (rolling 24 hours)",
    ]


def test_quota_reads_the_url_of_smtpkit_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count(tmp_path / "q.db", 2)
    url = f"{GMAIL}?quota={encoded(f'sqlite:///{tmp_path}/q.db')}"
    monkeypatch.setattr("os.environ", {"SMTPKIT_URL": url})

    code = main(["quota", "--json"])
    out = capsys.readouterr().out

    assert code == 0
    assert json.loads(out)["limits"][0]["used"] == 2


def test_the_flag_wins_then_the_url_then_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    count(tmp_path / "flag.db", 5)
    count(tmp_path / "url.db", 3)
    count(tmp_path / "env.db", 7)
    monkeypatch.setenv("SMTPKIT_QUOTA_STORE", f"sqlite:///{tmp_path}/env.db")
    url = f"{GMAIL}?quota=sqlite:///{tmp_path}/url.db"

    flagged = run(["quota", url, "--store", f"sqlite:///{tmp_path}/flag.db"], capsys, monkeypatch)
    from_url = run(["quota", url], capsys, monkeypatch)
    from_env = run(["quota", GMAIL], capsys, monkeypatch)

    assert [code for code, _, _ in (flagged, from_url, from_env)] == [0, 0, 0]
    assert "5 of 500 used" in flagged[1]
    assert "3 of 500 used" in from_url[1]
    assert "7 of 500 used" in from_env[1]


def test_without_any_store_the_error_names_all_three_ways(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["quota", GMAIL], capsys, monkeypatch)
    assert (code, out) == (2, "")
    assert "--store" in err
    assert "?quota=" in err
    assert "SMTPKIT_QUOTA_STORE" in err


def test_the_help_says_which_store_wins(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in ("quota", "check"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "quota= option" in text, command
        assert "SMTPKIT_QUOTA_STORE" in text, command


def test_check_ends_with_the_quota_of_the_url_store(
    local_server: ServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = local_server(security=Security.NONE)
    count(tmp_path / "q.db", 4, key=f"{server.host}/")
    url = f"smtp://{server.host}:{server.port}?provider=gmail&quota=sqlite:///{tmp_path}/q.db"

    code, out, err = run(["check", url, "--json", "--timeout", "5"], capsys, monkeypatch)

    step = json.loads(out)["findings"][-1]
    assert code == 0, (out, err)
    assert step["step"] == "quota"
    assert step["status"] == "ok"
    assert step["details"]["limits"] == [
        {"name": "messages_per_day", "used": 4, "allowed": 500, "left": 496}
    ]


def test_check_flag_wins_over_the_url_store(
    local_server: ServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = local_server(security=Security.NONE)
    count(tmp_path / "url.db", 4, key=f"{server.host}/")
    count(tmp_path / "flag.db", 9, key=f"{server.host}/")
    url = f"smtp://{server.host}:{server.port}?provider=gmail&quota=sqlite:///{tmp_path}/url.db"

    code, out, _ = run(
        ["check", url, "--json", "--quota-store", f"sqlite:///{tmp_path}/flag.db"],
        capsys,
        monkeypatch,
    )

    assert code == 0
    assert json.loads(out)["findings"][-1]["details"]["limits"][0]["used"] == 9


def test_an_unreachable_redis_in_the_url_is_reported_without_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port nothing listens on (bound, never listening): the store cannot be asked.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        store = f"redis://:{SECRET}@127.0.0.1:{port}/0?socket_timeout=0.5"
        url = f"{GMAIL}?quota={encoded(store)}"

        code, out, err = run(["quota", url], capsys, monkeypatch)

    assert code == 1, (out, err)
    assert "Redis" in err or "redis" in err
    assert SECRET not in out + err


def test_quota_and_check_read_a_redis_store_in_the_url_and_hide_its_password(
    local_server: ServerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = local_server(security=Security.NONE)
    with RedisServer(tmp_path) as redis_server:
        store = RedisQuotaStore(redis_server.url)
        for key in ("smtp.gmail.com/me@gmail.com", f"{server.host}/"):
            counted = Quota(store, Limits(messages_per_day=500), key=key)
            for _ in range(6):
                counted.reserve().keep()
        store.close()
        # A password for the default user: this server has none set and still answers
        # (as in test_quota_send_cli); what matters is that it is never printed.
        with_password = redis_server.url.replace("redis://", f"redis://:{SECRET}@")
        quota_url = f"{GMAIL}?quota={encoded(with_password)}"
        check_url = (
            f"smtp://{server.host}:{server.port}?provider=gmail&quota={encoded(with_password)}"
        )

        shown = run(["quota", quota_url], capsys, monkeypatch)
        checked = run(["check", check_url, "--timeout", "5"], capsys, monkeypatch)
        as_json = run(["check", check_url, "--json", "--timeout", "5"], capsys, monkeypatch)

    assert shown[0] == 0, shown
    assert "messages_per_day: 6 of 500 used, 494 left" in shown[1]
    assert f"in RedisQuotaStore('redis 127.0.0.1:{redis_server.port}/0')" in shown[1]
    assert checked[0] == 0, checked
    assert "6 of 500 used" in checked[1]
    assert as_json[0] == 0, as_json
    assert json.loads(as_json[1])["findings"][-1]["details"]["limits"][0]["used"] == 6
    for code_out_err in (shown, checked, as_json):
        assert SECRET not in code_out_err[1] + code_out_err[2]
        assert encoded(SECRET) not in code_out_err[1] + code_out_err[2]

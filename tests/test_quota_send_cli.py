"""``smtpkit quota`` and the ``quota`` step of ``smtpkit check``: used and left, from a real
store (SQLite file, and Redis when installed), for the account a Submitter would count."""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtpkit import Security, Submitter
from smtpkit.cli import build_parser
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.cli._quota import add_quota_parser, run_quota
from smtpkit.providers import Limits
from smtpkit.quotas import Quota, RedisQuotaStore, SQLiteQuotaStore, account_key
from smtpkit.testing import LocalServer
from tests.quota_redis import RedisServer, unavailable_reason

ServerFactory = Callable[..., LocalServer]
SECRET = "CANARY-quota-cli-5521"


def parse(command: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="smtpkit")
    sub = parser.add_subparsers(dest="command", required=True)
    add_check_parser(sub)
    add_quota_parser(sub)
    return parser.parse_args([command, *argv])


def quota(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_quota(parse("quota", *argv), out, err, environ=env or {})
    return code, out.getvalue(), err.getvalue()


def check(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(parse("check", *argv), out, err, environ=env or {})
    return code, out.getvalue(), err.getvalue()


def gmail_quota(path: Path) -> Quota:
    """The quota a Submitter for me@gmail.com counts: Gmail's 500 a day, its key."""
    return Quota(
        SQLiteQuotaStore(path),
        Limits(messages_per_day=500),
        key=account_key("me@gmail.com", "smtp.gmail.com"),
    )


def test_quota_prints_used_and_left_for_the_account(tmp_path: Path) -> None:
    counted = gmail_quota(tmp_path / "q.db")
    for _ in range(3):
        counted.reserve().keep()

    code, out, err = quota("me@gmail.com", "--store", f"sqlite:///{tmp_path}/q.db")

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"smtp.gmail.com/me@gmail.com in SQLiteQuotaStore('{tmp_path / 'q.db'}')",
        "  messages_per_day: 3 of 500 used, 497 left (rolling 24 hours)",
    ]


def test_quota_as_json_and_from_the_environment(tmp_path: Path) -> None:
    counted = gmail_quota(tmp_path / "q.db")
    counted.reserve().keep()
    counted.exhaust(time.time() + 3600)
    env = {
        "SMTPKIT_URL": "smtp+starttls://me%40gmail.com@smtp.gmail.com:587",
        "SMTPKIT_QUOTA_STORE": f"sqlite:///{tmp_path}/q.db",
    }

    code, out, _ = quota("--json", env=env)

    document = json.loads(out)
    assert code == 0
    assert document["key"] == "smtp.gmail.com/me@gmail.com"
    assert document["limits"] == [
        {"name": "messages_per_day", "used": 1, "allowed": 500, "left": 499, "window": 86400.0}
    ]
    assert document["exhausted_until"] > time.time() + 3500


def test_the_command_line_knows_the_quota_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(["quota", "gmail", "--store", "sqlite:///x.db"])
    assert (args.command, args.target, args.store) == ("quota", "gmail", "sqlite:///x.db")


@pytest.mark.parametrize(
    ("argv", "status", "words"),
    [
        ((), 2, "give a URL, preset or address"),
        (("gmail",), 2, "give --store URL"),
        (("gmail", "--store", f"memcached://u:{SECRET}@h"), 2, "starts with redis://"),
        (
            ("smtp+starttls://relay.example.test", "--store", "sqlite:///x.db"),
            2,
            "no sending limits",
        ),
    ],
)
def test_quota_usage_errors_exit_2_without_secrets(
    argv: tuple[str, ...], status: int, words: str
) -> None:
    code, out, err = quota(*argv)
    assert code == status
    assert words in err
    assert SECRET not in out + err


def test_a_store_that_cannot_be_asked_exits_1(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    code, _, err = quota("gmail", "--store", f"sqlite:///{tmp_path}/dir")
    assert code == 1
    assert "SQLite" in err or "sqlite" in err


def test_quota_reads_a_redis_store_and_hides_its_password(tmp_path: Path) -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with RedisServer(tmp_path) as server:
        counted = Quota(
            RedisQuotaStore(server.url),
            Limits(messages_per_minute=30, recipients_per_day=10_000),
            key=account_key("me@contoso.example", "smtp.office365.com"),
        )
        counted.reserve(recipients=4).keep()
        with_password = server.url.replace("redis://", f"redis://:{SECRET}@")

        code, out, err = quota(
            "smtp+starttls://me%40contoso.example@smtp.office365.com",
            "--provider",
            "microsoft365",
            "--store",
            server.url,
        )
        refused, shown, said = quota("microsoft365", "--store", with_password)

    assert code == 0, err
    assert "  recipients_per_day: 4 of 10,000 used, 9,996 left (rolling 24 hours)" in out
    assert "  messages_per_minute: 1 of 30 used, 29 left (rolling minute)" in out
    assert f"in RedisQuotaStore('redis 127.0.0.1:{server.port}/0')" in out
    assert refused == 0, said
    assert SECRET not in shown + said  # a password in the store URL is never printed


# -- smtpkit check -------------------------------------------------------------------------


def test_check_ends_with_the_quota_step(local_server: ServerFactory, tmp_path: Path) -> None:
    server = local_server(security=Security.NONE)
    url = f"smtp://{server.host}:{server.port}?provider=gmail"
    store = f"sqlite:///{tmp_path}/q.db"
    # What a Submitter for the same URL counted: one message.
    sender = Submitter.from_url(url, quota=Quota(SQLiteQuotaStore(tmp_path / "q.db")))
    with sender:
        sender.send(_message(), recipients=["b@example.test"])

    code, out, err = check(url, "--quota-store", store, "--json")

    document = json.loads(out)
    step = document["findings"][-1]
    assert code == 0, err
    assert step["step"] == "quota"
    assert step["status"] == "ok"
    assert step["details"]["limits"] == [
        {"name": "messages_per_day", "used": 1, "allowed": 500, "left": 499}
    ]
    assert "messages_per_day: 1 of 500 used, 499 left" in step["observed"]


def test_check_fails_on_an_exhausted_account(local_server: ServerFactory, tmp_path: Path) -> None:
    server = local_server(security=Security.NONE)
    url = f"smtp://{server.host}:{server.port}?provider=gmail"
    Quota(
        SQLiteQuotaStore(tmp_path / "q.db"), Limits(messages_per_day=500), key=f"{server.host}/"
    ).exhaust(time.time() + 600)

    code, out, _ = check(url, env={"SMTPKIT_QUOTA_STORE": f"sqlite:///{tmp_path}/q.db"})

    assert code == 1
    assert "quota" in out
    assert "exhausted until" in out
    assert "sending would fail" in out


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "hi"
    msg.set_content("x\n")
    return msg

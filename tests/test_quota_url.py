"""A server URL's ``?quota=`` option: the quota store named inside the server URL.

``Submitter.from_url("smtps://...?quota=sqlite:///var/lib/app/quota.db")`` counts with
``Quota(store)`` against the preset's limits, like ``quota=Quota(store)``; the store URL's
password never shows in an error or a ``repr``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest
from drivers_kit import mail

from smtpkit import AsyncSubmitter, ConfigurationError, Submitter
from smtpkit.config._url import redact_url
from smtpkit.quotas import Quota, RedisQuotaStore, SQLiteQuotaStore
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(60)
ServerFactory = Callable[..., LocalServer]
SECRET = "s3cret-quota-pw"
GMAIL = "smtps://me%40gmail.com:app-pw@smtp.gmail.com"


def encoded(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def test_a_sqlite_quota_url_counts_against_the_preset_limits(tmp_path: Path) -> None:
    path = tmp_path / "quota.db"
    submitter = Submitter.from_url(f"{GMAIL}?quota=sqlite:///{path}")
    quota = submitter.quota
    assert quota is not None
    assert isinstance(quota.store, SQLiteQuotaStore)
    assert repr(quota.store) == f"SQLiteQuotaStore({str(path)!r})"
    assert quota.key == "smtp.gmail.com/me@gmail.com"
    assert quota.limits is not None
    assert quota.limits.messages_per_day == 500  # the gmail preset's
    assert not path.exists()  # built without I/O
    async_quota = AsyncSubmitter.from_url(f"{GMAIL}?quota=sqlite:///{path}").quota
    assert async_quota is not None
    assert isinstance(async_quota.store, SQLiteQuotaStore)


def test_the_url_quota_store_is_the_one_that_counts(
    local_server: ServerFactory, tmp_path: Path
) -> None:
    server = local_server()
    path = tmp_path / "quota.db"
    url = (
        f"{server.url}?cafile={encoded(str(server.ca_path))}&provider=gmail"
        f"&quota={encoded(f'sqlite:///{path}')}"
    )
    with Submitter.from_url(url) as submitter:
        quota = submitter.quota
        assert quota is not None
        assert isinstance(quota.store, SQLiteQuotaStore)
        submitter.send(mail(1))
        submitter.send(mail(2))
    assert len(server.messages) == 2
    # Another process reading the same file sees both messages counted.
    other = Quota(SQLiteQuotaStore(path), quota.limits, key=quota.key)
    day = next(u for u in other.usage().limits if u.name == "messages_per_day")
    assert day.used == 2


@pytest.mark.parametrize("form", ["encoded", "raw"])
def test_a_redis_quota_url_password_is_never_shown(form: str) -> None:
    store_url = f"redis://:{SECRET}@127.0.0.1:6399/0"
    value = encoded(store_url) if form == "encoded" else store_url
    url = f"smtps://smtp.gmail.com?quota={value}"
    submitter = Submitter.from_url(url, password=None)
    quota = submitter.quota
    assert quota is not None
    assert isinstance(quota.store, RedisQuotaStore)
    for text in (repr(submitter), repr(quota), repr(quota.store), redact_url(url)):
        assert SECRET not in text
        assert urllib.parse.quote(SECRET) not in text


def test_a_bad_quota_url_is_refused_naming_the_option_not_the_password() -> None:
    url = f"smtps://smtp.gmail.com?quota={encoded(f'mysql://u:{SECRET}@db/quota')}"
    with pytest.raises(ConfigurationError) as caught:
        Submitter.from_url(url)
    text = f"{caught.value.message} {caught.value.hint}"
    assert "quota in smtps://smtp.gmail.com?quota=mysql://u:***@db/quota" in text
    assert "redis://" in text  # says which URLs a store may have
    assert SECRET not in text


def test_a_sqlite_quota_url_needs_a_path() -> None:
    with pytest.raises(ConfigurationError, match=r"needs a file path \(quota in"):
        Submitter.from_url("smtps://smtp.gmail.com?quota=sqlite:")


def test_a_url_quota_without_limits_is_refused_with_a_hint(tmp_path: Path) -> None:
    # No preset, so nothing to count against: refused at construction, not at send time.
    with pytest.raises(ConfigurationError, match="counts no limit") as caught:
        Submitter.from_url(f"smtps://mail.example.net?quota=sqlite:///{tmp_path}/q.db")
    assert "provider" in (caught.value.hint or "")


def test_a_quota_keyword_wins_over_the_url(tmp_path: Path) -> None:
    submitter = Submitter.from_url(f"{GMAIL}?quota=sqlite:///{tmp_path}/q.db", quota=False)
    assert submitter.quota is None

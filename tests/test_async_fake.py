"""AsyncSubmitter on the in-memory FakeTransport (unchanged for the user), its options, and
its token providers: a synchronous one run off the loop with single flight, an async one."""

from __future__ import annotations

import asyncio
import inspect
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from smtpkit import (
    AsyncSubmitter,
    ConfigurationError,
    MessageError,
    Outgoing,
    RecipientRejected,
    Security,
    SendResult,
    Submitter,
    TokenRejected,
)
from smtpkit.auth import AccessToken, PasswordAuth, XOAuth2Auth
from smtpkit.drivers._async_io import TokenFetcher
from smtpkit.engine import FetchToken
from smtpkit.testing import FakeCapabilities, FakeTransport
from smtpkit.transports import SocketTransport
from smtpkit.transports._asyncio import AsyncioTransport, SyncTransportAdapter, async_transport

USER = "alice@example.test"


def message(number: int = 0, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, f"fake {number}"
    msg.set_content("Hello.\n")
    return msg


def fake_submitter(fake: FakeTransport, **options: object) -> AsyncSubmitter:
    return AsyncSubmitter("smtp.example.test", transport=fake, **options)  # type: ignore[arg-type]


# -- the fake serves the async driver unchanged ---------------------------------------------


def test_fake_transport_is_served_inline_and_sees_pipelined_transactions() -> None:
    fake = FakeTransport(credentials={USER: "pw"})
    assert isinstance(async_transport(fake), SyncTransportAdapter)

    async def main() -> list[SendResult | Exception]:
        async with fake_submitter(fake, auth=PasswordAuth(USER, "pw"), max_connections=1) as s:
            return await s.send_many([message(n) for n in range(3)])

    outcomes = asyncio.run(main())
    assert all(isinstance(o, SendResult) for o in outcomes)
    fake.assert_sent(count=3, to="bob@example.test")
    assert fake.protocol_errors == []
    assert fake.connections == 1
    assert len(fake.auth_attempts) == 1
    # The end of each message travelled with the next envelope: one flight each.
    assert sum(line.startswith("C: MAIL FROM:") for line in fake.transcript) == 3


def test_fake_scripted_refusal_surfaces_typed() -> None:
    fake = FakeTransport()
    fake.reply("rcpt", "550 5.1.1 User unknown")

    async def main() -> None:
        async with fake_submitter(fake) as submitter:
            await submitter.send(message())

    with pytest.raises(RecipientRejected):
        asyncio.run(main())
    assert fake.messages == []


def test_the_socket_transport_becomes_the_asyncio_transport() -> None:
    assert isinstance(async_transport(None), AsyncioTransport)
    assert isinstance(async_transport(SocketTransport()), AsyncioTransport)


def test_one_submitter_works_across_two_event_loops() -> None:
    fake = FakeTransport()
    submitter = fake_submitter(fake)
    first = asyncio.run(submitter.send(message(1)))

    async def send_then_close() -> SendResult:
        async with submitter:  # closes the second loop's connection on that loop
            return await submitter.send(message(2))  # the first loop's connection is gone

    second = asyncio.run(send_then_close())
    assert first.accepted == second.accepted == ("bob@example.test",)
    assert fake.connections == 2


def test_raw_bytes_need_an_envelope() -> None:
    async def main() -> None:
        async with fake_submitter(FakeTransport()) as submitter:
            await submitter.send(b"Subject: x\r\n\r\nbody\r\n")

    with pytest.raises(MessageError):
        asyncio.run(main())


def test_outgoing_with_raw_bytes_in_a_batch() -> None:
    fake = FakeTransport()

    async def main() -> list[SendResult | Exception]:
        async with fake_submitter(fake) as submitter:
            raw = b"From: alice@example.test\r\nSubject: raw\r\n\r\nbody\r\n"
            return await submitter.send_many([Outgoing(raw, USER, ["carol@example.test"])])

    [outcome] = asyncio.run(main())
    assert isinstance(outcome, SendResult)
    fake.assert_sent(to="carol@example.test", subject="raw")


# -- the same options as Submitter ----------------------------------------------------------


def test_constructor_and_class_methods_match_submitter() -> None:
    sync = inspect.signature(Submitter.__init__).parameters
    async_ = inspect.signature(AsyncSubmitter.__init__).parameters
    assert list(sync) == list(async_)
    for name in ("from_url", "from_env", "for_provider"):
        assert list(inspect.signature(getattr(Submitter, name)).parameters) == list(
            inspect.signature(getattr(AsyncSubmitter, name)).parameters
        )
    submitter = AsyncSubmitter.from_url(
        "smtps://me%40example.test:pw@mail.example.test?timeout=7", max_connections=2
    )
    assert (submitter.host, submitter.port, submitter.security) == (
        "mail.example.test",
        465,
        Security.TLS,
    )
    assert submitter.timeouts.command == 7
    assert submitter.pool_limits.max_connections == 2
    assert "pw" not in repr(submitter)
    preset = AsyncSubmitter.for_provider("microsoft365")
    assert (preset.host, preset.pool_limits.max_connections, preset.rate_limit) == (
        "smtp.office365.com",
        3,
        0.5,
    )
    env = AsyncSubmitter.from_env({"SMTPKIT_URL": "smtp+starttls://mail.example.test"})
    assert env.port == 587
    with pytest.raises(ConfigurationError):
        AsyncSubmitter.from_env({})


@pytest.mark.parametrize(
    "options",
    [
        {"host": "mail example.test"},
        {"host": "mail.example.test", "max_connections": "4"},
        {"host": "mail.example.test", "rate_limit": float("nan")},
        {"host": "mail.example.test", "auth": ("user", "password")},
        {"host": "mail.example.test", "transport": object()},
    ],
)
def test_bad_options_fail_at_construction_typed(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        AsyncSubmitter(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [{"concurrency": 5}, {"concurrency": 0}, {"max_per_second": 0}, {"max_per_connection": 1.5}],
)
def test_bad_batch_options_are_refused_before_anything_is_sent(options: dict[str, object]) -> None:
    fake = FakeTransport()

    async def main() -> None:
        await fake_submitter(fake, max_connections=4).send_many([message()], **options)  # type: ignore[arg-type]

    with pytest.raises(ConfigurationError):
        asyncio.run(main())
    assert fake.connections == 0


# -- token providers ------------------------------------------------------------------------


class SlowTokens:
    """A synchronous provider that takes a while and counts its calls (and threads)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[bool, str | None]] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        with self._lock:
            self.calls.append((force_refresh, rejected.token.reveal() if rejected else None))
            self.threads.add(threading.current_thread().name)
        threading.Event().wait(0.05)  # a token endpoint's round trip
        if force_refresh:
            self.token = "fresh-token"
        return AccessToken(self.token, datetime.now(UTC) + timedelta(hours=1))


class AsyncTokens:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[bool, str | None]] = []

    async def get_token(
        self, *, force_refresh: bool = False, rejected: AccessToken | None = None
    ) -> AccessToken:
        self.calls.append((force_refresh, rejected.token.reveal() if rejected else None))
        await asyncio.sleep(0.01)
        if force_refresh:
            self.token = "fresh-token"
        return AccessToken(self.token)


def oauth_fake(token: str) -> FakeTransport:
    caps = FakeCapabilities(auth=("XOAUTH2",))
    return FakeTransport(capabilities=caps, credentials={USER: token})


def test_a_sync_provider_runs_off_the_loop() -> None:
    fake = oauth_fake("good-token")
    tokens = SlowTokens("good-token")

    async def main() -> list[SendResult | Exception]:
        auth = XOAuth2Auth(USER, tokens)
        async with fake_submitter(fake, auth=auth, max_connections=4) as submitter:
            return await asyncio.gather(*(submitter.send(message(n)) for n in range(4)))

    outcomes = asyncio.run(main())
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert tokens.calls == [(False, None)] * fake.connections
    assert threading.main_thread().name not in tokens.threads  # never on the event loop


def test_concurrent_token_requests_share_one_call() -> None:
    tokens = SlowTokens("good-token")
    fetcher = TokenFetcher()

    async def main() -> list[AccessToken]:
        plain = FetchToken(tokens)
        first = await asyncio.gather(*(fetcher.fetch(plain) for _ in range(5)))
        rejected = first[0]
        forced = FetchToken(tokens, force_refresh=True, rejected=rejected)
        second = await asyncio.gather(*(fetcher.fetch(forced) for _ in range(5)))
        return [*first, *second]

    results = asyncio.run(main())
    assert tokens.calls == [(False, None), (True, "good-token")]
    assert {r.token.reveal() for r in results[:5]} == {"good-token"}
    assert {r.token.reveal() for r in results[5:]} == {"fresh-token"}


def test_a_cancelled_waiter_does_not_cancel_the_shared_request() -> None:
    tokens = SlowTokens("good-token")
    fetcher = TokenFetcher()

    async def main() -> AccessToken:
        effect = FetchToken(tokens)
        quitter = asyncio.ensure_future(fetcher.fetch(effect))
        stayer = asyncio.ensure_future(fetcher.fetch(effect))
        await asyncio.sleep(0.01)
        quitter.cancel()
        return await stayer

    assert asyncio.run(main()).token.reveal() == "good-token"
    assert len(tokens.calls) == 1


def test_a_refused_token_is_refreshed_once_through_an_async_provider() -> None:
    fake = oauth_fake("fresh-token")
    tokens = AsyncTokens("stale-token")

    async def main() -> SendResult:
        auth = XOAuth2Auth(USER, tokens)  # type: ignore[arg-type]  # an async provider
        async with fake_submitter(fake, auth=auth) as submitter:
            return await submitter.send(message())

    assert asyncio.run(main()).accepted == ("bob@example.test",)
    assert tokens.calls == [(False, None), (True, "stale-token")]
    assert [a.success for a in fake.auth_attempts] == [False, True]


def test_a_token_refused_even_after_the_refresh_is_token_rejected() -> None:
    fake = oauth_fake("the-right-one")
    tokens = AsyncTokens("wrong-token")

    async def main() -> None:
        async with fake_submitter(fake, auth=XOAuth2Auth(USER, tokens)) as submitter:  # type: ignore[arg-type]
            await submitter.send(message())

    with pytest.raises(TokenRejected):
        asyncio.run(main())
    assert tokens.calls == [(False, None), (True, "wrong-token")]
    assert "wrong-token" not in "\n".join(fake.transcript)

"""AsyncSubmitter end to end over real loopback sockets: LocalServer (aiosmtpd + trustme).

Each test runs its coroutine with ``asyncio.run`` (no async test plugin needed) and checks
the server's side too: what it received, how many logins it saw.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage

import pytest

from smtpkit import (
    AsyncSubmitter,
    BatchInterrupted,
    DeliveryUnknown,
    InvalidCredentials,
    Outgoing,
    RecipientRejected,
    Retry,
    Security,
    SendResult,
    ServiceUnavailable,
    SMTPError,
)
from smtpkit.auth import PasswordAuth
from smtpkit.testing import LocalServer

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
PASSWORD = "correct horse battery staple"
TIMEOUT = 5.0
ServerFactory = Callable[..., LocalServer]


def message(number: int = 0, to: str = "bob@example.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, to, f"async {number}"
    msg.set_content(f"Hello number {number}.\n")
    return msg


def submitter_for(server: LocalServer, **options: object) -> AsyncSubmitter:
    values: dict[str, object] = {
        "port": server.port,
        "security": server.security,
        "tls_context": server.client_tls_context(),
        "timeout": TIMEOUT,
    }
    values.update(options)
    return AsyncSubmitter(server.host, **values)  # type: ignore[arg-type]


def test_starttls_and_auth_then_reuse_of_one_login(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: PASSWORD})

    async def main() -> list[SendResult]:
        async with submitter_for(server, auth=PasswordAuth(USER, PASSWORD)) as submitter:
            return [await submitter.send(message(n)) for n in range(3)]

    results = asyncio.run(main())
    assert [r.accepted for r in results] == [("bob@example.test",)] * 3
    received = server.wait_for(3)
    assert [m.subject for m in received] == ["async 0", "async 1", "async 2"]
    assert len(server.auth_attempts) == 1  # one connection, logged in once, reused
    assert all(m.tls for m in received)


def test_implicit_tls(local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS, credentials={USER: PASSWORD})

    async def main() -> SendResult:
        async with submitter_for(server, auth=PasswordAuth(USER, PASSWORD)) as submitter:
            return await submitter.send(message())

    assert asyncio.run(main()).accepted == ("bob@example.test",)
    assert server.wait_for(1)[0].tls


def test_plaintext_auth_to_the_loopback_peer(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})

    async def main() -> SendResult:
        async with submitter_for(server, auth=PasswordAuth(USER, PASSWORD)) as submitter:
            return await submitter.send(message())

    assert asyncio.run(main()).accepted == ("bob@example.test",)
    assert [(a.mechanism, a.success) for a in server.auth_attempts] == [("PLAIN", True)]


def test_untrusted_certificate_is_refused(local_server: ServerFactory) -> None:
    server = local_server()

    async def main() -> None:
        async with AsyncSubmitter(server.host, server.port, timeout=TIMEOUT) as submitter:
            await submitter.send(message())  # the system CAs do not know the test CA

    with pytest.raises(SMTPError) as caught:
        asyncio.run(main())
    assert type(caught.value).__name__ == "TLSError"
    assert server.messages == []


def test_refused_and_partially_refused_recipients(local_server: ServerFactory) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.test", times=None)

    async def main() -> tuple[BaseException, SendResult]:
        async with submitter_for(server) as submitter:
            with pytest.raises(RecipientRejected) as refused:
                await submitter.send(message(to="nobody@example.test"))
            partial = await submitter.send(message(1, to="bob@example.test, nobody@example.test"))
            return refused.value, partial

    refused, partial = asyncio.run(main())
    assert isinstance(refused, RecipientRejected)
    assert refused.recipient == "nobody@example.test"
    assert refused.code == 550
    assert partial.accepted == ("bob@example.test",)
    assert list(partial.rejected) == ["nobody@example.test"]
    assert [list(m.recipients) for m in server.wait_for(1)] == [["bob@example.test"]]


def test_421_is_typed_and_a_retry_policy_resends_on_a_new_connection(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    server.reply("mail", "421 4.3.2 Service shutting down")

    async def main() -> tuple[BaseException, SendResult]:
        async with submitter_for(server) as submitter:
            with pytest.raises(ServiceUnavailable) as caught:
                await submitter.send(message(0))
        server.reply("mail", "421 4.3.2 Service shutting down")
        retrying = submitter_for(server, retry=Retry(attempts=2, backoff=0.01, jitter=0))
        async with retrying:
            return caught.value, await retrying.send(message(1))

    error, result = asyncio.run(main())
    assert error.is_transient  # type: ignore[attr-defined]
    assert result.accepted == ("bob@example.test",)
    assert [m.subject for m in server.wait_for(1)] == ["async 1"]


def test_connection_dropped_after_the_content_is_delivery_unknown(
    local_server: ServerFactory,
) -> None:
    server = local_server()
    server.disconnect("message")

    async def main() -> BaseException:
        async with submitter_for(server, retry=Retry(attempts=3, backoff=0)) as submitter:
            with pytest.raises(DeliveryUnknown) as caught:
                await submitter.send(message())
            return caught.value

    error = asyncio.run(main())
    assert isinstance(error, DeliveryUnknown)
    assert error.message_id is not None
    # The server has it: a blind resend would have delivered it twice. None happened.
    assert len(server.dropped) == 1
    assert server.messages == []


def test_wrong_password_costs_one_login_for_a_whole_batch(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: PASSWORD})

    async def main() -> list[SendResult | SMTPError]:
        auth = PasswordAuth(USER, "wrong password")
        async with submitter_for(server, auth=auth, max_connections=4) as submitter:
            return await submitter.send_many([message(n) for n in range(10)], concurrency=4)

    outcomes = asyncio.run(main())
    assert len(outcomes) == 10
    assert all(isinstance(o, InvalidCredentials) for o in outcomes)
    assert len(server.auth_attempts) == 1
    assert server.messages == []


def test_send_many_from_an_async_source_pipelines_and_reports_each(
    local_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.test", times=None)
    seen: list[tuple[int, str]] = []

    async def source() -> AsyncIterator[EmailMessage | Outgoing]:
        for n in range(12):
            await asyncio.sleep(0)
            to = "nobody@example.test" if n == 5 else "bob@example.test"
            yield message(n, to=to)
        raw = b"From: alice@example.test\r\nSubject: raw\r\n\r\nraw body\r\n"
        yield Outgoing(raw, sender=USER, recipients=["carol@example.test"])

    async def record(index: int, outcome: SendResult | SMTPError) -> None:
        await asyncio.sleep(0)
        seen.append((index, type(outcome).__name__))

    async def main() -> list[SendResult | SMTPError]:
        async with submitter_for(server, max_connections=2) as submitter:
            return await submitter.send_many(source(), concurrency=2, on_result=record)

    caplog.set_level(logging.INFO, logger="smtpkit")
    outcomes = asyncio.run(main())
    assert len(outcomes) == 13
    assert isinstance(outcomes[5], RecipientRejected)
    assert all(isinstance(o, SendResult) for i, o in enumerate(outcomes) if i != 5)
    assert sorted(seen) == [(i, type(o).__name__) for i, o in enumerate(outcomes)]
    received = server.wait_for(12)
    assert sorted(m.subject or "" for m in received) == sorted(
        [f"async {n}" for n in range(12) if n != 5] + ["raw"]
    )
    sent_lines = [r for r in caplog.records if r.getMessage().startswith("sent message_id=")]
    assert len(sent_lines) == 12


def test_on_result_raising_stops_the_batch_and_carries_the_outcomes(
    local_server: ServerFactory,
) -> None:
    server = local_server()

    def explode(index: int, outcome: SendResult | SMTPError) -> None:
        raise RuntimeError(f"cannot record {index}")

    async def main() -> None:
        async with submitter_for(server, max_connections=1) as submitter:
            await submitter.send_many([message(n) for n in range(50)], on_result=explode)

    with pytest.raises(BatchInterrupted) as caught:
        asyncio.run(main())
    error = caught.value
    assert isinstance(error.__cause__, RuntimeError)
    assert len(error.outcomes) == 50
    assert isinstance(error.outcomes[0], SendResult)
    sent = [i for i, outcome in enumerate(error.outcomes) if isinstance(outcome, SendResult)]
    assert 0 < len(sent) < 50  # it stopped starting new messages
    assert error.not_sent == tuple(i for i in range(50) if i not in sent)
    # What was delivered is exactly what the outcomes say: resending not_sent is safe.
    assert sorted(m.subject or "" for m in server.messages) == sorted(f"async {i}" for i in sent)


def test_concurrent_sends_with_a_wrong_password_share_one_refused_login(
    local_server: ServerFactory,
) -> None:
    server = local_server(credentials={USER: PASSWORD})

    async def main() -> list[SendResult | BaseException]:
        auth = PasswordAuth(USER, "wrong password")
        async with submitter_for(server, auth=auth, max_connections=4) as submitter:
            sends = (submitter.send(message(n)) for n in range(6))
            return await asyncio.gather(*sends, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, InvalidCredentials) for o in outcomes)
    assert len(server.auth_attempts) == 1  # the others waited for it and got its refusal


def test_open_logs_in_at_once_and_keeps_the_connection(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: PASSWORD})

    async def main() -> tuple[int, SendResult]:
        submitter = submitter_for(server, auth=PasswordAuth(USER, PASSWORD))
        await submitter.open()
        logins_before_send = len(server.auth_attempts)
        try:
            return logins_before_send, await submitter.send(message())
        finally:
            await submitter.aclose()

    logins, result = asyncio.run(main())
    assert logins == 1
    assert result.accepted == ("bob@example.test",)
    assert len(server.auth_attempts) == 1

"""Both drivers, one behaviour: TLS modes, logins, refusals and lost connections.

Every test runs twice, once with ``smtpkit.Submitter`` and once with
``smtpkit.AsyncSubmitter`` (the ``driver`` fixture of ``tests/drivers_kit.py``), over real
sockets to a LocalServer (aiosmtpd + trustme) on 127.0.0.1, and checks the server's side
too: what it received and how many logins it saw.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import pytest
from conftest import ServerLog
from drivers_kit import CALL_TIMEOUT, DriverFactory, driver, mail

from smtpkit import (
    ConfigurationError,
    DeliveryUnknown,
    InvalidCredentials,
    MessageError,
    Phase,
    RecipientRejected,
    ReplyError,
    Retry,
    Security,
    SenderRejected,
    SendResult,
    ServiceUnavailable,
    SMTPError,
    TLSError,
)
from smtpkit.auth import PasswordAuth
from smtpkit.testing import LocalServer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

USER = "alice@example.test"
PASSWORD = "correct horse battery staple"
NOBODY = "nobody@example.test"
ServerFactory = Callable[..., LocalServer]


def subjects(server: LocalServer) -> list[str]:
    return sorted(m.subject or "" for m in server.messages)


# -- TLS modes and logins ----------------------------------------------------------------------


def test_starttls_and_auth_log_in_once_for_several_sends(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    client = driver.for_server(server, auth=PasswordAuth(USER, PASSWORD))

    results = [client.send(mail(n)) for n in range(3)]

    assert [r.accepted for r in results] == [("bob@example.test",)] * 3
    assert [r.message_id for r in results] == [f"<drv-{n}@example.test>" for n in range(3)]
    received = server.wait_for(3)
    assert all(m.tls for m in received)
    assert [(a.mechanism, a.success) for a in server.auth_attempts] == [("PLAIN", True)]


def test_implicit_tls(driver: DriverFactory, local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS, credentials={USER: PASSWORD})
    client = driver.for_server(server, auth=PasswordAuth(USER, PASSWORD))

    assert client.send(mail()).accepted == ("bob@example.test",)
    [received] = server.wait_for(1)
    assert received.tls
    assert len(server.auth_attempts) == 1


def test_plaintext_to_loopback_with_auth(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(security=Security.NONE, credentials={USER: PASSWORD})
    client = driver.for_server(server, auth=PasswordAuth(USER, PASSWORD))

    assert client.send(mail()).accepted == ("bob@example.test",)
    [received] = server.wait_for(1)
    assert not received.tls
    assert [(a.mechanism, a.success) for a in server.auth_attempts] == [("PLAIN", True)]


CERTIFICATES: dict[str, dict[str, object]] = {
    "unknown-ca": {},  # the client trusts the system store, which does not know the test CA
    "wrong-name": {"certificate_names": ("mail.example.test",)},
    "expired": {"certificate_expired": True},
}


@pytest.mark.parametrize("security", [Security.STARTTLS, Security.TLS], ids=["starttls", "tls"])
@pytest.mark.parametrize("case", sorted(CERTIFICATES))
def test_a_certificate_that_cannot_be_trusted_is_refused(
    driver: DriverFactory, local_server: ServerFactory, case: str, security: Security
) -> None:
    server = local_server(security=security, credentials={USER: PASSWORD}, **CERTIFICATES[case])
    options = {"tls_context": None} if case == "unknown-ca" else {}
    client = driver.for_server(server, auth=PasswordAuth(USER, PASSWORD), **options)

    with pytest.raises(TLSError) as caught:
        client.send(mail())

    assert "certificate" in str(caught.value).lower()
    assert server.auth_attempts == []  # the password never crossed the untrusted link
    assert server.messages == []


# -- refusals ----------------------------------------------------------------------------------


def test_a_refused_recipient_among_others_is_reported_in_the_result(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient=NOBODY, times=None)
    client = driver.for_server(server)

    result = client.send(mail(to=f"bob@example.test, {NOBODY}, carol@example.test"))

    assert result.accepted == ("bob@example.test", "carol@example.test")
    assert list(result.rejected) == [NOBODY]
    assert result.rejected[NOBODY].code == 550
    assert result.partially_rejected
    [received] = server.wait_for(1)
    assert list(received.recipients) == ["bob@example.test", "carol@example.test"]


def test_all_recipients_refused_raises_and_the_connection_stays_usable(
    driver: DriverFactory, local_server: ServerFactory, server_log: ServerLog
) -> None:
    server = local_server()
    server.reply("rcpt", "550 5.1.1 User unknown", recipient=NOBODY, times=None)
    client = driver.for_server(server)

    with pytest.raises(RecipientRejected) as caught:
        client.send(mail(0, to=NOBODY))
    after = client.send(mail(1))

    error = caught.value
    assert (error.recipient, error.code, error.phase) == (NOBODY, 550, Phase.RCPT)
    assert error.is_transient is False
    assert after.accepted == ("bob@example.test",)
    assert subjects(server) == ["drv 1"]
    assert "RSET" in server_log.verbs()  # the refused envelope was reset ...
    assert server.connections == 1  # ... and the connection reused


def test_a_refused_sender(driver: DriverFactory, local_server: ServerFactory) -> None:
    server = local_server()
    server.reply("mail", "553 5.7.1 Sender address rejected: not owned by user")
    client = driver.for_server(server)

    with pytest.raises(SenderRejected) as caught:
        client.send(mail())

    assert (caught.value.code, caught.value.phase) == (553, Phase.MAIL)
    assert caught.value.hint  # says what to do
    assert server.messages == []


# -- 421: the server closes; the next send reconnects -----------------------------------------


@pytest.mark.parametrize("phase", ["greeting", "mail", "rcpt", "message"])
def test_421_is_a_transient_error_and_the_next_send_reconnects(
    driver: DriverFactory, local_server: ServerFactory, phase: str
) -> None:
    server = local_server()
    server.reply(phase, "421 4.3.2 Service shutting down")
    client = driver.for_server(server)

    with pytest.raises(ReplyError) as caught:
        client.send(mail(0))
    again = client.send(mail(1))

    error = caught.value
    assert isinstance(error, ServiceUnavailable), type(error)
    assert (error.code, error.is_transient, error.phase) == (421, True, Phase(phase))
    assert not isinstance(error, DeliveryUnknown)  # a reply after the content is an answer
    assert again.accepted == ("bob@example.test",)
    assert subjects(server) == ["drv 1"]  # the 421'd message was not delivered, nor resent
    assert server.connections == 2


def test_a_connection_dropped_after_the_content_is_delivery_unknown_and_never_resent(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    dropped = iter([LocalServer.DROP])
    server = local_server(faults=lambda phase: next(dropped, None) if phase == "message" else None)
    client = driver.for_server(server, retry=Retry(attempts=3, backoff=0, jitter=0))

    with pytest.raises(DeliveryUnknown) as caught:
        client.send(mail(7))
    again = client.send(mail(8))

    assert caught.value.message_id == "<drv-7@example.test>"
    assert again.accepted == ("bob@example.test",)
    # The server delivered it and its reply was lost: a resend would have doubled it.
    assert subjects(server) == ["drv 7", "drv 8"]


def test_a_connection_closed_after_the_content_is_delivery_unknown(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    server.disconnect("message")
    client = driver.for_server(server, retry=Retry(attempts=3, backoff=0, jitter=0))

    with pytest.raises(DeliveryUnknown) as caught:
        client.send(mail(3))

    assert caught.value.message_id == "<drv-3@example.test>"
    assert [m.subject for m in server.dropped] == ["drv 3"]
    assert server.messages == []


# -- a wrong password is tried once --------------------------------------------------------------


def test_a_wrong_password_costs_one_login_for_a_whole_batch(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    auth = PasswordAuth(USER, "wrong password")
    client = driver.for_server(server, auth=auth, max_connections=4)

    outcomes = client.send_many([mail(n) for n in range(10)], concurrency=4)

    assert len(outcomes) == 10
    assert all(isinstance(o, InvalidCredentials) for o in outcomes), outcomes
    assert len(server.auth_attempts) == 1
    assert server.messages == []


def test_concurrent_sends_with_a_wrong_password_share_one_refused_login(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(credentials={USER: PASSWORD})
    server.delay("auth", 0.3)  # every send is surely waiting on the first login
    auth = PasswordAuth(USER, "wrong password")
    client = driver.for_server(server, auth=auth, max_connections=4)

    sends = [client.start_send(mail(n)) for n in range(6)]
    done, _ = concurrent.futures.wait(sends, timeout=CALL_TIMEOUT)

    assert len(done) == 6
    errors = [future.exception() for future in sends]
    assert all(isinstance(e, InvalidCredentials) for e in errors), errors
    assert len(server.auth_attempts) == 1


# -- Retry: a 451 is sent again, and the message arrives once ------------------------------------


@pytest.mark.parametrize("phase", ["mail", "rcpt", "data", "message"])
def test_retry_after_a_451_delivers_the_message_once(
    driver: DriverFactory, local_server: ServerFactory, phase: str
) -> None:
    server = local_server()
    server.reply(phase, "451 4.3.0 Temporary local problem, try again")
    client = driver.for_server(server, retry=Retry(attempts=3, backoff=0.01, jitter=0))

    result = client.send(mail(5))

    assert isinstance(result, SendResult)
    assert result.message_id == "<drv-5@example.test>"
    assert subjects(server) == ["drv 5"]


@pytest.mark.parametrize("phase", ["greeting", "mail", "rcpt", "message"])
def test_retry_gives_up_after_its_attempts_counted_at_the_server(
    driver: DriverFactory, local_server: ServerFactory, server_log: ServerLog, phase: str
) -> None:
    server = local_server()
    server.reply(phase, "451 4.3.0 Try again later", times=None)
    client = driver.for_server(server, retry=Retry(attempts=3, backoff=0, jitter=0))

    with pytest.raises(SMTPError) as caught:
        client.send(mail())

    assert caught.value.is_transient
    if phase == "greeting":
        assert server.connections == 3
    else:
        assert server_log.verbs().count("MAIL") == 3
    assert server.messages == []


def test_without_retry_a_451_is_raised_typed(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    server.reply("rcpt", "451 4.3.0 Temporary local problem, try again")
    client = driver.for_server(server)

    with pytest.raises(SMTPError) as caught:
        client.send(mail())

    assert caught.value.is_transient
    assert server.messages == []


# -- refused before anything is sent -----------------------------------------------------------


def test_concurrency_above_max_connections_is_refused_before_connecting(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    client = driver.for_server(server, max_connections=4)

    with pytest.raises(ConfigurationError, match=r"concurrency=8.*max_connections=4") as caught:
        client.send_many([mail(n) for n in range(20)], concurrency=8)

    assert "max_connections=8" in (caught.value.hint or "")
    assert server.connections == 0


def test_a_preset_recipient_cap_is_checked_before_connecting(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    client = driver.for_server(server, provider="gmail")  # Gmail: 100 recipients a message
    too_many = mail(1)
    too_many.replace_header("To", ", ".join(f"user{i}@example.test" for i in range(101)))

    with pytest.raises(MessageError, match=r"101 recipients; Gmail accepts at most 100"):
        client.send(too_many)
    outcomes = client.send_many([too_many, mail(2)], concurrency=1)

    assert isinstance(outcomes[0], MessageError)
    assert isinstance(outcomes[1], SendResult)
    assert server.connections == 1  # for the second message only
    assert subjects(server) == ["drv 2"]

"""Delivery status notifications (RFC 3461) and other MAIL/RCPT parameters, end to end.

Every send test runs with both drivers (``smtpkit.Submitter`` and ``smtpkit.AsyncSubmitter``,
the ``driver`` fixture) against a LocalServer on 127.0.0.1, and checks what the server
recorded: ``mail_options`` and ``options_for(recipient)`` are the parameters as they
arrived on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from conftest import ServerLog
from drivers_kit import Client, DriverFactory, driver, mail

from smtpkit import (
    DSN,
    ConfigurationError,
    DSNNotOffered,
    ESMTPParams,
    IfUnsupported,
    MessageError,
    Notify,
    Outgoing,
    RecipientDSN,
    Ret,
    SenderRejected,
    SendResult,
)
from smtpkit.testing import FakeCapabilities, FakeTransport, LocalServer

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., LocalServer]


def send(client: Client, message: EmailMessage | bytes, **options: Any) -> SendResult:
    """``send`` with the keyword options the drivers kit's ``send`` does not pass on."""
    submitter = client.submitter
    if client.name == "async":
        return client.run(submitter.send(message, **options))  # type: ignore[attr-defined]
    return submitter.send(message, **options)  # type: ignore[return-value]


def two_recipients() -> EmailMessage:
    msg = mail(tag="dsn")
    del msg["To"]
    msg["To"] = "bob@example.test, carol@example.test"
    return msg


# -- on the wire, both drivers -------------------------------------------------------------


def test_dsn_parameters_reach_the_server(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(dsn=True)
    client = driver.for_server(server)

    result = send(
        client,
        two_recipients(),
        dsn=DSN(notify=("failure", "delay"), ret="headers", envid="order 42+x=y"),
    )

    assert result.accepted == ("bob@example.test", "carol@example.test")
    [received] = server.wait_for(1)
    # RFC 3461 §4.3/§4.4: RET=HDRS, ENVID as xtext (space, "+" and "=" as +HH).
    assert "RET=HDRS" in received.mail_options
    assert "ENVID=order+2042+2Bx+3Dy" in received.mail_options
    assert received.options_for("bob@example.test") == (
        "NOTIFY=FAILURE,DELAY",
        "ORCPT=rfc822;bob@example.test",
    )
    assert received.options_for("carol@example.test") == (
        "NOTIFY=FAILURE,DELAY",
        "ORCPT=rfc822;carol@example.test",
    )


def test_per_recipient_notify_and_orcpt(driver: DriverFactory, local_server: ServerFactory) -> None:
    server = local_server(dsn=True)
    client = driver.for_server(server)
    dsn = DSN(
        notify=(Notify.SUCCESS, Notify.FAILURE),
        ret=Ret.FULL,
        recipients={
            # keys match the envelope address ignoring the domain's case (RFC 5321 §2.4)
            "carol@EXAMPLE.test": RecipientDSN(notify=("never",), orcpt="team+list@example.test")
        },
    )

    send(client, two_recipients(), dsn=dsn)

    [received] = server.wait_for(1)
    assert "RET=FULL" in received.mail_options
    assert not any(o.startswith("ENVID=") for o in received.mail_options)
    assert received.options_for("bob@example.test") == (
        "NOTIFY=SUCCESS,FAILURE",
        "ORCPT=rfc822;bob@example.test",
    )
    assert received.options_for("carol@example.test") == (
        "NOTIFY=NEVER",
        "ORCPT=rfc822;team+2Blist@example.test",
    )


def test_orcpt_can_be_left_out(driver: DriverFactory, local_server: ServerFactory) -> None:
    server = local_server(dsn=True)
    client = driver.for_server(server)

    send(client, mail(), dsn=DSN(notify=("delay",), orcpt=False))

    [received] = server.wait_for(1)
    assert received.options_for("bob@example.test") == ("NOTIFY=DELAY",)
    assert not [o for o in received.mail_options if o.split("=")[0] in ("RET", "ENVID")]


def test_a_server_without_dsn_is_refused_before_mail(
    driver: DriverFactory, local_server: ServerFactory, server_log: ServerLog
) -> None:
    server = local_server(dsn=False)
    client = driver.for_server(server)

    with pytest.raises(DSNNotOffered) as caught:
        send(client, mail(), dsn=DSN())

    assert isinstance(caught.value, MessageError)
    assert "does not offer DSN" in str(caught.value)
    assert "send_without" in (caught.value.hint or "")
    assert server.messages == []
    assert not [c for c in server_log.commands() if c.upper().startswith("MAIL")]
    # The connection stays good for the next message.
    assert send(client, mail(1)).accepted == ("bob@example.test",)


def test_send_without_dsn_when_the_server_lacks_it_if_asked(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(dsn=False)
    client = driver.for_server(server)

    result = send(
        client,
        mail(),
        dsn=DSN(ret="full", envid="x1", if_unsupported=IfUnsupported.SEND_WITHOUT),
    )

    assert result.accepted == ("bob@example.test",)
    [received] = server.wait_for(1)
    assert not [o for o in received.mail_options if o.split("=")[0] in ("RET", "ENVID")]
    assert received.options_for("bob@example.test") == ()


def test_send_many_takes_a_dsn_per_message(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(dsn=True)
    client = driver.for_server(server)
    items = [
        Outgoing(mail(0), dsn=DSN(envid="first")),
        mail(1),  # a plain message: no DSN
        Outgoing(mail(2), dsn=DSN(notify=("never",), orcpt=False)),
    ]

    outcomes = client.send_many(items, concurrency=1)

    assert all(isinstance(o, SendResult) for o in outcomes)
    received = {m.subject: m for m in server.wait_for(3)}
    assert "ENVID=first" in received["drv 0"].mail_options
    assert received["drv 0"].options_for("bob@example.test")[0] == "NOTIFY=FAILURE,DELAY"
    assert not any(o.startswith("ENVID") for o in received["drv 1"].mail_options)
    assert received["drv 1"].options_for("bob@example.test") == ()
    assert received["drv 2"].options_for("bob@example.test") == ("NOTIFY=NEVER",)


def test_send_many_reports_a_refused_dsn_for_that_message_only(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(dsn=False)
    client = driver.for_server(server)

    outcomes = client.send_many([Outgoing(mail(0), dsn=DSN()), mail(1)], concurrency=1)

    assert isinstance(outcomes[0], MessageError)
    assert isinstance(outcomes[1], SendResult)
    assert [m.subject for m in server.wait_for(1)] == ["drv 1"]


def test_other_mail_parameters_reach_the_server(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    # RFC 4954 §5: AUTH=<> on MAIL says the submitter does not vouch for the sender; the
    # LocalServer accepts it because it offers AUTH.
    server = local_server(dsn=True)
    client = driver.for_server(server)

    send(client, mail(), params=ESMTPParams(mail={"auth": "<>"}), dsn=DSN(envid="e"))

    [received] = server.wait_for(1)
    assert received.mail_options[-2:] == ("ENVID=e", "AUTH=<>")


def test_a_parameter_the_server_does_not_know_is_its_refusal(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server()
    client = driver.for_server(server)

    with pytest.raises(SenderRejected) as caught:
        send(client, mail(), params=ESMTPParams(mail={"X-UNKNOWN": "1"}))

    assert caught.value.reply is not None
    assert caught.value.reply.code == 555
    assert server.messages == []


def test_the_fake_transport_records_dsn_too(driver: DriverFactory) -> None:
    fake = FakeTransport(capabilities=FakeCapabilities(dsn=True))
    client = driver.client("smtp.example.test", 587, transport=fake)

    send(client, mail(), dsn=DSN(ret="headers", envid="fake-1"))

    [received] = fake.messages
    assert received.mail_options[-2:] == ("RET=HDRS", "ENVID=fake-1")
    assert received.options_for("bob@example.test") == (
        "NOTIFY=FAILURE,DELAY",
        "ORCPT=rfc822;bob@example.test",
    )


def test_a_non_ascii_recipient_gets_a_utf8_orcpt(
    driver: DriverFactory, local_server: ServerFactory
) -> None:
    server = local_server(dsn=True, smtputf8=True)
    client = driver.for_server(server)

    send(
        client,
        mail(),
        recipients=["jöran@example.test"],
        dsn=DSN(notify=("failure",)),
    )

    [received] = server.wait_for(1)
    # RFC 6533 §3: utf-8-addr-xtext, ASCII only.
    assert received.options_for("jöran@example.test") == (
        "NOTIFY=FAILURE",
        "ORCPT=utf-8;j\\x{F6}ran@example.test",
    )


# -- refused before anything is sent -------------------------------------------------------


def test_wrong_option_types_are_configuration_errors(driver: DriverFactory) -> None:
    fake = FakeTransport()
    client = driver.client("smtp.example.test", 587, transport=fake)

    for options in ({"dsn": "failure"}, {"params": {"X": "1"}}, {"dkim": "s1"}):
        with pytest.raises(ConfigurationError):
            send(client, mail(), **options)
    with pytest.raises(ConfigurationError):
        Outgoing(mail(), dsn="failure")  # type: ignore[arg-type]
    assert fake.messages == []


def test_a_per_recipient_setting_for_someone_else_is_refused(driver: DriverFactory) -> None:
    fake = FakeTransport()
    client = driver.client("smtp.example.test", 587, transport=fake)

    with pytest.raises(MessageError, match=r"dave@example\.test"):
        send(client, mail(), dsn=DSN(recipients={"dave@example.test": RecipientDSN()}))
    with pytest.raises(MessageError, match=r"dave@example\.test"):
        send(client, mail(), params=ESMTPParams(per_recipient={"dave@example.test": {"X": "1"}}))
    assert fake.messages == []

"""Run the Django scenarios in a fresh process: ``python -m tests.django_project.run STYLE``.

A process can configure Django once, so each settings style runs in its own process. This
starts a real LocalServer (STARTTLS, AUTH required) on 127.0.0.1, points the settings module
at it through the environment, sets Django up and runs every scenario of the style. It
prints one JSON line after ``RESULTS:``: scenario name to ``{"ok": true}``,
``{"ok": false, "error": traceback}`` or ``{"skipped": reason}``.
"""

# ruff: noqa: PT017, PT018 - a script run by the tests, not a pytest module

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from smtpkit.testing import LocalServer

USER = "alice@example.test"
PASSWORD = "s3cret-Django"
REFUSED = "nobody@example.test"
STYLES = {"legacy": "settings", "mailers": "settings_mailers"}


class Skip(Exception):
    """A scenario that does not apply to this Django version."""


class Records(logging.Handler):
    """Every log record of the ``smtpkit`` loggers, for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, name: str, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == name and r.levelno == level]


RECORDS = Records()
Scenario = Callable[[LocalServer], None]
SCENARIOS: dict[str, dict[str, Scenario]] = {"legacy": {}, "mailers": {}}


def scenario(*styles: str) -> Callable[[Scenario], Scenario]:
    def register(func: Scenario) -> Scenario:
        for style in styles:
            SCENARIOS[style][func.__name__] = func
        return func

    return register


def _need_mailers() -> None:
    import django  # noqa: PLC0415

    if django.VERSION < (6, 1):
        raise Skip(f"MAILERS needs Django 6.1+, this is {django.get_version()}")


def _mailer(alias: str = "default") -> object:
    from django.core import mail  # noqa: PLC0415

    return mail.mailers[alias]


# -- both styles ---------------------------------------------------------------------------


@scenario("legacy", "mailers")
def send_mail_plain(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415

    sent = mail.send_mail("Hello", "Body text", None, ["bob@example.test"])
    assert sent == 1
    [received] = server.wait_for(1)
    assert received.sender == "app@example.test"
    assert received.recipients == ("bob@example.test",)
    assert received.tls, "STARTTLS (EMAIL_USE_TLS) was not used"
    assert received.auth_user == USER
    assert received.message["Subject"] == "Hello"
    assert received.message["Message-ID"]
    info = RECORDS.named("smtpkit", logging.INFO)
    assert any("sent message_id=" in r.getMessage() for r in info), "no INFO line"


@scenario("legacy", "mailers")
def multi_alternatives_with_attachments(server: LocalServer) -> None:
    from django.core.mail import EmailMultiAlternatives  # noqa: PLC0415

    message = EmailMultiAlternatives(
        "Report",
        "Plain body",
        "Reports <reports@example.test>",
        ["Bob <bob@example.test>"],
        cc=["carol@example.test"],
        bcc=["dave@example.test"],
    )
    message.attach_alternative("<p>HTML body</p>", "text/html")
    message.attach("data.csv", "a,b\n1,2\n", "text/csv")
    message.attach("blob.bin", bytes(range(256)), "application/octet-stream")
    assert message.send() == 1
    [received] = server.wait_for(1)
    assert received.sender == "reports@example.test"
    assert set(received.recipients) == {
        "bob@example.test",
        "carol@example.test",
        "dave@example.test",
    }
    assert "dave" not in received.raw.decode("ascii", "replace"), "Bcc leaked into headers"
    got = received.message
    assert got.get_content_type() == "multipart/mixed"
    attachments = {part.get_filename(): part.get_content() for part in got.iter_attachments()}
    assert attachments["data.csv"].replace("\r\n", "\n") == "a,b\n1,2\n"
    assert attachments["blob.bin"] == bytes(range(256))
    html = got.get_body(("html",))
    assert html is not None and "<p>HTML body</p>" in html.get_content()


@scenario("legacy", "mailers")
def one_connection_across_send_messages(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415

    connection = _mailer() if _has_mailers() else mail.get_connection()
    messages = [mail.EmailMessage(f"n{n}", "body", None, ["bob@example.test"]) for n in range(3)]
    with connection:
        assert connection.send_messages(messages[:2]) == 2
        assert connection.send_messages(messages[2:]) == 1
    server.wait_for(3)
    assert len(server.auth_attempts) == 1, server.auth_attempts  # one login, one connection
    assert connection.send_messages([]) == 0


@scenario("legacy", "mailers")
def partial_rejection_is_not_lost(server: LocalServer) -> None:
    from django.core.mail import EmailMessage  # noqa: PLC0415

    server.reply(
        "rcpt", "550 5.1.1 <nobody@example.test>: User unknown", recipient=REFUSED, times=None
    )
    message = EmailMessage("Hi", "body", None, ["bob@example.test", REFUSED])
    assert message.send() == 1
    [received] = server.wait_for(1)
    assert received.recipients == ("bob@example.test",)
    rejected = message.smtpkit_rejected
    assert list(rejected) == [REFUSED]
    assert rejected[REFUSED].code == 550
    assert message.smtpkit_result.accepted == ("bob@example.test",)
    [warning] = RECORDS.named("smtpkit.django", logging.WARNING)
    text = warning.getMessage()
    assert REFUSED in text and "550" in text and "User unknown" in text, text


@scenario("legacy", "mailers")
def all_refused_raises_unless_silent(server: LocalServer) -> None:
    from django.core.mail import EmailMessage  # noqa: PLC0415

    from smtpkit.errors import RecipientRejected  # noqa: PLC0415

    server.reply("rcpt", "550 5.1.1 User unknown", recipient=REFUSED, times=None)
    message = EmailMessage("Hi", "body", None, [REFUSED])
    try:
        message.send()
    except RecipientRejected as error:
        assert message.smtpkit_error is error
    else:
        raise AssertionError("RecipientRejected not raised")
    if _has_mailers():
        silent = _mailer("silent")
        assert silent.fail_silently is True
        assert silent.send_messages([EmailMessage("Hi", "b", None, [REFUSED])]) == 0
    else:
        from django.core import mail  # noqa: PLC0415

        assert mail.send_mail("Hi", "b", None, [REFUSED], fail_silently=True) == 0
    assert server.messages == []


@scenario("legacy", "mailers")
def locmem_outbox_unaffected(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415
    from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: PLC0415

    setup_test_environment()
    try:
        assert mail.send_mail("In tests", "body", None, ["bob@example.test"]) == 1
        assert len(mail.outbox) == 1
        assert mail.outbox[0].subject == "In tests"
    finally:
        teardown_test_environment()
    assert server.messages == [], "a locmem test sent real mail"


# -- Django 5.2 style ----------------------------------------------------------------------


@scenario("legacy")
def get_connection_keyword_options(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415

    from smtpkit import Submitter  # noqa: PLC0415

    context = _tls_context(server)
    url = server.url.replace(
        "smtp+starttls://", f"smtp+starttls://alice%40example.test:{PASSWORD}@"
    )
    by_url = mail.get_connection(url=url, tls_context=context)
    assert by_url.send_messages([mail.EmailMessage("u", "b", None, ["bob@example.test"])]) == 1
    ready = Submitter.from_url(url, tls_context=context)
    by_submitter = mail.get_connection(submitter=ready)
    assert by_submitter.submitter is ready
    assert (
        by_submitter.send_messages([mail.EmailMessage("s", "b", None, ["bob@example.test"])]) == 1
    )
    assert [m.message["Subject"] for m in server.wait_for(2)] == ["u", "s"]


@scenario("legacy")
def unknown_option_is_reported(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mail.get_connection(hots="127.0.0.1")
    except TypeError as error:
        assert "hots" in str(error)
    else:  # Django 6.1+ without MAILERS: Django warns and ignores, as for its own backends
        assert any("hots" in str(w.message) for w in caught), caught


@scenario("legacy")
def conflicting_options_are_refused(server: LocalServer) -> None:
    from django.core.exceptions import ImproperlyConfigured  # noqa: PLC0415

    from smtpkit.django import EmailBackend  # noqa: PLC0415

    for options in (
        {"host": "127.0.0.1", "use_tls": True, "use_ssl": True},
        {"host": "127.0.0.1", "ssl_certfile": "c.pem", "tls_context": _tls_context(server)},
        {"host": "127.0.0.1", "ssl_keyfile": "k.pem"},
        {"host": "127.0.0.1", "username": "u"},
        {"url": server.url, "provider": "gmail"},
    ):
        try:
            EmailBackend(**options)
        except ImproperlyConfigured:
            continue
        raise AssertionError(f"accepted {options}")


@scenario("legacy")
def client_certificate_settings(server: LocalServer) -> None:
    import trustme  # noqa: PLC0415
    from django.core import mail  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    directory = Path(os.environ["SMTPKIT_TEST_TMP"])
    client = trustme.CA().issue_cert("client.example.test")
    cert, key = directory / "client.pem", directory / "client.key"
    client.cert_chain_pems[0].write_to_path(cert)
    client.private_key_pem.write_to_path(key)
    # The default context verifies against the default CA paths: point them at the
    # LocalServer's CA (SSL_CERT_FILE), since a context of our own would conflict.
    os.environ["SSL_CERT_FILE"] = str(server.ca_path)
    with override_settings(
        SMTPKIT_OPTIONS={}, EMAIL_SSL_CERTFILE=str(cert), EMAIL_SSL_KEYFILE=str(key)
    ):
        assert mail.send_mail("cert", "b", None, ["bob@example.test"]) == 1
    [received] = server.wait_for(1)
    assert received.tls


@scenario("legacy")
def provider_and_url_settings(server: LocalServer) -> None:
    from django.core import mail  # noqa: PLC0415
    from django.test.utils import override_settings  # noqa: PLC0415

    from smtpkit import Security  # noqa: PLC0415

    url = f"smtp+starttls://alice%40example.test@127.0.0.1:{server.port}?timeout=5"
    with override_settings(SMTPKIT_URL=url):  # the password comes from EMAIL_HOST_PASSWORD
        assert mail.send_mail("url", "b", None, ["bob@example.test"]) == 1
    with override_settings(SMTPKIT_PROVIDER="gmail", EMAIL_USE_TLS=False, EMAIL_USE_SSL=True):
        submitter = mail.get_connection().submitter
        # The preset's host; the project's explicit EMAIL_PORT and EMAIL_USE_SSL win.
        assert (submitter.host, submitter.port) == ("smtp.gmail.com", server.port)
        assert submitter.security is Security.TLS
        assert submitter.auth.username == USER
    gmail = mail.get_connection(
        provider="gmail", username="me@gmail.com", password="abcd efgh ijkl mnop"
    ).submitter
    assert (gmail.host, gmail.port, gmail.security) == ("smtp.gmail.com", 587, Security.STARTTLS)
    assert type(gmail.auth).__name__ == "AppPasswordAuth"
    [received] = server.wait_for(1)
    assert received.message["Subject"] == "url"


# -- Django 6.1 MAILERS style --------------------------------------------------------------


@scenario("mailers")
def mailers_by_url_and_using(server: LocalServer) -> None:
    _need_mailers()
    from django.core import mail  # noqa: PLC0415

    assert mail.send_mail("via url", "b", None, ["bob@example.test"], using="by_url") == 1
    [received] = server.wait_for(1)
    assert received.message["Subject"] == "via url"
    assert received.auth_user == USER


@scenario("mailers")
def mailers_unknown_option_reported_by_django(server: LocalServer) -> None:
    _need_mailers()
    from django.core.mail import InvalidMailer  # noqa: PLC0415

    try:
        _mailer("typo")
    except InvalidMailer as error:
        assert "'hots'" in str(error) and "typo" in str(error), str(error)
    else:
        raise AssertionError("Django did not report the unknown option")


@scenario("mailers")
def mailers_own_fail_silently(server: LocalServer) -> None:
    _need_mailers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning on reading the attribute
        assert _mailer().fail_silently is False
        assert _mailer("silent").fail_silently is True


# -- runner --------------------------------------------------------------------------------


def _has_mailers() -> bool:
    from django.conf import settings  # noqa: PLC0415

    return hasattr(settings, "MAILERS")


def _tls_context(server: LocalServer) -> object:
    return server.client_tls_context()


def main(style: str) -> int:
    logger = logging.getLogger("smtpkit")
    logger.addHandler(RECORDS)
    logger.setLevel(logging.DEBUG)
    results: dict[str, dict[str, object]] = {}
    scratch = tempfile.mkdtemp(prefix="smtpkit-django-")
    os.environ["SMTPKIT_TEST_TMP"] = scratch
    with LocalServer(credentials={USER: PASSWORD}, require_auth=True) as server:
        os.environ.update(
            SMTPKIT_TEST_PORT=str(server.port),
            SMTPKIT_TEST_CA=str(server.ca_path),
            SMTPKIT_TEST_USER=USER,
            SMTPKIT_TEST_PASSWORD=PASSWORD,
            DJANGO_SETTINGS_MODULE=f"tests.django_project.{STYLES[style]}",
        )
        import django  # noqa: PLC0415

        django.setup()
        for name, func in SCENARIOS[style].items():
            server.clear()
            RECORDS.records.clear()
            try:
                if style == "mailers":
                    _need_mailers()  # older Django ignores MAILERS: nothing to test
                func(server)
            except Skip as skip:
                results[name] = {"skipped": str(skip)}
            except BaseException:
                results[name] = {"ok": False, "error": traceback.format_exc()}
            else:
                results[name] = {"ok": True}
        results["_django"] = {"version": django.get_version()}
    shutil.rmtree(scratch, ignore_errors=True)
    print("RESULTS:" + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Every public entry point, driven with wrong-typed arguments, fails typed or not at all.

Hardening rule: a caller who passes the wrong kind of value to a public call gets an
smtpkit error (a :class:`~smtpkit.ConfigurationError` or :class:`~smtpkit.MessageError`,
both also ``ValueError``; or another :class:`~smtpkit.SMTPError`), never a bare
``TypeError``/``AttributeError`` from deep inside, and never a hang. Calls that take no
network action are expected to *raise*; a few look-ups may instead answer "nothing"
(``providers.lookup(5)`` is ``None``), which the table says with ``raises=None``.

The table is the test: to cover a new entry point or a new wrong value, add a row.
Nothing here opens a socket: construction is refused before any I/O (the transports are
fakes that fail the test if asked to connect).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from smtpkit import (
    ConfigurationError,
    MessageError,
    Retry,
    SMTPError,
    Submitter,
    Timeouts,
    providers,
)
from smtpkit.auth import (
    AccessToken,
    AppPasswordAuth,
    OAuthBearerAuth,
    PasswordAuth,
    XOAuth2Auth,
)
from smtpkit.config import Endpoint
from smtpkit.drivers import PoolLimits
from smtpkit.oauth import (
    ClientCredentialsProvider,
    FileTokenStore,
    RefreshTokenProvider,
    StaticToken,
    microsoft_app_only,
    microsoft_delegated,
)
from smtpkit.testing import FakeTransport

HOST = "mail.example.com"
#: A canary: it must never show in an error.
PASSWORD = "CANARY-pass-7731"


class NoConnect:
    """A transport that fails the test if anything tries to connect."""

    def connect(self, endpoint: Endpoint) -> object:
        raise AssertionError(f"a refused configuration connected to {endpoint.host}")


def submitter(**options: object) -> Submitter:
    """``Submitter(HOST, transport=NoConnect(), **options)`` (``host`` may be overridden)."""
    host = options.pop("host", HOST)
    options.setdefault("transport", NoConnect())
    return Submitter(host, **options)


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", "hi"
    msg.set_content("hello")
    return msg


@dataclass(frozen=True)
class Case:
    """One call with a wrong argument.

    ``raises``: the smtpkit error it must raise; ``None``: it may also return normally
    (any exception it raises must still be an :class:`~smtpkit.SMTPError`).
    """

    id: str
    call: Callable[[], object]
    raises: type[SMTPError] | None = ConfigurationError


def cases() -> list[Case]:
    fake = FakeTransport
    static = StaticToken("ya29.token")
    token_url = "https://login.example.com/token"
    return [
        # -- Submitter(): every keyword with a value of the wrong type or range -------------
        *(
            Case(f"Submitter(host={host!r})", lambda host=host: submitter(host=host))
            for host in (
                None,
                5,
                b"mail.example.com",
                "",
                "   ",
                "mail example.com",
                "mail.example.com\r\nRSET",
                "mail\nexample.com",
                "mail\0.example.com",
                "mail\t.example.com",
                "smtp://mail.example.com",
                "mail.example.com:587",
                "me@mail.example.com",
                "mail..example.com",
                "-mail.example.com",
                "mail.example.com/x",
                "\udcffmail.example.com",
                "a" * 64 + ".example.com",
            )
        ),
        *(
            Case(f"Submitter(port={port!r})", lambda port=port: submitter(port=port))
            for port in ("587", 2.5, True, 0, 70000, -1)
        ),
        Case("Submitter(security='tls')", lambda: submitter(security="tls")),
        Case("Submitter(auth='user:pass')", lambda: submitter(auth=f"user:{PASSWORD}")),
        Case("Submitter(auth=('u', 'p'))", lambda: submitter(auth=("user", PASSWORD))),
        Case("Submitter(auth={'u': 'p'})", lambda: submitter(auth={"user": PASSWORD})),
        Case("Submitter(auth=5)", lambda: submitter(auth=5)),
        Case("Submitter(auth=PasswordAuth)", lambda: submitter(auth=PasswordAuth)),
        Case("Submitter(auth=StaticToken)", lambda: submitter(auth=static)),
        *(
            Case(f"Submitter(timeout={value!r})", lambda value=value: submitter(timeout=value))
            for value in ("30", math.nan, math.inf, -1, 0, True, [1])
        ),
        Case("Submitter(tls_context='x')", lambda: submitter(tls_context="default")),
        *(
            Case(
                f"Submitter(local_hostname={name!r})",
                lambda name=name: submitter(local_hostname=name),
            )
            for name in (
                5,
                b"client.example.com",
                "",
                "  ",
                "me\r\nMAIL FROM:<x@y>",
                "me\nx",
                "me\0x",
                "my host",
                "::1",
                "client.example.com:25",
                "bücher.example",
                "a" * 256,
                "[not-an-address]",
                "-client.example",
            )
        ),
        Case("Submitter(transport=object())", lambda: submitter(transport=object())),
        Case("Submitter(transport='socket')", lambda: submitter(transport="socket")),
        Case("Submitter(transport=FakeTransport)", lambda: submitter(transport=fake)),
        Case(
            "Submitter(allow_unencrypted_auth='yes')",
            lambda: submitter(allow_unencrypted_auth="yes"),
        ),
        Case("Submitter(provider=5)", lambda: submitter(provider=5)),
        Case("Submitter(provider='')", lambda: submitter(provider="")),
        Case("Submitter(retry=3)", lambda: submitter(retry=3)),
        Case("Submitter(retry=Retry)", lambda: submitter(retry=Retry)),
        *(
            Case(
                f"Submitter(max_connections={value!r})",
                lambda value=value: submitter(max_connections=value),
            )
            for value in ("4", 2.5, 0, -1, True, math.nan, None)
        ),
        *(
            Case(
                f"Submitter(max_messages_per_connection={value!r})",
                lambda value=value: submitter(max_messages_per_connection=value),
            )
            for value in ("100", 2.5, 0, True, math.nan)
        ),
        *(
            Case(
                f"Submitter(idle_timeout={value!r})",
                lambda value=value: submitter(idle_timeout=value),
            )
            for value in ("60", math.nan, math.inf, 0, -1, True, None)
        ),
        *(
            Case(
                f"Submitter(rate_limit={value!r})",
                lambda value=value: submitter(rate_limit=value),
            )
            for value in ("1", math.nan, math.inf, 0, -0.5, True)
        ),
        Case("Submitter(use_chunking='no')", lambda: submitter(use_chunking="no")),
        Case("Submitter(use_chunking=None)", lambda: submitter(use_chunking=None)),
        Case("Submitter(clock=5)", lambda: submitter(clock=5)),
        Case("Submitter(wall_clock='now')", lambda: submitter(wall_clock="now")),
        # -- the other constructors -------------------------------------------------------
        Case("from_url(None)", lambda: Submitter.from_url(None)),
        Case("from_url(5)", lambda: Submitter.from_url(5)),
        Case("from_url(bytes)", lambda: Submitter.from_url(b"smtps://h.example.com")),
        Case("from_url(host with space)", lambda: Submitter.from_url("smtps://mail%20x.example")),
        Case(
            "from_url(local_hostname CRLF)",
            lambda: Submitter.from_url("smtps://mail.example.com?local_hostname=a%0D%0AMAIL"),
        ),
        Case(
            "from_url(password=5)",
            lambda: Submitter.from_url("smtps://u@mail.example.com", password=5),
        ),
        Case(
            "from_url(password=bytes)",
            lambda: Submitter.from_url("smtps://u@mail.example.com", password=b"x"),
        ),
        Case(
            "from_url(auth='user:pass' override)",
            lambda: Submitter.from_url("smtps://mail.example.com", auth=f"u:{PASSWORD}"),
        ),
        Case(
            "from_url(max_connections='4' override)",
            lambda: Submitter.from_url("smtps://mail.example.com", max_connections="4"),
        ),
        Case("for_provider(None)", lambda: Submitter.for_provider(None)),
        Case("for_provider(5)", lambda: Submitter.for_provider(5)),
        Case(
            "for_provider(auth=tuple)",
            lambda: Submitter.for_provider("gmail", auth=("u", PASSWORD)),
        ),
        Case(
            "for_provider(local_hostname CRLF)",
            lambda: Submitter.for_provider("gmail", local_hostname="a\r\nb"),
        ),
        Case("from_env(environ=5)", lambda: Submitter.from_env(5)),
        Case("from_env(environ=[])", lambda: Submitter.from_env([])),
        Case("from_env(SMTPKIT_URL=5)", lambda: Submitter.from_env({"SMTPKIT_URL": 5})),
        Case(
            "from_env(SMTPKIT_PASSWORD=5)",
            lambda: Submitter.from_env(
                {"SMTPKIT_URL": "smtps://u@mail.example.com", "SMTPKIT_PASSWORD": 5}
            ),
        ),
        Case("from_env({})", lambda: Submitter.from_env({})),
        # -- configuration values ---------------------------------------------------------
        *(
            Case(f"Timeouts(connect={value!r})", lambda value=value: Timeouts(connect=value))
            for value in ("5", math.nan, None, True)
        ),
        *(
            Case(f"Retry({name}={value!r})", lambda name=name, value=value: Retry(**{name: value}))
            for name, value in (
                ("attempts", "3"),
                ("attempts", 2.5),
                ("attempts", 0),
                ("backoff", "1"),
                ("backoff", math.nan),
                ("backoff", -1),
                ("multiplier", None),
                ("max_backoff", math.inf),
                ("jitter", "0.1"),
                ("retry_unknown", "yes"),
                ("sleep", 5),
            )
        ),
        *(
            Case(
                f"PoolLimits({name}={value!r})",
                lambda name=name, value=value: PoolLimits(**{name: value}),
            )
            for name, value in (
                ("max_connections", "4"),
                ("max_connections", 2.5),
                ("max_connections", 0),
                ("max_messages_per_connection", "1"),
                ("idle_timeout", "1"),
                ("idle_timeout", math.nan),
                ("health_check_after", None),
                ("acquire_timeout", math.inf),
            )
        ),
        # -- auth strategies and tokens ---------------------------------------------------
        Case("PasswordAuth(5, p)", lambda: PasswordAuth(5, PASSWORD)),
        Case("PasswordAuth(u, 5)", lambda: PasswordAuth("u", 5)),
        Case("PasswordAuth(u, None)", lambda: PasswordAuth("u", None)),
        Case("PasswordAuth(mechanisms=[5])", lambda: PasswordAuth("u", "p", mechanisms=[5])),
        Case("PasswordAuth(mechanisms=5)", lambda: PasswordAuth("u", "p", mechanisms=5)),
        Case(
            "PasswordAuth(mechanisms='PLAIN')", lambda: PasswordAuth("u", "p", mechanisms="PLAIN")
        ),
        Case("AppPasswordAuth(u, 5)", lambda: AppPasswordAuth("u", 5)),
        Case("AppPasswordAuth(None, p)", lambda: AppPasswordAuth(None, PASSWORD)),
        Case("XOAuth2Auth(5, provider)", lambda: XOAuth2Auth(5, static)),
        Case("XOAuth2Auth(u, 'token')", lambda: XOAuth2Auth("u@x.example", "ya29.token")),
        Case("OAuthBearerAuth(u, None)", lambda: OAuthBearerAuth("u@x.example", None)),
        Case("AccessToken(5)", lambda: AccessToken(5)),
        Case("AccessToken(None)", lambda: AccessToken(None)),
        Case("AccessToken(expires_at='x')", lambda: AccessToken("t", "2030-01-01")),
        Case("StaticToken(5)", lambda: StaticToken(5)),
        Case("StaticToken(expires_at=5)", lambda: StaticToken("t", 5)),
        Case("RefreshTokenProvider(5, c)", lambda: RefreshTokenProvider(5, "c", "r")),
        Case("RefreshTokenProvider(u, 5)", lambda: RefreshTokenProvider(token_url, 5, "r")),
        Case(
            "RefreshTokenProvider(refresh_token=5)",
            lambda: RefreshTokenProvider(token_url, "c", 5),
        ),
        Case(
            "RefreshTokenProvider(scopes=5)",
            lambda: RefreshTokenProvider(token_url, "c", "r", scopes=5),
        ),
        Case(
            "RefreshTokenProvider(timeout='5')",
            lambda: RefreshTokenProvider(token_url, "c", "r", timeout="5"),
        ),
        Case(
            "RefreshTokenProvider(store='x')",
            lambda: RefreshTokenProvider(token_url, "c", store="path"),
        ),
        Case(
            "ClientCredentialsProvider(secret=5)",
            lambda: ClientCredentialsProvider(token_url, "c", 5),
        ),
        Case("microsoft_delegated(5, t)", lambda: microsoft_delegated(5, "contoso")),
        Case("microsoft_app_only(c, 5, s)", lambda: microsoft_app_only("c", 5, "s")),
        Case("FileTokenStore(5)", lambda: FileTokenStore(5)),
        # -- providers --------------------------------------------------------------------
        Case("providers.get(5)", lambda: providers.get(5)),
        Case("providers.lookup(5)", lambda: providers.lookup(5), raises=None),
        Case("providers.lookup(None)", lambda: providers.lookup(None), raises=None),
        Case("providers.for_host(5)", lambda: providers.for_host(5), raises=None),
        Case("providers.for_host(b'x')", lambda: providers.for_host(b"x"), raises=None),
        Case("providers.find(5)", lambda: providers.find(5), raises=None),
        # -- the test kit ---------------------------------------------------------------------
        Case("FakeTransport(tls='ok')", lambda: FakeTransport(tls="ok")),
        # -- sending (argument types that are refused before anything is sent) -------------
        Case(
            "send('text')",
            lambda: submitter(transport=FakeTransport()).send("text"),
            raises=MessageError,
        ),
        Case(
            "send(None)",
            lambda: submitter(transport=FakeTransport()).send(None),
            raises=MessageError,
        ),
        Case(
            "send(sender=5)",
            lambda: submitter(transport=FakeTransport()).send(message(), sender=5),
            raises=MessageError,
        ),
        Case(
            "send(recipients=[5])",
            lambda: submitter(transport=FakeTransport()).send(message(), recipients=[5]),
            raises=MessageError,
        ),
    ]


def django_cases() -> list[Case]:
    """The Django backend's options (only when Django is installed)."""
    try:
        from smtpkit.django import EmailBackend  # noqa: PLC0415 - an optional extra
    except ImportError:
        return []

    def backend(**options: object) -> object:
        return EmailBackend(**{"host": HOST, "transport": NoConnect(), **options})

    return [
        Case("EmailBackend(host=5)", lambda: backend(host=5)),
        Case("EmailBackend(host='a b')", lambda: backend(host="mail example.com")),
        Case("EmailBackend(port='587')", lambda: backend(port="587")),
        Case("EmailBackend(timeout='30')", lambda: backend(timeout="30")),
        Case("EmailBackend(local_hostname CRLF)", lambda: backend(local_hostname="a\r\nb")),
        Case("EmailBackend(username=u, password=5)", lambda: backend(username="u", password=5)),
        Case("EmailBackend(username only)", lambda: backend(username="u")),
        Case("EmailBackend(auth=tuple)", lambda: backend(auth=("u", PASSWORD))),
        Case("EmailBackend(use_tls+use_ssl)", lambda: backend(use_tls=True, use_ssl=True)),
        Case("EmailBackend(url=5)", lambda: backend(host=None, url=5)),
        Case("EmailBackend(provider=5)", lambda: backend(host=None, provider=5)),
        Case("EmailBackend(provider='gmial')", lambda: backend(host=None, provider="gmial")),
        Case("EmailBackend(submitter='x')", lambda: backend(host=None, submitter="x")),
        Case("EmailBackend(ssl_certfile=5)", lambda: backend(ssl_certfile=5)),
        Case("EmailBackend(ssl_certfile=missing)", lambda: backend(ssl_certfile="/nonexistent")),
        Case("EmailBackend(max_connections='4')", lambda: backend(max_connections="4")),
        Case("EmailBackend(hots=...)", lambda: backend(hots="x")),
    ]


def celery_cases() -> list[Case]:
    """The Celery task's factory and payload (only when Celery is installed)."""
    try:
        from celery import Celery  # noqa: PLC0415 - an optional extra

        from smtpkit.celery import (  # noqa: PLC0415
            get_submitter,
            make_send_task,
            message_payload,
            register_submitter,
        )
    except ImportError:
        return []
    app = Celery("hardening", broker="memory://", backend="cache+memory://")
    return [
        Case("make_send_task(object())", lambda: make_send_task(object())),
        Case("make_send_task(None)", lambda: make_send_task(None)),
        Case("make_send_task(name=5)", lambda: make_send_task(app, name=5)),
        Case("make_send_task(retry=3)", lambda: make_send_task(app, retry=3)),
        Case(
            "make_send_task(retry_unknown='yes')", lambda: make_send_task(app, retry_unknown="yes")
        ),
        Case("message_payload(5)", lambda: message_payload(5)),
        Case("message_payload(recipients=5)", lambda: message_payload(message(), recipients=5)),
        Case(
            "message_payload(recipients='a@b')",
            lambda: message_payload(message(), recipients="you@example.com"),
        ),
        Case("message_payload(sender=5)", lambda: message_payload(message(), sender=5)),
        Case("message_payload(submitter=5)", lambda: message_payload(message(), submitter=5)),
        Case("message_payload(raw, no envelope)", lambda: message_payload(b"Subject: x\r\n")),
        Case("register_submitter(5, f)", lambda: register_submitter(5, Submitter)),
        Case("register_submitter(n, 5)", lambda: register_submitter("hardening", 5)),
        Case("get_submitter(5)", lambda: get_submitter(5)),
    ]


CASES = [*cases(), *django_cases(), *celery_cases()]


def _outcome(call: Callable[[], object]) -> Exception | None:
    """What ``call`` raised, or ``None``."""
    try:
        call()
    except Exception as error:  # the point: see what kind escapes
        return error
    return None


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_wrong_arguments_raise_only_smtpkit_errors(case: Case) -> None:
    error = _outcome(case.call)
    if error is None:
        assert case.raises is None, f"{case.id} was accepted; expected {case.raises.__name__}"
        return
    assert isinstance(error, SMTPError), f"{case.id} raised an untyped {error!r}"
    if case.raises is not None:
        assert isinstance(error, case.raises), f"{case.id}: {type(error).__name__}: {error}"
    shown = f"{error} {error!r} {error.args!r} {error.hint}"
    assert PASSWORD not in shown, f"{case.id} echoed the password: {shown}"

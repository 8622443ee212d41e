"""The smtpkit loggers: one INFO line per message; a DEBUG transcript with no secret in it.

Canary secrets (a password and an OAuth2 token that appear nowhere else) are sent to a real
LocalServer; no log record of any ``smtpkit`` logger may contain them, in its message, its
arguments or its formatted text, raw or base64-encoded in any of the forms SASL uses.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit import Submitter
from smtpkit.auth import OAuthBearerAuth, PasswordAuth, XOAuth2Auth
from smtpkit.oauth import StaticToken
from smtpkit.testing import LocalServer

USER = "alice@example.test"
CANARY_PASSWORD = "canary-PW-7f3a9c2e1d"  # a canary, sent only to LocalServer
CANARY_TOKEN = "ya29.canary-TOKEN-5b8e0f4a"
INFO_LINE = re.compile(
    r"^sent message_id=<[^>]+> recipients=(\d+) rejected=(\d+) reply='250[^']*' "
    r"elapsed=\d+\.\d{3}s$"
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def forms(secret: str) -> list[str]:
    """The secret as it could leak: raw, base64 alone, and inside PLAIN and XOAUTH2 payloads."""
    return [
        secret,
        b64(secret),
        b64(f"\0{USER}\0{secret}"),  # PLAIN
        b64(f"user={USER}\x01auth=Bearer {secret}\x01\x01"),  # XOAUTH2
    ]


#: Anything that could be base64 (OAUTHBEARER's payload holds the host and port too, so it is
#: found by decoding rather than by encoding a guess).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def decoded_runs(text: str) -> list[bytes]:
    out = []
    for run in BASE64_RUN.findall(text):
        try:
            out.append(base64.b64decode(run + "=" * (-len(run) % 4)))
        except ValueError:
            continue
    return out


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def smtpkit_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "smtpkit" or r.name.startswith("smtpkit.")]


def assert_no_secret(records: list[logging.LogRecord], secret: str) -> None:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in smtpkit_records(records):
        haystacks = [str(record.msg), repr(record.args), record.getMessage()]
        haystacks.append(formatter.format(record))
        for haystack in haystacks:
            for form in forms(secret):
                assert form not in haystack, f"{record.name}: {haystack!r}"
            for blob in decoded_runs(haystack):
                assert secret.encode() not in blob, f"{record.name}: {haystack!r}"


def message(n: int = 0, to: tuple[str, ...] = ("bob@example.test",)) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, ", ".join(to), f"n{n}"
    msg.set_content("hello")
    return msg


def submitter(server: LocalServer, auth: object) -> Submitter:
    return Submitter(
        server.host,
        server.port,
        auth=auth,  # type: ignore[arg-type]
        tls_context=server.client_tls_context(),
        timeout=5,
    )


def info_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.name == "smtpkit" and r.levelno == logging.INFO]


def test_one_info_line_per_sent_message(log: pytest.LogCaptureFixture) -> None:
    with LocalServer(credentials={USER: CANARY_PASSWORD}) as server:
        server.reply("rcpt", "550 5.1.1 User unknown", recipient="nobody@example.test", times=None)
        to = ("bob@example.test", "carol@example.test", "nobody@example.test")
        result = submitter(server, PasswordAuth(USER, CANARY_PASSWORD)).send(message(to=to))
    [line] = info_lines(log.records)
    match = INFO_LINE.match(line)
    assert match, line
    assert f"message_id={result.message_id}" in line
    assert match.groups() == ("2", "1")


def test_send_many_logs_one_info_line_per_message(log: pytest.LogCaptureFixture) -> None:
    with LocalServer(credentials={USER: CANARY_PASSWORD}) as server:
        outcomes = submitter(server, PasswordAuth(USER, CANARY_PASSWORD)).send_many(
            [message(n) for n in range(4)], concurrency=2
        )
    lines = info_lines(log.records)
    assert len(lines) == 4
    assert all(INFO_LINE.match(line) for line in lines), lines
    ids = {o.message_id for o in outcomes}  # type: ignore[union-attr]
    assert {line.split()[1].removeprefix("message_id=") for line in lines} == ids


@pytest.mark.parametrize("mechanisms", [("PLAIN",), ("LOGIN",)])
def test_debug_transcript_hides_the_password(
    log: pytest.LogCaptureFixture, mechanisms: tuple[str, ...]
) -> None:
    with LocalServer(credentials={USER: CANARY_PASSWORD}, require_auth=True) as server:
        auth = PasswordAuth(USER, CANARY_PASSWORD, mechanisms=mechanisms)
        submitter(server, auth).send(message())
        [attempt] = server.auth_attempts
    assert attempt.success
    assert attempt.mechanism == mechanisms[0]
    wire = [r.getMessage() for r in log.records if r.name == "smtpkit.wire"]
    assert any(line.startswith("C: AUTH") for line in wire), "no transcript was logged"
    assert_no_secret(log.records, CANARY_PASSWORD)


@pytest.mark.parametrize("strategy", [XOAuth2Auth, OAuthBearerAuth])
def test_debug_transcript_hides_the_token(
    log: pytest.LogCaptureFixture, strategy: type[XOAuth2Auth]
) -> None:
    with LocalServer(oauth_tokens={USER: CANARY_TOKEN}, require_auth=True) as server:
        submitter(server, strategy(USER, StaticToken(CANARY_TOKEN))).send(message())
        [attempt] = server.auth_attempts
    assert attempt.success
    wire = [r.getMessage() for r in log.records if r.name == "smtpkit.wire"]
    assert any(line.startswith("C: AUTH") for line in wire)
    assert_no_secret(log.records, CANARY_TOKEN)


def test_refused_credentials_leave_no_secret_in_logs(log: pytest.LogCaptureFixture) -> None:
    from smtpkit.errors import InvalidCredentials  # noqa: PLC0415

    with (
        LocalServer(credentials={USER: "the-real-one"}, require_auth=True) as server,
        pytest.raises(InvalidCredentials) as caught,
    ):
        submitter(server, PasswordAuth(USER, CANARY_PASSWORD)).send(message())
    assert_no_secret(log.records, CANARY_PASSWORD)
    for line in caught.value.transcript:
        for form in forms(CANARY_PASSWORD):
            assert form not in line

"""``smtpkit.doctor``: every diagnosis against a real local server that has the fault."""

from __future__ import annotations

import argparse
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from smtpkit import ConfigurationError, Security
from smtpkit.auth import (
    AppPasswordAuth,
    AuthContext,
    PasswordAuth,
    SaslExchange,
    SaslMechanismStrategy,
)
from smtpkit.cli._check import add_check_parser, run_check
from smtpkit.config._configure import options_for_provider
from smtpkit.doctor import Report, Status, check, diagnose, options_for_target, steps_for
from smtpkit.doctor._cert import parse_certificate
from smtpkit.errors import RemoteProtocolError
from smtpkit.testing import LocalServer

ServerFactory = Callable[..., LocalServer]
SECRET = "CANARY-doctor-4419"
USER = "me@gmail.com"
#: Gmail's real reply to a refused login (tests/data/replies.jsonl id 10).
GMAIL_535 = (
    "535-5.7.8 Username and Password not accepted. Learn more at\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials i5sm8565805wrv.34 - gsmtp"
)
#: Seconds per step: short, so the timeout-based diagnoses stay fast.
T = 1.5


def statuses(report: Report) -> dict[str, str]:
    return {f.step: f.status.value for f in report.findings}


def finding(report: Report, step: str) -> tuple[str, str]:
    found = report.finding(step)
    assert found is not None, step
    return found.observed, found.advice or ""


def url(server: LocalServer, scheme: str = "smtp+starttls", user: str = "", query: str = "") -> str:
    credentials = f"{user.replace('@', '%40')}:{SECRET}@" if user else ""
    return f"{scheme}://{credentials}{server.host}:{server.port}{query}"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP listener on loopback that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture
def closed_port() -> int:
    """A loopback port where nothing listens."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


# -- healthy servers -------------------------------------------------------------------------


def test_a_healthy_starttls_server_with_a_good_login(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: SECRET}, size_limit=10_000_000)
    report = check(url(server, user=USER), login=True, cafile=str(server.ca_path), timeout=T)
    assert report.ok, report.render()
    assert report.exit_code == 0
    assert [f.step for f in report.findings] == list(steps_for(Security.STARTTLS))
    assert set(statuses(report).values()) == {"ok"}
    assert (
        "AUTH" not in finding(report, "ehlo")[0].split(",")[-1]
        or "(no AUTH)" in finding(report, "ehlo")[0]
    )
    assert "AUTH LOGIN PLAIN" in finding(report, "ehlo-tls")[0]
    assert "STARTTLS" in finding(report, "ehlo")[0]
    assert finding(report, "tls")[0].startswith("TLSv1.")
    assert "verified" in finding(report, "certificate")[0]
    assert "will use PLAIN" in finding(report, "auth-mechanisms")[0]
    assert "logged in as me@gmail.com with PLAIN" in finding(report, "login")[0]
    assert "SIZE 10000000" in finding(report, "size")[0]
    assert server.messages == []  # never a message
    assert server.auth_attempts == [("PLAIN", USER, True)]


def test_a_healthy_implicit_tls_server(local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS)
    report = check(url(server, "smtps"), cafile=str(server.ca_path), timeout=T)
    assert [f.step for f in report.findings] == list(steps_for(Security.TLS))
    assert statuses(report)["tls"] == "ok"
    assert statuses(report)["certificate"] == "ok"
    # No credentials while the server offers AUTH: works, with a warning.
    assert statuses(report)["auth-mechanisms"] == "warn"
    assert statuses(report)["login"] == "skip"
    assert report.ok
    assert "no SIZE limit" in finding(report, "size")[0]


def test_the_login_is_only_tried_when_asked(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: SECRET})
    report = check(url(server, user=USER), cafile=str(server.ca_path), timeout=T)
    assert report.ok
    assert statuses(report)["login"] == "skip"
    assert "--login" in finding(report, "login")[0]
    assert server.auth_attempts == []


def test_the_doctor_never_sends_mail(local_server: ServerFactory, server_log: object) -> None:
    server = local_server(credentials={USER: SECRET}, require_auth=True)
    check(url(server, user=USER), login=True, cafile=str(server.ca_path), timeout=T)
    server_log.wait_closed(1)  # type: ignore[attr-defined]
    verbs = server_log.verbs()  # type: ignore[attr-defined]
    assert verbs[:3] == ["EHLO", "STARTTLS", "EHLO"]
    assert "AUTH" in verbs
    assert verbs[-1] == "QUIT"
    assert not {"MAIL", "RCPT", "DATA"} & set(verbs)


# -- wrong port or mode ----------------------------------------------------------------------


def test_tls_spoken_to_a_starttls_port(local_server: ServerFactory) -> None:
    server = local_server(security=Security.STARTTLS)
    report = check(url(server, "smtps"), cafile=str(server.ca_path), timeout=T)
    assert report.exit_code == 1
    observed, advice = finding(report, "tls")
    assert "WRONG_VERSION_NUMBER" in observed
    assert "220" in observed  # the plaintext greeting the probe read
    assert f"smtp+starttls://{server.host}:{server.port}" in advice
    assert statuses(report)["greeting"] == "skip"


def test_plaintext_spoken_to_an_implicit_tls_port(local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS)
    started = time.monotonic()
    report = check(url(server), cafile=str(server.ca_path), timeout=T)
    assert time.monotonic() - started < 4 * T
    assert report.exit_code == 1
    observed, advice = finding(report, "greeting")
    assert "no greeting" in observed
    assert "answers a TLS handshake" in observed
    assert f"smtps://{server.host}:{server.port}" in advice
    assert report.finding("greeting").details["implicit_tls"] is True  # type: ignore[union-attr]


def test_a_silent_port(silent_port: int) -> None:
    report = check(f"smtp+starttls://127.0.0.1:{silent_port}", timeout=1.0)
    assert report.exit_code == 1
    observed, advice = finding(report, "greeting")
    assert "no greeting within 1 s" in observed
    assert "TLS handshake got no answer either" in observed
    assert "implicit TLS" in advice
    assert f"smtps://127.0.0.1:{silent_port}" in advice
    assert report.finding("greeting").details["implicit_tls"] is False  # type: ignore[union-attr]


def test_nothing_listens(closed_port: int) -> None:
    report = check(f"smtps://127.0.0.1:{closed_port}", timeout=T)
    assert statuses(report)["dns"] == "ok"
    observed, advice = finding(report, "tcp")
    assert statuses(report)["tcp"] == "fail"
    assert "cannot connect" in observed
    assert "587" in advice
    assert "465" in advice
    assert statuses(report)["tls"] == "skip"


def test_a_name_that_does_not_resolve() -> None:
    asked: list[tuple[str, int, float]] = []

    def nxdomain(host: str, port: int, timeout: float) -> list[str]:
        asked.append((host, port, timeout))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    report = check("smtps://smtp.nonexistent.invalid", timeout=T, resolver=nxdomain)
    assert asked == [("smtp.nonexistent.invalid", 465, T)]
    assert statuses(report)["dns"] == "fail"
    observed, advice = finding(report, "dns")
    assert observed == "smtp.nonexistent.invalid does not resolve: Name or service not known"
    assert "typos" in advice
    assert statuses(report)["tcp"] == "skip"


def test_a_preset_host_typo_names_the_presets_host() -> None:
    def nxdomain(host: str, port: int, timeout: float) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    report = check("smtps://smtp.gmial.com?provider=gmail", timeout=T, resolver=nxdomain)
    assert "Gmail uses smtp.gmail.com" in finding(report, "dns")[1]


def test_a_dns_timeout() -> None:
    def slow(host: str, port: int, timeout: float) -> list[str]:
        raise TimeoutError

    options = options_for_target("smtps://mail.example.test", timeout=T)
    report = diagnose(options, resolver=slow)
    assert "no DNS answer" in finding(report, "dns")[0]
    assert report.exit_code == 1


# -- TLS and certificates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security", "scheme"), [(Security.STARTTLS, "smtp+starttls"), (Security.TLS, "smtps")]
)
def test_an_untrusted_certificate_is_named(
    local_server: ServerFactory, security: Security, scheme: str
) -> None:
    server = local_server(security=security)
    report = check(url(server, scheme), timeout=T)  # the system's CAs, not the server's own
    assert report.exit_code == 1
    assert statuses(report)["tls"] == "ok"  # it does speak TLS
    observed, advice = finding(report, "certificate")
    assert statuses(report)["certificate"] == "fail"
    assert "unable to get local issuer certificate" in observed
    assert "issuer O=trustme" in observed
    assert "Testing CA" in observed
    assert "localhost" in observed
    assert "--cafile" in advice
    assert "Never turn verification off" in advice
    details = report.finding("certificate").details  # type: ignore[union-attr]
    assert details["verify_code"] == 20
    assert "127.0.0.1" in details["names"]  # type: ignore[operator]
    assert statuses(report)["auth-mechanisms"] == "skip"


def run_cli_json(*argv: str) -> tuple[int, dict[str, Any]]:
    """``smtpkit check ... --json`` through the CLI; the exit status and the parsed report."""
    parser = argparse.ArgumentParser(prog="smtpkit")
    add_check_parser(parser.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    code = run_check(parser.parse_args(["check", *argv, "--json"]), out, err, environ={})
    assert err.getvalue() == ""
    document: dict[str, Any] = json.loads(out.getvalue())
    return code, document


def certificate_finding(document: dict[str, Any]) -> dict[str, Any]:
    [found] = [f for f in document["findings"] if f["step"] == "certificate"]
    steps = {f["step"]: f["status"] for f in document["findings"]}
    assert steps["tls"] == "ok"  # the handshake itself works; the certificate is refused
    assert steps["auth-mechanisms"] == "skip"
    assert document["exit_code"] == 1
    assert document["ok"] is False
    return found


@pytest.mark.parametrize(
    ("security", "scheme"), [(Security.STARTTLS, "smtp+starttls"), (Security.TLS, "smtps")]
)
def test_a_certificate_for_another_name(
    local_server: ServerFactory, security: Security, scheme: str
) -> None:
    server = local_server(security=security, certificate_names=("mail.example.test",))
    code, document = run_cli_json(url(server, scheme), "--cafile", str(server.ca_path))
    assert code == 1
    found = certificate_finding(document)
    assert found["status"] == "fail"
    assert found["observed"].startswith(
        "did not verify: IP address mismatch, certificate is not valid for '127.0.0.1'; "
    )
    assert found["observed"].endswith(", names mail.example.test")
    assert found["advice"] == (
        "the certificate is for mail.example.test, not 127.0.0.1: connect with a name the "
        "certificate lists (the provider's documented host)"
    )
    assert found["details"]["verify_code"] == 64
    assert found["details"]["names"] == ["mail.example.test"]
    assert "--cafile" not in found["advice"]  # the CA is trusted: not a trust problem


def test_a_certificate_for_another_host_name(local_server: ServerFactory) -> None:
    server = local_server(certificate_names=("mail.example.test", "127.0.0.2"))
    report = check(
        f"smtp+starttls://localhost:{server.port}",
        cafile=str(server.ca_path),
        timeout=T,
        resolver=lambda host, port, timeout: ["127.0.0.1"],
    )
    observed, advice = finding(report, "certificate")
    assert "Hostname mismatch" in observed
    assert "certificate is for mail.example.test, 127.0.0.2, not localhost" in advice
    assert report.finding("certificate").details["verify_code"] == 62  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("security", "scheme"), [(Security.STARTTLS, "smtp+starttls"), (Security.TLS, "smtps")]
)
def test_an_expired_certificate(
    local_server: ServerFactory, security: Security, scheme: str
) -> None:
    server = local_server(security=security, certificate_expired=True)
    code, document = run_cli_json(url(server, scheme), "--cafile", str(server.ca_path))
    assert code == 1
    found = certificate_finding(document)
    assert found["status"] == "fail"
    assert found["observed"].startswith("did not verify: certificate has expired; ")
    assert found["observed"].endswith(
        ", names localhost, 127.0.0.1, ::1, expired 2001-01-01 00:00 UTC"
    )
    assert found["advice"].startswith(
        "the certificate expired on 2001-01-01: the server's operator must renew it."
    )
    assert "clock" in found["advice"]
    assert found["details"]["verify_code"] == 10
    assert found["details"]["not_after"] == "2001-01-01T00:00:00+00:00"


def test_no_starttls_offered(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE, credentials={USER: SECRET})
    report = check(url(server, user=USER), login=True, timeout=T)
    assert report.exit_code == 1
    observed, advice = finding(report, "starttls")
    assert "does not offer STARTTLS" in observed
    assert "no silent downgrade" in advice
    assert statuses(report)["login"] == "skip"
    assert server.auth_attempts == []  # nothing was sent in plaintext


# -- AUTH ------------------------------------------------------------------------------------


def test_no_common_auth_mechanism(local_server: ServerFactory) -> None:
    server = local_server(auth_mechanisms=("XOAUTH2",), oauth_tokens={})
    report = check(
        url(server, user=USER, query="?provider=microsoft365"),
        login=True,
        cafile=str(server.ca_path),
        timeout=T,
    )
    assert report.exit_code == 1
    observed, advice = finding(report, "auth-mechanisms")
    assert observed == "offered: XOAUTH2; PasswordAuth speaks PLAIN, LOGIN"
    assert "XOAUTH2" in advice
    assert "Microsoft 365 accepts LOGIN XOAUTH2" in advice
    assert statuses(report)["login"] == "skip"


def test_a_server_without_auth(local_server: ServerFactory) -> None:
    server = local_server(auth_mechanisms=())
    report = check(url(server, user=USER), cafile=str(server.ca_path), timeout=T)
    observed, advice = finding(report, "auth-mechanisms")
    assert observed.startswith("offered: none")
    assert "submission port" in advice
    assert report.exit_code == 1


def test_rejected_credentials_with_gmails_real_reply(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: "the-right-one"}, auth_failure_reply=GMAIL_535)
    report = check(
        url(server, user=USER, query="?provider=gmail&auth=app_password"),
        login=True,
        cafile=str(server.ca_path),
        timeout=T,
    )
    assert report.exit_code == 1
    observed, advice = finding(report, "login")
    assert observed.startswith("535 5.7.8 Username and Password not accepted")
    assert "(InvalidCredentials)" in observed
    assert "mistyped or revoked" in advice
    assert "2-Step Verification" in advice  # the preset's login advice
    assert report.finding("login").details["enhanced_code"] == "5.7.8"  # type: ignore[union-attr]
    assert server.auth_attempts == [("PLAIN", USER, False)]
    assert statuses(report)["size"] == "ok"  # later steps still report


def test_rejected_account_password_at_gmail(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: "the-right-one"}, auth_failure_reply=GMAIL_535)
    # auth=password: an account password (a Gmail URL alone now means an app password).
    report = check(
        url(server, user=USER, query="?provider=gmail&auth=password"),
        login=True,
        cafile=str(server.ca_path),
        timeout=T,
    )
    assert "no longer accepts account passwords" in finding(report, "login")[1]


# -- output ----------------------------------------------------------------------------------


def test_json_schema_and_no_secrets(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: "other"}, auth_failure_reply=GMAIL_535)
    target = url(server, user=USER)
    report = check(target, login=True, cafile=str(server.ca_path), timeout=T)
    document = json.loads(report.to_json())
    assert set(document) == {
        "schema", "target", "settings", "ok", "exit_code", "findings", "transcript"
    }  # fmt: skip
    assert document["schema"] == 1
    assert document["ok"] is False
    assert document["exit_code"] == 1
    assert document["settings"] == {
        "host": server.host,
        "port": server.port,
        "security": "starttls",
        "provider": None,
        "auth": "PasswordAuth",
        "username": USER,
    }
    for item in document["findings"]:
        assert set(item) == {"step", "status", "observed", "advice", "details"}
        assert item["status"] in {s.value for s in Status}
    assert any(line.startswith("C: AUTH PLAIN") for line in document["transcript"])
    assert "***" in document["target"]
    for text in (report.to_json(), report.render(), report.render(colour=True), repr(report)):
        assert SECRET not in text


def test_render_colours_only_when_asked() -> None:
    report = diagnose(
        options_for_target("smtps://mail.example.test", timeout=T),
        resolver=lambda host, port, timeout: (_ for _ in ()).throw(OSError("no network")),
    )
    plain = report.render()
    assert "\x1b[" not in plain
    assert "FAIL" in plain
    assert "Result: sending would fail" in plain
    assert "\x1b[31mFAIL" in report.render(colour=True)


# -- targets ---------------------------------------------------------------------------------


def test_targets_from_an_address_a_preset_and_a_url() -> None:
    by_address = options_for_target("me@gmail.com", password=SECRET)
    assert (by_address["host"], by_address["port"]) == ("smtp.gmail.com", 587)
    assert isinstance(by_address["auth"], AppPasswordAuth)  # Gmail wants app passwords
    assert by_address["provider"] == "gmail"
    at_gmx = options_for_target("me@gmx.de", password=SECRET)
    assert type(at_gmx["auth"]) is PasswordAuth
    forced = options_for_target("me@gmail.com", password=SECRET, auth="password")
    assert type(forced["auth"]) is PasswordAuth
    assert "auth" not in options_for_target("me@gmail.com")
    assert options_for_target("ses:eu-west-1")["host"] == "email-smtp.eu-west-1.amazonaws.com"
    custom = options_for_target("me@contoso.example", provider="microsoft365")
    assert custom["host"] == "smtp.office365.com"
    via_url = options_for_target("smtps://smtp.gmail.com", provider="google-workspace")
    assert via_url["provider"] == "google-workspace"
    assert options_for_provider("gmail")["provider"] == "gmail"


def test_unknown_targets_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="no provider preset knows"):
        options_for_target("me@example.org")
    with pytest.raises(ConfigurationError, match="unknown provider preset"):
        options_for_target("gmial")


def test_certificate_parser_refuses_garbage() -> None:
    assert parse_certificate(b"") is None
    assert parse_certificate(b"\x30\x03\x02\x01\x00") is None
    assert parse_certificate(b"\x30\x84\xff\xff\xff\xff") is None


class UnreadableChallengeAuth(SaslMechanismStrategy):
    """LOGIN that cannot make sense of the server's first challenge."""

    mechanisms = ("LOGIN",)

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        yield None
        raise RemoteProtocolError("the challenge is not what LOGIN expects")


def test_a_login_flow_that_fails_on_a_challenge_is_cancelled(local_server: ServerFactory) -> None:
    server = local_server(credentials={USER: SECRET})
    options = options_for_target(url(server, user=USER), timeout=T)
    options["auth"] = UnreadableChallengeAuth(USER)
    report = diagnose(options, cafile=str(server.ca_path), login=True)
    observed, _ = finding(report, "login")
    assert observed.startswith("RemoteProtocolError: the challenge is not what LOGIN expects")
    # RFC 4954 §4: the half-open exchange is cancelled with "*" before the doctor moves on.
    login = report.transcript.index("C: AUTH LOGIN")
    assert report.transcript[login + 2] == "C: *"
    assert report.transcript[login + 3].startswith("S: 501")
    assert server.messages == []


def test_the_local_servers_auth_failure_reply_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="4xx or 5xx"):
        LocalServer(auth_failure_reply="235 fine")

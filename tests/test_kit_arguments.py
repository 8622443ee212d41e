"""The test kit's constructors refuse wrong arguments at once, with a typed error and a hint.

A wrong value given to ``FakeTransport`` or ``LocalServer`` must not surface later as a bare
``TypeError`` deep inside a session (or on the server thread), nor be accepted silently and
change what the server says on the wire (a CR LF in the greeting's host name). Each row is one
wrong argument; each must raise :class:`smtpkit.ConfigurationError` naming the argument, with
a hint that says what to pass instead. Nothing here starts a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from smtpkit import ConfigurationError
from smtpkit.testing import FakeCapabilities, FakeTransport, LocalServer


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[], object]
    argument: str


ROWS = [
    # -- FakeTransport --------------------------------------------------------------------
    Row("fake capabilities=5", lambda: FakeTransport(capabilities=5), "capabilities"),  # type: ignore[arg-type]
    Row(
        "fake capabilities=dict",
        lambda: FakeTransport(capabilities={"pipelining": False}),  # type: ignore[arg-type]
        "capabilities",
    ),
    Row("fake credentials=5", lambda: FakeTransport(credentials=5), "credentials"),  # type: ignore[arg-type]
    Row("fake credentials='u:p'", lambda: FakeTransport(credentials="u:p"), "credentials"),  # type: ignore[arg-type]
    Row(
        "fake credentials={u: 5}",
        lambda: FakeTransport(credentials={"u@example.test": 5}),  # type: ignore[dict-item]
        "credentials",
    ),
    Row(
        "fake credentials={5: pw}",
        lambda: FakeTransport(credentials={5: "pw"}),  # type: ignore[dict-item]
        "credentials",
    ),
    Row("fake hostname CRLF", lambda: FakeTransport(hostname="a\r\nb"), "hostname"),
    Row("fake hostname LF", lambda: FakeTransport(hostname="mx.example.test\n"), "hostname"),
    Row("fake hostname=5", lambda: FakeTransport(hostname=5), "hostname"),  # type: ignore[arg-type]
    Row("fake hostname=''", lambda: FakeTransport(hostname=""), "hostname"),
    Row("fake hostname with space", lambda: FakeTransport(hostname="a b"), "hostname"),
    Row("fake max_recipients='3'", lambda: FakeTransport(max_recipients="3"), "max_recipients"),  # type: ignore[arg-type]
    Row("fake max_recipients=0", lambda: FakeTransport(max_recipients=0), "max_recipients"),
    Row("fake max_recipients=True", lambda: FakeTransport(max_recipients=True), "max_recipients"),
    Row("fake max_recipients=2.5", lambda: FakeTransport(max_recipients=2.5), "max_recipients"),  # type: ignore[arg-type]
    Row("fake require_auth='yes'", lambda: FakeTransport(require_auth="yes"), "require_auth"),  # type: ignore[arg-type]
    Row(
        "fake auth_requires_tls='yes'",
        lambda: FakeTransport(auth_requires_tls="yes"),  # type: ignore[arg-type]
        "auth_requires_tls",
    ),
    Row("fake tls='ok'", lambda: FakeTransport(tls="ok"), "tls"),  # type: ignore[arg-type]
    Row(
        "fake capabilities mechanism",
        lambda: FakeTransport(capabilities=FakeCapabilities(auth=("CRAM-MD5",))),
        "auth",
    ),
    Row("capabilities pipelining='no'", lambda: FakeCapabilities(pipelining="no"), "pipelining"),  # type: ignore[arg-type]
    Row("capabilities auth='PLAIN'", lambda: FakeCapabilities(auth="PLAIN"), "auth"),  # type: ignore[arg-type]
    Row("capabilities size='5'", lambda: FakeCapabilities(size="5"), "size"),  # type: ignore[arg-type]
    Row("capabilities extra='VRFY'", lambda: FakeCapabilities(extra="VRFY"), "extra"),  # type: ignore[arg-type]
    # -- LocalServer (refused before any certificate, thread or socket is made) ----------
    Row("server port='25'", lambda: LocalServer(port="25"), "port"),  # type: ignore[arg-type]
    Row("server port=True", lambda: LocalServer(port=True), "port"),
    Row("server port=70000", lambda: LocalServer(port=70000), "port"),
    Row("server size_limit='5'", lambda: LocalServer(size_limit="5"), "size_limit"),  # type: ignore[arg-type]
    Row("server size_limit=0", lambda: LocalServer(size_limit=0), "size_limit"),
    Row("server credentials=5", lambda: LocalServer(credentials=5), "credentials"),  # type: ignore[arg-type]
    Row("server credentials='u:p'", lambda: LocalServer(credentials="u:p"), "credentials"),  # type: ignore[arg-type]
    Row(
        "server credentials={u: 5}",
        lambda: LocalServer(credentials={"u@example.test": 5}),  # type: ignore[dict-item]
        "credentials",
    ),
    Row("server auth_mechanisms=5", lambda: LocalServer(auth_mechanisms=5), "auth_mechanisms"),  # type: ignore[arg-type]
    Row(
        "server auth_mechanisms=[5]",
        lambda: LocalServer(auth_mechanisms=[5]),  # type: ignore[list-item]
        "auth_mechanisms",
    ),
    Row(
        "server auth_mechanisms='PLAIN'",
        lambda: LocalServer(auth_mechanisms="PLAIN"),
        "auth_mechanisms",
    ),
    Row(
        "server certificate_names=5",
        lambda: LocalServer(certificate_names=5),  # type: ignore[arg-type]
        "certificate_names",
    ),
    Row(
        "server certificate_names='a'",
        lambda: LocalServer(certificate_names="mail.example.test"),
        "certificate_names",
    ),
    Row("server save_dir=5", lambda: LocalServer(save_dir=5), "save_dir"),  # type: ignore[arg-type]
    Row("server ca_path=5", lambda: LocalServer(ca_path=5), "ca_path"),  # type: ignore[arg-type]
    Row("server on_message=5", lambda: LocalServer(on_message=5), "on_message"),  # type: ignore[arg-type]
    Row("server faults=5", lambda: LocalServer(faults=5), "faults"),  # type: ignore[arg-type]
    Row("server oauth_tokens=5", lambda: LocalServer(oauth_tokens=5), "oauth_tokens"),  # type: ignore[arg-type]
    Row("server hostname CRLF", lambda: LocalServer(hostname="a\r\nb"), "hostname"),
    Row("server hostname=5", lambda: LocalServer(hostname=5), "hostname"),  # type: ignore[arg-type]
    Row(
        "server auth_failure_reply=5",
        lambda: LocalServer(auth_failure_reply=5),  # type: ignore[arg-type]
        "auth_failure_reply",
    ),
    Row("server security='tls'", lambda: LocalServer(security="tls"), "security"),  # type: ignore[arg-type]
    Row("server require_auth='yes'", lambda: LocalServer(require_auth="yes"), "require_auth"),  # type: ignore[arg-type]
    Row("server pipelining='no'", lambda: LocalServer(pipelining="no"), "pipelining"),  # type: ignore[arg-type]
    Row("server chunking=1", lambda: LocalServer(chunking=1), "chunking"),  # type: ignore[arg-type]
    Row("server smtputf8=None", lambda: LocalServer(smtputf8=None), "smtputf8"),  # type: ignore[arg-type]
    Row("server eight_bit_mime='y'", lambda: LocalServer(eight_bit_mime="y"), "eight_bit_mime"),  # type: ignore[arg-type]
    Row("server dsn='y'", lambda: LocalServer(dsn="y"), "dsn"),  # type: ignore[arg-type]
    Row(
        "server certificate_expired='x'",
        lambda: LocalServer(certificate_expired="x"),  # type: ignore[arg-type]
        "certificate_expired",
    ),
]


def _raised(call: Callable[[], object]) -> Exception | None:
    try:
        call()
    except Exception as error:  # the point: any class but ConfigurationError is the bug
        return error
    return None


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_wrong_argument_is_a_configuration_error_with_a_hint(row: Row) -> None:
    error = _raised(row.call)
    assert error is not None, f"{row.id} was accepted"
    assert isinstance(error, ConfigurationError), f"{row.id} raised an untyped {error!r}"
    assert row.argument in error.message, f"{row.id}: {error.message!r}"
    assert error.hint, f"{row.id}: no hint in {error!r}"


def test_a_host_name_with_a_line_break_never_reaches_the_greeting() -> None:
    # Before: accepted, and the greeting carried an extra line of the test's choosing.
    with pytest.raises(ConfigurationError):
        FakeTransport(hostname="fake.test\r\n250 injected")


def test_paths_may_be_given_as_strings(tmp_path: Path) -> None:
    saved, ca = tmp_path / "saved", tmp_path / "ca.pem"
    server = LocalServer(save_dir=str(saved), ca_path=str(ca))  # type: ignore[arg-type]
    with server:
        assert server.ca_path == ca
        assert ca.read_bytes() == server.ca_pem
    assert saved.is_dir()


def test_right_arguments_are_still_accepted() -> None:
    fake = FakeTransport(
        capabilities=FakeCapabilities(pipelining=False),
        credentials={"me@example.test": "pw"},
        require_auth=False,
        auth_requires_tls=False,
        hostname="mx-1.example.test",
        max_recipients=3,
    )
    assert fake.config.max_recipients == 3
    assert fake.config.hostname == "mx-1.example.test"
    assert fake.config.require_auth is False
    server = LocalServer(
        port=None,
        size_limit=1000,
        credentials={"me@example.test": "pw"},
        auth_mechanisms=["plain"],
        certificate_names=["mail.example.test"],
        on_message=lambda message: None,
        oauth_tokens=lambda user, token: True,
        require_auth=False,
        hostname="mx.example.test",
    )
    assert server.hostname == "mx.example.test"
    assert not server.running

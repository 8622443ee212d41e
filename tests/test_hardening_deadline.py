"""Each reply has one deadline for the whole reply, not one per ``recv`` (DESIGN rule 11).

A server that answers a byte at a time, or one continuation line at a time, never lets a
single ``recv`` time out. These tests drip every phase of a session through the public
``Submitter`` over real loopback sockets and check that the send fails with a timeout close
to the configured one (not after the server stops dripping).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest

from smtpkit import DeliveryUnknown, OperationTimeout, Security, Submitter, Timeouts
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.doctor import Status, check
from smtpkit.drivers._sync_io import SyncDriver
from smtpkit.engine import LinkSettings
from smtpkit.transports import Stream
from tests.hostile_server import HostileServer, Peer

#: The timeout under test, seconds: short, so the suite stays fast.
LIMIT = 0.6
#: How late the timeout may fire: scheduling on a loaded machine, plus QUIT/close.
MARGIN = 1.0
#: How often the server sends the next piece: well inside LIMIT, so no single recv times out.
EVERY = 0.1
#: How long a server drips before giving up; today's per-recv timeout runs until then.
DRIP_FOR = LIMIT + MARGIN + 3.0
#: A timeout the phase under test must not be bounded by.
GENEROUS = 10.0

EHLO_REPLY = b"250-hostile.test\r\n250 AUTH PLAIN LOGIN\r\n"


def byte_by_byte(code: bytes) -> Callable[[int], bytes]:
    """``220-`` and then one byte at a time, a line that never ends."""
    return lambda index: code + b"-" if index == 0 else b"x"


def line_by_line(code: bytes) -> Callable[[int], bytes]:
    """A complete continuation line each time (``250-still here 3``)."""
    return lambda index: code + b"-still here " + str(index).encode() + b"\r\n"


DRIPS = {"byte": byte_by_byte, "line": line_by_line}


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "deadline"
    msg.set_content("body")
    return msg


def run(
    server: HostileServer, timeouts: Timeouts, *, auth: bool = False
) -> tuple[float, OperationTimeout | DeliveryUnknown]:
    """Send one message; return the seconds until it failed (it must fail) and the error."""
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=timeouts,
        auth=PasswordAuth("user@example.test", "pw-deadline-1") if auth else None,
    )
    started = time.monotonic()
    with pytest.raises((OperationTimeout, DeliveryUnknown)) as caught:
        submitter.send(message())
    return time.monotonic() - started, caught.value


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Peer], None]], HostileServer]]:
    servers: list[HostileServer] = []

    def start(handler: Callable[[Peer], None]) -> HostileServer:
        server = HostileServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
        assert server.errors == []


def greet_and_ehlo(peer: Peer) -> None:
    peer.send(b"220 hostile.test ESMTP\r\n")
    peer.read_line()  # EHLO
    peer.send(EHLO_REPLY)


@pytest.mark.parametrize("style", sorted(DRIPS))
def test_a_dripping_greeting_times_out_within_the_command_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer], style: str
) -> None:
    def handler(peer: Peer) -> None:
        peer.drip(DRIPS[style](b"220"), every=EVERY, limit=DRIP_FOR)

    server = serve(handler)
    elapsed, error = run(server, Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS))
    assert isinstance(error, OperationTimeout)
    assert LIMIT * 0.9 <= elapsed < LIMIT + MARGIN
    assert f"{LIMIT:g} s" in str(error)
    # Part of a greeting arrived: the "no greeting, maybe implicit TLS" advice would mislead.
    assert "TLS" not in (error.hint or "")


@pytest.mark.parametrize("style", sorted(DRIPS))
def test_a_dripping_ehlo_reply_times_out_within_the_command_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer], style: str
) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.drip(DRIPS[style](b"250"), every=EVERY, limit=DRIP_FOR)

    server = serve(handler)
    elapsed, error = run(server, Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS))
    assert isinstance(error, OperationTimeout)
    assert elapsed < LIMIT + MARGIN
    assert any(line.startswith("C: EHLO") for line in error.transcript)


@pytest.mark.parametrize("style", sorted(DRIPS))
def test_a_dripping_auth_reply_times_out_within_the_command_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer], style: str
) -> None:
    def handler(peer: Peer) -> None:
        greet_and_ehlo(peer)
        peer.read_line()  # AUTH PLAIN ...
        peer.drip(DRIPS[style](b"235"), every=EVERY, limit=DRIP_FOR)

    server = serve(handler)
    elapsed, error = run(
        server, Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS), auth=True
    )
    assert isinstance(error, OperationTimeout)
    assert elapsed < LIMIT + MARGIN
    assert "C: AUTH PLAIN ****" in error.transcript


@pytest.mark.parametrize("style", sorted(DRIPS))
def test_a_dripping_final_reply_times_out_within_the_final_reply_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer], style: str
) -> None:
    def handler(peer: Peer) -> None:
        # No PIPELINING, no CHUNKING: MAIL, RCPT, DATA one by one, then the content.
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.send(b"250 hostile.test\r\n")
        for reply in (b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"354 go ahead\r\n"):
            peer.read_line()
            peer.send(reply)
        peer.read_content()
        peer.drip(DRIPS[style](b"250"), every=EVERY, limit=DRIP_FOR)

    server = serve(handler)
    elapsed, error = run(server, Timeouts(connect=GENEROUS, command=GENEROUS, final_reply=LIMIT))
    # After the final "." the outcome is unknown; the cause is the reply's deadline.
    assert isinstance(error, DeliveryUnknown)
    assert elapsed < LIMIT + MARGIN
    assert f"{LIMIT:g} s" in str(error)


def test_the_command_timeout_does_not_cut_a_slow_but_complete_final_reply(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    """The final reply has its own, longer deadline (RFC 5321 §4.5.3.2.6)."""

    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.send(b"250 hostile.test\r\n")
        for reply in (b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n"):
            peer.read_line()
            peer.send(reply)
        peer.read_content()
        # Longer than the command timeout in total, well inside the final-reply one.
        peer.drip(line_by_line(b"250"), every=EVERY, limit=LIMIT * 1.5)
        peer.send(b"250 2.0.0 queued\r\n")
        peer.read_line()  # QUIT
        peer.send(b"221 bye\r\n")

    server = serve(handler)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.NONE,
        timeout=Timeouts(connect=GENEROUS, command=LIMIT, final_reply=GENEROUS),
    )
    result = submitter.send(message())
    assert result.reply.code == 250


class _SlowStream:
    """A Stream whose clock moves 0.4 s per receive, each bringing one byte of a reply."""

    def __init__(self, clock: list[float], data: bytes) -> None:
        self._clock = clock
        self._data = data
        self.timeouts: list[float] = []
        self.is_encrypted = False
        self.peer_address = ("127.0.0.1", 25)
        self.closed = False

    def set_timeout(self, seconds: float) -> None:
        self.timeouts.append(seconds)

    def receive(self, max_bytes: int = 65536) -> bytes:
        self._clock[0] += 0.4
        byte, self._data = self._data[:1], self._data[1:]
        return byte

    def send(self, data: bytes) -> None:
        pass

    def start_tls(self, context: object, server_hostname: str) -> None:
        raise AssertionError("no TLS here")

    def close(self) -> None:
        self.closed = True


class _OneStream:
    """A transport whose one connection is ``stream``."""

    def __init__(self, stream: _SlowStream) -> None:
        self.stream = stream

    def connect(self, endpoint: Endpoint) -> Stream:
        return self.stream  # type: ignore[return-value]  # a Stream by shape (checked below)


def test_each_receive_gets_the_time_left_until_the_reply_deadline() -> None:
    """The seam the driver keeps: it sets the time left before each receive of a reply."""
    clock = [100.0]
    stream = _SlowStream(clock, b"220 ok\r\n")
    timeouts = Timeouts(connect=5.0, command=1.0, final_reply=5.0)
    settings = LinkSettings(
        host="127.0.0.1",
        port=25,
        security=Security.NONE,
        timeouts=timeouts,
        local_hostname="client.test",
    )
    endpoint = Endpoint("127.0.0.1", 25, Security.NONE, None, timeouts.connect)
    assert isinstance(stream, Stream)
    driver = SyncDriver(_OneStream(stream), settings, endpoint, None, lambda: clock[0])
    with pytest.raises(OperationTimeout):
        driver.open_connection()  # the greeting drips: one byte per 0.4 s
    # The full second first, then what is left of it; never a fresh second per receive.
    assert stream.timeouts[0] == pytest.approx(1.0)
    assert stream.timeouts[1:3] == [pytest.approx(0.6), pytest.approx(0.2)]
    assert clock[0] == pytest.approx(101.2)
    assert stream.closed


def drip_tls_record(peer: Peer) -> None:
    """Answer a TLS ClientHello with a record header and then one byte at a time."""
    peer.read_raw()
    peer.send(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB, never finished
    peer.drip(lambda index: b"\x02", every=EVERY, limit=DRIP_FOR)


def test_a_dripping_starttls_handshake_times_out_within_the_connect_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.send(b"250-hostile.test\r\n250 STARTTLS\r\n")
        peer.read_line()
        peer.send(b"220 2.0.0 go ahead\r\n")
        drip_tls_record(peer)

    server = serve(handler)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.STARTTLS,
        timeout=Timeouts(connect=LIMIT, command=GENEROUS, final_reply=GENEROUS),
    )
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        submitter.send(message())
    assert time.monotonic() - started < LIMIT + MARGIN


def test_a_dripping_implicit_tls_handshake_times_out_within_the_connect_timeout(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    server = serve(drip_tls_record)
    submitter = Submitter(
        server.host,
        server.port,
        security=Security.TLS,
        timeout=Timeouts(connect=LIMIT, command=GENEROUS, final_reply=GENEROUS),
    )
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        submitter.send(message())
    assert time.monotonic() - started < LIMIT + MARGIN


def test_the_doctor_gives_a_dripping_ehlo_reply_one_deadline(
    serve: Callable[[Callable[[Peer], None]], HostileServer],
) -> None:
    """``smtpkit check`` reads replies through its own loop: the same rule holds there."""

    def handler(peer: Peer) -> None:
        peer.send(b"220 hostile.test ESMTP\r\n")
        peer.read_line()
        peer.drip(line_by_line(b"250"), every=EVERY, limit=DRIP_FOR)

    server = serve(handler)
    started = time.monotonic()
    report = check(f"smtp://127.0.0.1:{server.port}", timeout=LIMIT)
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT * 2 + MARGIN  # the greeting is quick; EHLO gets LIMIT at most
    assert any(finding.status is Status.FAIL for finding in report.findings)

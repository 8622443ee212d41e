"""Loopback is decided by the address actually connected to, never by the host string.

``evil.localhost`` and ``localhost.`` look like loopback but may resolve anywhere; a name
like the machine's own may resolve to loopback without looking like it. The plaintext-AUTH
rule and the ``smtp://`` URL rule therefore ask the connected stream for its peer address
(``getpeername()``). No test here connects to anything but 127.0.0.1 / ::1: the
"non-loopback peer" cases use an in-memory stream that reports such a peer.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from smtpkit import ConfigurationError, InsecureAuthRefused, Security, Submitter
from smtpkit.auth import PasswordAuth
from smtpkit.config import Endpoint
from smtpkit.transports import SocketTransport, Stream, is_loopback_peer
from tests.hostile_server import HostileServer, Peer

USER = "alice@example.test"
PASSWORD = "pw-CANARY-loopback-93"
TIMEOUT = 5.0
#: TEST-NET-3 (RFC 5737): never routed, and never connected to here.
REMOTE = "203.0.113.7"


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = USER, "bob@example.test", "loopback"
    msg.set_content("body")
    return msg


# -- the decision function, on real sockets ------------------------------------------------


def accept_and_greet(peer: Peer) -> None:
    peer.send(b"220 loopback.test ESMTP\r\n")
    for _ in range(10):
        line = peer.read_line().upper()
        if line.startswith(b"EHLO"):
            peer.send(b"250-loopback.test\r\n250 AUTH PLAIN\r\n")
        elif line.startswith(b"AUTH"):
            peer.send(b"235 2.7.0 ok\r\n")
        elif line.startswith((b"MAIL", b"RCPT")):
            peer.send(b"250 ok\r\n")
        elif line == b"DATA":
            peer.send(b"354 go\r\n")
            peer.read_content()
            peer.send(b"250 2.0.0 queued\r\n")
        else:
            peer.send(b"221 bye\r\n")
            return


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer(accept_and_greet) as running:
        yield running


def test_a_socket_stream_reports_the_address_it_connected_to(server: HostileServer) -> None:
    stream = SocketTransport().connect(
        Endpoint("127.0.0.1", server.port, Security.NONE, connect_timeout=TIMEOUT)
    )
    try:
        assert stream.peer_address == "127.0.0.1"
        assert is_loopback_peer(stream.peer_address)
    finally:
        stream.close()


def test_localhost_is_judged_by_what_it_resolved_to(server: HostileServer) -> None:
    stream = SocketTransport().connect(
        Endpoint("localhost", server.port, Security.NONE, connect_timeout=TIMEOUT)
    )
    try:
        # Whatever "localhost" resolved to here, the peer is an address, not the name.
        assert stream.peer_address is not None
        assert stream.peer_address != "localhost"
        assert is_loopback_peer(stream.peer_address)
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # an IPv4 peer seen through a dual-stack socket
        (REMOTE, False),
        ("::ffff:203.0.113.7", False),
        ("fe80::1%eth0", False),
        # Names are never peers: only an address decides.
        ("localhost", False),
        ("evil.localhost", False),
        ("localhost.", False),
        ("", False),
        (None, False),
    ],
)
def test_only_a_loopback_address_is_a_loopback_peer(address: str | None, loopback: bool) -> None:
    assert is_loopback_peer(address) is loopback


# -- the plaintext-AUTH rule ---------------------------------------------------------------


class RemoteStream:
    """An in-memory SMTP server "at" ``peer``: answers each line with a canned reply."""

    def __init__(self, peer: str) -> None:
        self.peer_address = peer
        self.is_encrypted = False
        self.sent: list[bytes] = []
        self._out = b"220 remote.test ESMTP\r\n"

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        for line in data.split(b"\r\n")[:-1]:
            verb = line.split(b" ", 1)[0].upper()
            self._out += {
                b"EHLO": b"250-remote.test\r\n250 AUTH PLAIN\r\n",
                b"AUTH": b"235 2.7.0 ok\r\n",
                b"DATA": b"354 go\r\n",
                b"QUIT": b"221 bye\r\n",
                b".": b"250 2.0.0 queued\r\n",
            }.get(verb, b"250 ok\r\n" if verb in (b"MAIL", b"RCPT") else b"")

    def receive(self, max_bytes: int = 65536) -> bytes:
        data, self._out = self._out[:max_bytes], self._out[max_bytes:]
        return data

    def set_timeout(self, seconds: float) -> None:
        pass

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        raise AssertionError("no TLS in these tests")

    def close(self) -> None:
        pass


class RemoteTransport:
    """Connects every endpoint to a RemoteStream with the given peer address."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.streams: list[RemoteStream] = []

    def connect(self, endpoint: Endpoint) -> Stream:
        stream = RemoteStream(self.peer)
        self.streams.append(stream)
        return stream

    def wire(self) -> bytes:
        return b"".join(b"".join(stream.sent) for stream in self.streams)


@pytest.mark.parametrize("host", ["localhost", "evil.localhost", "localhost.", "LOCALHOST"])
def test_a_loopback_looking_name_with_a_remote_peer_gets_no_plaintext_auth(host: str) -> None:
    transport = RemoteTransport(REMOTE)
    submitter = Submitter(
        host,
        25,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD),
        transport=transport,
        timeout=TIMEOUT,
    )
    with pytest.raises(InsecureAuthRefused) as caught:
        submitter.send(message())
    assert b"AUTH" not in transport.wire()
    assert REMOTE in str(caught.value)  # says where the connection really went


def test_a_stream_that_cannot_tell_its_peer_gets_no_plaintext_auth() -> None:
    """Third-party streams without ``peer_address``: refuse, do not guess from the name."""

    class Anonymous(RemoteStream):
        def __getattribute__(self, name: str) -> object:
            if name == "peer_address":
                raise AttributeError(name)
            return super().__getattribute__(name)

    class AnonymousTransport(RemoteTransport):
        def connect(self, endpoint: Endpoint) -> Stream:
            stream = Anonymous(self.peer)
            self.streams.append(stream)
            return stream

    transport = AnonymousTransport(REMOTE)
    submitter = Submitter(
        "127.0.0.1",
        25,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD),
        transport=transport,
        timeout=TIMEOUT,
    )
    with pytest.raises(InsecureAuthRefused):
        submitter.send(message())
    assert b"AUTH" not in transport.wire()


def test_a_name_that_led_to_a_loopback_peer_may_log_in_in_plaintext() -> None:
    """The address decides both ways: a host name is fine when the peer is loopback."""
    transport = RemoteTransport("127.0.0.1")
    submitter = Submitter(
        "mail.example.test",
        25,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD),
        transport=transport,
        timeout=TIMEOUT,
    )
    result = submitter.send(message())
    assert result.reply.code == 250
    assert b"AUTH PLAIN " in transport.wire()


def test_plaintext_auth_to_a_real_loopback_socket_still_works(server: HostileServer) -> None:
    submitter = Submitter(
        "localhost",
        server.port,
        security=Security.NONE,
        auth=PasswordAuth(USER, PASSWORD),
        timeout=TIMEOUT,
    )
    assert submitter.send(message()).reply.code == 250
    assert any(line.startswith(b"AUTH PLAIN ") for line in server.peers[0].lines)


# -- the smtp:// URL rule ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["localhost", "evil.localhost", "localhost.", "127.0.0.1"])
def test_a_plaintext_url_to_a_remote_peer_is_refused_before_anything_is_sent(host: str) -> None:
    transport = RemoteTransport(REMOTE)
    submitter = Submitter.from_url(f"smtp://{host}:2525", transport=transport, timeout=TIMEOUT)
    with pytest.raises(ConfigurationError) as caught:
        submitter.send(message())
    assert transport.streams, "the check needs a connection: it must be made at connect time"
    assert transport.wire() == b""  # not even EHLO
    assert REMOTE in str(caught.value)
    assert "allow_plaintext=true" in (caught.value.hint or "")


def test_a_plaintext_url_with_allow_plaintext_may_go_anywhere() -> None:
    transport = RemoteTransport(REMOTE)
    submitter = Submitter.from_url(
        "smtp://relay.example.test:2525?allow_plaintext=true", transport=transport, timeout=TIMEOUT
    )
    assert submitter.send(message()).reply.code == 250


def test_a_plaintext_url_to_a_remote_looking_name_is_still_refused_at_once() -> None:
    with pytest.raises(ConfigurationError, match="not loopback"):
        Submitter.from_url("smtp://relay.example.test:2525")


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_plaintext_url_to_a_real_loopback_socket_sends(server: HostileServer, host: str) -> None:
    url = f"smtp://{USER.replace('@', '%40')}:{PASSWORD}@{host}:{server.port}"
    submitter = Submitter.from_url(url, timeout=TIMEOUT)
    assert submitter.send(message()).reply.code == 250
    assert any(line.startswith(b"AUTH PLAIN ") for line in server.peers[0].lines)


def test_ipv6_loopback_peer_over_a_real_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        listener.bind(("::1", 0))
    except OSError:
        listener.close()
        pytest.skip("::1 is not available")
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        stream = SocketTransport().connect(
            Endpoint("[::1]", port, Security.NONE, connect_timeout=TIMEOUT)
        )
        try:
            assert stream.peer_address == "::1"
            assert is_loopback_peer(stream.peer_address)
        finally:
            stream.close()
    finally:
        listener.close()

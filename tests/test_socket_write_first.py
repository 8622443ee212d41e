"""The socket transport writes a plaintext command without polling first, and still waits
(within the socket's timeout) when the kernel takes only part of it.

Real sockets on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from smtpkit import OperationTimeout, Security, TransportError
from smtpkit.config import Endpoint
from smtpkit.transports._socket import SocketStream

pytestmark = pytest.mark.timeout(30)


class _Recorder:
    """A socket stand-in that records which calls the stream makes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sendall_calls: list[int] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def sendall(self, data: bytes) -> None:
        self.sendall_calls.append(len(data))
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected TCP pair on loopback: (client, server side)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=2.0)
        server, _ = listener.accept()
    with client, server:
        yield client, server


def _stream(sock: socket.socket) -> SocketStream:
    host, port = sock.getpeername()[:2]
    return SocketStream(sock, Endpoint(host, port, security=Security.NONE))


def test_a_command_goes_out_in_one_write_without_the_polling_sendall(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, server = pair
    stream = _stream(client)
    recorder = _Recorder(client)
    stream._sock = recorder  # type: ignore[assignment]
    stream.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    server.settimeout(2.0)
    assert server.recv(1000) == b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
    assert recorder.sendall_calls == []  # sendall polls before writing: not used


def test_a_short_write_sends_the_rest_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    client, server = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    client.settimeout(10.0)  # a loaded machine: the reader may start late
    stream = _stream(client)
    recorder = _Recorder(client)
    stream._sock = recorder  # type: ignore[assignment]
    data = bytes(range(256)) * 4096  # 1 MiB: more than the kernel takes at once
    received = bytearray()

    def read() -> None:
        server.settimeout(10.0)
        while len(received) < len(data):
            chunk = server.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    stream.send(data)
    reader.join(15)
    assert bytes(received) == data
    assert len(recorder.sendall_calls) == 1  # the remainder, after the first short write
    assert 0 < recorder.sendall_calls[0] < len(data)


def test_a_peer_that_never_reads_times_out_within_the_socket_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _server = pair  # the server side never reads
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    stream = _stream(client)
    stream.set_timeout(0.3)
    started = time.monotonic()
    with pytest.raises(OperationTimeout):
        stream.send(b"x" * (16 * 1024 * 1024))
    assert time.monotonic() - started < 2.0


def test_a_send_after_close_is_a_transport_error_and_writes_nowhere(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    client, _server = pair
    stream = _stream(client)
    number = client.fileno()
    stream.close()
    # The next file opened may get the closed socket's number: nothing may be written to it.
    other_r, other_w = socket.socketpair()
    with other_r, other_w:
        with pytest.raises(TransportError):
            stream.send(b"QUIT\r\n")
        for reused in (other_r, other_w):
            if reused.fileno() == number:
                reused.setblocking(False)
                with pytest.raises(BlockingIOError):
                    reused.recv(10)

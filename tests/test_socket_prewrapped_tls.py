"""A :class:`SocketStream` given a socket that is already TLS-wrapped (its docstring allows
"optionally TLS-wrapped") sends every byte through TLS.

The write-first path (``os.write`` on the descriptor, skipping the poll before a send) is
for plain sockets only: on an ``ssl.SSLSocket``, or a wrapper with a ``fileno()`` of its own
(pyOpenSSL's ``Connection``), it would put the command, AUTH payload included, on the wire
in clear text, under the TLS layer. Real sockets on 127.0.0.1.
"""

from __future__ import annotations

import socket

import pytest

from smtpkit import Security
from smtpkit.config import Endpoint
from smtpkit.testing import LocalServer
from smtpkit.transports import SocketStream

pytestmark = pytest.mark.timeout(30)


def _read_reply(stream: SocketStream) -> bytes:
    """One reply (single or multi-line), read within the socket's timeout."""
    data = b""
    for _ in range(50):  # bounded: a reply arrives in a few reads
        chunk = stream.receive()
        if not chunk:
            break
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[-1]
        if data.endswith(b"\n") and last[3:4] == b" ":
            break
    return data


def test_a_stream_over_a_tls_socket_writes_through_tls() -> None:
    with LocalServer(security=Security.TLS) as server:
        raw = socket.create_connection((server.host, server.port), timeout=2.0)
        tls = server.client_tls_context().wrap_socket(raw, server_hostname=server.hostname)
        stream = SocketStream(tls, Endpoint(server.host, server.port, security=Security.NONE))
        try:
            assert _read_reply(stream).startswith(b"220")
            stream.send(b"EHLO client.example\r\n")
            # Written under TLS, not beside it: clear text would reach the server as a
            # broken TLS record and it would drop the connection (no 250).
            assert _read_reply(stream).startswith(b"250")
        finally:
            stream.close()


class _Wrapped:
    """A TLS socket behind a wrapper of its own (as pyOpenSSL's ``Connection`` or
    urllib3's ``WrappedSocket`` are): not a ``socket.socket``, yet it has ``fileno()`` and
    ``gettimeout()``; its ``sendall`` is the only correct way to write."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def test_a_stream_over_a_socket_wrapper_writes_through_its_sendall() -> None:
    with LocalServer(security=Security.TLS) as server:
        raw = socket.create_connection((server.host, server.port), timeout=2.0)
        tls = server.client_tls_context().wrap_socket(raw, server_hostname=server.hostname)
        endpoint = Endpoint(server.host, server.port, security=Security.NONE)
        stream = SocketStream(_Wrapped(tls), endpoint)  # type: ignore[arg-type]
        try:
            assert _read_reply(stream).startswith(b"220")
            stream.send(b"EHLO client.example\r\n")
            assert _read_reply(stream).startswith(b"250")
        finally:
            stream.close()

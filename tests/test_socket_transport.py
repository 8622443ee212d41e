"""The socket transport: connections, TLS, and the one place OS/ssl errors are translated.

No test here resolves a name or leaves the loopback interface: DNS failures are simulated.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from smtpkit import (
    ConnectError,
    OperationTimeout,
    Security,
    ServerDisconnected,
    TLSError,
    TLSModeMismatch,
    TransportError,
)
from smtpkit.config import Endpoint
from smtpkit.testing import LocalServer
from smtpkit.transports import SocketTransport, Stream, Transport, translate_os_error
from smtpkit.transports import _socket as socket_module

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0
ServerFactory = Callable[..., LocalServer]


def endpoint(port: int, security: Security = Security.NONE, **kwargs: object) -> Endpoint:
    return Endpoint("127.0.0.1", port, security=security, connect_timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def plaintext_listener() -> Iterator[int]:
    """A loopback server that sends an SMTP greeting, then reads until the client leaves."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            try:
                conn.sendall(b"220 plain.localhost ESMTP\r\n")
                for _ in range(100):
                    if not conn.recv(4096):
                        break
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(TIMEOUT)


def test_socket_transport_satisfies_the_protocols(local_server: ServerFactory) -> None:
    server = local_server(security=Security.NONE)
    transport = SocketTransport()
    assert isinstance(transport, Transport)
    stream = transport.connect(endpoint(server.port))
    try:
        assert isinstance(stream, Stream)
        assert not stream.is_encrypted
        stream.set_timeout(TIMEOUT)
        assert stream.receive().startswith(b"220 ")
        stream.send(b"QUIT\r\n")
        assert stream.receive().startswith(b"221")
        assert stream.receive() == b""  # end of stream after the server hangs up
    finally:
        stream.close()
        stream.close()  # idempotent
    assert repr(transport) == "SocketTransport()"


def test_starttls_upgrades_in_place(local_server: ServerFactory) -> None:
    server = local_server(security=Security.STARTTLS)
    stream = SocketTransport().connect(endpoint(server.port))
    try:
        stream.set_timeout(TIMEOUT)
        assert stream.receive().startswith(b"220")
        stream.send(b"EHLO client.localhost\r\n")
        reply = b""
        for _ in range(20):
            reply += stream.receive()
            if b"250 " in reply:
                break
        stream.send(b"STARTTLS\r\n")
        assert stream.receive().startswith(b"220")
        stream.start_tls(server.client_tls_context(), "127.0.0.1")
        assert stream.is_encrypted
        assert "TLS" in repr(stream)
        stream.send(b"NOOP\r\n")
        assert stream.receive().startswith(b"250")
    finally:
        stream.close()


def test_implicit_tls_is_verified_with_the_given_context(local_server: ServerFactory) -> None:
    server = local_server(security=Security.TLS)
    good = endpoint(server.port, Security.TLS, tls_context=server.client_tls_context())
    stream = SocketTransport().connect(good)
    try:
        assert stream.is_encrypted
        stream.set_timeout(TIMEOUT)
        assert stream.receive().startswith(b"220")
    finally:
        stream.close()

    with pytest.raises(TLSError) as caught:
        SocketTransport().connect(endpoint(server.port, Security.TLS))  # default trust store
    assert not isinstance(caught.value, TLSModeMismatch)
    assert "did not verify" in str(caught.value)


def test_a_refused_port_is_a_connect_error_with_a_hint() -> None:
    port = free_port()
    with pytest.raises(ConnectError) as caught:
        SocketTransport().connect(endpoint(port))
    error = caught.value
    assert isinstance(error, ConnectionError)
    assert error.is_transient
    assert f"127.0.0.1:{port}" in str(error)
    assert error.hint
    assert "587" in error.hint
    assert "465" in error.hint


def test_an_unresolvable_host_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: resolving a real name could reach a DNS server off this machine.
    def fail(*args: object, **kwargs: object) -> socket.socket:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket_module.socket, "create_connection", fail)
    with pytest.raises(ConnectError) as caught:
        SocketTransport().connect(Endpoint("smtp.example.invalid", 587))
    assert "cannot resolve 'smtp.example.invalid'" in str(caught.value)
    assert caught.value.hint
    assert "host name" in caught.value.hint


def test_a_tls_handshake_with_a_plaintext_listener_is_a_mode_mismatch(
    plaintext_listener: int,
) -> None:
    with pytest.raises(TLSModeMismatch) as caught:
        SocketTransport().connect(
            endpoint(plaintext_listener, Security.TLS, tls_context=ssl.create_default_context())
        )
    assert "STARTTLS" in (caught.value.hint or "")
    assert "587" in (caught.value.hint or "")


def test_a_silent_implicit_tls_handshake_times_out() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        silent = Endpoint(
            "127.0.0.1", listener.getsockname()[1], security=Security.TLS, connect_timeout=0.3
        )
        with pytest.raises(OperationTimeout):
            SocketTransport().connect(silent)


def test_receive_times_out_as_operation_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = SocketTransport().connect(endpoint(listener.getsockname()[1]))
        try:
            stream.set_timeout(0.2)
            with pytest.raises(OperationTimeout):
                stream.receive()
        finally:
            stream.close()


def test_a_peer_reset_reads_as_end_of_stream() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = SocketTransport().connect(endpoint(listener.getsockname()[1]))
        conn, _ = listener.accept()
        # SO_LINGER 0: close() sends RST instead of FIN.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        stream.send(b"EHLO x\r\n")
        conn.close()
        try:
            stream.set_timeout(TIMEOUT)
            assert stream.receive() == b""
        finally:
            stream.close()


# -- translate_os_error: every family of OS/ssl error maps to one smtpkit error ---------------


def _cert_error() -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "unable to get local issuer certificate"
    return error


def _ssl_error(reason: str, cls: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    error = cls(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


@pytest.mark.parametrize(
    ("error", "during", "expected"),
    [
        (_cert_error(), "the TLS handshake", TLSError),
        (_ssl_error("WRONG_VERSION_NUMBER"), "the TLS handshake", TLSModeMismatch),
        (_ssl_error("RECORD_LAYER_FAILURE"), "the TLS handshake", TLSModeMismatch),
        (_ssl_error("UNKNOWN_PROTOCOL"), "the TLS handshake", TLSModeMismatch),
        (_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), "the TLS handshake", TLSError),
        (ssl.SSLEOFError(8, "EOF occurred"), "the TLS handshake", ServerDisconnected),
        (ssl.SSLZeroReturnError(6, "closed"), "receive", ServerDisconnected),
        (TimeoutError("timed out"), "connect", OperationTimeout),
        (TimeoutError("timed out"), "receive", OperationTimeout),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "connect", ConnectError),
        (ConnectionRefusedError(111, "Connection refused"), "connect", ConnectError),
        (OSError(113, "No route to host"), "connect", ConnectError),
        (BrokenPipeError(32, "Broken pipe"), "send", ServerDisconnected),
        (ConnectionResetError(104, "Connection reset by peer"), "send", ServerDisconnected),
        (OSError(9, "Bad file descriptor"), "receive", ServerDisconnected),
    ],
)
def test_translate_os_error(error: OSError, during: str, expected: type[TransportError]) -> None:
    point = Endpoint("smtp.example.com", 587)
    translated = translate_os_error(error, during=during, endpoint=point)
    assert type(translated) is expected
    assert "smtp.example.com" in str(translated)


def test_mode_mismatch_hints_point_the_other_way() -> None:
    wrong = _ssl_error("WRONG_VERSION_NUMBER")
    for security, words in ((Security.TLS, "STARTTLS"), (Security.STARTTLS, "Security.TLS")):
        point = Endpoint("smtp.example.com", 2525, security=security)
        translated = translate_os_error(wrong, during="the TLS handshake", endpoint=point)
        assert words in (translated.hint or "")

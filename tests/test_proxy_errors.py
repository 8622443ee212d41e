"""Proxy replies mapped to typed errors, and the tunnel's edges, against scripted proxies.

pproxy (tests/test_proxy_integration.py) hangs up where a proxy that follows the RFCs
answers with a code: here a tiny scripted proxy on loopback answers exactly as RFC 1928,
RFC 1929, SOCKS4 and RFC 9110 say, so that each reply code is checked to give its error.
Each script serves one connection, with every read bounded in time.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from smtpkit import (
    OperationTimeout,
    Proxy,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    Security,
)
from smtpkit.config import Endpoint
from smtpkit.transports import SocketTransport
from smtpkit.transports._asyncio import AsyncioTransport

pytest.importorskip("python_socks", reason="python-socks (the [proxy] extra) is not installed")

pytestmark = pytest.mark.timeout(30)

Script = Callable[[socket.socket], None]


def read_until(conn: socket.socket, marker: bytes, limit: int = 4096) -> bytes:
    data = b""
    while marker not in data and len(data) < limit:
        chunk = conn.recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def read_exactly(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


class ScriptedProxy:
    """Accepts one connection on 127.0.0.1 and runs ``script`` on it in a thread."""

    def __init__(self, script: Script) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(5)
        self.port: int = self._listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self._thread.start()

    def _serve(self, script: Script) -> None:
        try:
            conn, _ = self._listener.accept()
        except OSError as error:
            self.errors.append(error)
            return
        with conn:
            conn.settimeout(5)
            try:
                script(conn)
            except OSError as error:  # the client went away: the script's business
                self.errors.append(error)

    def close(self) -> None:
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def scripted() -> Iterator[Callable[[Script], ScriptedProxy]]:
    proxies: list[ScriptedProxy] = []

    def start(script: Script) -> ScriptedProxy:
        proxies.append(ScriptedProxy(script))
        return proxies[-1]

    yield start
    for proxy in proxies:
        proxy.close()


ENDPOINT = Endpoint("127.0.0.1", 2525, Security.NONE, connect_timeout=2.0)


def connect_sync(proxy: Proxy, endpoint: Endpoint = ENDPOINT) -> bytes:
    stream = SocketTransport(proxy=proxy).connect(endpoint)
    try:
        stream.set_timeout(2.0)
        return stream.receive()
    finally:
        stream.close()


def connect_async(proxy: Proxy, endpoint: Endpoint = ENDPOINT) -> bytes:
    async def main() -> bytes:
        stream = await AsyncioTransport(proxy=proxy).connect(endpoint)
        try:
            return await stream.receive(2.0)
        finally:
            stream.abort()

    return asyncio.run(main())


CONNECTORS = {"sync": connect_sync, "async": connect_async}
GREETING = b"220 scripted.example ESMTP\r\n"


# -- HTTP CONNECT: the reply head, and no byte past it -------------------------------------


def http_reply(*parts: bytes, pause: float = 0.0) -> Script:
    def script(conn: socket.socket) -> None:
        read_until(conn, b"\r\n\r\n")
        for part in parts:
            conn.sendall(part)
            time.sleep(pause)
        read_until(conn, b"\n", limit=64)  # until the client closes

    return script


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_a_greeting_in_the_same_segment_as_200_is_not_lost(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    # python-socks reads the reply with one recv(65536): it would swallow the greeting.
    proxy = scripted(http_reply(b"HTTP/1.1 200 Connection established\r\n\r\n" + GREETING))
    assert CONNECTORS[driver](Proxy.from_url(f"http://127.0.0.1:{proxy.port}")) == GREETING


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_a_reply_head_split_across_segments_is_read_to_its_end(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    # python-socks alone would take the first segment as the reply and leave "Via: ..."
    # for the SMTP parser.
    proxy = scripted(
        http_reply(b"HTTP/1.1 200 OK\r\n", b"Via: 1.1 proxy\r\n\r\n" + GREETING, pause=0.05)
    )
    assert CONNECTORS[driver](Proxy.from_url(f"http://127.0.0.1:{proxy.port}")) == GREETING


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
@pytest.mark.parametrize(
    ("status", "error"),
    [
        (b"403 Forbidden", ProxyConnectionRefused),
        (b"502 Bad Gateway", ProxyConnectionRefused),
        (b"503 Service Unavailable", ProxyConnectionRefused),
        (b"407 Proxy Authentication Required", ProxyAuthenticationError),
        (b"400 Bad Request", ProxyError),
    ],
)
def test_http_statuses_to_connect(
    scripted: Callable[[Script], ScriptedProxy],
    status: bytes,
    error: type[ProxyError],
    driver: str,
) -> None:
    proxy = scripted(http_reply(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n"))
    with pytest.raises(error) as caught:
        CONNECTORS[driver](Proxy.from_url(f"http://u:pw@127.0.0.1:{proxy.port}"))
    assert type(caught.value) is error
    assert caught.value.target == "127.0.0.1:2525"
    assert caught.value.proxy == f"http://u:***@127.0.0.1:{proxy.port}"


# -- SOCKS5 (RFC 1928, RFC 1929) -----------------------------------------------------------


def socks5(*, method: int, auth_status: int | None = None, reply: int = 0) -> Script:
    def script(conn: socket.socket) -> None:
        _version, count = read_exactly(conn, 2)  # VER NMETHODS METHODS
        read_exactly(conn, count)
        conn.sendall(bytes([5, method]))
        if method == 0xFF:
            return
        if method == 2:
            _version, user_length = read_exactly(conn, 2)  # RFC 1929: VER ULEN UNAME
            read_exactly(conn, user_length)
            (password_length,) = read_exactly(conn, 1)  # PLEN PASSWD
            read_exactly(conn, password_length)
            conn.sendall(bytes([1, auth_status or 0]))
            if auth_status:
                return
        read_exactly(conn, 4)  # VER CMD RSV ATYP (IPv4 here)
        read_exactly(conn, 6)
        conn.sendall(bytes([5, reply, 0, 1, 0, 0, 0, 0, 0, 0]))
        if reply == 0:
            conn.sendall(GREETING)
            read_until(conn, b"\n", limit=64)

    return script


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (0x05, "connection refused"),
        (0x02, "connection not allowed by ruleset"),
        (0x04, "host unreachable"),
        (0x01, "general SOCKS server failure"),
    ],
)
def test_socks5_refusals(
    scripted: Callable[[Script], ScriptedProxy], reply: int, words: str, driver: str
) -> None:
    proxy = scripted(socks5(method=0, reply=reply))
    with pytest.raises(ProxyConnectionRefused, match=words):
        CONNECTORS[driver](Proxy.from_url(f"socks5://127.0.0.1:{proxy.port}"))


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_socks5_refused_credentials(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    proxy = scripted(socks5(method=2, auth_status=1))
    with pytest.raises(ProxyAuthenticationError, match="refused the user name and password"):
        CONNECTORS[driver](Proxy.from_url(f"socks5://u:wrong-pw@127.0.0.1:{proxy.port}"))


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_socks5_no_acceptable_method(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    proxy = scripted(socks5(method=0xFF))
    with pytest.raises(ProxyAuthenticationError, match="none of the authentication methods") as e:
        CONNECTORS[driver](Proxy.from_url(f"socks5://127.0.0.1:{proxy.port}"))
    assert e.value.hint
    assert "user name and password" in e.value.hint


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_socks5_with_credentials_reaches_the_server(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    proxy = scripted(socks5(method=2, auth_status=0))
    url = f"socks5://u:right-pw@127.0.0.1:{proxy.port}"
    assert CONNECTORS[driver](Proxy.from_url(url)) == GREETING


# -- SOCKS4 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_socks4_rejected(scripted: Callable[[Script], ScriptedProxy], driver: str) -> None:
    def script(conn: socket.socket) -> None:
        read_until(conn, b"\x00", limit=600)  # VN CD DSTPORT DSTIP USERID NUL
        conn.sendall(bytes([0, 0x5B, 0, 0, 0, 0, 0, 0]))

    proxy = scripted(script)
    with pytest.raises(ProxyConnectionRefused, match=r"rejected the request for 127\.0\.0\.1:2525"):
        CONNECTORS[driver](Proxy.from_url(f"socks4://127.0.0.1:{proxy.port}"))


# -- not a proxy, or a silent one ------------------------------------------------------------


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_an_smtp_server_is_not_an_http_proxy(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    def script(conn: socket.socket) -> None:
        conn.sendall(GREETING)
        read_until(conn, b"\n", limit=4096)

    proxy = scripted(script)
    with pytest.raises(ProxyError) as caught:
        CONNECTORS[driver](Proxy.from_url(f"http://127.0.0.1:{proxy.port}"))
    assert type(caught.value) is ProxyError
    assert "HTTP CONNECT" in (caught.value.hint or "")


@pytest.mark.parametrize("driver", sorted(CONNECTORS))
def test_a_silent_proxy_times_out_within_the_connect_timeout(
    scripted: Callable[[Script], ScriptedProxy], driver: str
) -> None:
    def script(conn: socket.socket) -> None:
        read_until(conn, b"never", limit=64)  # reads the greeting, answers nothing

    proxy = scripted(script)
    endpoint = Endpoint("127.0.0.1", 2525, Security.NONE, connect_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match="handshake with the proxy"):
        CONNECTORS[driver](Proxy.from_url(f"socks5://127.0.0.1:{proxy.port}"), endpoint)
    assert time.monotonic() - started < 2.0

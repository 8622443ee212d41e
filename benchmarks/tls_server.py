"""A STARTTLS + AUTH SMTP server on 127.0.0.1 for the connection-setup benchmark.

aiosmtpd's ``Controller`` with a throw-away trustme CA: plaintext greeting, STARTTLS
required before MAIL, AUTH PLAIN/LOGIN only after TLS, PIPELINING announced, messages
discarded. The listener is
created by ``loop.create_server(host, port)``, whose sockets get TCP_NODELAY; a socket made
with ``socket.socket(AF_INET, SOCK_STREAM)`` (protocol 0) does not get it from asyncio, and
then every multi-line reply (EHLO) stalls on Nagle plus the peer's delayed ACK (~40 ms).
"""

from __future__ import annotations

import ssl
from types import TracebackType
from typing import Any, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from benchmarks.common import HOST, free_port

__all__ = ["TLSServer"]


class _Discard:
    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        # aiosmtpd reads commands one by one, so it copes with PIPELINING (RFC 2920) but
        # does not announce it; announce it so pipelining clients can use it.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 2.0.0 OK discarded"


class TLSServer:
    """The server (a context manager): ``.host``, ``.port``, ``client_tls_context()``."""

    def __init__(self, username: str, password: str) -> None:
        self.host = HOST
        self.port = free_port()
        self._ca = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("localhost", HOST).configure_cert(server_context)
        credentials = (username.encode(), password.encode())

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == credentials
            # handled=False makes aiosmtpd send the 535 itself (else the client hangs).
            return AuthResult(success=ok, handled=ok)

        self._controller = Controller(
            _Discard(),
            hostname=HOST,
            port=self.port,
            server_hostname="localhost",
            tls_context=server_context,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA (and verifies its name)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()

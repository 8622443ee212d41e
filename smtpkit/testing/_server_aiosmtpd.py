"""The aiosmtpd controller LocalServer runs: a thread, a socket we bound, a clean shutdown.

aiosmtpd's ``Controller`` runs an asyncio loop in a daemon thread. This module changes
four things about it:

* it listens on a socket we bound ourselves (``port=0`` does not work with ``Controller``,
  and binding first leaves no window for another process to take the port);
* every connection runs :class:`~smtpkit.testing._server_protocol.LocalSMTP` (scripting,
  CHUNKING, switchable extensions);
* :func:`local_controller` gives it what LocalServer's security means to aiosmtpd (the
  TLS keywords, the AUTH mechanisms left out, the size limit);
* ``shutdown()`` aborts every open session before stopping the loop, so no transport or task
  is left for the garbage collector (and on Python 3.12+ ``Server.wait_closed()`` would
  otherwise wait for clients that never hang up, or sessions a scripted timeout holds).

Invariants:
    * Only loopback sockets reach this module (the caller checks the address).
    * After ``shutdown()`` returns, the loop is closed, the thread joined and every socket
      closed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import ssl
from typing import Any

from aiosmtpd.controller import Controller

from smtpkit.config import Security, is_loopback
from smtpkit.errors import ConfigurationError
from smtpkit.testing._server_handler import Handler
from smtpkit.testing._server_protocol import Extensions, LocalSMTP

__all__ = [
    "READY_TIMEOUT",
    "ThreadedServer",
    "abort_transport",
    "bind_listener",
    "local_controller",
    "loopback_address",
    "quiet_aiosmtpd_logger",
]

#: Seconds ``shutdown()`` waits for sessions to wind down before stopping the loop anyway.
SHUTDOWN_GRACE = 5.0
#: Seconds ``start()`` waits for the server thread to accept its first connection.
READY_TIMEOUT = 5.0


class ThreadedServer(Controller):
    """aiosmtpd's threaded controller, listening on a socket bound by the caller.

    Args:
        handler: the hooks object.
        extensions: what each connection offers beyond aiosmtpd's defaults.
        sock: a bound (not yet listening) TCP socket; the controller owns it from now on.
        ssl_context: for implicit TLS, the server context; ``None`` otherwise.
        smtp_kwargs: keyword arguments for :class:`aiosmtpd.smtp.SMTP`.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        extensions: Extensions,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        ready_timeout: float,
        **smtp_kwargs: Any,
    ) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(
            handler,
            hostname=host,
            port=port,
            ssl_context=ssl_context,
            ready_timeout=ready_timeout,
            **smtp_kwargs,
        )
        self._sock: socket.socket | None = sock
        self._extensions = extensions
        self.sessions: set[LocalSMTP] = set()
        self.loop.set_exception_handler(self._on_loop_error)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError):
            # A client that hung up or refused our certificate during the implicit-TLS
            # handshake (asyncio reports these only in debug mode): part of normal testing.
            handler = self.handler
            assert isinstance(handler, Handler)
            handler.state.records.note(f"connection failed before the greeting: {error!r}")
            return
        loop.default_exception_handler(context)

    def factory(self) -> LocalSMTP:
        return LocalSMTP(
            self.handler, sessions=self.sessions, extensions=self._extensions, **self.SMTP_kwargs
        )

    def _create_server(self) -> Any:
        sock, self._sock = self._sock, None
        assert sock is not None, "the controller listens once"
        return self.loop.create_server(self._factory_invoker, sock=sock, ssl=self.ssl_context)

    def shutdown(self) -> None:
        """Close the listener and every session, stop the loop, join the thread."""
        try:
            if self._thread is not None and self.loop.is_running():
                future = asyncio.run_coroutine_threadsafe(self._close_sessions(), self.loop)
                try:
                    future.result(SHUTDOWN_GRACE)
                except TimeoutError:  # pragma: no cover - a wedged session; stop anyway
                    future.cancel()
            if self._thread is not None:
                self.stop()
        finally:
            if self._sock is not None:  # start() failed before the loop took the socket
                self._sock.close()
                self._sock = None
            if not self.loop.is_running() and not self.loop.is_closed():
                self.loop.close()

    async def _close_sessions(self) -> None:
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            abort_transport(session.transport)
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def local_controller(
    handler: Handler,
    extensions: Extensions,
    sock: socket.socket,
    *,
    security: Security,
    server_context: ssl.SSLContext,
    hostname: str,
    excluded_mechanisms: list[str],
    size_limit: int | None,
    smtputf8: bool,
) -> ThreadedServer:
    """The controller for a LocalServer listener: aiosmtpd's own keywords for ``security``.

    ``Security.TLS`` wraps the listener in ``server_context``; ``Security.STARTTLS`` offers
    STARTTLS with it and requires it before anything but EHLO, NOOP and QUIT.
    """
    starttls = security is Security.STARTTLS
    return ThreadedServer(
        handler,
        extensions=extensions,
        sock=sock,
        ssl_context=server_context if security is Security.TLS else None,
        ready_timeout=READY_TIMEOUT,
        server_hostname=hostname,
        tls_context=server_context if starttls else None,
        require_starttls=starttls,
        # aiosmtpd only knows about TLS started by STARTTLS: on an implicit-TLS listener
        # it would hide AUTH unless told TLS is not required. Plaintext AUTH is acceptable
        # here only because the listener is loopback.
        auth_require_tls=starttls,
        authenticator=handler.check_password,
        auth_exclude_mechanism=excluded_mechanisms,
        data_size_limit=size_limit,
        enable_SMTPUTF8=smtputf8,
        decode_data=False,
    )


def abort_transport(transport: asyncio.BaseTransport | None) -> None:
    """Close a session's transport at once: no TLS close_notify, no waiting for the peer."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    elif transport is not None:  # pragma: no cover - aiosmtpd always uses a Transport
        transport.close()


def bind_listener(host: str, port: int | None) -> socket.socket:
    """A TCP socket bound to ``host`` (a numeric loopback address) and ``port``.

    ``None`` picks a free ephemeral port (retried a few times should it be taken between
    the kernel's choice and the bind).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attempts = 1 if port is not None else 5
    for attempt in range(attempts):
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
        # the listener's proto says TCP; with proto 0, multi-line replies wait on Nagle
        # plus the client's delayed ACK (about 40 ms each).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            # Lets a restarted server reuse its fixed port while old connections sit in
            # TIME_WAIT; Linux still refuses a port another socket is listening on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port or 0))
        except OSError as error:
            sock.close()
            if error.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
            continue
        return sock
    raise AssertionError("unreachable")  # pragma: no cover


def quiet_aiosmtpd_logger() -> None:
    """Keep aiosmtpd's log off stderr unless the application configures logging.

    Without a handler of its own, aiosmtpd's warnings (a client cancelling AUTH, say) would
    reach stderr through logging's last-resort handler - noise in a CLI run.
    """
    logger = logging.getLogger("mail.log")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def loopback_address(host: str) -> str:
    """The numeric loopback address for ``host``, or ConfigurationError."""
    if not isinstance(host, str) or not is_loopback(host):
        raise ConfigurationError(
            f"LocalServer listens only on a loopback address (127.0.0.1, ::1, localhost), "
            f"got {host!r}",
            hint="pass host='127.0.0.1' (the default) or host='::1'",
        )
    name = host.strip("[]")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return "127.0.0.1"  # "localhost" and *.localhost

"""The aiosmtpd glue: an SMTP protocol subclass and a threaded controller that shuts down cleanly.

aiosmtpd's ``Controller`` runs an asyncio loop in a daemon thread. This module changes four
things about it:

* it listens on a socket we bound ourselves (``port=0`` does not work with ``Controller``,
  and binding first leaves no window for another process to take the port);
* ``shutdown()`` aborts every open session before stopping the loop, so no transport or task
  is left for the garbage collector (and on Python 3.12+ ``Server.wait_closed()`` would
  otherwise wait for clients that never hang up);
* SASL responses may be up to 12288 octets (RFC 4954 §4) while message lines keep RFC 5321's
  limit: aiosmtpd's reader would otherwise refuse any line over 1001 octets, which breaks
  ``AUTH XOAUTH2`` with a realistic (Microsoft-sized) token sent after a bare ``334``;
* the DATA command itself can be given a scripted failure reply.

Invariants:
    * Only loopback sockets reach this module (the caller checks the address).
    * After ``shutdown()`` returns, the loop is closed, the thread joined and every socket
      closed.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session, syntax

from smtpkit.testing._server_handler import Handler, drop_connection
from smtpkit.testing._server_state import DROP

__all__ = ["SASL_LINE_LIMIT", "ThreadedServer", "abort_transport"]

#: RFC 4954 §4: servers must accept SASL client responses of at least 12288 octets.
SASL_LINE_LIMIT = 12288 + 2  # plus CRLF

#: Seconds ``shutdown()`` waits for sessions to wind down before stopping the loop anyway.
SHUTDOWN_GRACE = 5.0


class _QuietSession(Session):
    """A session whose ``login_data`` does not log a deprecation warning on every AUTH."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _LocalSMTP(SMTP):
    """aiosmtpd's protocol with a longer reader limit, tracking, and a DATA failure hook."""

    # SMTP.__init__ sizes its StreamReader from this class attribute; the instance attribute
    # set below restores RFC 5321's 1000-octet (+ dot) limit for message lines, which
    # smtp_DATA checks explicitly. Command lines stay capped at 512 by command_size_limit.
    line_length_limit = SASL_LINE_LIMIT

    def __init__(self, handler: Handler, *, sessions: set[_LocalSMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.line_length_limit = SMTP.line_length_limit
        self._sessions = sessions

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        # Only a DATA that aiosmtpd would accept consumes a scripted "data" failure; the
        # ordering checks (HELO first, a recipient first) stay aiosmtpd's.
        ready = (
            not arg
            and self.session is not None
            and self.session.host_name
            and self.envelope is not None
            and self.envelope.rcpt_tos
        )
        if ready:
            handler = self.event_handler
            assert isinstance(handler, Handler)
            scripted = handler.take_data_command_failure()
            if scripted == DROP:
                await drop_connection(self)
            if scripted is not None:
                await self.push(scripted)
                return
        await super().smtp_DATA(arg)


class ThreadedServer(Controller):
    """aiosmtpd's threaded controller, listening on a socket bound by the caller.

    Args:
        handler: the hooks object.
        sock: a bound (not yet listening) TCP socket; the controller owns it from now on.
        ssl_context: for implicit TLS, the server context; ``None`` otherwise.
        smtp_kwargs: keyword arguments for :class:`aiosmtpd.smtp.SMTP`.
    """

    def __init__(
        self,
        handler: Handler,
        *,
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
        self.sessions: set[_LocalSMTP] = set()
        self.loop.set_exception_handler(self._on_loop_error)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError):
            # A client that hung up or refused our certificate during the implicit-TLS
            # handshake (asyncio reports these only in debug mode): part of normal testing.
            handler = self.handler
            assert isinstance(handler, Handler)
            handler.state.note(f"connection failed before the greeting: {error!r}")
            return
        loop.default_exception_handler(context)

    def factory(self) -> _LocalSMTP:
        return _LocalSMTP(self.handler, sessions=self.sessions, **self.SMTP_kwargs)

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


def abort_transport(transport: asyncio.BaseTransport | None) -> None:
    """Close a session's transport at once: no TLS close_notify, no waiting for the peer."""
    if isinstance(transport, asyncio.Transport):
        transport.abort()
    elif transport is not None:  # pragma: no cover - aiosmtpd always uses a Transport
        transport.close()

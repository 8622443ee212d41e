"""The Submitter: the one class applications use to send mail.

Invariants:
    * ``send`` returns a :class:`~smtpkit.SendResult` only for a message the server accepted.
    * A connection is reused only through a context manager (or ``open()``); a reused
      connection the server closed while idle is replaced transparently, but only when the
      server had not accepted anything of the message (so no message is ever sent twice).
    * ``repr()`` shows no secret. ``send`` is safe to call from several threads: sends on one
      Submitter are serialised by a lock.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from email.message import Message
from types import TracebackType

from smtpkit._result import SendResult
from smtpkit._session import ConnectionStale, Session, SessionSettings
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security, Timeouts
from smtpkit.errors import ConfigurationError
from smtpkit.message import prepare_message
from smtpkit.transports import SocketTransport, Transport

__all__ = ["Submitter"]

logger = logging.getLogger("smtpkit")


def default_local_hostname() -> str:
    """The name sent in EHLO: this host's name when it is fully qualified, else localhost.

    ``socket.getfqdn()`` is avoided on purpose: it does a reverse DNS lookup that can block
    for seconds. Submission servers (RFC 6409 §6.1) do not verify the EHLO name.
    """
    name = socket.gethostname()
    return name if "." in name and name.isascii() else "localhost"


class Submitter:
    """Send messages through one SMTP submission server.

    Example::

        from email.message import EmailMessage
        import smtpkit
        from smtpkit.auth import AppPasswordAuth

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@gmail.com", "you@example.com", "Hi"
        msg.set_content("Hello!")

        submitter = smtpkit.Submitter(
            "smtp.gmail.com", auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop")
        )
        result = submitter.send(msg)
        print(result.message_id, result.reply)

    Use it as a context manager to keep one authenticated connection for many messages.

    Args:
        host: the server's host name or address.
        port: defaults to 465 for ``Security.TLS`` and 587 otherwise.
        security: ``Security.STARTTLS`` (default; required, never downgraded),
            ``Security.TLS`` (implicit TLS) or ``Security.NONE``.
        auth: an authentication strategy from :mod:`smtpkit.auth`, or ``None``.
        timeout: seconds for every step, or a :class:`~smtpkit.Timeouts`.
        tls_context: an ``ssl.SSLContext``; default ``ssl.create_default_context()``.
        local_hostname: the name to send in EHLO.
        transport: how to open connections; default a socket transport. Tests pass
            :class:`smtpkit.testing.FakeTransport`.
        allow_unencrypted_auth: send credentials over plaintext to a non-loopback host.
            Dangerous: anyone on the path can read them.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        security: Security = Security.STARTTLS,
        auth: AuthStrategy | None = None,
        timeout: float | Timeouts | None = None,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        transport: Transport | None = None,
        allow_unencrypted_auth: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise ConfigurationError("host must be a non-empty server name or address")
        if not isinstance(security, Security):
            raise ConfigurationError(
                f"security must be a smtpkit.Security member, got {security!r}",
                hint="use Security.STARTTLS (port 587), Security.TLS (465) or Security.NONE",
            )
        if port is None:
            port = security.default_port
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigurationError(f"port must be an integer from 1 to 65535, got {port!r}")
        if tls_context is not None and not isinstance(tls_context, ssl.SSLContext):
            raise ConfigurationError("tls_context must be an ssl.SSLContext")
        self._settings = SessionSettings(
            host=host.strip(),
            port=port,
            security=security,
            timeouts=Timeouts.coerce(timeout),
            local_hostname=local_hostname or default_local_hostname(),
            tls_context=tls_context,
            auth=auth,
            allow_unencrypted_auth=allow_unencrypted_auth,
        )
        self._transport: Transport = transport if transport is not None else SocketTransport()
        self._clock = clock
        self._lock = threading.RLock()
        self._session: Session | None = None
        self._keep_open = False

    # -- configuration -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The server host."""
        return self._settings.host

    @property
    def port(self) -> int:
        """The server port."""
        return self._settings.port

    @property
    def security(self) -> Security:
        """The security mode."""
        return self._settings.security

    @property
    def timeouts(self) -> Timeouts:
        """The timeouts in force."""
        return self._settings.timeouts

    @property
    def auth(self) -> AuthStrategy | None:
        """The authentication strategy, if any."""
        return self._settings.auth

    # -- connections ---------------------------------------------------------------------

    def open(self) -> Submitter:
        """Connect and log in now, and keep the connection for later sends."""
        with self._lock:
            self._keep_open = True
            if self._session is None or not self._session.alive:
                self._session = Session.open(self._settings, self._transport, clock=self._clock)
        return self

    def close(self) -> None:
        """Send QUIT and close the kept connection, if any. Never raises."""
        with self._lock:
            self._keep_open = False
            session, self._session = self._session, None
            if session is not None:
                session.quit()

    def __enter__(self) -> Submitter:
        with self._lock:
            self._keep_open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
    ) -> SendResult:
        """Send one message and return what the server said.

        Args:
            message: an ``email.message.EmailMessage``, or the raw message as ``bytes``
                (then ``sender`` and ``recipients`` are required).
            sender: the envelope sender; default: the Sender or From header.
            recipients: the envelope recipients; default: To, Cc and Bcc (Bcc is never
                transmitted in the headers).

        Returns:
            A :class:`~smtpkit.SendResult`. Recipients the server refused while others were
            accepted are listed in ``result.rejected``.

        Raises:
            RecipientRejected: every recipient was refused.
            DeliveryUnknown: the connection failed after the content was sent.
            SMTPError: any other failure, typed (see :mod:`smtpkit.errors`).
        """
        with self._lock:
            started = self._clock()
            session = self._session if self._session and self._session.alive else None
            if session is None:
                session = self._new_session()
            try:
                try:
                    result = self._send_on(session, message, sender, recipients)
                except ConnectionStale:
                    logger.info("connection to %s was closed while idle; reconnecting", self.host)
                    session = self._new_session()
                    result = self._send_on(session, message, sender, recipients)
            finally:
                if not self._keep_open or not session.alive:
                    if session.alive:
                        session.quit()
                    self._session = None
            logger.info(
                "sent message_id=%s recipients=%d rejected=%d reply=%r elapsed=%.3fs",
                result.message_id,
                len(result.accepted),
                len(result.rejected),
                str(result.reply),
                self._clock() - started,
            )
            return result

    def _new_session(self) -> Session:
        session = Session.open(self._settings, self._transport, clock=self._clock)
        if self._keep_open:
            self._session = session
        return session

    def _send_on(
        self,
        session: Session,
        message: Message | bytes,
        sender: str | None,
        recipients: Sequence[str] | None,
    ) -> SendResult:
        extensions = session.extensions
        prepared = prepare_message(
            message,
            sender=sender,
            recipients=recipients,
            local_hostname=self._settings.local_hostname,
            utf8_allowed=extensions.smtputf8,
            eight_bit_allowed=extensions.eight_bit_mime,
        )
        return session.send(prepared)

    def __repr__(self) -> str:
        auth = ""
        if self._settings.auth is not None:
            auth = f", auth={type(self._settings.auth).__name__}({self._settings.auth.username!r})"
        return (
            f"Submitter({self.host!r}, {self.port}, security=Security.{self.security.name}{auth})"
        )

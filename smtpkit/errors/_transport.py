"""Errors below the level of SMTP replies: connecting, proxies, TLS, lost links, timeouts.

Every class here is a :class:`TransportError`: the conversation broke rather than the
server answering "no". :mod:`smtpkit.transports` maps ``OSError`` and ``ssl`` errors to
these in one place; the engine raises the rest.

Invariants:
    * Connect failures, disconnections and timeouts are transient (``default_transient``);
      a proxy that refuses its credentials is not.
    * ``ConnectionStale`` is raised only when nothing of the message can have been
      accepted, so resending it cannot duplicate it; ``DeliveryUnknown`` is raised when the
      content was sent and the final reply was lost, and smtpkit never resends it by itself.
    * ``ProxyError.proxy`` is a URL without its password.
"""

from __future__ import annotations

from collections.abc import Sequence

from smtpkit.errors._base import SMTPError

__all__ = [
    "ConnectError",
    "ConnectionStale",
    "DeliveryUnknown",
    "OperationTimeout",
    "ProxyAuthenticationError",
    "ProxyConnectionRefused",
    "ProxyError",
    "RemoteProtocolError",
    "ServerDisconnected",
    "StartTLSNotOffered",
    "TLSError",
    "TLSModeMismatch",
    "TransportError",
]


class TransportError(SMTPError):
    """The connection failed below the level of SMTP replies."""


class ConnectError(TransportError, ConnectionError):
    """The TCP connection could not be established."""

    default_transient = True


class ProxyError(ConnectError):
    """The proxy between smtpkit and the mail server failed, so no SMTP was spoken.

    Raised when the proxy cannot be reached, breaks its own protocol (SOCKS4, SOCKS5 or
    HTTP CONNECT), or answers with a failure. Transient, as any connect failure.

    Attributes:
        proxy: the proxy as a URL without its password (``socks5://alice@127.0.0.1:1080``).
        target: the mail server the proxy was asked for (``smtp.example.com:587``).
    """

    def __init__(
        self,
        message: str = "",
        *,
        proxy: str | None = None,
        target: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.proxy = proxy
        self.target = target


class ProxyAuthenticationError(ProxyError):
    """The proxy refused its user name and password (or wants some and got none).

    Not transient: the same credentials will be refused again.
    """

    default_transient = False


class ProxyConnectionRefused(ProxyError):
    """The proxy could not, or would not, connect to the mail server.

    A SOCKS reply such as "connection refused" or "not allowed by ruleset", an HTTP ``403``
    or ``502`` to ``CONNECT``, or a tunnel that closed before the server said a word.
    """


class TLSError(TransportError):
    """TLS could not be negotiated, or the certificate did not verify."""


class TLSModeMismatch(TLSError):
    """TLS was spoken to a plaintext port (or plaintext to an implicit-TLS port)."""


class StartTLSNotOffered(TLSError):
    """STARTTLS was required but the server did not advertise it; nothing else was sent."""


class ServerDisconnected(TransportError, ConnectionError):
    """The server closed the connection while the client expected a reply."""

    default_transient = True


class ConnectionStale(ServerDisconnected):
    """The connection turned out closed before the server accepted anything of a message.

    Raised only when nothing of the message can have been accepted (its envelope went
    unanswered), so it can be sent again on a new connection with no risk of a duplicate;
    the Submitter does that once by itself.
    """


class OperationTimeout(TransportError, TimeoutError):
    """A connect, command or final reply took longer than its timeout."""

    default_transient = True


class RemoteProtocolError(TransportError):
    """The server sent bytes that are not valid SMTP (or exceeded a size cap)."""


class DeliveryUnknown(TransportError):
    """The connection failed after the message content was sent, before the final reply.

    The server may or may not have accepted the message. smtpkit never resends such a
    message by itself: doing so could deliver it twice.
    """

    def __init__(
        self,
        message: str = "",
        *,
        message_id: str | None = None,
        recipients: Sequence[str] = (),
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.message_id = message_id
        self.recipients: tuple[str, ...] = tuple(recipients)

"""The transport seam: one method that opens a byte stream to an endpoint.

Everything above this layer speaks SMTP through a :class:`Stream`; everything that touches
sockets and TLS lives below it. Tests swap in :class:`smtpkit.testing.FakeTransport`.

Invariants:
    * ``Stream.receive`` returns ``b""`` only at end of stream; it never returns partial
      garbage on error but raises a :class:`smtpkit.TransportError` subclass.
    * Transports translate ``OSError`` and ``ssl.SSLError`` into smtpkit errors exactly once,
      at this boundary.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable

from smtpkit.config import Endpoint

__all__ = ["Stream", "Transport"]


@runtime_checkable
class Stream(Protocol):
    """A connected, bidirectional byte stream (plaintext or TLS)."""

    @property
    def is_encrypted(self) -> bool:
        """True once TLS is established (implicitly or after ``start_tls``)."""
        ...

    @property
    def peer_address(self) -> str | None:
        """The IP address actually connected to (``getpeername()``), or ``None`` if unknown.

        Security rules that depend on "is this loopback?" (plaintext AUTH, ``smtp://``
        URLs) decide on this address, never on the configured host name: ``evil.localhost``
        may resolve anywhere. A stream that cannot tell returns ``None`` and is treated as
        not loopback. In-memory streams report the address of the server they stand for.
        """
        ...

    def send(self, data: bytes) -> None:
        """Send all of ``data``; raises ``ServerDisconnected`` or ``OperationTimeout``."""
        ...

    def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes (at least one), or ``b""`` at end of stream.

        Raises ``OperationTimeout`` when nothing arrives within the current timeout.
        """
        ...

    def set_timeout(self, seconds: float) -> None:
        """Set the timeout applied to each following ``send``/``receive``."""
        ...

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Upgrade the stream to TLS in place (after a ``220`` to STARTTLS).

        Raises ``TLSError`` when the handshake or the certificate check fails.
        """
        ...

    def close(self) -> None:
        """Close the stream; idempotent, never raises."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Opens streams. The only method smtpkit needs from a transport."""

    def connect(self, endpoint: Endpoint) -> Stream:
        """Open a stream to ``endpoint``; for ``Security.TLS`` the handshake is done here.

        Raises ``ConnectError``, ``TLSError`` (incl. ``TLSModeMismatch``) or
        ``OperationTimeout``.
        """
        ...

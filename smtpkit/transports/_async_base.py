"""The asyncio transport seam: ``AsyncTransport.connect(endpoint) -> AsyncStream``.

The twin of :mod:`smtpkit.transports._base` for :class:`smtpkit.AsyncSubmitter`: the same
one-method seam, with coroutines that take the time left for each step. The real
implementation and the adapters for synchronous transports are
:mod:`smtpkit.transports._asyncio`.

Invariants:
    * ``receive`` returns ``b""`` only at end of stream, so the protocol core reports which
      commands went unanswered; ``OSError`` and ``ssl`` errors become smtpkit errors in
      the transport, once.
    * Every wait has the deadline its caller gives (``timeout`` seconds for the whole
      step), never one of its own; ``abort`` never waits and never raises.
    * Importing this module loads no asyncio: the protocols only describe coroutines.
"""

from __future__ import annotations

import ssl
from typing import Protocol, runtime_checkable

from smtpkit.config import Endpoint

__all__ = ["AsyncStream", "AsyncTransport"]


@runtime_checkable
class AsyncStream(Protocol):
    """A connected byte stream driven from one task at a time."""

    @property
    def peer_address(self) -> str | None:
        """The IP address actually connected to (``getpeername()``), for the plaintext-AUTH
        rule; ``None`` when unknown (never treated as loopback)."""
        ...

    @property
    def is_encrypted(self) -> bool:
        """True once TLS is up (implicitly or after :meth:`start_tls`)."""
        ...

    async def send(self, data: bytes, timeout: float) -> None:
        """Send all of ``data``; ``OperationTimeout`` if it cannot leave in ``timeout`` s."""
        ...

    async def receive(self, timeout: float) -> bytes:
        """The next bytes (at least one) or ``b""`` at end of stream, within ``timeout`` s."""
        ...

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str, timeout: float
    ) -> None:
        """Upgrade to TLS in place (after ``220`` to STARTTLS), within ``timeout`` s."""
        ...

    def abort(self) -> None:
        """Close at once, without waiting; idempotent, never raises."""
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """Opens streams for :class:`smtpkit.AsyncSubmitter`."""

    async def connect(self, endpoint: Endpoint) -> AsyncStream:
        """Open a stream to ``endpoint``; for ``Security.TLS`` the handshake is done here.

        Raises ``ConnectError``, ``TLSError`` (incl. ``TLSModeMismatch``) or
        ``OperationTimeout``.
        """
        ...

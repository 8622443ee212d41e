"""Is the connection loopback? Decided by the address connected to, never by the host name.

``localhost``, ``evil.localhost`` or ``localhost.`` may resolve to anything (RFC 6761 asks
resolvers to keep ``.localhost`` on loopback; not all do, and ``/etc/hosts`` can say
otherwise), and a name such as the machine's own may resolve to loopback without looking
like it. The rules that relax security for loopback (AUTH over plaintext; ``smtp://`` URLs
without ``allow_plaintext=true``) therefore ask the stream for the address it actually
connected to (:attr:`Stream.peer_address`, from ``getpeername()``).

Invariants:
    * Only an IP address can be loopback: 127.0.0.0/8, ``::1``, and IPv4-mapped
      ``::ffff:127.x.y.z``. A name, an empty string or ``None`` (a stream that cannot tell)
      is not.
    * :class:`LoopbackOnlyTransport` refuses a plaintext stream to any other peer right
      after connecting, before a byte of SMTP is sent, and closes it.
"""

from __future__ import annotations

from smtpkit.config import Endpoint, Security, is_loopback_peer
from smtpkit.errors import ConfigurationError
from smtpkit.transports._base import Stream, Transport

__all__ = ["LoopbackOnlyTransport", "is_loopback_peer", "peer_address"]


def peer_address(stream: Stream) -> str | None:
    """``stream.peer_address``, or ``None`` for a stream written before it existed."""
    address = getattr(stream, "peer_address", None)
    return address if isinstance(address, str) else None


class LoopbackOnlyTransport:
    """A transport that allows plaintext (``Security.NONE``) only to a loopback peer.

    ``Submitter.from_url("smtp://localhost:1025")`` uses it: the URL's host looks like
    loopback, so the URL is accepted without ``allow_plaintext=true``, and the address the
    connection reaches confirms it (or the send fails before anything is sent).

    Args:
        inner: the transport that opens the connection.
        origin: how the configuration is shown in the error (a redacted URL).
    """

    def __init__(self, inner: Transport, *, origin: str) -> None:
        self.inner = inner
        self._origin = origin

    def connect(self, endpoint: Endpoint) -> Stream:
        """Connect with the inner transport; refuse a plaintext stream to another peer.

        Raises:
            ConfigurationError: plaintext, and the peer is not a loopback address (the
                stream is closed; nothing was sent).
        """
        stream = self.inner.connect(endpoint)
        if endpoint.security is not Security.NONE:
            return stream
        address = peer_address(stream)
        if is_loopback_peer(address):
            return stream
        stream.close()
        reached = address or "an address the transport did not report"
        raise ConfigurationError(
            f"{self._origin} asks for plaintext SMTP to a loopback host, but {endpoint.host} "
            f"led to {reached}, which is not loopback: nothing was sent",
            hint=(
                "check what the name resolves to; use smtp+starttls:// (port 587) or "
                "smtps:// (port 465), or for a trusted network add ?allow_plaintext=true"
            ),
        )

    def __repr__(self) -> str:
        return f"LoopbackOnlyTransport({self.inner!r})"

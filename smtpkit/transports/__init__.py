"""Transports: the seam between SMTP logic and sockets.

:class:`Transport` has one method, ``connect(endpoint) -> Stream``. :class:`SocketTransport`
is the real one; :class:`smtpkit.testing.FakeTransport` is the in-memory one for tests.
:class:`Deadline` bounds a whole step (a reply, a handshake) rather than each read, and
:func:`is_loopback_peer` judges the address a stream actually connected to.
"""

from smtpkit.transports._base import Stream, Transport
from smtpkit.transports._deadline import Deadline
from smtpkit.transports._peer import LoopbackOnlyTransport, is_loopback_peer, peer_address
from smtpkit.transports._socket import SocketStream, SocketTransport, translate_os_error

__all__ = [
    "Deadline",
    "LoopbackOnlyTransport",
    "SocketStream",
    "SocketTransport",
    "Stream",
    "Transport",
    "is_loopback_peer",
    "peer_address",
    "translate_os_error",
]

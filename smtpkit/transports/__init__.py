"""Transports: the seam between SMTP logic and sockets.

:class:`Transport` has one method, ``connect(endpoint) -> Stream``. :class:`SocketTransport`
is the real one; :class:`smtpkit.testing.FakeTransport` is the in-memory one for tests.
"""

from smtpkit.transports._base import Stream, Transport
from smtpkit.transports._deadline import Deadline
from smtpkit.transports._socket import SocketStream, SocketTransport, translate_os_error

__all__ = [
    "Deadline",
    "SocketStream",
    "SocketTransport",
    "Stream",
    "Transport",
    "translate_os_error",
]

"""Closing an asyncio transport from wherever the last reference to it is dropped.

A pool's connections are sometimes let go outside their event loop's control: the garbage
collector runs finalizers on whatever thread triggers it, and a submitter can outlive the
``asyncio.run`` that opened its connections. asyncio transports are not thread-safe:
``transport.abort()`` may only be called on the loop's own thread, and on a closed loop it
fails inside ``call_soon`` (``RuntimeError: Event loop is closed``) before the socket is
closed. :func:`release_transport` picks the one safe way for each case.

Invariants:
    * No network I/O beyond ending the TCP connection: nothing is written, nothing waited
      for (no QUIT, no TLS close_notify).
    * A closed loop is never asked to do anything; a running loop is only touched from its
      own thread, or through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

__all__ = ["call_on_loop", "release_transport"]


def call_on_loop(loop: asyncio.AbstractEventLoop, function: Callable[[], object]) -> bool:
    """Run ``function`` on ``loop``'s thread: now if that is this thread, else soon.

    Returns False, having done nothing, when ``loop`` is closed.
    """
    if loop.is_closed():
        return False
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        function()  # the loop's own thread: as safe as any callback
        return True
    try:
        # Another thread (or the loop is between runs): the documented thread-safe entry.
        loop.call_soon_threadsafe(function)
    except RuntimeError:  # closed in the meantime
        return False
    return True


def release_transport(transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
    """Close ``transport`` at once, without a word to the peer, from any thread.

    On an open loop this is ``transport.abort()`` on the loop's thread (the loop closes the
    socket on its next turn). On a closed loop no callback will ever run, so the socket is
    closed here, directly: nothing else can be using it, the loop that polled it is gone.
    """
    if call_on_loop(loop, transport.abort):
        return
    # The TLS wrapper marks itself closed before it reaches the closed loop's call_soon.
    with contextlib.suppress(RuntimeError):
        transport.abort()
    raw = transport.get_extra_info("socket")  # asyncio's public wrapper of the socket
    if raw is not None:
        with contextlib.suppress(OSError):  # already shut down, or reset by the peer
            raw.shutdown(socket.SHUT_RDWR)  # the server sees the connection end now
    _free_descriptor(transport)


def _free_descriptor(transport: asyncio.Transport) -> None:
    """Run the step ``abort()`` left on the closed loop: close the socket and let go of it.

    asyncio offers no public way to close a transport without its loop; ``abort()`` stops
    at ``loop.call_soon(transport._call_connection_lost)``. Left alone, the descriptor
    stays open until the transport object is collected, which then warns "unclosed
    transport". So this calls that step itself, on the selector transport under the TLS
    wrapper when there is one (``_SSLProtocolTransport._ssl_protocol._transport``). These
    are CPython's private names (3.11 to 3.13): if another loop implementation or version
    lacks them, nothing happens and the shutdown above has already ended the connection.
    """
    inner: object = transport
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    if ssl_protocol is not None:
        inner = getattr(ssl_protocol, "_transport", None)
    finish = getattr(inner, "_call_connection_lost", None)
    if callable(finish) and getattr(inner, "_sock", None) is not None:
        # It closes the socket in a finally: a protocol callback that fails on the closed
        # loop (the TLS layer's call_soon) does not keep the descriptor open.
        with contextlib.suppress(Exception):
            finish(None)

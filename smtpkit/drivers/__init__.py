"""Drivers: the code that performs the send engine's effects with real I/O.

A driver owns streams, clocks, sleeps, the connection pool, jobs, rate limits and
callbacks; every SMTP decision is the engine's (:mod:`smtpkit.engine`). Here lives the
asyncio driver, :class:`smtpkit.AsyncSubmitter`, and the asyncio transport seam it opens
connections through (:class:`AsyncTransport`, :class:`AsyncStream`, :class:`AsyncioTransport`).
"""

from smtpkit.drivers._async_io import AsyncTokenProvider
from smtpkit.drivers._async_submitter import AsyncSubmitter
from smtpkit.transports._asyncio import AsyncioTransport, AsyncStream, AsyncTransport

__all__ = [
    "AsyncStream",
    "AsyncSubmitter",
    "AsyncTokenProvider",
    "AsyncTransport",
    "AsyncioTransport",
]

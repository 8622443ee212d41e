"""Drivers: the code that performs the send engine's effects with real I/O.

A driver owns streams, clocks, sleeps, the connection pool, jobs, rate limits and
callbacks; every SMTP decision is the engine's (:mod:`smtpkit.engine`). Two drivers share
everything that is not I/O (options, job and pool bookkeeping, the effects that need no
stream):

* the threaded one, :class:`smtpkit.Submitter` (``_sync_*``: blocking sockets, threads);
* the asyncio one, :class:`smtpkit.AsyncSubmitter` (``_async_*``), and the asyncio
  transport seam it opens connections through (:class:`AsyncTransport`,
  :class:`AsyncStream`, :class:`AsyncioTransport`). Importing them loads asyncio, so they
  are imported on first use: ``import smtpkit`` does not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smtpkit.drivers._common import Outgoing, PoolLimits
from smtpkit.drivers._sync_submitter import Submitter

if TYPE_CHECKING:
    from smtpkit.drivers._async_io import AsyncTokenProvider
    from smtpkit.drivers._async_submitter import AsyncSubmitter
    from smtpkit.transports._asyncio import AsyncioTransport, AsyncStream, AsyncTransport

__all__ = [
    "AsyncStream",
    "AsyncSubmitter",
    "AsyncTokenProvider",
    "AsyncTransport",
    "AsyncioTransport",
    "Outgoing",
    "PoolLimits",
    "Submitter",
]

_ASYNC = {
    "AsyncSubmitter": "smtpkit.drivers._async_submitter",
    "AsyncTokenProvider": "smtpkit.drivers._async_io",
    "AsyncStream": "smtpkit.transports._asyncio",
    "AsyncTransport": "smtpkit.transports._asyncio",
    "AsyncioTransport": "smtpkit.transports._asyncio",
}


def __getattr__(name: str) -> object:
    module = _ASYNC.get(name)
    if module is None:
        raise AttributeError(f"module 'smtpkit.drivers' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - on first use only

    return getattr(importlib.import_module(module), name)

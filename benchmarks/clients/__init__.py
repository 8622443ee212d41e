"""One module per client, each with the same ``run(...)`` function.

Every ``run`` sends up to ``count`` messages of ``message_bytes`` bytes to ``recipients``
recipients through ``connections`` connections, stops early once ``duration_cap`` seconds
have passed, and returns a :class:`benchmarks.common.Result`. ``kind`` is the input:
``"email"`` (an ``EmailMessage``, envelope from its headers) or ``"bytes"`` (pre-flattened,
explicit envelope).
"""

from __future__ import annotations

import importlib
from typing import Protocol

from benchmarks.common import Result

__all__ = ["CLIENTS", "Runner", "get"]

#: Client name -> module under ``benchmarks.clients``.
CLIENTS = {
    "smtplib": "smtplib_client",
    "aiosmtplib": "aiosmtplib_client",
    "nodemailer": "nodemailer_client",
    "smtpkit": "smtpkit_client",
    "smtpkit-async": "smtpkit_async_client",
}


class Runner(Protocol):
    def __call__(
        self,
        host: str,
        port: int,
        *,
        count: int,
        recipients: int,
        message_bytes: int,
        duration_cap: float,
        connections: int = 1,
        kind: str = "bytes",
    ) -> Result: ...


def get(name: str) -> Runner:
    """The ``run`` function of the client called ``name``."""
    module = importlib.import_module(f"benchmarks.clients.{CLIENTS[name]}")
    runner: Runner = module.run
    return runner

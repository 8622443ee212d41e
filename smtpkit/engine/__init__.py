"""The send engine: sessions and transactions as sans-IO generators that yield effects.

Everything smtpkit knows about SMTP above the protocol core lives here, once: the greeting,
EHLO (and HELO), required STARTTLS, AUTH with OAuth2's refresh-and-retry-once rule,
pipelined transactions with RSET, DATA and BDAT, the stale-versus-unknown rule and the
lookahead. A driver (threads and sockets, or asyncio) only performs the effects::

    link = drive(open_link(settings, clock=clock))            # Connect, Receive, Write, ...
    drive(Transactions(link, job).steps())                    # TakeNext, Report, ...
    drive(close_link(link))                                   # QUIT, Close

See :mod:`smtpkit.engine._effects` for the effects and the driver loop, and
``docs/architecture.md`` ("The engine and its drivers").

Invariants:
    * No socket, ssl handshake, clock, sleep, thread, asyncio or logging import here
      (an import-linter contract keeps it so); the engine imports no driver.
    * Every wait is the driver's, and has a deadline the engine computed for the whole step.
"""

from smtpkit.engine._auth import peer_is_loopback
from smtpkit.engine._effects import (
    CLOSE,
    TAKE_NEXT,
    Close,
    Connect,
    Connected,
    Effect,
    FetchToken,
    Log,
    LogLevel,
    Receive,
    Report,
    StartTLS,
    Steps,
    TakeNext,
    Write,
)
from smtpkit.engine._flight import Submission
from smtpkit.engine._link import DEADLINE_PASSED, Link, LinkSettings
from smtpkit.engine._negotiate import close_link, open_link, probe_link
from smtpkit.engine._options import SendOptions
from smtpkit.engine._policy import Attempts, Pacing, Reuse, ReusePolicy
from smtpkit.engine._transactions import Transactions

__all__ = [
    "CLOSE",
    "DEADLINE_PASSED",
    "TAKE_NEXT",
    "Attempts",
    "Close",
    "Connect",
    "Connected",
    "Effect",
    "FetchToken",
    "Link",
    "LinkSettings",
    "Log",
    "LogLevel",
    "Pacing",
    "Receive",
    "Report",
    "Reuse",
    "ReusePolicy",
    "SendOptions",
    "StartTLS",
    "Steps",
    "Submission",
    "TakeNext",
    "Transactions",
    "Write",
    "close_link",
    "open_link",
    "peer_is_loopback",
    "probe_link",
]

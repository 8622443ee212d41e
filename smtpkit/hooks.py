"""Hooks before and after each message a :class:`~smtpkit.Submitter` sends, for metrics.

Register a callback once, at start-up; every Submitter in the process calls it::

    import smtpkit.hooks

    def count(event: smtpkit.hooks.SendFinished) -> None:
        outcome = "sent" if event.ok else type(event.error).__name__
        metrics.histogram("smtp.send.seconds", event.elapsed, tags={"outcome": outcome})

    remove = smtpkit.hooks.on_send_end(count)
    ...
    remove()  # unregister (tests)

``on_send_start`` callbacks run just before a message's transaction starts (once per
message, even when it is retried); ``on_send_end`` callbacks run once per message with its
outcome: a :class:`~smtpkit.SendResult` or the :class:`~smtpkit.errors.SMTPError` it ended
with; ``on_send_retry`` callbacks run each time a message's transaction starts again (a
``Retry`` policy's retry, or a resend after a connection found closed). Both ``send()`` and
``send_many()`` call them.

Invariants:
    * Registering and removing are thread-safe; a send uses the callbacks registered when it
      calls them (a snapshot), so registering from another thread never blocks a send.
    * A callback's exception is logged (``WARNING`` on logger ``smtpkit.hooks``, with the
      traceback) and swallowed: metrics never change what happens to a message.
    * Callbacks never run inside an open SMTP transaction (the server would wait for the
      client, and may time out): ``send()`` calls them on its own thread before and after
      the transaction; a ``send_many`` batch calls them (and its ``on_result``) on one
      reporting thread of its own, one call at a time, in the order the events happened,
      and returns only after the last call. A slow callback delays other callbacks, never
      a message.
    * Every event of one ``send()``/``send_many()`` call carries the same ``call_id``, and
      no other call in the process has it: with ``index`` (the position in that call) it
      names one message, even when several ``send()`` calls run at once.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from smtpkit.engine._result import SendResult
from smtpkit.errors import (
    ConnectError,
    DeliveryUnknown,
    InsecureAuthRefused,
    MessageError,
    NoCommonMechanism,
    ReplyError,
    SMTPError,
    TLSError,
    TLSModeMismatch,
    TokenRefreshError,
)
from smtpkit.replies import Phase

__all__ = [
    "SendFinished",
    "SendRetried",
    "SendStarted",
    "clear",
    "on_send_end",
    "on_send_retry",
    "on_send_start",
    "phase_of",
]

logger = logging.getLogger("smtpkit.hooks")


@dataclass(frozen=True)
class SendStarted:
    """A message is about to be sent.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
        call_id: the ``send()``/``send_many()`` call the message belongs to: unique in the
            process (from 1), shared by every event of that call. Concurrent ``send()``
            calls all have ``index`` 0; their ``call_id`` tells them apart. Not compared
            by ``==``.
    """

    host: str
    port: int
    index: int
    call_id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SendRetried:
    """A message's transaction is starting again, after a try that failed.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
        attempt: which try of the message's transaction this is (2 for the first retry).
        call_id: the call the message belongs to (see :class:`SendStarted`).
    """

    host: str
    port: int
    index: int
    attempt: int
    call_id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SendFinished:
    """A message's outcome is known.

    Attributes:
        host: the server host.
        port: the server port.
        index: the message's position in a ``send_many`` batch (0 for ``send``).
        elapsed: seconds from the message's start (its first try) to its outcome.
        result: what the server said, when it accepted the message.
        error: the error the message ended with, when it was not sent.
        phase: the step the message reached (see :func:`phase_of`): ``message`` when it
            was sent; for a failure, where it failed (``connect``, ``greeting``, ``ehlo``,
            ``starttls``, ``tls``, ``auth``, ``prepare``, ``mail``, ``rcpt``, ``data``,
            ``message``...). ``None`` only in events built by hand.
        provider: the provider preset of the submitter (named, or recognised from its
            host), else the one the error recognised, else ``None``.
        call_id: the call the message belongs to (see :class:`SendStarted`).
    """

    host: str
    port: int
    index: int
    elapsed: float
    result: SendResult | None = None
    error: SMTPError | None = None
    phase: str | None = None
    provider: str | None = None
    call_id: int = field(default=0, compare=False)

    @property
    def ok(self) -> bool:
        """True when the server accepted the message."""
        return self.result is not None


#: A transcript's client verb to the phase it starts (``C: <n octets of message content>``
#: and ``C: .`` are the content).
_VERB_PHASES = {
    "EHLO": "ehlo",
    "HELO": "ehlo",
    "STARTTLS": "starttls",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
    "DATA": "data",
    "BDAT": "message",
    ".": "message",
    "RSET": "rset",
    "NOOP": "noop",
    "QUIT": "quit",
    "****": "auth",  # a masked SASL continuation line
}

#: Numbers of the send()/send_many() calls (``next`` on a count is atomic under the GIL).
_call_ids = itertools.count(1)


def next_call_id() -> int:
    """A new ``call_id`` for one ``send()``/``send_many()`` call (for the drivers)."""
    return next(_call_ids)


def phase_of(error: SMTPError | None) -> str:
    """The step a message reached: ``message`` when sent, else where ``error`` happened.

    A reply error knows its phase. An error without one (a disconnect, a timeout) is
    placed at the first command of the last group the client wrote whose reply never came:
    with PIPELINING (RFC 2920) MAIL, RCPT and DATA are written together, so the last
    command in the transcript is not where the server stopped answering.
    """
    if error is None or isinstance(error, DeliveryUnknown):
        return Phase.MESSAGE.value
    if isinstance(error, ReplyError):
        return error.phase.value
    if isinstance(error, ConnectError | TLSModeMismatch):
        return "connect"
    if isinstance(error, TLSError):
        return "tls"
    if isinstance(error, TokenRefreshError | NoCommonMechanism | InsecureAuthRefused):
        return Phase.AUTH.value
    if isinstance(error, MessageError):
        return "prepare"
    command = _unanswered(error.transcript)
    if command is None:
        return Phase.GREETING.value if error.transcript else "connect"
    verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
    return _VERB_PHASES.get(verb, "message" if verb.startswith("<") else "unknown")


def _unanswered(transcript: tuple[str, ...]) -> str | None:
    """The first command of the transcript's last written group that got no final reply
    (the last command when every one was answered); ``None`` without a command."""
    lines = list(transcript)
    answered = 0
    while lines and lines[-1].startswith("S: "):
        line = lines.pop()
        answered += len(line) <= 6 or line[6] != "-"  # "S: 250-..." is not a final line
    group: list[str] = []
    while lines and lines[-1].startswith("C: "):
        group.insert(0, lines.pop()[3:])
    if not group:
        return None
    return group[answered] if answered < len(group) else group[-1]


class _Callbacks:
    """A copy-on-write list of callbacks guarded by a lock."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._lock = threading.Lock()
        self._callbacks: tuple[Callable[..., object], ...] = ()

    def add(self, callback: Callable[..., object]) -> Callable[[], None]:
        if not callable(callback):
            raise TypeError(f"{self._kind} callback must be callable, got {callback!r}")
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def remove() -> None:
            with self._lock:
                items = list(self._callbacks)
                if callback in items:
                    items.remove(callback)
                self._callbacks = tuple(items)

        return remove

    def clear(self) -> None:
        with self._lock:
            self._callbacks = ()

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def emit(self, event: object) -> None:
        callbacks = self._callbacks  # a snapshot: the tuple is never mutated
        for callback in callbacks:
            try:
                callback(event)
            except Exception:
                logger.warning("%s callback %r failed", self._kind, callback, exc_info=True)


_started = _Callbacks("on_send_start")
_finished = _Callbacks("on_send_end")
_retried = _Callbacks("on_send_retry")


def on_send_start(callback: Callable[[SendStarted], object]) -> Callable[[], None]:
    """Call ``callback(SendStarted)`` before each message; returns a function that removes it."""
    return _started.add(callback)


def on_send_end(callback: Callable[[SendFinished], object]) -> Callable[[], None]:
    """Call ``callback(SendFinished)`` after each message; returns a function that removes it."""
    return _finished.add(callback)


def on_send_retry(callback: Callable[[SendRetried], object]) -> Callable[[], None]:
    """Call ``callback(SendRetried)`` each time a message's transaction starts again.

    Returns a function that removes it. A try that failed before its transaction started
    (say, the connection could not be opened) is retried without this event.
    """
    return _retried.add(callback)


def clear() -> None:
    """Remove every registered callback (for tests)."""
    _started.clear()
    _finished.clear()
    _retried.clear()

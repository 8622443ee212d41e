"""What the local server has seen and what it has been told to do: the shared, locked state.

:class:`ServerState` is the only object both threads touch. The test (caller) thread reads
messages and scripts failures; the server's event-loop thread records messages and consumes
the scripts. Every access goes through one lock, and a condition on that lock wakes
:meth:`ServerState.wait_for`.

Invariants:
    * Readers get copies (tuples or new lists); nothing handed out aliases internal state.
    * Each scripted failure is consumed exactly once, in the order it was scripted.
    * Nothing here holds a password or token: auth attempts keep the user name only.
"""

from __future__ import annotations

import datetime
import email.policy
import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Literal, NamedTuple, get_args

from smtpkit.errors import ConfigurationError

__all__ = [
    "DROP",
    "AuthAttempt",
    "FailurePhase",
    "FaultHook",
    "ReceivedMessage",
    "ServerState",
    "normalize_reply",
]

log = logging.getLogger("smtpkit.testing")

#: Where :meth:`ServerState.fail_next` can inject a failure: the reply to MAIL, to RCPT, to
#: the DATA command itself, or the final reply after the message content.
FailurePhase = Literal["mail", "rcpt", "data", "message"]
_PHASES: tuple[FailurePhase, ...] = get_args(FailurePhase)

#: What a fault hook returns to close the connection at once, without a reply. After the
#: content (phase ``"message"``) the message is kept first, as by ``drop_after_data``.
DROP = "DROP"

#: ``faults(phase)`` is asked at every command of ``phase`` that no scripted failure
#: answers: ``None`` to proceed, a 4xx/5xx reply to answer with, or :data:`DROP`.
FaultHook = Callable[[FailurePhase], str | None]

#: How many recent notable events (rejections, failed AUTH, drops) a timeout message quotes.
EVENT_HISTORY = 10

_CODE_LINE = re.compile(r"^([2-5][0-9][0-9])(?:([ -])(.*))?$", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def normalize_reply(reply: str) -> str:
    """Check a scripted failure reply and return it ready for the wire (without final CRLF).

    A multi-line reply is given as lines joined with ``"\\n"``; lines after the first may omit
    the code. The separators are rewritten as RFC 5321 §4.2.1 wants: ``-`` after the code on
    every line but the last, a space on the last.

    Args:
        reply: e.g. ``"550 5.1.1 User unknown"`` or
            ``"550-5.4.5 Daily user sending quota exceeded.\\n5.4.5 Try again tomorrow."``.

    Returns:
        The reply with lines joined by CRLF.

    Raises:
        ConfigurationError: the reply is not a 4xx/5xx reply or holds control characters.
    """
    lines = reply.split("\n")
    first = _CODE_LINE.match(lines[0])
    if first is None or first.group(1)[0] not in "45":
        raise ConfigurationError(
            f"a scripted failure must be a 4xx or 5xx reply such as '550 5.1.1 User unknown', "
            f"got {reply!r}"
        )
    code = first.group(1)
    texts: list[str] = []
    for line in lines:
        match = _CODE_LINE.match(line)
        if match is not None and match.group(1) == code:
            text = match.group(3) or ""
        elif match is not None:
            raise ConfigurationError(f"every line of a reply must carry code {code}: {reply!r}")
        else:
            text = line
        if _CONTROL.search(text):
            raise ConfigurationError(f"reply text holds a control character: {reply!r}")
        texts.append(text)
    body = [f"{code}-{text}" for text in texts[:-1]]
    body.append(f"{code} {texts[-1]}".rstrip())
    return "\r\n".join(body)


class AuthAttempt(NamedTuple):
    """One AUTH exchange the server completed (a tuple: ``(mechanism, username, success)``).

    ``username`` is ``None`` when the response could not be parsed far enough to name one.
    """

    mechanism: str
    username: str | None
    success: bool


@dataclass(frozen=True)
class ReceivedMessage:
    """A message the server accepted (answered 250 after the content).

    Attributes:
        mail_from: the reverse-path from ``MAIL FROM`` (empty for the null sender ``<>``).
        rcpt_tos: the accepted recipients, in order.
        raw: the content exactly as received, after removing dot-stuffing (RFC 5321
            §4.5.2); line endings are untouched, so this ends with CRLF.
        message: ``raw`` parsed with :data:`email.policy.default`.
        auth_user: the user name the session authenticated as, or ``None``.
        auth_mechanism: the SASL mechanism used, or ``None``.
        tls: whether the content arrived over TLS (implicit or after STARTTLS).
        smtputf8: whether ``MAIL FROM`` carried ``SMTPUTF8`` (RFC 6531).
        mail_options: the ``MAIL FROM`` parameters, upper-cased, e.g. ``("SIZE=1234",)``.
        path: where the message was saved as ``.eml``, when the server has a ``save_dir``.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes = field(repr=False)
    message: EmailMessage = field(repr=False, compare=False)
    auth_user: str | None = None
    auth_mechanism: str | None = None
    tls: bool = False
    smtputf8: bool = False
    mail_options: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def sender(self) -> str:
        """``mail_from`` under the name :class:`smtpkit.testing.SentMessage` uses."""
        return self.mail_from

    @property
    def recipients(self) -> tuple[str, ...]:
        """``rcpt_tos`` under the name :class:`smtpkit.testing.SentMessage` uses."""
        return self.rcpt_tos

    @property
    def subject(self) -> str | None:
        """The Subject header, as :attr:`smtpkit.testing.SentMessage.subject` gives it."""
        value = self.message["Subject"]
        return None if value is None else str(value)


class ServerState:
    """Messages, auth attempts and scripted failures, shared between the two threads.

    Args:
        save_dir: when set, each accepted message is also written there as ``.eml``.
        on_message: called (on the server thread) with each accepted message.
        faults: a :data:`FaultHook` consulted after the scripted failures.
    """

    def __init__(
        self,
        *,
        save_dir: Path | None,
        on_message: Callable[[ReceivedMessage], None] | None,
        faults: FaultHook | None = None,
    ) -> None:
        self._save_dir = save_dir
        self._on_message = on_message
        self._faults = faults
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[ReceivedMessage] = []
        self._attempts: list[AuthAttempt] = []
        self._errors: list[BaseException] = []
        self._events: deque[str] = deque(maxlen=EVENT_HISTORY)
        # address -> (reply, answers left; None = every time)
        self._rejected: dict[str, tuple[str, int | None]] = {}
        self._failures: dict[FailurePhase, deque[str]] = {phase: deque() for phase in _PHASES}
        self._always: dict[FailurePhase, str] = {}
        self._drops: deque[bool] = deque()
        self._saved = 0

    # -- scripting (caller thread) -----------------------------------------------------------

    def reject_recipient(self, address: str, reply: str, times: int | None = None) -> None:
        """Answer ``RCPT TO`` for ``address`` (case-insensitive) with ``reply``: the next
        ``times`` times, or every time when ``times`` is ``None``."""
        if times is not None:
            _check_times(times)
        wire = normalize_reply(reply)
        with self._lock:
            self._rejected[address.casefold()] = (wire, times)

    def fail_always(self, phase: FailurePhase, reply: str) -> None:
        """Answer every command of ``phase`` with ``reply`` (after any queued ones)."""
        if phase not in _PHASES:
            raise ConfigurationError(f"phase must be one of {_PHASES}, got {phase!r}")
        wire = normalize_reply(reply)
        with self._lock:
            self._always[phase] = wire

    def fail_next(self, phase: FailurePhase, reply: str, times: int) -> None:
        """Queue ``reply`` as the answer to the next ``times`` commands of ``phase``."""
        if phase not in _PHASES:
            raise ConfigurationError(f"phase must be one of {_PHASES}, got {phase!r}")
        _check_times(times)
        wire = normalize_reply(reply)
        with self._lock:
            self._failures[phase].extend([wire] * times)

    def drop_after_data(self, times: int, *, deliver: bool) -> None:
        """Queue ``times`` connection drops after the content of a message."""
        _check_times(times)
        with self._lock:
            self._drops.extend([deliver] * times)

    # -- consumption and recording (server thread) -------------------------------------------

    def take_failure(self, phase: FailurePhase) -> str | None:
        """The next scripted reply for ``phase``, consumed; else the fault hook's answer
        (a wire reply or :data:`DROP`); ``None`` to proceed normally."""
        with self._lock:
            queue = self._failures[phase]
            wire = queue.popleft() if queue else self._always.get(phase)
            if wire is not None:
                self._events.append(f"{phase.upper()}: scripted reply {wire.splitlines()[-1]!r}")
                return wire
        if self._faults is None:
            return None
        fault = self._faults(phase)  # outside the lock: the hook is the caller's code
        if fault is None:
            return None
        wire = DROP if fault == DROP else normalize_reply(fault)
        event = "connection dropped" if wire == DROP else f"reply {wire.splitlines()[-1]!r}"
        with self._lock:
            self._events.append(f"{phase.upper()}: fault hook: {event}")
        return wire

    def rejection_for(self, address: str) -> str | None:
        """The reply ``RCPT TO:<address>`` gets from :meth:`reject_recipient`, if any."""
        key = address.casefold()
        with self._lock:
            scripted = self._rejected.get(key)
            if scripted is None:
                return None
            wire, left = scripted
            if left is not None:
                if left <= 1:
                    del self._rejected[key]
                else:
                    self._rejected[key] = (wire, left - 1)
            self._events.append(f"RCPT {address}: rejected with {wire.splitlines()[-1]!r}")
            return wire

    def take_drop(self) -> bool | None:
        """``None`` when no drop is queued, else whether to keep the dropped message."""
        with self._lock:
            if not self._drops:
                return None
            self._events.append("DATA: connection dropped after the content, no reply sent")
            return self._drops.popleft()

    def record_attempt(self, attempt: AuthAttempt) -> None:
        """Remember one completed AUTH exchange."""
        with self._changed:
            self._attempts.append(attempt)
            if not attempt.success:
                self._events.append(
                    f"AUTH {attempt.mechanism} as {attempt.username!r}: credentials rejected"
                )
            self._changed.notify_all()

    def record_error(self, error: BaseException, context: str) -> None:
        """Remember an exception raised inside the server (a bug or a failing callback)."""
        log.error("local SMTP server: %s", context, exc_info=error)
        with self._lock:
            self._errors.append(error)
            self._events.append(f"error {context}: {type(error).__name__}: {error}")

    def note(self, event: str) -> None:
        """Remember a notable event for timeout messages."""
        with self._lock:
            self._events.append(event)

    def record_message(
        self,
        *,
        mail_from: str,
        rcpt_tos: Sequence[str],
        raw: bytes,
        auth: tuple[str, str] | None,
        tls: bool,
        smtputf8: bool,
        mail_options: Sequence[str],
    ) -> ReceivedMessage:
        """Parse, save and store one accepted message; then call ``on_message``.

        A failing ``on_message`` callback does not change the reply (the message is already
        stored); its exception is kept in :attr:`errors` and logged.
        """
        parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(parsed, EmailMessage)  # guaranteed by policy.default's factory
        received = ReceivedMessage(
            mail_from=mail_from,
            rcpt_tos=tuple(rcpt_tos),
            raw=raw,
            message=parsed,
            auth_user=auth[0] if auth else None,
            auth_mechanism=auth[1] if auth else None,
            tls=tls,
            smtputf8=smtputf8,
            mail_options=tuple(mail_options),
            path=self._save(raw),
        )
        with self._changed:
            self._messages.append(received)
            self._changed.notify_all()
        if self._on_message is not None:
            try:
                self._on_message(received)
            except Exception as error:
                self.record_error(error, "in the on_message callback")
        return received

    def _save(self, raw: bytes) -> Path | None:
        if self._save_dir is None:
            return None
        with self._lock:
            self._saved += 1
            number = self._saved
        # UTC timestamp first, then a counter: names sort in arrival order, also across runs
        # into the same directory; the counter breaks ties within one microsecond.
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self._save_dir / f"{stamp}-{number:06d}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(raw)
        os.replace(partial, path)  # readers never see a half-written .eml
        return path

    # -- reading (caller thread) -------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A copy of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """A copy of the completed AUTH exchanges, oldest first."""
        with self._lock:
            return list(self._attempts)

    @property
    def errors(self) -> list[BaseException]:
        """A copy of exceptions raised inside the server, oldest first."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        """Forget messages, auth attempts, errors and events (scripts stay queued)."""
        with self._lock:
            self._messages.clear()
            self._attempts.clear()
            self._errors.clear()
            self._events.clear()

    def wait_for(self, count: int, timeout: float, where: str) -> list[ReceivedMessage]:
        """Block until ``count`` messages are stored or ``timeout`` seconds pass.

        Raises:
            TimeoutError: fewer than ``count`` messages arrived in time; the message quotes
                the most recent notable events (rejections, failed AUTH, drops, errors).
        """
        with self._changed:
            if self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                return list(self._messages)
            got = len(self._messages)
            events = list(self._events)
        detail = "; ".join(events) if events else "no rejections, AUTH failures or errors"
        raise TimeoutError(
            f"{where}: expected {count} message(s) within {timeout:g} s but received {got}. "
            f"Recent server events: {detail}"
        )


def _check_times(times: int) -> None:
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ConfigurationError(f"times must be a positive integer, got {times!r}")

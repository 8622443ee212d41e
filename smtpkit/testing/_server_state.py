"""LocalServer's shared state: what it saw and what it was told to do, under one lock.

:class:`ServerState` is the only object both threads touch. The test (caller) thread scripts
steps and reads what arrived; the server's event-loop thread takes the steps, asks the
``faults`` hook, and keeps messages. What arrived lives in
:class:`~smtpkit.testing._record.Records` and the steps in a
:class:`~smtpkit.testing._script.Script`, the same types the fake uses.

Invariants:
    * Readers get copies; nothing handed out aliases internal state.
    * Each scripted step is used exactly as often as scripted, across every connection.
    * The ``faults`` hook and ``on_message`` are the caller's code: they run outside the
      lock, and their exceptions are kept in ``server_errors``, never raised in the server.
    * Nothing here holds a password or token: auth attempts keep the user name only.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase
from smtpkit.testing._record import ReceivedMessage, Records
from smtpkit.testing._script import Script, Scripted

__all__ = [
    "DISCONNECT",
    "DROP",
    "FailurePhase",
    "FaultHook",
    "ServerState",
    "normalize_reply",
]

log = logging.getLogger("smtpkit.testing")

#: The phases the ``faults`` hook is asked about: the reply to MAIL, to RCPT, to the DATA
#: command itself, and the final reply after the message content.
FailurePhase = Literal["mail", "rcpt", "data", "message"]
FAULT_PHASES: tuple[FailurePhase, ...] = get_args(FailurePhase)

#: What a fault hook returns to close the connection at once, without a reply. After the
#: content (phase ``"message"``) the message is kept in ``messages`` first.
DROP = "DROP"

#: What a fault hook returns to act as a scripted ``disconnect``: the connection closes at
#: once, without a reply; after the content the message is kept in ``dropped``.
DISCONNECT = "DISCONNECT"

#: ``faults(phase)`` is asked at every command of ``phase`` that no scripted step answers:
#: ``None`` to proceed, a 4xx/5xx reply to answer with, :data:`DROP` or :data:`DISCONNECT`.
FaultHook = Callable[[FailurePhase], str | None]

_CODE_LINE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_REPLY_HINT = (
    "write the reply as it travels, lines joined with '\\n', e.g. "
    "'550-5.4.5 Daily user sending quota exceeded.\\n550 5.4.5 Try again tomorrow.'"
)


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
    # One final line break ends the text (as parse_reply reads it); it is no empty last line.
    lines = reply.replace("\r\n", "\n").removesuffix("\n").split("\n")
    first = _CODE_LINE.fullmatch(lines[0])
    if first is None or first.group(1)[0] not in "45":
        raise ConfigurationError(
            f"a scripted failure must be a 4xx or 5xx reply such as '550 5.1.1 User unknown', "
            f"got {reply!r}",
            hint=_REPLY_HINT,
        )
    code = first.group(1)
    texts: list[str] = []
    for line in lines:
        match = _CODE_LINE.fullmatch(line)
        if match is not None and match.group(1) == code:
            text = match.group(3) or ""
        elif match is not None:
            raise ConfigurationError(
                f"every line of a reply must carry code {code}: {reply!r}", hint=_REPLY_HINT
            )
        else:
            text = line
        if _CONTROL.search(text):
            raise ConfigurationError(
                f"reply text holds a control character: {reply!r}", hint=_REPLY_HINT
            )
        texts.append(text)
    body = [f"{code}-{text}" for text in texts[:-1]]
    body.append(f"{code} {texts[-1]}".rstrip())
    return "\r\n".join(body)


class ServerState:
    """Script, records, fault hook and saving, shared between the two threads.

    Args:
        save_dir: when set, each accepted message is also written there as ``.eml``.
        on_message: called (on the server thread) with each accepted message.
        faults: a :data:`FaultHook` consulted when no scripted step answers.
    """

    def __init__(
        self,
        *,
        save_dir: Path | None,
        on_message: Callable[[ReceivedMessage], None] | None,
        faults: FaultHook | None = None,
    ) -> None:
        self.script = Script()
        self.records = Records(queue_prefix="LOCAL")
        self._save_dir = save_dir
        self._on_message = on_message
        self._faults = faults
        self._drops: deque[bool] = deque()
        self._saved = 0
        #: False while the controller checks that the server answers: that connection is
        #: not a client's, so it is not counted and plays no script.
        self.ready = False

    # -- scripting (caller thread) -----------------------------------------------------------

    def drop_after_data(self, times: int, *, deliver: bool) -> None:
        """Queue ``times`` connection drops after the content (the deprecated verb)."""
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigurationError(f"times must be a positive integer, got {times!r}")
        with self.records.lock:
            self._drops.extend([deliver] * times)

    # -- consumption and recording (server thread) -------------------------------------------

    def take_step(self, phase: Phase, recipient: str | None = None) -> Scripted | None:
        """The scripted reply, disconnect or timeout for ``phase``, consumed; or ``None``."""
        step = self.script.take(phase, recipient)
        if step is not None:
            who = f" {recipient}" if recipient else ""
            if step.reply is None:
                what = f"scripted {step.action.value}"
            elif step.reply.code >= 400:
                what = f"rejected with {str(step.reply).splitlines()[-1]!r} (scripted)"
            else:
                what = f"scripted reply {str(step.reply).splitlines()[-1]!r}"
            self.records.note(f"{phase.value.upper()}{who}: {what}")
        return step

    def take_delay(self, phase: Phase, recipient: str | None = None) -> float:
        """Seconds a scripted delay holds the reply to ``phase`` back (``0.0`` for none)."""
        step = self.script.take(phase, recipient, delay=True)
        return (step.seconds or 0.0) if step is not None else 0.0

    def ask_faults(self, phase: FailurePhase) -> str | None:
        """The fault hook's answer for ``phase``: a wire reply, :data:`DROP`,
        :data:`DISCONNECT` or ``None``."""
        if self._faults is None:
            return None
        try:
            fault = self._faults(phase)
        except Exception as error:
            self.record_error(error, f"in the faults hook at {phase!r}")
            return "451 4.3.0 Local server error: the faults hook failed"
        if fault is None:
            return None
        try:
            wire = fault if fault in (DROP, DISCONNECT) else normalize_reply(fault)
        except ConfigurationError as error:
            self.record_error(error, f"in the faults hook's answer at {phase!r}")
            return f"451 4.3.0 Local server error: {type(error).__name__}"
        dropped = wire in (DROP, DISCONNECT)
        event = "connection dropped" if dropped else f"reply {wire.splitlines()[-1]!r}"
        self.records.note(f"{phase.upper()}: fault hook: {event}")
        return wire

    def take_drop(self) -> bool | None:
        """``None`` when no drop is queued, else whether to keep the dropped message."""
        with self.records.lock:
            if not self._drops:
                return None
            self.records.events.append("DATA: connection dropped after the content, no reply sent")
            return self._drops.popleft()

    def keep(self, received: ReceivedMessage, *, accepted: bool) -> ReceivedMessage:
        """Save (when accepted and a ``save_dir`` is set) and record one message; then call
        ``on_message`` for an accepted one. Returns the message as recorded.

        A failing ``on_message`` callback does not change the reply (the message is already
        stored); its exception is kept in ``server_errors`` and logged.
        """
        if accepted and self._save_dir is not None:
            received = dataclasses.replace(received, path=self._save(received.raw))
        kept = self.records.add_message(received, accepted=accepted)
        if accepted and self._on_message is not None:
            try:
                self._on_message(kept)
            except Exception as error:
                self.record_error(error, "in the on_message callback")
        return kept

    def record_error(self, error: BaseException, context: str) -> None:
        """Keep an exception raised inside the server (a bug or a failing callback)."""
        log.error("local SMTP server: %s", context, exc_info=error)
        self.records.server_error(error, context)

    def _save(self, raw: bytes) -> Path:
        assert self._save_dir is not None
        with self.records.lock:
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

"""Scripting a test server: how it answers a phase instead of its own reply.

Job: turn readable test instructions (``server.reply("rcpt", "550 5.1.1 User unknown")``)
into small values a server consumes: a :class:`Scripted` step per instruction, kept in a
:class:`Script` that hands out the step for a phase (and recipient) under a lock. Both test
servers, :class:`~smtpkit.testing.FakeTransport` and :class:`~smtpkit.testing.LocalServer`,
take their steps from a :class:`Script`, so a step means the same on both.

Invariants:
    * A scripted reply is a valid SMTP reply (code 200-599, no control characters); the
      text given is checked once, when the test scripts it, not when the server uses it.
    * A step scripted for ``times=N`` is used exactly ``N`` times, then never again;
      ``times=None`` means every time. Steps are taken under a lock, so servers on other
      threads (LocalServer's event loop) share one script safely.
    * Steps for a named recipient are preferred over steps for any recipient; within each
      group, steps are used in the order they were scripted.
"""

from __future__ import annotations

import enum
import math
import re
import threading

from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase, Reply

__all__ = [
    "Script",
    "ScriptAction",
    "Scripted",
    "build_reply",
    "coerce_phase",
    "parse_reply",
]

_LINE_RE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?", re.DOTALL)
_ENHANCED_RE = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ScriptAction(enum.Enum):
    """What a scripted step makes the server do instead of its normal reply."""

    REPLY = "reply"  # send the scripted reply (its code decides success, see Scripted)
    DISCONNECT = "disconnect"  # close the connection without replying
    TIMEOUT = "timeout"  # never reply: the client gives up with OperationTimeout
    DELAY = "delay"  # reply, but only after a while (see Scripted)


def coerce_phase(phase: Phase | str) -> Phase:
    """A :class:`Phase` from a member or its value (``"rcpt"``, case-insensitive)."""
    if isinstance(phase, Phase):
        return phase
    if isinstance(phase, str):
        try:
            return Phase(phase.lower())
        except ValueError:
            pass
    names = ", ".join(repr(p.value) for p in Phase)
    raise ConfigurationError(f"unknown phase {phase!r}; use a smtpkit.Phase or one of {names}")


def parse_reply(text: str) -> Reply:
    """Parse a scripted reply written as it travels.

    Lines may be separated by CRLF or LF; each carries the same code, and lines after the
    first may omit it. The ``-``/space separators are normalised (RFC 5321 §4.2.1), so
    ``"534-5.7.9 Application-specific password required.\\n534 5.7.9 https://..."`` and
    ``"534 5.7.9 Application-specific password required.\\n5.7.9 https://..."`` are equal.

    Raises:
        ConfigurationError: no code, mixed codes, or control characters.
    """
    lines = text.replace("\r\n", "\n").removesuffix("\n").split("\n")
    first = _LINE_RE.fullmatch(lines[0])
    if first is None:
        raise ConfigurationError(
            f"a scripted reply starts with a code 200-599, e.g. '550 5.1.1 User unknown'; "
            f"got {text!r}"
        )
    code = first.group(1)
    texts: list[str] = []
    for line in lines:
        match = _LINE_RE.fullmatch(line)
        if match is not None and match.group(1) != code:
            raise ConfigurationError(f"every line of a reply must carry code {code}: {text!r}")
        body = (match.group(3) or "") if match is not None else line
        if _CONTROL_RE.search(body):
            raise ConfigurationError(f"reply text holds a control character: {text!r}")
        texts.append(body)
    return Reply(int(code), tuple(texts))


def build_reply(code: int, enhanced: str | None, text: str | None) -> Reply:
    """A reply from its parts; every line of a multi-line ``text`` repeats ``enhanced``."""
    if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
        raise ConfigurationError(f"code must be an int 200-599, got {code!r}")
    if enhanced is not None and (
        not isinstance(enhanced, str) or not _ENHANCED_RE.fullmatch(enhanced)
    ):
        raise ConfigurationError(f"enhanced must look like '5.1.1', got {enhanced!r}")
    bodies = (text if text is not None else "Scripted reply").split("\n")
    lines = []
    for body in bodies:
        if _CONTROL_RE.search(body):
            raise ConfigurationError(f"reply text holds a control character: {text!r}")
        lines.append(f"{enhanced} {body}".rstrip() if enhanced else body)
    return Reply(code, tuple(lines))


class Scripted:
    """One scripted step: at ``phase`` (for ``recipient``), do ``action`` ``times`` times.

    Returned by ``reply()``, ``disconnect()``, ``timeout()`` and ``delay()`` of either test
    server; tests may keep it to check it was used (``step.used``, ``step.exhausted``) or to
    ``cancel()`` it.

    A ``DELAY`` step (``seconds`` set) does not replace the reply: it holds back whatever the
    server answers at ``phase`` (its own reply or a scripted one) for ``seconds``. The fake
    simulates the wait against the client's timeout and never sleeps; LocalServer really
    waits.

    A scripted ``REPLY`` replaces the server's own answer. The command then succeeds when the
    scripted code is of the class the server would normally answer with (``354`` for DATA,
    ``2xx`` otherwise) and fails otherwise, as at a real server: a refused RCPT adds no
    recipient, a refused DATA opens no content phase. A ``421`` reply also closes the
    connection (RFC 5321 §3.8).
    """

    __slots__ = ("_lock", "_used", "action", "phase", "recipient", "reply", "seconds", "times")

    def __init__(
        self,
        phase: Phase,
        action: ScriptAction,
        *,
        reply: Reply | None = None,
        recipient: str | None = None,
        times: int | None = 1,
        seconds: float | None = None,
    ) -> None:
        if (seconds is None) == (action is ScriptAction.DELAY):
            raise ConfigurationError("seconds= goes with a delay step, and only with one")
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise ConfigurationError(f"seconds must be a finite number > 0, got {seconds!r}")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise ConfigurationError(f"times must be a positive int or None, got {times!r}")
        if times is not None and times < 1:
            raise ConfigurationError(f"times must be >= 1 (or None for always), got {times}")
        if recipient is not None and phase is not Phase.RCPT:
            raise ConfigurationError("recipient= applies only to the 'rcpt' phase")
        self.phase = phase
        self.action = action
        self.reply = reply
        self.recipient = recipient
        self.times = times
        self.seconds = None if seconds is None else float(seconds)
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """How many times the server used this step."""
        with self._lock:
            return self._used

    @property
    def exhausted(self) -> bool:
        """True once a ``times=N`` step was used ``N`` times (never for ``times=None``)."""
        with self._lock:
            return self.times is not None and self._used >= self.times

    def cancel(self) -> None:
        """Stop using this step."""
        with self._lock:
            self.times = self._used

    def _try_use(self) -> bool:
        with self._lock:
            if self.times is not None and self._used >= self.times:
                return False
            self._used += 1
            return True

    def matches(self, phase: Phase, recipient: str | None) -> bool:
        """Whether this step applies to ``phase`` (and, when it names one, ``recipient``)."""
        if phase is not self.phase:
            return False
        if self.recipient is None:
            return True
        return recipient is not None and recipient.casefold() == self.recipient.casefold()

    def __repr__(self) -> str:
        what = str(self.reply) if self.reply is not None else self.action.value
        if self.seconds is not None:
            what = f"delay {self.seconds:g} s"
        who = f" for {self.recipient}" if self.recipient else ""
        times = "always" if self.times is None else f"{self.used}/{self.times} used"
        return f"<Scripted {self.phase.value}{who}: {what} ({times})>"


class Script:
    """The scripted steps of one fake server, shared by all its connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[Scripted] = []

    def add(self, step: Scripted) -> Scripted:
        """Append ``step``; return it."""
        with self._lock:
            self._steps.append(step)
        return step

    def take(
        self, phase: Phase, recipient: str | None = None, *, delay: bool = False
    ) -> Scripted | None:
        """Use and return the step for ``phase``/``recipient``, or ``None`` if none applies.

        ``delay=False`` looks among the steps that decide the reply (reply, disconnect,
        timeout); ``delay=True`` among the delays, which apply on top of any reply.
        """
        with self._lock:
            steps = [s for s in self._steps if (s.action is ScriptAction.DELAY) == delay]
        named = [s for s in steps if s.recipient is not None and s.matches(phase, recipient)]
        anyone = [s for s in steps if s.recipient is None and s.matches(phase, recipient)]
        for step in named + anyone:
            if step._try_use():
                return step
        return None

    @property
    def steps(self) -> list[Scripted]:
        """A copy of every step, in the order scripted."""
        with self._lock:
            return list(self._steps)

    def clear(self) -> None:
        """Forget every step."""
        with self._lock:
            self._steps.clear()

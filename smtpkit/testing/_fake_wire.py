"""The fake server's wire layer for one connection: client bytes in, reply bytes out.

Job: the byte-level half of the fake SMTP server. :class:`WireSession` is fed what the
client sends, cuts it into complete command lines (or message content, or BDAT octets) in
order, and appends replies to an outgoing buffer the stream hands to the client. It never
blocks and never sleeps. What each command means lives in
:mod:`smtpkit.testing._fake_session`.

Modes (what the next input bytes are)::

    COMMAND --DATA/354--> CONTENT --CRLF.CRLF--> COMMAND
    COMMAND --BDAT n--> CHUNK (n octets) --> COMMAND
    COMMAND --AUTH/334--> AUTH (continuation lines) --> COMMAND
    COMMAND --STARTTLS/220--> TLS (handshake only) --start_tls()--> COMMAND, session reset
    any --scripted timeout--> HUNG;  any --QUIT/421/disconnect--> CLOSED

A scripted delay changes no mode: the reply is queued but held back (``wait``) until the
client has waited long enough, in simulated time.

Invariants:
    * Replies are queued in the order of the commands they answer, including pipelined ones.
    * A client that sends more before reading the reply to a synchronising command (the
      greeting, EHLO/HELO, STARTTLS, AUTH except PLAIN with an initial response, DATA,
      NOOP, QUIT; every command without PIPELINING; RFC 2920 §3.1, RFC 4954 §4) gets
      ``554 5.5.0`` and is disconnected, as Postfix and Exim do.
    * After STARTTLS everything learnt in plaintext is forgotten (RFC 3207 §4.2): EHLO is
      needed again, AUTH and the transaction are reset.
    * Only CRLF ends a line; a bare LF is refused, so ``<LF>.<CRLF>`` never ends content.
    * Transcript lines never hold an AUTH payload or message content.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from smtpkit.replies import Phase, Reply
from smtpkit.testing._fake_script import FakeCapabilities, FakeTLS, ScriptAction, Scripted
from smtpkit.testing._fake_tx import Transaction

__all__ = ["Mode", "ReceivedContent", "ServerConfig", "SessionEvents", "WireSession"]

#: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.
MAX_COMMAND_LINE = 512
#: RFC 4954 §4: an AUTH continuation line may be up to 12288 octets.
MAX_AUTH_LINE = 12288
#: Extensions lengthen MAIL and RCPT lines: SIZE +26 (RFC 1870 §8), BODY= +16 (RFC 6152),
#: SMTPUTF8 +10 (RFC 6531), DSN +100 on MAIL and +500 on RCPT (RFC 3461 §5), AUTH= +500
#: (RFC 4954 §5).
MAX_MAIL_LINE = MAX_COMMAND_LINE + 26 + 16 + 10 + 100 + 500
MAX_RCPT_LINE = MAX_COMMAND_LINE + 500


#: Transcript lines each connection keeps for error messages.
TRANSCRIPT_LINES = 100


def _line_limit(line: bytes) -> int:
    verb = line[:5].upper()
    if verb == b"MAIL ":
        return MAX_MAIL_LINE
    if verb == b"RCPT ":
        return MAX_RCPT_LINE
    return MAX_COMMAND_LINE


class Mode(enum.Enum):
    """What the server expects next from the client."""

    COMMAND = "command"
    CONTENT = "content"
    CHUNK = "chunk"
    AUTH = "auth"
    TLS = "tls"
    HUNG = "hung"  # a scripted timeout: input is ignored, nothing is ever answered
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The fake server's fixed settings (see :class:`~smtpkit.testing.FakeTransport`)."""

    hostname: str
    capabilities: FakeCapabilities
    credentials: dict[str, str] | None
    require_auth: bool
    auth_requires_tls: bool
    tls: FakeTLS
    max_recipients: int | None


@dataclass(frozen=True, slots=True)
class ReceivedContent:
    """Message content the server received, with its envelope and session facts."""

    sender: str
    recipients: tuple[str, ...]
    raw: bytes = field(repr=False)
    mail_options: tuple[str, ...]
    auth_user: str | None
    auth_mechanism: str | None
    tls: bool
    chunked: bool
    connection: int


class SessionEvents(Protocol):
    """What a session reports to the fake transport that owns it."""

    def take_script(self, phase: Phase, recipient: str | None) -> Scripted | None:
        """The scripted step for this phase (and recipient), consumed; or ``None``."""
        ...

    def take_delay(self, phase: Phase, recipient: str | None) -> Scripted | None:
        """The scripted delay for this phase (and recipient), consumed; or ``None``."""
        ...

    def wait(self, connection: int, seconds: float) -> None:
        """Record simulated seconds a client spent waiting for a delayed reply."""
        ...

    def message(self, content: ReceivedContent, *, accepted: bool) -> str:
        """Record content: accepted (250) or dropped (no final reply); returns a queue id."""
        ...

    def auth_attempt(self, mechanism: str, username: str | None, success: bool) -> None:
        """Record a completed AUTH exchange."""
        ...

    def transcript(self, connection: int, line: str) -> None:
        """Record one redacted transcript line."""
        ...

    def protocol_error(self, connection: int, text: str) -> None:
        """Record a client mistake the server noticed."""
        ...


@dataclass(slots=True)
class _Delay:
    """A reply held back: the octets from ``offset`` on wait for ``remaining`` seconds."""

    offset: int
    seconds: float
    remaining: float
    what: str


class WireSession:
    """One connection's input loop, reply queue and pipelining check.

    Subclasses implement the command semantics: :meth:`_command`, :meth:`_auth_continue`,
    :meth:`_chunk_done` and :meth:`_end_content`.

    Args:
        config: the server's settings.
        events: where messages, AUTH attempts and transcript lines are recorded.
        number: the connection's number (1 for the first ``connect``).
        encrypted: True for implicit TLS (the link is encrypted from the first byte).
    """

    def __init__(
        self, config: ServerConfig, events: SessionEvents, *, number: int, encrypted: bool
    ) -> None:
        self.config = config
        self.number = number
        self.encrypted = encrypted
        self.mode = Mode.COMMAND
        self.hang_reason = ""
        self._events = events
        self._lines: deque[str] = deque(maxlen=TRANSCRIPT_LINES)
        self._out = bytearray()
        self._in = bytearray()
        self._queued = 0  # octets ever queued for the client
        self._read = 0  # octets the client has read
        self._sync_at = 0  # the client must read this far before sending more
        self._sync_label = "the greeting"
        self._refused = False  # greeted with 554: only QUIT is served (RFC 5321 §3.1)
        self._helo: str | None = None
        self._esmtp = False
        self._auth: tuple[str, str] | None = None  # (user, mechanism)
        self._tx = Transaction()
        self._chunk_left = 0
        self._chunk_last = False
        self._delays: deque[_Delay] = deque()  # held-back replies, by offset
        self._delay_next: tuple[float, str] | None = None  # for the next _send

    # -- the stream's side ----------------------------------------------------------------

    def start(self) -> None:
        """Queue the greeting (RFC 5321 §3.1)."""
        step = self._events.take_script(Phase.GREETING, None)
        default = Reply(220, (f"{self.config.hostname} ESMTP",))
        reply = self._scripted(step, default, "the greeting", phase=Phase.GREETING)
        if reply is None:
            return
        if reply.code != 220:
            self._refused = True
        self._send(reply, sync="the greeting")

    def pending(self) -> int:
        """Octets queued for the client and not read yet."""
        return len(self._out)

    def wait(self, timeout: float | None) -> str | None:
        """Let a client that waits ``timeout`` seconds (``None``: forever) at a delayed reply.

        Simulated time, no sleeping: when the next queued octets are held back longer than
        ``timeout``, the client gives up (the delay shrinks by what it waited, as real time
        would pass) and the reason is returned; otherwise the reply is released and ``None``
        is returned.
        """
        if not self._delays or self._delays[0].offset != self._read:
            return None
        delay = self._delays[0]
        if timeout is not None and timeout < delay.remaining:
            delay.remaining -= timeout
            self._events.wait(self.number, timeout)
            self._log(
                f"* the client waited {timeout:g} s for the reply to {delay.what} and gave up "
                f"(scripted delay {delay.seconds:g} s)"
            )
            return (
                f"no reply to {delay.what} within {timeout:g} s (scripted "
                f"fake.delay of {delay.seconds:g} s)"
            )
        self._events.wait(self.number, delay.remaining)
        self._log(f"* the reply to {delay.what} came after {delay.seconds:g} s (scripted delay)")
        self._delays.popleft()
        return None

    def read(self, max_bytes: int) -> bytes:
        """Take up to ``max_bytes`` queued octets (``b""`` if none), up to a held-back reply."""
        if self._delays and self._delays[0].offset > self._read:
            max_bytes = min(max_bytes, self._delays[0].offset - self._read)
        data = bytes(self._out[:max_bytes])
        del self._out[: len(data)]
        self._read += len(data)
        return data

    def feed(self, data: bytes) -> None:
        """Process bytes the client sent."""
        if self.mode in (Mode.HUNG, Mode.CLOSED) or not data:
            return
        if self.mode is Mode.TLS:
            # The server now reads a TLS ClientHello; plaintext makes the handshake fail.
            self._mistake(
                f"{len(data)} plaintext octets sent after '220' to STARTTLS instead of the "
                "TLS handshake (RFC 3207 §4)"
            )
            self.close("TLS handshake failed: plaintext received")
            return
        if self._read < self._sync_at:
            self._violation(self._too_early(data))
            return
        self._in += data
        self._process()

    def tls_ready(self) -> bool:
        """Whether a TLS handshake may start now (the 220 to STARTTLS was read)."""
        return self.mode is Mode.TLS and not self._out

    def tls_established(self) -> None:
        """The handshake succeeded: forget the plaintext session (RFC 3207 §4.2)."""
        self.encrypted = True
        self.mode = Mode.COMMAND
        self._in.clear()
        self._helo, self._esmtp, self._auth = None, False, None
        self._tx = Transaction()
        self._log("* TLS established; the session starts over (RFC 3207 §4.2)")

    def close(self, why: str) -> None:
        """Close from the server's side (queued replies stay readable)."""
        if self.mode is not Mode.CLOSED:
            self.mode = Mode.CLOSED
            self._log(f"* connection {self.number} closed by the server ({why})")

    # -- input loop -----------------------------------------------------------------------

    def _process(self) -> None:
        while self._in and self._reading():
            if self.mode is Mode.CHUNK:
                self._take_chunk()
            elif self.mode is Mode.CONTENT:
                if not self._take_content_line():
                    return
            else:
                end = self._in.find(b"\n")
                if end < 0:
                    return
                line = bytes(self._in[: end + 1])
                del self._in[: end + 1]
                self._line(line)
            if self._in and self._read < self._sync_at and self._talking():
                self._violation(self._too_early(bytes(self._in)))

    def _reading(self) -> bool:
        """Whether input is processed now (not waiting for TLS, hung or closed)."""
        return self.mode in (Mode.COMMAND, Mode.AUTH, Mode.CONTENT, Mode.CHUNK)

    def _talking(self) -> bool:
        """Whether the server may still reply (not hung or closed)."""
        return self.mode not in (Mode.HUNG, Mode.CLOSED)

    def _too_early(self, data: bytes) -> str:
        head = data.split(b"\r\n", 1)[0][:60].decode("utf-8", "replace")
        return (
            f"the client sent {head!r} before reading the reply to {self._sync_label} "
            "(RFC 2920 §3.1: that command must end a pipelined group)"
        )

    def _line(self, raw: bytes) -> None:
        limit = _line_limit(raw) if self.mode is Mode.COMMAND else MAX_AUTH_LINE
        if not raw.endswith(b"\r\n"):
            self._log("C: <line ended by a bare LF>")
            self._mistake("a command line ended with a bare LF (RFC 5321 §2.3.8 wants CRLF)")
            self._reply(500, "5.5.2", "Syntax error: bare <LF> received")
            return
        if len(raw) > limit:
            self._log(f"C: <{len(raw)}-octet line>")
            self._mistake(f"a {len(raw)}-octet line; RFC 5321 §4.5.3.1.4 allows {limit}")
            self._reply(500, "5.5.2", "Line too long")
            return
        try:
            text = raw[:-2].decode("utf-8")
        except UnicodeDecodeError:
            self._log("C: <invalid UTF-8>")
            self._reply(500, "5.5.2", "Syntax error: invalid UTF-8")
            return
        if self.mode is Mode.AUTH:
            self._auth_continue(text)
        else:
            self._command(text)

    def _take_content_line(self) -> bool:
        end = self._in.find(b"\r\n")
        if end < 0:
            return False
        line = bytes(self._in[: end + 2])
        del self._in[: end + 2]
        if line == b".\r\n":
            self._end_content(bytes(self._tx.content), chunked=False)
        else:
            # RFC 5321 §4.5.2: remove the leading dot the client added to dot-led lines.
            self._tx.content += line[1:] if line.startswith(b".") else line
        return True

    def _take_chunk(self) -> None:
        take = bytes(self._in[: self._chunk_left])
        del self._in[: len(take)]
        self._chunk_left -= len(take)
        if self._tx.chunk_error is None:
            self._tx.content += take
        if self._chunk_left == 0:
            self.mode = Mode.COMMAND
            self._log(f"C: <{self._tx.last_chunk} octets>")
            self._chunk_done()

    # -- replies --------------------------------------------------------------------------

    def _reply_obj(self, code: int, enhanced: str, text: str) -> Reply:
        if self.config.capabilities.enhanced_status_codes:
            return Reply(code, (f"{enhanced} {text}",))
        return Reply(code, (text,))

    def _reply(self, code: int, enhanced: str, text: str, *, sync: str | None = None) -> None:
        self._send(self._reply_obj(code, enhanced, text), sync=sync)

    def _send(self, reply: Reply, *, sync: str | None = None) -> None:
        wire = reply.to_bytes()
        if reply.code == 334 and reply.lines == ("",):
            wire = b"334 \r\n"  # RFC 4954 §4: "334" SP [base64], as Postfix and Exim send it
        if self._delay_next is not None:
            seconds, what = self._delay_next
            self._delay_next = None
            self._delays.append(_Delay(self._queued, seconds, seconds, what))
            self._log(f"* the reply to {what} is held back {seconds:g} s (scripted delay)")
        self._out += wire
        self._queued += len(wire)
        for line in wire.decode("utf-8", "replace").splitlines():
            self._log(f"S: {line}")
        if sync is not None or not self.config.capabilities.pipelining:
            self._sync_at = self._queued
            self._sync_label = sync or "the previous command"
        if reply.code == 421:
            # RFC 5321 §3.8: 421 means the server is closing the transmission channel.
            self.close("421")

    def _scripted(
        self,
        step: Scripted | None,
        default: Reply,
        what: str,
        *,
        phase: Phase | None = None,
        recipient: str | None = None,
    ) -> Reply | None:
        """The reply to send (scripted or default); ``None`` when the step swallows it.

        With ``phase``, a scripted delay for it holds the reply back (see :meth:`wait`).
        """
        reply = self._scripted_reply(step, default, what)
        if reply is not None and phase is not None:
            delay = self._events.take_delay(phase, recipient)
            if delay is not None and delay.seconds is not None:
                self._delay_next = (delay.seconds, what)
        return reply

    def _scripted_reply(self, step: Scripted | None, default: Reply, what: str) -> Reply | None:
        if step is None:
            return default
        if step.action is ScriptAction.DISCONNECT:
            self.close(f"scripted disconnect at {step.phase.value!r}")
            return None
        if step.action is ScriptAction.TIMEOUT:
            self.mode = Mode.HUNG
            self.hang_reason = f"scripted fake.timeout({step.phase.value!r}) at {what}"
            self._log(f"* no reply to {what} (scripted timeout)")
            return None
        assert step.reply is not None  # REPLY steps always carry one
        return step.reply

    def _answer(
        self,
        phase: Phase,
        default: Reply,
        what: str,
        *,
        recipient: str | None = None,
        sync: bool = False,
        success: int = 2,
    ) -> bool:
        """Send the reply for ``phase`` (scripted, else ``default``).

        Returns:
            True when the reply sent is of the ``success`` class (``2`` for 2xx, ``3`` for
            DATA's 354) and the connection stays open: the command then takes effect.
        """
        step = self._events.take_script(phase, recipient)
        reply = self._scripted(step, default, what, phase=phase, recipient=recipient)
        if reply is None:
            return False
        self._send(reply, sync=what if sync else None)
        return reply.code // 100 == success and self._talking()

    def _violation(self, detail: str) -> None:
        self._mistake(detail)
        self._in.clear()
        self._reply(554, "5.5.0", "Error: SMTP protocol synchronization")
        self.close("protocol synchronization error")

    def _mistake(self, text: str) -> None:
        self._events.protocol_error(self.number, text)

    def _log(self, line: str) -> None:
        self._lines.append(line)
        self._events.transcript(self.number, line)

    def transcript_tail(self, count: int) -> list[str]:
        """The last ``count`` transcript lines of this connection."""
        return list(self._lines)[-count:]

    # -- the command layer's hooks --------------------------------------------------------

    def _command(self, text: str) -> None:
        """Handle one command line (without CRLF)."""
        raise NotImplementedError

    def _auth_continue(self, text: str) -> None:
        """Handle one AUTH continuation line (without CRLF)."""
        raise NotImplementedError

    def _chunk_done(self) -> None:
        """A BDAT chunk was received completely."""
        raise NotImplementedError

    def _end_content(self, raw: bytes, *, chunked: bool) -> None:
        """The message content is complete (``CRLF.CRLF`` or ``BDAT LAST``)."""
        raise NotImplementedError

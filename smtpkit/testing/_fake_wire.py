"""The fake server's wire for one connection: client bytes in, reply bytes out.

Job: the byte-level half of the fake SMTP server. :class:`Wire` is fed what the client
sends, cuts it into complete command lines (or message content, or BDAT octets) in order,
queues replies for the client to read, checks that pipelining was legal, and writes the
transcript, grouped in *flights*. It never blocks and never sleeps. What each command means
lives in :mod:`smtpkit.testing._fake_core` and the modules built on it.

Modes (what the next input bytes are)::

    COMMAND --DATA/354--> CONTENT --CRLF.CRLF--> COMMAND
    COMMAND --BDAT n--> CHUNK (n octets) --> COMMAND
    COMMAND --AUTH/334--> AUTH (continuation lines) --> COMMAND
    COMMAND --STARTTLS/220--> TLS (handshake only) --start_tls()--> COMMAND, session reset
    any --scripted timeout--> HUNG;  any --QUIT/421/disconnect--> CLOSED

Flights: the commands a client sends before it reads a reply travel together (RFC 2920
pipelining). The transcript shows them as they travelled: every ``C:`` line of a flight,
then the ``S:`` lines of the replies, each written when the client reads it. The flights
themselves are reported to the transport (``fake.flights``), like everything the wire
records, through :class:`~smtpkit.testing._fake_events.SessionEvents`.

Invariants:
    * Replies are queued in the order of the commands they answer, including pipelined ones.
    * A client that sends more before reading the reply to a synchronising command (the
      greeting, EHLO/HELO, STARTTLS, AUTH except PLAIN with an initial response, DATA,
      NOOP, QUIT; every command without PIPELINING; RFC 2920 §3.1, RFC 4954 §4) gets
      ``554 5.5.0`` and is disconnected, as Postfix and Exim do.
    * Only CRLF ends a line; a bare LF is refused, so ``<LF>.<CRLF>`` never ends content.
    * Transcript lines never hold an AUTH payload or message content.
    * A scripted delay changes no mode: the reply is queued but held back (:meth:`wait`)
      until the client has waited long enough, in simulated time.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from smtpkit.replies import Reply
from smtpkit.testing._fake_config import ServerConfig
from smtpkit.testing._fake_events import SessionEvents

__all__ = ["TRANSCRIPT_LINES", "Mode", "SessionEvents", "Wire"]

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


@dataclass(slots=True)
class _Delay:
    """A reply held back: the octets from ``offset`` on wait for ``remaining`` seconds."""

    offset: int
    seconds: float
    remaining: float
    what: str


class Wire:
    """One connection's input framing, reply queue, pipelining check and transcript.

    Subclasses give the commands their meaning: :meth:`_command`, :meth:`_auth_continue`,
    :meth:`_chunk_done` and :meth:`_end_content`.

    Args:
        config: the server's settings.
        events: where messages, AUTH attempts and transcript lines are recorded.
        number: the connection's number (1 for the first ``connect``).
    """

    def __init__(self, config: ServerConfig, events: SessionEvents, *, number: int) -> None:
        self.config = config
        self.number = number
        self.mode = Mode.COMMAND
        self.hang_reason = ""
        self.content = bytearray()  # DATA content or BDAT chunks of the current message
        self._events = events
        self._lines: deque[str] = deque(maxlen=TRANSCRIPT_LINES)
        self._out = bytearray()
        self._in = bytearray()
        self._queued = 0  # octets ever queued for the client
        self._read = 0  # octets the client has read
        self._sync_at = 0  # the client must read this far before sending more
        self._sync_label = "the greeting"
        self._flight_read = -1  # self._read when the current flight began
        self._unread: deque[tuple[int, list[str]]] = deque()  # S: lines by reply offset
        self._chunk_left = 0
        self._chunk_size = 0
        self._chunk_keep = True
        self._delays: deque[_Delay] = deque()  # held-back replies, by offset
        self._delay_next: tuple[float, str] | None = None  # for the next _send

    # -- the stream's side ----------------------------------------------------------------

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
        # A reply enters the transcript when the client starts reading it.
        while self._unread and self._unread[0][0] < self._read:
            for line in self._unread.popleft()[1]:
                self._log(line)
        return data

    def feed(self, data: bytes) -> None:
        """Process bytes the client sent."""
        if self.mode in (Mode.HUNG, Mode.CLOSED) or not data:
            return
        if self._read != self._flight_read:
            self._flight_read = self._read
            self._events.new_flight(self.number)
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

    def close(self, why: str) -> None:
        """Close from the server's side (queued replies stay readable)."""
        if self.mode is not Mode.CLOSED:
            self.mode = Mode.CLOSED
            while self._unread:
                for line in self._unread.popleft()[1]:
                    self._log(line)
            self._log(f"* connection {self.number} closed by the server ({why})")

    def transcript_tail(self, count: int) -> list[str]:
        """The last ``count`` transcript lines of this connection."""
        return list(self._lines)[-count:]

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
            raw = bytes(self.content)
            self._log(f"C: <{len(raw)} octets>")
            self._log("C: .")
            self._end_content(raw, chunked=False)
        else:
            # RFC 5321 §4.5.2: remove the leading dot the client added to dot-led lines.
            self.content += line[1:] if line.startswith(b".") else line
        return True

    def _start_chunk(self, size: int, *, keep: bool) -> None:
        """Read ``size`` octets of BDAT data next (RFC 3030: no dot-stuffing, no lines)."""
        self.mode = Mode.CHUNK
        self._chunk_left = self._chunk_size = size
        self._chunk_keep = keep
        if size == 0:
            self._take_chunk()

    def _take_chunk(self) -> None:
        take = bytes(self._in[: self._chunk_left])
        del self._in[: len(take)]
        self._chunk_left -= len(take)
        if self._chunk_keep:
            self.content += take
        if self._chunk_left == 0:
            self.mode = Mode.COMMAND
            self._log(f"C: <{self._chunk_size} octets>")
            self._chunk_done()

    # -- replies --------------------------------------------------------------------------

    def _reply_obj(self, code: int, enhanced: str, text: str) -> Reply:
        """A reply the server composes; the enhanced code only when it is advertised."""
        if self.config.capabilities.enhanced_status_codes:
            return Reply(code, (f"{enhanced} {text}",))
        return Reply(code, (text,))

    def _reply(self, code: int, enhanced: str, text: str, *, sync: str | None = None) -> None:
        self._send(self._reply_obj(code, enhanced, text), sync=sync)

    def _hold_next(self, seconds: float, what: str) -> None:
        """Hold the next reply back for ``seconds`` of simulated time."""
        self._delay_next = (seconds, what)

    def _send(self, reply: Reply, *, sync: str | None = None) -> None:
        wire = reply.to_bytes()
        if reply.code == 334 and reply.lines == ("",):
            wire = b"334 \r\n"  # RFC 4954 §4: "334" SP [base64], as Postfix and Exim send it
        if self._delay_next is not None:
            seconds, what = self._delay_next
            self._delay_next = None
            self._delays.append(_Delay(self._queued, seconds, seconds, what))
            self._log(f"* the reply to {what} is held back {seconds:g} s (scripted delay)")
        lines = [f"S: {line}" for line in wire.decode("utf-8", "replace").splitlines()]
        self._unread.append((self._queued, lines))
        self._out += wire
        self._queued += len(wire)
        if sync is not None or not self.config.capabilities.pipelining:
            self._sync_at = self._queued
            self._sync_label = sync or "the previous command"
        if reply.code == 421:
            # RFC 5321 §3.8: 421 means the server is closing the transmission channel.
            self.close("421")

    def _violation(self, detail: str) -> None:
        self._mistake(detail)
        self._in.clear()
        self._reply(554, "5.5.0", "Error: SMTP protocol synchronization")
        self.close("protocol synchronization error")

    def _mistake(self, text: str) -> None:
        self._events.mistake(self.number, text)

    def _log(self, line: str) -> None:
        self._lines.append(line)
        self._events.transcript(self.number, line)

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

"""The sans-IO SMTP client connection: commands in, bytes out; bytes in, events out.

The driver (``smtpkit.Submitter``) owns the socket and the clock. It asks this object for
the bytes of each command, writes them, feeds back whatever it reads with
:meth:`ClientConnection.receive_data`, and pulls :class:`ReplyReceived` events from
:meth:`ClientConnection.next_event`. Commands may be pipelined (RFC 2920): replies are
matched to commands in order, so each event names the command it answers.

Invariants:
    * No socket, ssl, clock, thread or logging here (DESIGN rule 1).
    * Illegal steps raise :class:`~smtpkit.errors.LocalProtocolError` naming the command and
      the state, before any byte is produced.
    * More than one command in flight requires the server's PIPELINING.
    * After STARTTLS succeeds, everything the server sent in plaintext and everything learnt
      from it (capabilities) is forgotten (RFC 3207 §4.2).
    * The transcript is redacted: AUTH payloads and message content never appear in it,
      and every reply to AUTH has the secrets sent on this connection masked
      (:mod:`smtpkit.protocol._redact`) before it is stored or returned in an event.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from smtpkit.errors import LocalProtocolError, RemoteProtocolError
from smtpkit.protocol._commands import Command
from smtpkit.protocol._content import ContentEncoder
from smtpkit.protocol._extensions import Extensions
from smtpkit.protocol._parser import ReplyParser
from smtpkit.protocol._redact import SecretMask
from smtpkit.protocol._states import (
    ON_REPLY,
    SEND,
    SYNCHRONISING,
    ReplyKind,
    State,
)
from smtpkit.replies import Phase, Reply

__all__ = [
    "NEED_DATA",
    "ClientConnection",
    "ConnectionClosed",
    "Event",
    "ReplyReceived",
]

#: Transcript lines kept per connection (errors carry the tail of it).
TRANSCRIPT_LINES = 200

_GREETING: Final = Command("<greeting>", "", Phase.GREETING, "<greeting>")
#: The end of the content (``.``), whose reply is the final one; immutable, so one serves all.
_END_OF_DATA: Final = Command(".", ".", Phase.MESSAGE, ".")


class _Signal(enum.Enum):
    NEED_DATA = "NEED_DATA"


#: Returned by ``next_event`` when a complete reply has not arrived yet.
NEED_DATA: Final = _Signal.NEED_DATA


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """A reply and the command it answers (``None`` for an unsolicited reply)."""

    command: Command | None
    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the stream; ``unanswered`` lists commands that got no reply."""

    unanswered: tuple[Command, ...]


Event = ReplyReceived | ConnectionClosed | Literal[_Signal.NEED_DATA]


# ReplyReceived is made for every reply: its frozen dataclass __init__ sets each field with
# object.__setattr__ from Python code; setting the slots directly gives the same value for
# half the cost.
_new = object.__new__
_set_command = vars(ReplyReceived)["command"].__set__  # the slots' member descriptors
_set_reply = vars(ReplyReceived)["reply"].__set__


def _received(command: Command, reply: Reply) -> ReplyReceived:
    """``ReplyReceived(command, reply)``."""
    event: ReplyReceived = _new(ReplyReceived)
    _set_command(event, command)
    _set_reply(event, reply)
    return event


def _kind(command: Command) -> str:
    if command.verb == "BDAT" and command.phase is Phase.MESSAGE:
        return "BDAT LAST"
    return command.verb


class ClientConnection:
    """One SMTP client session, without I/O.

    A session, as the driver sees it::

        conn = ClientConnection()
        conn.receive_data(b"220 mx.example.com ESMTP\\r\\n")
        conn.next_event()          # ReplyReceived(<greeting>, 220 ...)
        wire = conn.send(Command.ehlo("client.example.com"))
        conn.receive_data(b"250-mx.example.com\\r\\n250 PIPELINING\\r\\n")
        conn.next_event()          # ReplyReceived(EHLO ..., 250 ...); conn.extensions set
    """

    def __init__(self) -> None:
        self._state = State.AWAIT_GREETING
        self._parser = ReplyParser()
        self._pending: deque[Command] = deque([_GREETING])
        self._extensions: Extensions | None = None
        self._pipelining = False  # the server offered PIPELINING (read once per EHLO)
        self._authenticated = False
        self._encoder: ContentEncoder | None = None
        self._eof = False
        self._mask = SecretMask()
        self._masking = False  # secrets were sent: replies to AUTH get masked
        # Entries are formatted only when the transcript is read (errors, debugging): the
        # send path stores the Command and Reply objects it already has, and the size of
        # the content it sent as an int.
        self._transcript: deque[str | int | Command | Reply] = deque(maxlen=TRANSCRIPT_LINES)

    # -- introspection -------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current :class:`State`."""
        return self._state

    @property
    def extensions(self) -> Extensions | None:
        """The capabilities from the last successful EHLO (``None`` before, or after TLS)."""
        return self._extensions

    @property
    def authenticated(self) -> bool:
        """Whether AUTH succeeded on this session (reset by STARTTLS)."""
        return self._authenticated

    @property
    def pending(self) -> tuple[Command, ...]:
        """Commands sent whose replies have not arrived, oldest first."""
        return tuple(self._pending)

    @property
    def transcript(self) -> tuple[str, ...]:
        """The redacted conversation, ``C:``/``S:`` lines, newest last."""
        lines: list[str] = []
        for entry in self._transcript:
            if isinstance(entry, Command):
                lines.append(f"C: {entry.redacted}")
            elif isinstance(entry, int):
                lines.append(f"C: <{entry} octets of message content>")
            elif isinstance(entry, Reply):
                text = entry.to_bytes().decode("utf-8", "replace")
                lines.extend(f"S: {line}" for line in text.splitlines())
            else:
                lines.append(entry)
        return tuple(lines[-TRANSCRIPT_LINES:])

    # -- sending -------------------------------------------------------------------------

    def send(self, command: Command) -> bytes:
        """Register ``command`` as sent and return its bytes.

        Raises:
            LocalProtocolError: the command is not allowed in the current state, or another
                command is awaiting its reply and the server did not offer PIPELINING.
        """
        kind = command.verb
        if kind == "BDAT" and command.phase is Phase.MESSAGE:
            kind = "BDAT LAST"
        self._state = self._check(kind)
        self._pending.append(command)
        self._transcript.append(command)
        if command.secrets:
            self._mask.add(command.secrets)
            self._masking = True
        return command.wire

    def send_chunk(self, data: bytes, *, last: bool) -> bytes:
        """``BDAT`` with its chunk (RFC 3030 §2): the command line followed by ``data``."""
        command = Command.bdat(len(data), last=last)
        header = self.send(command)
        self._transcript.append(len(data))  # "C: <n octets of message content>"
        return header + data

    def send_content(self, data: bytes) -> bytes:
        """The whole message content after ``354``: normalised, dot-stuffed, terminated."""
        return self.content(data) + self.end_content()

    def content(self, chunk: bytes) -> bytes:
        """Part of the message content after ``354`` (see :class:`ContentEncoder`)."""
        if self._state is not State.CONTENT:
            raise LocalProtocolError(
                f"cannot send message content in state {self._state.value!r}: "
                "content follows a 354 reply to DATA"
            )
        if self._encoder is None:
            self._encoder = ContentEncoder()
        return self._encoder.encode(chunk)

    def end_content(self) -> bytes:
        """The terminating ``CRLF.CRLF``; the server's final reply becomes pending."""
        if self._state is not State.CONTENT:
            raise LocalProtocolError(f"cannot end message content in state {self._state.value!r}")
        encoder = self._encoder or ContentEncoder()
        tail = encoder.finish()
        octets = encoder.octets
        self._encoder = None
        self._check(".")
        self._state = State.READY
        self._pending.append(_END_OF_DATA)
        self._transcript.append(octets)  # "C: <n octets of message content>"
        self._transcript.append(_END_OF_DATA)  # "C: ."
        return tail

    def _check(self, kind: str) -> State:
        next_state = SEND.get((self._state, kind))
        shown = kind or "an AUTH continuation"
        if next_state is None:
            raise LocalProtocolError(f"cannot send {shown} in state {self._state.value!r}")
        if self._pending and not self._pipelining:
            raise LocalProtocolError(
                f"cannot send {shown} while {self._pending[0].redacted!r} awaits its reply: "
                "the server did not offer PIPELINING"
            )
        return next_state

    # -- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means the server closed the stream."""
        if not data:
            self._eof = True
            return
        try:
            self._parser.feed(data)
        except RemoteProtocolError:
            self._state = State.CLOSED
            raise

    def next_event(self) -> Event:
        """The next event: a :class:`ReplyReceived`, :class:`ConnectionClosed` or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the server sent malformed data, or a reply that makes no
                sense for the command it answers (e.g. ``250`` to ``DATA``).
        """
        answers_auth = self._masking and self._answers_auth()
        try:
            # A reply to AUTH may echo a secret: it is masked below and never cached.
            reply = self._parser.next_reply(remember=not answers_auth)
        except RemoteProtocolError as error:
            self._state = State.CLOSED
            if answers_auth:
                # A malformed line is quoted in the message: it may be an echo of AUTH.
                raise RemoteProtocolError(self._mask.text(error.message)) from None
            raise
        if reply is None:
            if self._eof:
                self._state = State.CLOSED
                unanswered = tuple(c for c in self._pending if c is not _GREETING)
                self._pending.clear()
                return ConnectionClosed(unanswered)
            return NEED_DATA
        if answers_auth:
            reply = self._mask.reply(reply)
        self._transcript.append(reply)
        if not self._pending:
            if reply.code == 421:
                self._state = State.CLOSED
            return ReplyReceived(None, reply)
        command = self._pending.popleft()
        self._on_reply(command, reply)
        return _received(command, reply)

    def _answers_auth(self) -> bool:
        """Whether the next reply answers an AUTH line (or its continuation)."""
        return bool(self._pending) and self._pending[0].verb in ("AUTH", "")

    def _on_reply(self, command: Command, reply: Reply) -> None:
        kind = command.verb  # BDAT (LAST) is not synchronising: _kind would change nothing
        if kind in SYNCHRONISING and self._state is not State.CLOSED:
            next_state = ON_REPLY.get((self._state, ReplyKind.of(reply.code)))
            if next_state is None:
                self._state = State.CLOSED
                raise RemoteProtocolError(
                    f"unexpected reply {reply.code} to {command.redacted or 'AUTH continuation'}"
                )
            if kind in ("EHLO", "HELO") and next_state is State.READY:
                self._extensions = extensions = (
                    Extensions.from_reply(reply) if kind == "EHLO" else Extensions(reply.lines[0])
                )
                self._pipelining = extensions.pipelining
            if kind in ("AUTH", "") and reply.code == 235:
                self._authenticated = True
            self._state = next_state
        if reply.code == 421:
            # RFC 5321 §3.8: 421 means the server is closing the channel, whatever the
            # command (a 421 greeting or a 421 to EHLO too).
            self._state = State.CLOSED

    # -- TLS and closing -----------------------------------------------------------------

    def tls_established(self) -> int:
        """Record that the TLS handshake after ``220`` to STARTTLS succeeded.

        Discards any plaintext still buffered and the pre-TLS capabilities (RFC 3207 §4.2):
        the client must send EHLO again. Returns how many buffered bytes were dropped.
        """
        if self._state is not State.TLS_HANDSHAKE:
            raise LocalProtocolError(
                f"cannot complete TLS in state {self._state.value!r}: no 220 reply to STARTTLS"
            )
        dropped = self._parser.discard()
        if dropped:
            self._transcript.append(f"-- discarded {dropped} octets sent in plaintext after 220")
        self._extensions = None
        self._pipelining = False
        self._authenticated = False
        self._state = State.GREETED
        self._transcript.append("-- TLS established")
        return dropped

    def mark_closed(self) -> None:
        """Record that the stream is gone (the driver closed it or it broke)."""
        self._state = State.CLOSED
        self._pending.clear()
        self._encoder = None

"""The fake server's mail transaction: MAIL, RCPT, DATA, BDAT and the end of the content.

Job: :class:`MailCommands` answers the commands of one mail transaction as a strict
submission server does (RFC 5321 §3.3, RFC 3030 for BDAT, RFC 1870 for SIZE), with the
envelope rules shared with LocalServer (:mod:`smtpkit.testing._envelope`), and hands the
received message to the transport's records. Following one RCPT means reading
:meth:`MailCommands._cmd_rcpt` here, ``parse_rcpt`` there, and ``_answer`` in
:mod:`smtpkit.testing._fake_core`.

A pipelined transaction, as the fake answers it (one flight, then the replies)::

    C: MAIL FROM:<a@example.com>
    C: RCPT TO:<b@example.com>
    C: DATA
    S: 250 2.1.0 OK
    S: 250 2.1.5 OK
    S: 354 End data with <CR><LF>.<CR><LF>
    C: <1234 octets>
    C: .
    S: 250 2.0.0 OK: queued as FAKE0001

Invariants:
    * A refused RCPT adds no recipient; a refused DATA opens no content phase; a refused
      MAIL opens no transaction; the transaction ends after the final content reply.
    * ``BDAT n [LAST]`` reads exactly ``n`` octets whatever the verdict, with one reply per
      chunk (RFC 3030 §2); a malformed size is refused at once (``501``).
    * Content whose final reply never goes out (a scripted disconnect or timeout at
      ``"message"``) is kept as dropped, never as accepted.
"""

from __future__ import annotations

from smtpkit.replies import Phase, Reply
from smtpkit.testing._envelope import (
    Refused,
    content_problem,
    parse_bdat,
    parse_mail,
    parse_rcpt,
)
from smtpkit.testing._fake_core import SessionCore, Transaction
from smtpkit.testing._fake_wire import Mode
from smtpkit.testing._record import ReceivedMessage, parse_content
from smtpkit.testing._script import ScriptAction

__all__ = ["MailCommands"]


class MailCommands(SessionCore):
    """MAIL, RCPT, DATA and BDAT for one connection."""

    def _cmd_mail(self, arg: str) -> None:
        if self._helo is None:
            self._reply(503, "5.5.1", "Error: send HELO/EHLO first")
            return
        if self._tx.active:
            self._reply(503, "5.5.1", "Error: nested MAIL command")
            return
        parsed = parse_mail(arg, esmtp=self._esmtp, offered=self.config.capabilities)
        if isinstance(parsed, Refused):
            self._refuse(parsed)
            return
        sender, options = parsed
        policy = None
        if self.config.require_auth and self._auth is None:
            policy = (530, "5.7.0", "Authentication required")
        default = self._reply_obj(*(policy or (250, "2.1.0", "OK")))
        if self._answer(Phase.MAIL, default, f"MAIL {arg}"):
            self._tx = Transaction(active=True, sender=sender, options=options)
        else:
            self._tx = Transaction()

    def _refuse(self, refused: Refused) -> None:
        if refused.mistake is not None:
            self._mistake(refused.mistake)
        self._reply(*refused.spec)

    def _cmd_rcpt(self, arg: str) -> None:
        tx = self._tx
        if not tx.active:
            self._reply(503, "5.5.1", "Error: need MAIL command")
            return
        parsed = parse_rcpt(
            arg,
            esmtp=self._esmtp,
            offered=self.config.capabilities,
            smtputf8="SMTPUTF8" in tx.options,
        )
        if isinstance(parsed, Refused):
            self._refuse(parsed)
            return
        address, options = parsed
        limit = self.config.max_recipients
        policy = (250, "2.1.5", "OK")
        if limit is not None and len(tx.recipients) >= limit:
            policy = (452, "4.5.3", "Too many recipients")
        reply = self._reply_obj(*policy)
        if self._answer(Phase.RCPT, reply, f"RCPT {arg}", recipient=address):
            tx.recipients.append(address)
            tx.rcpt_options.append(options)

    def _cmd_data(self, arg: str) -> None:
        error: tuple[int, str, str] | None = None
        if arg:
            error = (501, "5.5.4", "Syntax: DATA")
        elif not self._tx.active:
            error = (503, "5.5.1", "Error: need MAIL command")
        elif self._tx.chunked:
            error = (503, "5.5.1", "Error: DATA after BDAT")
        elif not self._tx.recipients:
            error = (554, "5.5.1", "Error: no valid recipients")
        if error is not None:
            self._reply(*error, sync="DATA")
            return
        go = Reply(354, ("End data with <CR><LF>.<CR><LF>",))
        if self._answer(Phase.DATA, go, "DATA", sync=True, success=3):
            self.mode = Mode.CONTENT
            self.content.clear()

    def _cmd_bdat(self, arg: str) -> None:
        parsed = parse_bdat(arg)
        if parsed is None:
            self._mistake(f"malformed BDAT arguments {arg[:40]!r} (RFC 3030 §2)")
            self._reply(501, "5.5.4", "Syntax: BDAT count [LAST]")
            return
        tx = self._tx
        size, tx.last = parsed
        tx.chunk_error = None
        if not self.config.capabilities.chunking:
            self._mistake("BDAT sent but CHUNKING was not advertised (RFC 3030 §2)")
            tx.chunk_error = (502, "5.5.1", "Error: command not implemented")
        elif not tx.active:
            tx.chunk_error = (503, "5.5.1", "Error: need MAIL command")
        elif not tx.recipients:
            tx.chunk_error = (554, "5.5.1", "Error: no valid recipients")
        if tx.chunk_error is None and not tx.chunked:
            tx.chunked = True
            self.content.clear()
        self._start_chunk(size, keep=tx.chunk_error is None)

    def _chunk_done(self) -> None:
        tx = self._tx
        if tx.chunk_error is not None:
            self._reply(*tx.chunk_error)
            return
        if tx.last:
            self._end_content(bytes(self.content), chunked=True)
            return
        size = self.config.capabilities.size
        if size and len(self.content) > size:
            self._tx = Transaction()
            self._reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            return
        ok = self._reply_obj(250, "2.0.0", f"{self._chunk_size} octets received")
        if not self._answer(Phase.DATA, ok, f"BDAT {self._chunk_size}"):
            self._tx = Transaction()

    def _end_content(self, raw: bytes, *, chunked: bool) -> None:
        self.mode = Mode.COMMAND
        tx, self._tx = self._tx, Transaction()
        self.content = bytearray()
        received = ReceivedMessage(
            sender=tx.sender,
            recipients=tuple(tx.recipients),
            raw=raw,
            message=parse_content(raw),
            auth_user=self._auth[0] if self._auth else None,
            auth_mechanism=self._auth[1] if self._auth else None,
            tls=self.encrypted,
            mail_options=tx.options,
            rcpt_options=tuple(tx.rcpt_options),
            chunked=chunked,
            connection=self.number,
        )
        policy = content_problem(
            raw, offered=self.config.capabilities, mail_options=tx.options, mistake=self._mistake
        )
        default = self._reply_obj(*(policy or (250, "2.0.0", "OK: queued as {id}")))
        step = self._events.take_script(Phase.MESSAGE, None)
        if step is not None and step.action is not ScriptAction.REPLY:
            self._events.received(received, accepted=False)
        reply = self._scripted(step, default, "the end of the message content", phase=Phase.MESSAGE)
        if reply is None:
            return
        if reply.code // 100 == 2:
            kept = self._events.received(received, accepted=True)
            queue_id = kept.queue_id or ""
            reply = Reply(reply.code, tuple(x.replace("{id}", queue_id) for x in reply.lines))
        self._send(reply)

"""The fake server's command semantics: what each SMTP command does to one session.

Job: :class:`ServerSession` answers EHLO/HELO, STARTTLS, AUTH, MAIL, RCPT, DATA, BDAT, RSET,
NOOP and QUIT as a strict submission server does (RFC 5321, 3207, 4954, 3030, 1870, 6531),
consulting the test's script before each reply. The byte handling lives in
:mod:`smtpkit.testing._fake_wire`.

A typical session, as the fake answers it::

    S: 220 fake.smtpkit.test ESMTP
    C: EHLO client.example.com
    S: 250-fake.smtpkit.test at your service, [client.example.com]
    S: 250-STARTTLS ... (see FakeCapabilities)
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
    (TLS handshake; the session starts over)
    C: EHLO client.example.com
    S: 250-... AUTH PLAIN LOGIN ...
    C: AUTH PLAIN ****
    S: 235 2.7.0 Authentication successful
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
    * Sequencing errors are ``503``, syntax errors ``501``, unknown parameters ``555``.
    * A scripted reply replaces the server's own; the command succeeds only when its code is
      of the class the server would have sent (``354`` for DATA, ``2xx`` otherwise).
    * A refused RCPT adds no recipient; a refused DATA opens no content phase; a refused
      MAIL opens no transaction; the transaction ends after the final content reply.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from smtpkit.replies import Phase, Reply
from smtpkit.testing._fake_auth import SaslServer, Verdict, decode_response, start_exchange
from smtpkit.testing._fake_script import FakeTLS, ScriptAction
from smtpkit.testing._fake_tx import Transaction, check_mail, check_rcpt
from smtpkit.testing._fake_wire import (
    Mode,
    ReceivedContent,
    ServerConfig,
    SessionEvents,
    WireSession,
)

__all__ = ["ServerSession"]

_BDAT_RE = re.compile(r"^([0-9]{1,10})(?: +(LAST))?$", re.IGNORECASE)


class ServerSession(WireSession):
    """One connection's SMTP server: the wire layer plus the meaning of each command."""

    def __init__(
        self, config: ServerConfig, events: SessionEvents, *, number: int, encrypted: bool
    ) -> None:
        super().__init__(config, events, number=number, encrypted=encrypted)
        self._sasl: SaslServer | None = None
        self._sasl_mechanism = ""
        self._sasl_plain_ir = False

    # -- commands -------------------------------------------------------------------------

    def _command(self, text: str) -> None:
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        shown = text
        if verb == "AUTH":
            parts = arg.split(" ", 1)
            shown = f"AUTH {parts[0]} ****" if len(parts) > 1 else text
        self._log(f"C: {shown}")
        if self._refused and verb not in ("QUIT", "NOOP"):
            self._reply(503, "5.5.1", "Error: the greeting refused service; send QUIT")
            return
        handler = self._handlers().get(verb)
        if handler is None:
            self._reply(500, "5.5.1", "Error: command not recognized")
            return
        handler(arg)

    def _handlers(self) -> dict[str, Callable[[str], None]]:
        return {
            "EHLO": lambda a: self._ehlo(a, esmtp=True),
            "HELO": lambda a: self._ehlo(a, esmtp=False),
            "STARTTLS": self._starttls,
            "AUTH": self._auth_start,
            "MAIL": self._mail,
            "RCPT": self._rcpt,
            "DATA": self._data,
            "BDAT": self._bdat,
            "RSET": self._rset,
            "NOOP": self._noop,
            "QUIT": self._quit,
            "VRFY": lambda a: self._reply(252, "2.0.0", "Cannot VRFY; send some mail"),
            "HELP": lambda a: self._reply(214, "2.0.0", "See RFC 5321"),
        }

    def _ehlo(self, arg: str, *, esmtp: bool) -> None:
        verb = "EHLO" if esmtp else "HELO"
        if not arg.strip() or " " in arg.strip():
            self._reply(501, "5.5.4", f"Syntax: {verb} hostname", sync=verb)
            return
        self._tx = Transaction()  # RFC 5321 §4.1.4: EHLO resets the transaction
        caps = self.config.capabilities
        lines = [f"{self.config.hostname} at your service, [{arg.strip()}]"]
        if esmtp:
            lines += caps.keywords(encrypted=self.encrypted, auth_allowed=self._auth_allowed())
        if self._answer(Phase.EHLO, Reply(250, tuple(lines)), f"{verb} {arg}", sync=True):
            self._helo, self._esmtp = arg.strip(), esmtp

    def _auth_allowed(self) -> bool:
        return self.encrypted or not self.config.auth_requires_tls

    def _starttls(self, arg: str) -> None:
        caps = self.config.capabilities
        if arg:
            self._reply(501, "5.5.4", "Syntax: STARTTLS", sync="STARTTLS")
        elif self.encrypted:
            self._reply(503, "5.5.1", "Error: TLS already active", sync="STARTTLS")
        elif not caps.starttls or not self._esmtp:
            why = "send EHLO first" if caps.starttls else "STARTTLS not offered"
            self._reply(503 if caps.starttls else 502, "5.5.1", f"Error: {why}", sync="STARTTLS")
        else:
            ready = Reply(220, ("2.0.0 Ready to start TLS",))
            if self.config.tls is FakeTLS.UNAVAILABLE:
                ready = Reply(454, ("4.7.0 TLS not available",))
            if self._answer(Phase.STARTTLS, ready, "STARTTLS", sync=True):
                self.mode = Mode.TLS
                self._tx = Transaction()

    def _auth_start(self, arg: str) -> None:
        mechanism, _, initial_text = arg.partition(" ")
        mechanism = mechanism.upper()
        caps = self.config.capabilities
        error: tuple[int, str, str] | None = None
        if not self._esmtp:
            error = (503, "5.5.1", "Error: send EHLO first")
        elif not caps.auth:
            error = (503, "5.5.1", "Error: authentication not enabled")
        elif not self._auth_allowed():
            error = (530, "5.7.0", "Must issue a STARTTLS command first")
        elif self._auth is not None:
            error = (503, "5.5.1", "Error: already authenticated")
        elif self._tx.active:
            error = (503, "5.5.1", "Error: MAIL transaction in progress")
        elif mechanism not in caps.auth:
            error = (504, "5.5.4", "Unrecognized authentication type")
        initial = decode_response(initial_text) if initial_text else None
        if error is None and initial_text and initial is None:
            error = (501, "5.5.2", "Cannot decode the initial response")
        if error is not None:
            self._reply(*error, sync="AUTH")
            return
        self._sasl_mechanism = mechanism
        # RFC 4954 §4: only AUTH PLAIN with an initial response may be pipelined.
        self._sasl_plain_ir = mechanism == "PLAIN" and initial is not None
        self._sasl = start_exchange(mechanism, initial, self.config.credentials)
        self._sasl_step(None)

    def _auth_continue(self, text: str) -> None:
        self._log("C: " + (text if text in ("", "*") else "****"))
        sasl = self._sasl
        assert sasl is not None  # AUTH mode implies a running exchange
        if text == "*":
            sasl.close()
            self._end_auth()
            self._reply(501, "5.7.0", "Authentication cancelled", sync="AUTH")
            return
        response = decode_response(text) if text else b""
        if response is None:
            sasl.close()
            self._end_auth()
            self._reply(501, "5.5.2", "Cannot decode the response", sync="AUTH")
            return
        self._sasl_step(response)

    def _sasl_step(self, response: bytes | None) -> None:
        sasl = self._sasl
        assert sasl is not None
        try:
            challenge = next(sasl) if response is None else sasl.send(response)
        except StopIteration as stop:
            self._end_auth()
            self._auth_verdict(stop.value)
            return
        self.mode = Mode.AUTH
        self._send(Reply(334, (challenge,)), sync="AUTH (334 challenge)")

    def _end_auth(self) -> None:
        self._sasl = None
        if self.mode is Mode.AUTH:
            self.mode = Mode.COMMAND

    def _auth_verdict(self, verdict: Verdict) -> None:
        mechanism = self._sasl_mechanism
        sync = None if self._sasl_plain_ir else "AUTH"
        if verdict.malformed:
            self._events.auth_attempt(mechanism, None, False)
            self._reply(501, "5.5.2", f"Malformed {mechanism} response", sync=sync)
            return
        if verdict.success:
            default = self._reply_obj(235, "2.7.0", "Authentication successful")
        elif verdict.oauth:
            default = self._reply_obj(535, "5.7.8", "Username and Password not accepted.")
        else:
            default = self._reply_obj(535, "5.7.8", "Authentication credentials invalid")
        step = self._events.take_script(Phase.AUTH, None)
        reply = self._scripted(step, default, f"AUTH {mechanism}", phase=Phase.AUTH)
        if reply is None:
            return
        success = reply.code // 100 == 2
        self._events.auth_attempt(mechanism, verdict.username, success)
        self._send(reply, sync=sync)
        if success and verdict.username is not None:
            self._auth = (verdict.username, mechanism)

    def _mail(self, arg: str) -> None:
        parsed, error = check_mail(
            arg, self._tx, helo=self._helo, esmtp=self._esmtp, config=self.config
        )
        if parsed is None:
            self._reply(*(error or (501, "5.5.4", "Syntax: MAIL FROM:<address>")))
            return
        policy = None
        if self.config.require_auth and self._auth is None:
            policy = (530, "5.7.0", "Authentication required")
        default = self._reply_obj(*(policy or (250, "2.1.0", "OK")))
        if self._answer(Phase.MAIL, default, f"MAIL {arg}"):
            self._tx.begin(*parsed)
        else:
            self._tx = Transaction()

    def _rcpt(self, arg: str) -> None:
        address, error = check_rcpt(arg, self._tx, esmtp=self._esmtp, config=self.config)
        if error is not None:
            self._reply(*error)
            return
        limit = self.config.max_recipients
        policy = (250, "2.1.5", "OK")
        if limit is not None and len(self._tx.recipients) >= limit:
            policy = (452, "4.5.3", "Too many recipients")
        reply = self._reply_obj(*policy)
        if self._answer(Phase.RCPT, reply, f"RCPT {arg}", recipient=address):
            self._tx.recipients.append(address)

    def _data(self, arg: str) -> None:
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
            self._tx.content.clear()

    def _bdat(self, arg: str) -> None:
        match = _BDAT_RE.match(arg)
        if match is None:
            self._reply(501, "5.5.4", "Syntax: BDAT count [LAST]")
            return
        self._chunk_left = int(match.group(1))
        self._chunk_last = match.group(2) is not None
        self._tx.last_chunk = self._chunk_left
        self._tx.chunk_error = None
        if not self.config.capabilities.chunking:
            self._mistake("BDAT sent but CHUNKING was not advertised (RFC 3030 §2)")
            self._tx.chunk_error = (502, "5.5.1", "Error: command not implemented")
        elif not self._tx.active:
            self._tx.chunk_error = (503, "5.5.1", "Error: need MAIL command")
        elif not self._tx.recipients:
            self._tx.chunk_error = (554, "5.5.1", "Error: no valid recipients")
        if not self._tx.chunk_error and not self._tx.chunked:
            self._tx.chunked = True
            self._tx.content.clear()
        self.mode = Mode.CHUNK
        if self._chunk_left == 0:
            self._take_chunk()

    def _chunk_done(self) -> None:
        error = self._tx.chunk_error
        if error is not None:
            self._reply(*error)
            return
        if self._chunk_last:
            self._end_content(bytes(self._tx.content), chunked=True)
            return
        size = self.config.capabilities.size
        if size and len(self._tx.content) > size:
            self._tx = Transaction()
            self._reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            return
        ok = self._reply_obj(250, "2.0.0", f"{self._tx.last_chunk} octets received")
        if not self._answer(Phase.DATA, ok, f"BDAT {self._tx.last_chunk}"):
            self._tx = Transaction()

    def _end_content(self, raw: bytes, *, chunked: bool) -> None:
        self.mode = Mode.COMMAND
        tx, self._tx = self._tx, Transaction()
        if not chunked:
            self._log(f"C: <{len(raw)} octets>")
            self._log("C: .")
        content = ReceivedContent(
            sender=tx.sender,
            recipients=tuple(tx.recipients),
            raw=raw,
            mail_options=tuple(tx.options),
            auth_user=self._auth[0] if self._auth else None,
            auth_mechanism=self._auth[1] if self._auth else None,
            tls=self.encrypted,
            chunked=chunked,
            connection=self.number,
        )
        policy = tx.content_problem(raw, self.config, self._mistake)
        default = self._reply_obj(*(policy or (250, "2.0.0", "OK: queued as {id}")))
        step = self._events.take_script(Phase.MESSAGE, None)
        if step is not None and step.action is not ScriptAction.REPLY:
            self._events.message(content, accepted=False)
        reply = self._scripted(step, default, "the end of the message content", phase=Phase.MESSAGE)
        if reply is None:
            return
        if reply.code // 100 == 2:
            queue_id = self._events.message(content, accepted=True)
            reply = Reply(reply.code, tuple(x.replace("{id}", queue_id) for x in reply.lines))
        self._send(reply)

    def _rset(self, arg: str) -> None:
        if arg:
            self._reply(501, "5.5.4", "Syntax: RSET")
            return
        self._tx = Transaction()
        self._answer(Phase.RSET, self._reply_obj(250, "2.0.0", "OK"), "RSET")

    def _noop(self, arg: str) -> None:
        self._answer(Phase.NOOP, self._reply_obj(250, "2.0.0", "OK"), "NOOP", sync=True)

    def _quit(self, arg: str) -> None:
        bye = self._reply_obj(221, "2.0.0", "Bye")
        self._answer(Phase.QUIT, bye, "QUIT", sync=True)
        if self.mode is not Mode.HUNG:
            self.close("QUIT")

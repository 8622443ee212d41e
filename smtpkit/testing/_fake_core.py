"""The fake server's session: its state, how a reply is chosen, and the session commands.

Job: :class:`SessionCore` holds what one connection's server knows (HELO name, AUTH, the
mail transaction), answers the commands that shape the session - greeting, EHLO/HELO,
STARTTLS, RSET, NOOP, QUIT - and decides every reply through :meth:`SessionCore._answer`:
the test's script first, the server's own reply otherwise. AUTH lives in
:mod:`smtpkit.testing._fake_auth`, MAIL/RCPT/DATA/BDAT in :mod:`smtpkit.testing._fake_mail`;
a command ``FOO`` is handled by the method ``_cmd_foo``.

Invariants:
    * Sequencing errors are ``503``, syntax errors ``501``, unknown commands ``500``.
    * A scripted reply replaces the server's own; the command succeeds only when its code is
      of the class the server would have sent (``354`` for DATA, ``2xx`` otherwise).
    * After a refused greeting only QUIT and NOOP are served (RFC 5321 §3.1).
    * After STARTTLS everything learnt in plaintext is forgotten (RFC 3207 §4.2): EHLO is
      needed again, AUTH and the transaction are reset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from smtpkit.replies import Phase, Reply
from smtpkit.testing._envelope import ReplySpec
from smtpkit.testing._fake_config import FakeTLS, ServerConfig
from smtpkit.testing._fake_wire import Mode, SessionEvents, Wire
from smtpkit.testing._script import ScriptAction, Scripted

__all__ = ["SessionCore", "Transaction"]


@dataclass
class Transaction:
    """The mail transaction in progress (RFC 5321 §3.3); a fresh one is inactive."""

    active: bool = False
    sender: str = ""
    options: tuple[str, ...] = ()
    recipients: list[str] = field(default_factory=list)
    rcpt_options: list[tuple[str, ...]] = field(default_factory=list)
    chunked: bool = False  # BDAT was used: DATA is no longer allowed (RFC 3030 §3)
    last: bool = False  # the chunk being read is BDAT ... LAST
    chunk_error: ReplySpec | None = None  # the reply a refused chunk gets once read


class SessionCore(Wire):
    """One connection's server state, reply choice and session commands."""

    def __init__(
        self, config: ServerConfig, events: SessionEvents, *, number: int, encrypted: bool
    ) -> None:
        super().__init__(config, events, number=number)
        self.encrypted = encrypted
        self._refused = False  # greeted with 554: only QUIT is served (RFC 5321 §3.1)
        self._helo: str | None = None
        self._esmtp = False
        self._auth: tuple[str, str] | None = None  # (user, mechanism)
        self._tx = Transaction()

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

    def tls_established(self) -> None:
        """The handshake succeeded: forget the plaintext session (RFC 3207 §4.2)."""
        self.encrypted = True
        self.mode = Mode.COMMAND
        self._in.clear()
        self._helo, self._esmtp, self._auth = None, False, None
        self._tx = Transaction()
        self._log("* TLS established; the session starts over (RFC 3207 §4.2)")

    # -- choosing a reply -----------------------------------------------------------------

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

        With ``phase``, a scripted delay for it holds the reply back (see ``Wire.wait``).
        """
        reply = self._scripted_reply(step, default, what)
        if reply is not None and phase is not None:
            delay = self._events.take_delay(phase, recipient)
            if delay is not None and delay.seconds is not None:
                self._hold_next(delay.seconds, what)
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
        handler: Callable[[str], None] | None = (
            getattr(self, f"_cmd_{verb.lower()}", None) if verb.isalpha() else None
        )
        if handler is None:
            self._reply(500, "5.5.1", "Error: command not recognized")
            return
        handler(arg)

    def _cmd_ehlo(self, arg: str) -> None:
        self._hello(arg, esmtp=True)

    def _cmd_helo(self, arg: str) -> None:
        self._hello(arg, esmtp=False)

    def _hello(self, arg: str, *, esmtp: bool) -> None:
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

    def _cmd_starttls(self, arg: str) -> None:
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

    def _cmd_rset(self, arg: str) -> None:
        if arg:
            self._reply(501, "5.5.4", "Syntax: RSET")
            return
        self._tx = Transaction()
        self._answer(Phase.RSET, self._reply_obj(250, "2.0.0", "OK"), "RSET")

    def _cmd_noop(self, arg: str) -> None:
        self._answer(Phase.NOOP, self._reply_obj(250, "2.0.0", "OK"), "NOOP", sync=True)

    def _cmd_quit(self, arg: str) -> None:
        bye = self._reply_obj(221, "2.0.0", "Bye")
        self._answer(Phase.QUIT, bye, "QUIT", sync=True)
        if self.mode is not Mode.HUNG:
            self.close("QUIT")

    def _cmd_vrfy(self, arg: str) -> None:
        self._reply(252, "2.0.0", "Cannot VRFY; send some mail")

    def _cmd_help(self, arg: str) -> None:
        self._reply(214, "2.0.0", "See RFC 5321")

"""LocalServer's SMTP protocol: aiosmtpd's, with scripting at every phase, the envelope rules
the fake uses, CHUNKING (BDAT) and switchable extensions.

Job: :class:`LocalSMTP` is the aiosmtpd ``SMTP`` subclass each connection runs. It decides
every reply the way the fake does - the test's script first (:meth:`LocalSMTP.decide`), then
the ``faults`` hook, then the server's own answer - and plays ``disconnect`` (abort without
a reply), ``timeout`` (never answer) and ``delay`` (really wait) on real sockets. MAIL and
RCPT follow :mod:`smtpkit.testing._envelope`, so both test servers refuse the same
parameters. BDAT lives in :mod:`smtpkit.testing._server_chunking`.

Where each phase is decided: the greeting and the final AUTH reply in :meth:`LocalSMTP.push`
(aiosmtpd sends them itself), MAIL, RCPT, DATA and STARTTLS in the ``smtp_*`` overrides
here, EHLO/HELO, RSET, NOOP, QUIT and the end of the content in the handler's hooks
(:mod:`smtpkit.testing._server_handler`).

Invariants:
    * A reply whose last line starts with ``421`` closes the connection after it is sent
      (RFC 5321 §3.8), whoever composed it.
    * A refused MAIL opens no transaction, a refused RCPT adds no recipient, a refused DATA
      reads no content; a scripted reply of the success class succeeds.
    * Content whose final reply never goes out (scripted disconnect or timeout at
      ``"message"``, or the ``faults`` hook's DISCONNECT) is kept in ``dropped``; the hook's
      DROP and the deprecated ``drop_connection_after_data`` keep it in ``messages`` as they
      always did.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any, NoReturn

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from smtpkit.replies import Phase
from smtpkit.testing._envelope import Refused, content_problem, parse_mail, parse_rcpt
from smtpkit.testing._record import AuthAttempt, ReceivedMessage, parse_content
from smtpkit.testing._script import ScriptAction
from smtpkit.testing._server_chunking import receive_chunk
from smtpkit.testing._server_handler import (
    AUTH_REQUIRED_REPLY,
    Handler,
    Identity,
    LocalSession,
    drop_connection,
)
from smtpkit.testing._server_state import DISCONNECT, DROP, FailurePhase, ServerState

__all__ = ["SASL_LINE_LIMIT", "Extensions", "LocalEnvelope", "LocalSMTP"]

#: RFC 4954 §4: servers must accept SASL client responses of at least 12288 octets.
SASL_LINE_LIMIT = 12288 + 2  # plus CRLF


@dataclass(frozen=True, slots=True)
class Extensions:
    """What LocalServer offers beyond aiosmtpd's defaults (implements ``Offered``)."""

    size: int | None
    eight_bit_mime: bool
    smtputf8: bool
    dsn: bool
    auth: tuple[str, ...]
    pipelining: bool
    chunking: bool
    require_auth: bool
    implicit_tls: bool


class LocalEnvelope(Envelope):
    """aiosmtpd's envelope plus what the fake's records carry."""

    def __init__(self) -> None:
        super().__init__()
        self.rcpt_params: list[tuple[str, ...]] = []
        self.chunks = bytearray()
        self.chunked = False  # BDAT was used: DATA is refused (RFC 3030 §3)
        self.overflow = False  # BDAT chunks went past SIZE: discarded, refused at the end


def _last_line(status: str | bytes) -> str:
    text = status if isinstance(status, str) else status.decode("utf-8", "replace")
    return text.rsplit("\r\n", 1)[-1]


class LocalSMTP(SMTP):
    """aiosmtpd's protocol with scripting, shared envelope rules, BDAT and tracking."""

    # SMTP.__init__ sizes its StreamReader from this class attribute; the instance attribute
    # set below restores RFC 5321's 1000-octet (+ dot) limit for message lines, which
    # smtp_DATA checks explicitly. Command lines stay capped at 512 by command_size_limit.
    line_length_limit = SASL_LINE_LIMIT

    def __init__(
        self,
        handler: Handler,
        *,
        sessions: set[LocalSMTP],
        extensions: Extensions,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.line_length_limit = SMTP.line_length_limit
        # aiosmtpd keeps these limits in one class-level dict that every new session clears
        # and every EHLO raises: one per session keeps a DSN server's larger limits its own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.extensions = extensions
        self.state: ServerState = handler.state
        self._sessions = sessions
        self._greeted = False
        self._replace_next: str | None = None
        self.number = 0

    # -- aiosmtpd's hooks for its own objects ------------------------------------------------

    def _create_session(self) -> Session:
        return LocalSession(self.loop)

    def _create_envelope(self) -> Envelope:
        return LocalEnvelope()

    def env(self) -> LocalEnvelope:
        """The current envelope, typed."""
        envelope = self.envelope
        assert isinstance(envelope, LocalEnvelope)
        return envelope

    def local_session(self) -> LocalSession:
        """The current session, typed."""
        session = self.session
        assert isinstance(session, LocalSession)
        return session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        if self.number == 0:  # connection_made runs again after STARTTLS
            # The controller's own check that the server answers is connection -1.
            self.number = self.state.records.connection_opened() if self.state.ready else -1
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    # -- deciding a reply --------------------------------------------------------------------

    async def decide(
        self, phase: Phase, recipient: str | None = None, *, fault: FailurePhase | None = None
    ) -> str | None:
        """The scripted (or fault-hook) reply for ``phase`` as sent, or ``None`` for the
        server's own. A scripted disconnect or timeout never returns; a delay waits here."""
        step = self.state.take_step(phase, recipient)
        wire: str | None = None
        if step is not None and step.action is ScriptAction.DISCONNECT:
            await drop_connection(self)
        if step is not None and step.action is ScriptAction.TIMEOUT:
            await self.hang()
        if step is not None and step.reply is not None:
            wire = step.reply.to_bytes().decode("utf-8")[:-2]
        elif fault is not None:
            wire = self.state.ask_faults(fault)
            if wire in (DROP, DISCONNECT):
                await drop_connection(self)
        await self.wait(self.state.take_delay(phase, recipient))
        return wire

    async def wait(self, seconds: float) -> None:
        """Hold a reply back (a scripted delay): the client waits, really."""
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def hang(self) -> NoReturn:
        """Never answer (a scripted timeout); the task ends when the client hangs up."""
        await asyncio.Event().wait()
        raise AssertionError("unreachable: the session task is cancelled")  # pragma: no cover

    def reset_transaction(self) -> None:
        """Forget the envelope (after the content, or a refused BDAT chunk)."""
        self._set_post_data_state()  # type: ignore[no-untyped-call]

    def mistake(self, text: str) -> None:
        """Record a client mistake, as the fake's ``protocol_errors`` do."""
        self.state.records.protocol_error(f"connection {self.number}: {text}")

    async def push(self, status: str | bytes) -> None:
        if not self._greeted:
            self._greeted = True
            if self.number > 0:
                status = await self.decide(Phase.GREETING) or status
        elif self._replace_next is not None:
            status, self._replace_next = self._replace_next, None
        elif self.local_session().auth_verdict is not None and not _last_line(status).startswith(
            "334"
        ):
            status = await self._final_auth_reply(status)
        if isinstance(status, str):
            await super().push(status)
        else:
            await super().push(status)
        if _last_line(status).startswith("421") and self.transport is not None:
            self.transport.close()  # RFC 5321 §3.8: 421 closes the channel

    async def _final_auth_reply(self, status: str | bytes) -> str | bytes:
        session = self.local_session()
        verdict, session.auth_verdict = session.auth_verdict, None
        assert verdict is not None
        status = await self.decide(Phase.AUTH) or status
        success = _last_line(status).startswith("2")
        self.state.records.auth_attempt(AuthAttempt(verdict.mechanism, verdict.username, success))
        if success and not session.authenticated and verdict.username is not None:
            session.authenticated = True
            # aiosmtpd declares auth_data without a type; it holds what AUTH stored.
            session.auth_data = Identity(verdict.username, verdict.mechanism)  # type: ignore[assignment]
        elif not success:
            session.authenticated = False
            session.auth_data = None
        return status

    # -- commands ----------------------------------------------------------------------------

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg or not self.tls_context:
            await super().smtp_STARTTLS(arg)
            return
        wire = await self.decide(Phase.STARTTLS)
        if wire is not None and not wire.startswith("2"):
            await self.push(wire)
            return
        self._replace_next = wire
        await super().smtp_STARTTLS(arg)

    @syntax("MAIL FROM:<address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        env = self.env()
        if env.mail_from is not None:
            await self.push("503 5.5.1 Error: nested MAIL command")
            return
        session = self.local_session()
        parsed = parse_mail(arg or "", esmtp=session.extended_smtp, offered=self.extensions)
        if isinstance(parsed, Refused):
            await self._refuse(parsed)
            return
        sender, options = parsed
        if self.extensions.require_auth and not session.authenticated:
            # Policy first, as on the fake; a scripted step still replaces it, the faults
            # hook (random failures for accepted commands) is not asked.
            self.state.records.note(f"MAIL FROM:<{sender}> refused: {AUTH_REQUIRED_REPLY}")
            status = await self.decide(Phase.MAIL) or AUTH_REQUIRED_REPLY
        else:
            status = await self.decide(Phase.MAIL, fault="mail") or "250 OK"
        if status.startswith("2"):
            env.mail_from = sender
            env.mail_options = list(options)
            env.smtp_utf8 = "SMTPUTF8" in options
        await self.push(status)

    @syntax("RCPT TO:<address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self.check_helo_needed():
            return
        env = self.env()
        if env.mail_from is None:
            await self.push("503 5.5.1 Error: need MAIL command")
            return
        parsed = parse_rcpt(
            arg or "",
            esmtp=self.local_session().extended_smtp,
            offered=self.extensions,
            smtputf8=bool(env.smtp_utf8),
        )
        if isinstance(parsed, Refused):
            await self._refuse(parsed)
            return
        address, options = parsed
        status = await self.decide(Phase.RCPT, address, fault="rcpt") or "250 OK"
        if status.startswith("2"):
            env.rcpt_tos.append(address)
            env.rcpt_options.extend(options)
            env.rcpt_params.append(options)
        await self.push(status)

    async def _refuse(self, refused: Refused) -> None:
        if refused.mistake is not None:
            self.mistake(refused.mistake)
        await self.push(f"{refused.code} {refused.enhanced} {refused.text}")

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        env = self.env()
        error = None
        if arg:
            error = "501 Syntax: DATA"
        elif env.mail_from is None:
            error = "503 5.5.1 Error: need MAIL command"
        elif env.chunked:
            error = "503 5.5.1 Error: DATA after BDAT"
        elif not env.rcpt_tos:
            error = "503 Error: need RCPT command"
        if error is not None:
            await self.push(error)
            return
        wire = await self.decide(Phase.DATA, fault="data")
        if wire is not None and not wire.startswith("3"):
            await self.push(wire)
            return
        self._replace_next = wire
        await super().smtp_DATA(arg)  # reads the content, then the handler's handle_DATA

    @syntax("BDAT <size> [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        await receive_chunk(self, arg or "")

    # -- the end of the content --------------------------------------------------------------

    async def finish_message(self, raw: bytes, *, chunked: bool) -> str:
        """Decide the final reply to a complete message and keep it; returns the reply."""
        env, session = self.env(), self.local_session()
        transport = self.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        auth = session.auth_data if session.authenticated else None
        received = ReceivedMessage(
            sender=env.mail_from or "",
            recipients=tuple(env.rcpt_tos),
            raw=raw,
            message=parse_content(raw),
            auth_user=auth.user if isinstance(auth, Identity) else None,
            auth_mechanism=auth.mechanism if isinstance(auth, Identity) else None,
            tls=self.extensions.implicit_tls or ssl_object is not None,
            mail_options=tuple(env.mail_options),
            rcpt_options=tuple(env.rcpt_params),
            chunked=chunked,
            connection=self.number,
        )
        # Bare CR or LF in the content is recorded as a client mistake, not refused: most
        # real servers take it (the fake, stricter, refuses it).
        problem = content_problem(
            raw,
            offered=self.extensions,
            mail_options=env.mail_options,
            mistake=self.mistake,
            refuse_bare=False,
        )
        step = self.state.take_step(Phase.MESSAGE)
        if step is not None and step.action is not ScriptAction.REPLY:
            self.state.keep(received, accepted=False)
            if step.action is ScriptAction.DISCONNECT:
                await drop_connection(self)
            await self.hang()
        status = step.reply.to_bytes().decode("utf-8")[:-2] if step and step.reply else None
        if status is None:
            status = await self._old_drops(received)
        if status is None and problem is not None:
            status = " ".join(map(str, problem))
        status = status or "250 OK"
        if status.startswith("2"):
            kept = self.state.keep(received, accepted=True)
            status = status.replace("{id}", kept.queue_id or "")
        await self.wait(self.state.take_delay(Phase.MESSAGE))
        return status

    async def _old_drops(self, received: ReceivedMessage) -> str | None:
        """The ``faults`` hook at ``"message"``, then the deprecated drop queue."""
        fault = self.state.ask_faults("message")
        if fault == DISCONNECT:
            self.state.keep(received, accepted=False)
            await drop_connection(self)
        drop: bool | None = True if fault == DROP else None
        if fault is not None and fault != DROP:
            return fault
        if drop is None:
            drop = self.state.take_drop()
        if drop is None:
            return None
        if drop:
            self.state.keep(received, accepted=True)
        await drop_connection(self)
        return None  # pragma: no cover - drop_connection never returns

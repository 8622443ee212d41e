"""One message on its way through a transaction: its commands, replies, and verdicts.

:class:`Flight` is the per-message state of :class:`~smtpkit.engine.Transactions`;
:func:`mail_params` decides the ESMTP parameters of ``MAIL FROM`` (refusing locally what
the server would refuse), and :func:`envelope_error` judges the envelope's replies.

Invariants:
    * A message whose envelope is refused never has content sent.
    * Every refused recipient is reported against its own address, with its own reply.
    * ``committed`` is set just before the final ``.`` / ``BDAT LAST`` is written: from then
      on a lost connection makes the outcome unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from types import MappingProxyType
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from smtpkit.engine._link import Link
from smtpkit.engine._result import SendResult
from smtpkit.errors import (
    ConnectionStale,
    ExtensionNotOffered,
    MessageError,
    MessageTooLarge,
    SMTPError,
    error_for_reply,
)
from smtpkit.message import BodyType, PreparedMessage
from smtpkit.protocol import Command, Extensions
from smtpkit.replies import Phase, Reply

if TYPE_CHECKING:
    from smtpkit.engine._options import SendOptions

__all__ = ["Flight", "Submission", "envelope_error", "lookahead", "mail_params", "result_of"]

_DATA = Command.data()  # immutable: one instance serves every message


class Submission(Protocol):
    """What the engine needs from a driver's job: the message, its optional envelope, and
    its :class:`~smtpkit.engine._options.SendOptions` (DSN, parameters, DKIM) or ``None``."""

    @property
    def message(self) -> Message | bytes: ...

    @property
    def sender(self) -> str | None: ...

    @property
    def recipients(self) -> Sequence[str] | None: ...

    @property
    def options(self) -> SendOptions | None: ...


J = TypeVar("J", bound=Submission)


@dataclass(eq=False)
class Flight(Generic[J]):
    """One message in a transaction (identity-compared: each flight is one message)."""

    job: J
    prepared: PreparedMessage
    mail: Command
    rcpts: list[Command]
    with_data: bool  # DATA is part of the envelope (no CHUNKING)
    replies: list[Reply] = field(default_factory=list)
    #: The final "." / BDAT LAST is on its way: a failure now leaves the outcome unknown.
    committed: bool = False
    #: The envelope went out behind a refused BDAT: drop its answers, RSET, send it again.
    redo: bool = False
    #: MAIL, every RCPT, and DATA unless the content goes by BDAT (built once).
    commands: list[Command] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        commands = [self.mail, *self.rcpts]
        if self.with_data:
            commands.append(_DATA)
        self.commands = commands

    def envelope(self) -> list[Command]:
        """MAIL, every RCPT, and DATA unless the content goes by BDAT."""
        return self.commands


def mail_params(
    link: Link, prepared: PreparedMessage, extensions: Extensions | None = None
) -> list[str]:
    """ESMTP parameters for MAIL FROM; checks SIZE, 8BITMIME and SMTPUTF8 first.

    Raises:
        MessageTooLarge: the message exceeds the advertised SIZE (nothing is sent).
        ExtensionNotOffered: the message needs SMTPUTF8/8BITMIME and the server lacks it.
        MessageError: it has more recipients than the provider preset allows per message.
    """
    if extensions is None:
        extensions = link.extensions
    params: list[str] = []
    preset = link.preset
    count = len(prepared.envelope.recipients)
    allowed = preset.limits.recipients_per_message if preset else None
    if preset is not None and allowed is not None and count > allowed:
        # Past the limit a provider refuses the extra RCPTs (Gmail: 452 4.5.3) and the
        # message reaches only some recipients; refusing it whole is the clearer outcome.
        raise MessageError(
            f"the message has {count} recipients; {preset.display_name} accepts at most "
            f"{allowed} per message",
            hint="send it in batches (e.g. one message per recipient with send_many)",
        )
    size = prepared.size
    if extensions.max_size is not None and size > extensions.max_size:
        raise link.enrich(
            MessageTooLarge(
                Reply(
                    552,
                    (
                        f"5.3.4 Message is {size} octets; the server accepts at most "
                        f"{extensions.max_size} (SIZE, RFC 1870)",
                    ),
                ),
                Phase.MAIL,
                hint="send a smaller message, e.g. link to large attachments instead",
                provider=link.provider,
                from_server=False,
            )
        )
    if extensions.size_declared:
        params.append(f"SIZE={size}")
    if prepared.body_type is BodyType.EIGHT_BIT_MIME:
        if not extensions.eight_bit_mime:
            raise ExtensionNotOffered(
                "the message has 8-bit content and the server does not offer 8BITMIME",
                extension="8BITMIME",
                hint="send an EmailMessage (smtpkit re-encodes it) or 7-bit bytes",
            )
        params.append("BODY=8BITMIME")
    if prepared.needs_smtputf8:
        if not extensions.smtputf8:
            raise ExtensionNotOffered(
                "the message has non-ASCII addresses and the server does not offer "
                "SMTPUTF8 (RFC 6531)",
                extension="SMTPUTF8",
                hint="use ASCII addresses (IDNA domains are converted automatically)",
            )
        params.append("SMTPUTF8")
    return params


def envelope_error(link: Link, flight: Flight[J], *, stale_ok: bool) -> SMTPError | None:
    """The error a refused envelope ends with, or ``None`` when content may follow.

    Args:
        stale_ok: the link was used before this message: a ``421`` to its MAIL is the
            server closing an idle or busy link (``ConnectionStale``, resend for free), not
            a verdict on this message.
    """
    replies = flight.replies
    if (
        len(replies) == len(flight.commands)
        and all(reply.code < 400 for reply in replies)
        and (not flight.with_data or replies[-1].code == 354)
    ):
        return None  # every reply positive, 354 to DATA: the common case, decided at once
    mail_reply = replies[0]
    if mail_reply.code == 421 and stale_ok:
        return ConnectionStale(
            f"{link.error(mail_reply, Phase.MAIL)}; the message was not accepted and can be "
            "sent again",
            transcript=link.transcript,
        )
    if not mail_reply.is_positive:
        return link.error(mail_reply, Phase.MAIL, command=flight.mail.redacted)
    rcpt_replies = replies[1 : 1 + len(flight.rcpts)]
    rejected = {
        command.address or "": reply
        for command, reply in zip(flight.rcpts, rcpt_replies, strict=False)
        if not reply.is_positive
    }
    for address, reply in rejected.items():
        if reply.code == 421:
            return link.error(reply, Phase.RCPT, command=f"RCPT TO:<{address}>")
    if len(rejected) == len(flight.rcpts) or len(rcpt_replies) < len(flight.rcpts):
        first_address, first_reply = next(iter(rejected.items()))
        return link.enrich(
            error_for_reply(
                first_reply,
                Phase.RCPT,
                command=f"RCPT TO:<{first_address}>",
                recipient=first_address,
                rejected=rejected,
                provider=link.provider,
                transcript=link.transcript,
            )
        )
    if flight.with_data:
        data_reply = replies[-1]
        if data_reply.code != 354:
            return link.error(data_reply, Phase.DATA, command="DATA")
    return None


def result_of(flight: Flight[J], final: Reply) -> SendResult:
    """The ``SendResult`` of an accepted message: who was accepted, who refused, the reply."""
    rcpts = flight.rcpts
    rcpt_replies = flight.replies[1 : 1 + len(rcpts)]
    rejected_view = _NONE_REJECTED
    if all(reply.code < 400 for reply in rcpt_replies) and len(rcpt_replies) == len(rcpts):
        # Every recipient accepted: the common case, without the dictionary.
        accepted = tuple([c.address or "" for c in rcpts])
    else:
        accepted = tuple(
            c.address or "" for c, r in zip(rcpts, rcpt_replies, strict=True) if r.is_positive
        )
        rejected = {
            c.address or "": r
            for c, r in zip(rcpts, rcpt_replies, strict=True)
            if not r.is_positive
        }
        rejected_view = MappingProxyType(rejected)
    prepared = flight.prepared
    return SendResult(
        message_id=prepared.message_id,
        sender=prepared.envelope.sender,
        accepted=accepted,
        rejected=rejected_view,
        reply=final,
    )


# Read-only and over a dict nobody else holds: one view serves every result without refusals.
_NONE_REJECTED: MappingProxyType[str, Reply] = MappingProxyType({})


def lookahead(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Pair each chunk with whether it is the last; an empty content yields one b""."""
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    yield (previous if previous is not None else b""), True

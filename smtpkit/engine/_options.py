"""What one message asks for beyond its envelope, and its commands: DSN, parameters, DKIM.

:class:`SendOptions` is what ``send(..., dsn=, params=, dkim=)`` and ``Outgoing`` carry to
the engine; :func:`prepare_envelope` prepares a job's message, signs it (DKIM, after
smtpkit's own header changes so that ``Message-ID`` and ``Date`` are covered) and builds
its ``MAIL FROM`` and ``RCPT TO`` commands::

    C: MAIL FROM:<shop@example.com> SIZE=1502 RET=HDRS ENVID=order-42
    C: RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.org

Invariants:
    * Everything here is decided before ``MAIL`` is written: a message the server cannot
      take as asked (DSN not offered and ``IfUnsupported.REFUSE``) ends with a
      ``MessageError`` and nothing of it is sent.
    * A server that does not offer DSN never sees a DSN parameter (RFC 5321 §4.1.1.11:
      it would answer 555).
    * ``SIZE`` counts the ``DKIM-Signature`` field: the message is signed first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpkit.dkim import DKIMSigner
from smtpkit.dsn import DSN, ESMTPParams, IfUnsupported
from smtpkit.engine._flight import Submission, mail_params
from smtpkit.errors import ConfigurationError, DSNNotOffered
from smtpkit.message import PreparedMessage, prepare_message
from smtpkit.protocol import Command, Extensions

if TYPE_CHECKING:
    from smtpkit.engine._link import Link

__all__ = ["SendOptions", "prepare_envelope"]


@dataclass(frozen=True, slots=True)
class SendOptions:
    """A message's delivery notifications, extra ESMTP parameters and DKIM signer.

    Attributes:
        dsn: RFC 3461 notifications to ask for (:class:`~smtpkit.dsn.DSN`), or ``None``.
        params: other ``MAIL``/``RCPT`` parameters (:class:`~smtpkit.dsn.ESMTPParams`).
        dkim: the signer for this message; ``None`` uses the submitter's (if any).
    """

    dsn: DSN | None = None
    params: ESMTPParams | None = None
    dkim: DKIMSigner | None = None

    @classmethod
    def of(
        cls, dsn: object = None, params: object = None, dkim: object = None
    ) -> SendOptions | None:
        """Checked options, or ``None`` when none is given (the common, cheapest case).

        Raises:
            ConfigurationError: a value of the wrong type.
        """
        if dsn is None and params is None and dkim is None:
            return None
        for name, value, kind, example in (
            ("dsn", dsn, DSN, 'dsn=DSN(notify=("failure",))'),
            ("params", params, ESMTPParams, 'params=ESMTPParams(mail={"MT-PRIORITY": "3"})'),
            ("dkim", dkim, DKIMSigner, 'dkim=DKIMSigner("s1", "example.com", key)'),
        ):
            if value is not None and not isinstance(value, kind):
                raise ConfigurationError(
                    f"{name} must be a {kind.__name__} or None, got {value!r}",
                    hint=f"e.g. {example}",
                )
        return cls(dsn, params, dkim)  # type: ignore[arg-type]  # checked just above


def prepare_envelope(
    job: Submission, link: Link, extensions: Extensions
) -> tuple[PreparedMessage, Command, list[Command]]:
    """The job's prepared (and signed) message, its ``MAIL FROM`` and its ``RCPT TO``s.

    Raises:
        SMTPError: a ``MessageError`` (bad message, DSN refused, an extension missing, a
            preset's recipient limit), ``MessageTooLarge`` (SIZE); nothing was sent.
    """
    options = job.options
    prepared = prepare_message(
        job.message,
        sender=job.sender,
        recipients=job.recipients,
        local_hostname=link.settings.local_hostname,
        utf8_allowed=extensions.smtputf8,
        eight_bit_allowed=extensions.eight_bit_mime,
    )
    signer = options.dkim if options is not None and options.dkim is not None else None
    if signer is None:
        signer = link.settings.dkim
    if signer is not None:
        prepared = signer.sign(prepared)  # before SIZE is declared: the field counts
    params = mail_params(link, prepared)  # (the link's extensions: the same ones)
    envelope = prepared.envelope
    if options is None or (options.dsn is None and options.params is None):
        mail = Command.mail(envelope.sender, params)
        return prepared, mail, [Command.rcpt(address) for address in envelope.recipients]
    per_rcpt: list[list[str]] = [[] for _ in envelope.recipients]
    dsn = _dsn_if_offered(options.dsn, extensions)
    sources: list[DSN | ESMTPParams] = [s for s in (dsn, options.params) if s is not None]
    for source in sources:
        params.extend(source.mail_params())
        for mine, extra in zip(per_rcpt, source.rcpt_params(envelope.recipients), strict=True):
            mine.extend(extra)
    mail = Command.mail(envelope.sender, params)
    rcpts = [Command.rcpt(a, p) for a, p in zip(envelope.recipients, per_rcpt, strict=True)]
    return prepared, mail, rcpts


def _dsn_if_offered(dsn: DSN | None, extensions: Extensions) -> DSN | None:
    """The DSN to send, ``None`` to send without, or ``DSNNotOffered`` (RFC 3461 §3)."""
    if dsn is None or extensions.dsn:
        return dsn
    if dsn.if_unsupported is IfUnsupported.SEND_WITHOUT:
        return None
    raise DSNNotOffered(
        "the server does not offer DSN (RFC 3461), so it cannot be asked for delivery "
        "status notifications; the message was not sent",
        hint='send it without them (DSN(..., if_unsupported="send_without")) or through a '
        "server that offers DSN",
    )

"""A provider preset's recipients-per-message cap, checked before a message waits or connects.

Both drivers' batches (:class:`~smtpkit.drivers._batch_state.BatchState`) ask
:func:`recipient_cap_error` for each message's first try, so a message the provider would
only half deliver is refused whole, with no connection made.

Invariants:
    * Pure: it reads the envelope as message preparation does and does no I/O; the quota
      gate counts recipients with the same :func:`recipient_count`.
    * It never refuses a message it cannot read: preparation reads it again and says what
      is wrong; only a count over the cap is an error (a :class:`~smtpkit.MessageError`).
"""

from __future__ import annotations

from email.message import Message

from smtpkit.drivers._common import Job
from smtpkit.errors import MessageError
from smtpkit.message import Envelope
from smtpkit.message._headers import header_recipients, header_sender, topmost_resent_block
from smtpkit.providers import Preset

__all__ = ["recipient_cap_error", "recipient_count"]


def recipient_cap_error(job: Job, preset: Preset | None) -> MessageError | None:
    """The error for a message with more recipients than ``preset`` allows, else ``None``.

    Pure: it reads the envelope the way message preparation does (explicit recipients, else
    To/Cc/Bcc or the newest Resent-* block; repeats counted once), so it runs before any
    connection is made. Past the limit a provider refuses the extra RCPTs (Gmail: ``452
    4.5.3``) and the message reaches only some recipients; refusing it whole is clearer.
    A message whose envelope cannot be read is left to preparation, which reports why.
    """
    allowed = preset.limits.recipients_per_message if preset is not None else None
    if preset is None or allowed is None:
        return None
    count = recipient_count(job)
    if count is None:
        return None
    if count <= allowed:
        return None
    return MessageError(
        f"the message has {count} recipients; {preset.display_name} accepts at most "
        f"{allowed} per message",
        hint="send it in batches (e.g. one message per recipient with send_many)",
    )


def recipient_count(job: Job) -> int | None:
    """The envelope recipients ``job`` will have, read as message preparation reads them.

    Pure: explicit recipients, else To/Cc/Bcc or the newest Resent-* block, repeats counted
    once. ``None`` when the envelope cannot be read here (raw bytes without one, a bad
    address): preparation then refuses the message and says why.
    """
    message, sender, recipients = job.message, job.sender, job.recipients
    try:
        if recipients is None or sender is None:
            if not isinstance(message, Message):
                return None  # raw bytes need an explicit envelope; preparation says so
            block = topmost_resent_block(message)
            if sender is None:
                sender = header_sender(message, block)
            if recipients is None:
                recipients = tuple(header_recipients(message, block))
        return len(Envelope(sender, recipients).recipients)
    except Exception:  # preparation reads it again, and says what is wrong
        return None

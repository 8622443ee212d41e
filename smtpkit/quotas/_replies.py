"""Read a provider's quota reply: how long the account is out of quota ("the last word").

A worker that hits the provider's wall should stop every other worker of the account too,
so the driver marks the account exhausted in the store for the window the reply implies::

    window = quota_reply_window(error, provider)     # seconds, or None
    if window is not None:
        quota.exhaust(until=now + window)

Recognised (each is a real reply quoted in ``tests/data/replies.jsonl`` or the test kit):

=====================================================================  ===========  =======
reply                                                                  provider     window
=====================================================================  ===========  =======
``550 5.4.5 Daily user sending quota exceeded``                        Gmail        24 h
``550 5.4.5 Daily SMTP relay limit exceeded for user``                 Workspace    24 h
``550 5.7.1 Daily SMTP relay limit exceeded for customer``             Workspace    24 h
``554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceeded...`` Microsoft    24 h
``454 Throttling failure: Daily message quota exceeded``               Amazon SES   24 h
``454 Throttling failure: Maximum sending rate exceeded``              Amazon SES   1 s
``554 ... You've reached your daily relay quota``                      GoDaddy      24 h
any 5xx ``5.4.5`` from Gmail (Gmail reuses X.4.5 for its quotas)       Gmail        24 h
=====================================================================  ===========  =======

A daily quota blocks for "up to 24 hours" (Gmail) or until the rolling 24 hours free up
(Microsoft, SES): the reply does not say how much of the window is left, so the whole
window is the safe reading. Replies that limit something else return ``None``: too many
connections (``432 4.3.2``), too many logins (``454 4.7.0``), a full mailbox
(``554 5.2.2 ...QuotaExceededException.MapiExceptionShutoffQuotaExceeded``), too many
recipients in one message (``452 4.5.3``), and quotas whose window no source states
(SendGrid's ``Maximum credits exceeded``, a mailcow ``Ratelimit exceeded``).

Invariants:
    * Pure: no I/O, no clock. Only failure replies (4xx, 5xx) can imply a window.
    * The class of the error never matters, only the reply and the provider: the same
      reply gives the same window whichever phase drew it.
"""

from __future__ import annotations

import re

from smtpkit.errors import ReplyError, detect_provider
from smtpkit.quotas._rules import DAY, SECOND
from smtpkit.replies import Reply

__all__ = ["quota_reply_window"]

# "daily ... quota|limit" within one phrase: "Daily user sending quota exceeded", "Daily
# SMTP relay limit exceeded", "Daily message quota exceeded", "reached your daily relay
# quota". Microsoft's name for its mailbox submission quota says nothing of days.
_DAILY_RE = re.compile(r"\bdaily\b[\w\s-]{0,40}?\b(quota|limit)\b")
_MICROSOFT_SUBMISSION_RE = re.compile(r"submissionquotaexceeded")
# Amazon SES's own phrase for its per-second maximum sending rate.
_SES_RATE_RE = re.compile(r"throttling failure:\s*maximum sending rate exceeded")


def quota_reply_window(
    error_or_reply: ReplyError | Reply, provider: str | None = None
) -> float | None:
    """How long a provider's quota reply says the account cannot send, in seconds.

    Args:
        error_or_reply: the error a send raised, or the reply itself.
        provider: the provider family (``"gmail"``, ``"microsoft"``, ``"ses"``, the
            ``family`` of a preset); by default the error's own, else read from the reply.

    Returns:
        The window in seconds (``86400.0`` for a daily quota, ``1.0`` for a per-second
        rate), or ``None`` when the reply is not a sending-quota reply or implies no window.

    Example::

        >>> quota_reply_window(Reply(550, ("5.4.5 Daily user sending quota exceeded.",)))
        86400.0
        >>> quota_reply_window(Reply(432, ("4.3.2 sender thread limit exceeded",))) is None
        True
    """
    if isinstance(error_or_reply, ReplyError):
        reply = error_or_reply.reply
        provider = provider or error_or_reply.provider
    else:
        reply = error_or_reply
    if reply.code < 400:
        return None
    text = " ".join(reply.lines).lower()
    provider = (provider or detect_provider(reply) or "").lower()
    if _DAILY_RE.search(text) or _MICROSOFT_SUBMISSION_RE.search(text):
        return DAY
    if _SES_RATE_RE.search(text):
        return SECOND
    if provider == "gmail" and reply.is_permanent and reply.enhanced_code == "5.4.5":
        return DAY
    return None

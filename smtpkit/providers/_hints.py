"""Preset-aware advice: add a provider's documented limits and login facts to an error's hint.

The error table (:mod:`smtpkit.errors`) already picks the class and a hint from the reply,
the phase, the provider family and the credential kind. When the configuration names a
preset, smtpkit knows more than the reply says: Gmail's 500 messages a day, Microsoft 365's
30 messages a minute, that SendGrid's user name is the literal word ``apikey``. This module
adds that, and only that, to the hint::

    error = error_for_reply(reply, Phase.MESSAGE, provider=preset.family)
    enrich(error, preset)
    # RateLimited: "... retrying sooner will not help. Gmail documents these limits for
    # consumer accounts: 500 messages a day; they reset within 24 hours of reaching the limit."

Invariants:
    * Extra advice comes only from the preset data (fixed, reviewed text and numbers), never
      from the reply text, so it can never carry a secret or an address.
    * ``enrich`` never changes an error's class or reply; it appends one sentence at most,
      and enriching twice adds nothing more.
"""

from __future__ import annotations

import re
from typing import TypeVar

from smtpkit.errors import (
    AuthenticationError,
    EncryptionRequired,
    MechanismUnsupported,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    ServiceUnavailable,
    SMTPError,
)
from smtpkit.providers._model import Preset, format_size

__all__ = ["enrich", "provider_hint"]

E = TypeVar("E", bound=SMTPError)

_DAILY = re.compile(r"dai?ly|per day|24 ?h|\bday\b|tomorrow|quota")
_RATE = re.compile(r"rate|throttl|too fast|per (second|minute)|submissionquota")
_CONCURRENT = re.compile(r"concurren|connections|thread|parallel")
_RECIPIENTS = re.compile(r"too many recipients|recipients|4\.5\.3|5\.5\.3")
_QUOTA_WORDS = re.compile(r"quota|limit|rate|throttl|too many")


def _text(error: ReplyError) -> str:
    return " ".join(error.reply.lines).lower()


def _quota(preset: Preset, error: ReplyError) -> str | None:
    limits = preset.limits
    text = _text(error)
    if _CONCURRENT.search(text):
        chosen = [p for p in limits.describe() if p.endswith("connections at once")]
    elif _DAILY.search(text) and "submissionquota" not in text:
        chosen = [
            phrase
            for phrase in limits.describe()
            if phrase.endswith(("messages a day", "recipients a day"))
        ]
    elif _RATE.search(text):
        chosen = [
            phrase
            for phrase in limits.describe()
            if phrase.endswith(("a minute", "a second", "recipients a day"))
        ]
    else:
        chosen = []
    if not chosen:
        chosen = limits.describe()
    if not chosen:
        return None
    who = f" for {limits.applies_to}" if limits.applies_to else ""
    sentence = f"{preset.display_name} documents these limits{who}: {', '.join(chosen)}"
    if limits.resets:
        sentence += f"; they reset {limits.resets}"
    return sentence + "."


def _recipients(preset: Preset) -> str | None:
    count = preset.limits.recipients_per_message
    if count is None:
        return None
    return f"{preset.display_name} takes at most {count:,} recipients per message."


def _size(preset: Preset) -> str | None:
    size = preset.limits.message_size
    if size is None:
        return None
    return f"{preset.display_name} accepts messages up to {format_size(size)} as sent."


def _mechanisms(preset: Preset) -> str | None:
    if not preset.auth_mechanisms:
        return None
    return f"{preset.display_name} accepts AUTH {' '.join(preset.auth_mechanisms)}."


def provider_hint(preset: Preset, error: SMTPError) -> str | None:
    """One sentence of advice specific to ``preset`` for ``error``, or ``None``.

    * quota and rate replies: the documented limits that fit the wording, and when they
      reset;
    * too many recipients: the per-message limit; too large: the size limit;
    * login failures: how this provider wants you to log in (app password, API key, ...);
    * an AUTH mechanism refused: the mechanisms the provider accepts;
    * refused senders or messages: who the provider lets you send as.

    Args:
        preset: the configured preset.
        error: any smtpkit error; only :class:`~smtpkit.errors.ReplyError` gets advice.
    """
    if not isinstance(error, ReplyError):
        return None
    if isinstance(error, RateLimited) or (
        isinstance(error, ServiceUnavailable) and _QUOTA_WORDS.search(_text(error))
    ):
        if _RECIPIENTS.search(_text(error)) and "recipients a day" not in _text(error):
            return _recipients(preset) or _quota(preset, error)
        return _quota(preset, error)
    if isinstance(error, MessageTooLarge):
        return _size(preset)
    if isinstance(error, RecipientRejected):
        if re.search(r"too many recipients|4\.5\.3|5\.5\.3", _text(error)):
            return _recipients(preset)
        return None
    if isinstance(error, MechanismUnsupported):
        return _mechanisms(preset)
    if isinstance(error, EncryptionRequired):
        return None
    if isinstance(error, AuthenticationError):
        return preset.auth_hint
    if isinstance(error, SenderRejected | MessageRejected):
        return preset.sender_hint
    return None


def enrich(error: E, preset: Preset | None) -> E:
    """Append ``preset``'s advice (see :func:`provider_hint`) to ``error.hint``; return it.

    Also records the preset's provider family on a :class:`~smtpkit.errors.ReplyError` whose
    provider was not recognised. With ``preset=None`` the error is returned unchanged.
    """
    if preset is None:
        return error
    if isinstance(error, ReplyError) and error.provider is None:
        error.provider = preset.family
    extra = provider_hint(preset, error)
    if extra and extra not in (error.hint or ""):
        error.hint = f"{error.hint} {extra}" if error.hint else extra
    return error

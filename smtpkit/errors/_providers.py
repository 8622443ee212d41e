"""Recognise which mail provider sent a reply, from the reply's own wording.

The provider only changes the *advice* (the hint); the exception class never depends on it.
That keeps classification predictable when detection misses (many replies name nobody).

Stable provider names returned by :func:`detect_provider` (and accepted wherever a
``provider=`` argument is taken):

==============  ==========================================================================
name            recognised by
==============  ==========================================================================
``gmail``       ``gsmtp`` (the tail of every Gmail reply), ``google``, ``gmail``
``microsoft``   ``outlook.com``, ``office365``, ``protection.outlook``, ``exchangelabs``,
                ``STOREDRV`` (Exchange submission), ``hotmail``, ``microsoft``
``yahoo``       ``yahoo``, ``ymail``, ``aol``
``icloud``      ``icloud``, ``apple``, ``me.com``
``yandex``      ``yandex``
``mailru``      ``mail.ru``
``ses``         ``amazonses``, ``amazonaws``, ``SimpleEmailService``, and SES's own phrases
                ``Throttling failure`` and ``identities failed the check``
``zoho``        ``zoho``
``sendgrid``    ``sendgrid``
``mailgun``     ``mailgun``
``gmx``         ``gmx``
``fastmail``    ``fastmail``, ``messagingengine``
``qq``          ``qq.com``, ``QQ Mail``, ``exmail``
``godaddy``     ``secureserver.net``, ``godaddy``
``postmark``    ``postmark``
==============  ==========================================================================

Invariants:
    * Detection is deterministic: the first matching entry of :data:`_SIGNATURES` wins.
    * Email addresses are removed before matching, so ``<someone@gmail.com>`` quoted by another
      provider's server never makes that reply "gmail".
"""

from __future__ import annotations

import re

from smtpkit.replies import Reply

__all__ = ["PROVIDER_NAMES", "detect_provider", "display_name"]

# Addresses name the *recipient's* or *sender's* provider, not the server's: drop them.
_ADDRESS_RE = re.compile(r"<?[\w.+%-]+@[\w.-]+>?")

# Ordered: relay services first, because their replies sometimes quote the big mailbox
# providers (a SendGrid reply may mention Gmail's policy); the big providers last.
_SIGNATURES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("sendgrid", r"sendgrid"),
        ("mailgun", r"mailgun"),
        ("postmark", r"postmark"),
        # SES sends no enhanced codes and often no host name; these phrases are its own.
        (
            "ses",
            r"amazonses|amazonaws|simpleemailservice|throttling failure"
            r"|identities failed the check",
        ),
        ("godaddy", r"secureserver\.net|godaddy"),
        ("zoho", r"zoho"),
        ("yandex", r"yandex"),
        ("mailru", r"\bmail\.ru\b"),
        ("gmx", r"\bgmx\b"),
        ("fastmail", r"fastmail|messagingengine"),
        ("qq", r"\bqq\.com\b|\bqq mail\b|\bexmail\b"),
        ("icloud", r"icloud|\bapple\b|\bme\.com\b"),
        ("yahoo", r"yahoo|ymail|\baol\b"),
        (
            "microsoft",
            r"outlook\.com|office365|outlook\.office|protection\.outlook|exchangelabs"
            r"|\bstoredrv\b|hotmail|microsoft",
        ),
        ("gmail", r"\bgsmtp\b|\bgoogle\b|\bgmail\b"),
    )
)

#: Every name :func:`detect_provider` can return.
PROVIDER_NAMES: frozenset[str] = frozenset(name for name, _ in _SIGNATURES)

_DISPLAY = {
    "gmail": "Gmail",
    "microsoft": "Microsoft 365",
    "yahoo": "Yahoo Mail",
    "icloud": "iCloud Mail",
    "yandex": "Yandex",
    "mailru": "Mail.ru",
    "ses": "Amazon SES",
    "zoho": "Zoho Mail",
    "sendgrid": "SendGrid",
    "mailgun": "Mailgun",
    "gmx": "GMX",
    "fastmail": "Fastmail",
    "qq": "QQ Mail",
    "godaddy": "GoDaddy",
    "postmark": "Postmark",
}


def detect_provider(reply: Reply) -> str | None:
    """Name the provider whose server sent ``reply``, or ``None`` when the text does not say.

    Args:
        reply: any reply, success or failure.

    Returns:
        One of :data:`PROVIDER_NAMES` (lowercase, stable), or ``None``.

    Example::

        >>> detect_provider(Reply(535, ("5.7.8 Username and Password not accepted. - gsmtp",)))
        'gmail'
        >>> detect_provider(Reply(550, ("5.1.1 <bob@gmail.com> unknown user",))) is None
        True
    """
    text = _ADDRESS_RE.sub(" ", " ".join(reply.lines).lower())
    for name, pattern in _SIGNATURES:
        if pattern.search(text):
            return name
    return None


def display_name(provider: str | None) -> str | None:
    """The provider's human name (``"gmail"`` -> ``"Gmail"``); unknown names pass through."""
    if provider is None:
        return None
    return _DISPLAY.get(provider, provider)

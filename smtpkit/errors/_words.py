"""The wording evidence of the reply table: keyword families as regular-expression fragments.

A rule in :data:`smtpkit.errors._table.RULES` that names wording matches when one of its
fragments is found (``re.search``) in the reply's normalised text
(:func:`smtpkit.errors._rule.normalise_text`): lowercased, with URLs removed. The families
are shared by several rows, so they live here, each with the replies it was written for.

Invariants:
    * Fragments match robust keywords only, never session ids, host names or URLs, which
      change from one reply to the next.
    * Every fragment is written for lowercase text: none has an upper-case letter.
    * A family says only what a reply is about: the rule that uses it decides the phases
      and the class.
"""

from __future__ import annotations

__all__ = [
    "AUTH_REQUIRED_WORDS",
    "BASIC_AUTH_OFF",
    "BASIC_AUTH_WORDS",
    "BLOCKED_WORDS",
    "CREDENTIAL_WORDS",
    "RATE_WORDS",
    "SENDER_WORDS",
    "TLS_WORDS",
]

RATE_WORDS = (
    r"rate ?limit",
    r"throttl",
    r"quota",
    r"too many (login|auth|connections|concurrent|sessions|messages|e?mails|requests)",
    r"limit (exceeded|reached)",
    r"\blimits?\b.{0,50}\b(exceeded|reached)",
    r"exceeded [\w' ]{0,20}\blimit",
    r"credits? exceeded",
    r"sending rate",
    r"concurrent",
)
AUTH_REQUIRED_WORDS = (
    r"authentication (is )?required",
    r"requires? authentication",
    r"\bnot authenticated",
    r"unauthenticated",
    r"\bauth\w* first",
    r"not logged in",
    r"must (first )?(authenticate|log ?in|be authenticated)",
    r"anonymous (mail|relay|send)",
)
TLS_WORDS = (
    r"starttls",
    r"\b(tls|ssl)\b.{0,20}\b(required|first|needed|mandatory)",
    r"(requires?|must use|needs?) (a )?(tls|ssl|encrypt|secure)",
    r"encryption (is )?(required|mandatory|needed)",
    r"tls ?1\.[0-3]",
    r"tls version",
    # Yandex 530 5.7.7 "Email sending without SSL/TLS encryption is not allowed".
    r"\bwithout (an? )?(ssl|tls|encrypt|secure)",
    # QQ 530 "A secure connection is requiered(such as ssl)" (sic).
    r"secure (connection|channel|session)s? (is |are )?(requi|needed|mandatory)",
    # Dovecot "Plaintext authentication disallowed on non-secure (SSL/TLS) connections".
    r"(not allowed|disallowed|prohibited|forbidden|refused|not permitted) (on|over) "
    r"(an? )?(non-?secure|insecure|unencrypted|plain ?text|clear ?text)",
    r"(unencrypted|insecure|non-?secure|plain ?text|clear ?text) (connection|channel|session)s? "
    r"(is |are )?(not allowed|disallowed|prohibited|forbidden|refused|not permitted)",
)
# Password ("basic") SMTP AUTH turned off, for the account, the tenant or for good.
BASIC_AUTH_OFF = (
    r"(disabled|turned off|blocked|(not|no longer) (supported|allowed|permitted|accepted|enabled))"
)
BASIC_AUTH_WORDS = (
    # Microsoft 550 5.7.30 "Basic authentication is not supported for Client Submission."
    # and 535 5.7.139 "... basic authentication is disabled".
    rf"\b(basic|legacy) auth\w* (is |has been |was )?{BASIC_AUTH_OFF}",
    r"smtpclientauthentication is disabled",
    r"smtp ?auth\w* (is |has been )?(disabled|turned off)",
)
SENDER_WORDS = (
    r"\bsend ?as\b",
    r"sendas",
    r"not owned by",
    r"sender address rejected",
    r"\b(from|sender)\b.{0,40}\b(not valid|invalid|not allowed|not permitted|mismatch"
    r"|does not match|must match|must be (the )?same)",
)
BLOCKED_WORDS = (
    r"blocked using",
    r"block ?list",
    r"black ?list",
    r"spamhaus",
    r"client host",
    r"\b(rbl|dnsbl)\b",
    r"ip reputation",
    r"not accepted from this ip",
)
CREDENTIAL_WORDS = (
    r"auth\w* data",
    r"credential",
    r"password",
    r"user ?name",
    r"invalid user",
    r"token",
    r"auth\w* (failed|unsuccessful|rejected)",
    r"incorrect",
)

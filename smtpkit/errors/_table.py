"""The one table that maps an SMTP failure reply to an exception class and a hint.

:data:`RULES` is an ordered tuple of :class:`~smtpkit.errors._rule.Rule` rows; :func:`classify`
walks it and the first row that matches wins. A row matches when every restriction it names
holds (phase, basic code, code class, credential kind) and, if it names evidence (enhanced
codes or wording), at least one piece of evidence is present.

Why the rows look the way they do:
    * The phase picks the class, not the code alone (RFC 5321 §4.2.2 codes are shared by
      every command): 550 to RCPT is a refused recipient, 550 to MAIL a refused sender, 550
      after the content a refused message.
    * Enhanced codes (RFC 3463, IANA registry per RFC 5248) are used where they carry their
      registered meaning: X.1 addressing, X.2 mailbox, X.3 mail system, X.4 network, X.5
      protocol, X.6 content, X.7 security. Providers reuse some (Gmail X.7.9 and X.7.14,
      Microsoft X.7.3 and X.7.139) and many send none (Amazon SES), so wording decides too.
    * Wording is matched as robust keywords on the lowercased text with URLs removed: never
      on session ids, host names or URLs, which change. The keyword families shared by
      several rows are in :mod:`smtpkit.errors._words`.
    * The provider never changes the class, only the hint, so a missed detection costs
      advice, not correctness.

Invariants:
    * Deterministic: the same reply, phase and credential kind give the same class and hint.
    * Total: every failure reply (code 400-599) in every phase matches some row; the last
      rows are per-phase defaults.
    * ``classify`` refuses success replies (code < 400) with ``ValueError``: a client must
      not turn a success into an error.

``python -m smtpkit.errors`` prints the table as Markdown; ``docs/errors.md`` embeds that
output and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from smtpkit.errors import _auth_hints as a
from smtpkit.errors import _hints as h
from smtpkit.errors._providers import detect_provider
from smtpkit.errors._reply import ReplyErrorOptions
from smtpkit.errors._rule import (
    ALL_PHASES,
    BY_PHASE,
    Rule,
    normalise_text,
)
from smtpkit.errors._rule import render_markdown as _render
from smtpkit.errors._tree import (
    AppPasswordRequired,
    AuthenticationError,
    AuthenticationRequired,
    BasicAuthDisabled,
    CommandRejected,
    ConnectionRejected,
    CredentialKind,
    EncryptionRequired,
    InvalidCredentials,
    MechanismUnsupported,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    ServiceUnavailable,
    TLSUnavailable,
    TokenRejected,
    WebLoginRequired,
)
from smtpkit.errors._words import (
    AUTH_REQUIRED_WORDS,
    BASIC_AUTH_WORDS,
    BLOCKED_WORDS,
    CREDENTIAL_WORDS,
    RATE_WORDS,
    SENDER_WORDS,
    TLS_WORDS,
)
from smtpkit.replies import Phase, Reply

__all__ = ["RULES", "classify", "detect_provider", "error_for_reply", "render_markdown"]

_ALL = ALL_PHASES
_AUTH = frozenset({Phase.AUTH})
_ENVELOPE = frozenset({Phase.MAIL, Phase.RCPT, Phase.DATA})
_CONTENT = frozenset({Phase.DATA, Phase.MESSAGE})
_SENDING = frozenset({Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.MESSAGE})
#: The phases whose reply answers a command line the client sent (not the greeting, not the
#: content, not AUTH's own exchange: RFC 4954 §4 has its own line limit).
_COMMANDS = frozenset(
    {Phase.EHLO, Phase.MAIL, Phase.RCPT, Phase.DATA, Phase.RSET, Phase.NOOP, Phase.QUIT}
)


def _codes(*codes: int) -> frozenset[int]:
    return frozenset(codes)


# fmt: off
#: The table. Order matters: specific evidence first, per-phase defaults last.
RULES: tuple[Rule, ...] = (
    # --- STARTTLS -----------------------------------------------------------------------------
    Rule(TLSUnavailable, a.tls_refused, phases=frozenset({Phase.STARTTLS}),
         why="RFC 3207 §4: any failure to STARTTLS (454 TLS not available, 501) means no TLS"),
    # --- login policy: wording and reused codes that name the cause exactly -------------------
    Rule(BasicAuthDisabled, a.basic_auth_disabled, enhanced=("x.7.139",),
         words=BASIC_AUTH_WORDS,
         why="Microsoft: 535 5.7.139 (also quoted inside a 530 5.7.57 at MAIL) = SMTP AUTH "
             "disabled for the tenant or mailbox; 550 5.7.30 'Basic authentication is not "
             "supported for Client Submission' = basic auth retired (by wording: RFC 8689 "
             "registers X.7.30 for REQUIRETLS)"),
    Rule(AppPasswordRequired, a.app_password_required,
         words=(r"app(lication)?[- ](specific )?password.{0,20}(required|needed)",
                r"(requires?|need|must use) an? app(lication)?[- ](specific )?password",
                r"parol\w* prilozheniya", r"пароль приложения"),
         why="Gmail 534 5.7.9, Mail.ru 535 5.7.0, Yandex: 'application password required'"),
    Rule(WebLoginRequired, a.web_login_required, phases=_AUTH, enhanced=("x.7.14",),
         words=(r"web ?browser", r"(log|sign) ?in via", r"web login"),
         why="Gmail reuses X.7.14 (IANA: 'trust relationship required') for 534 5.7.14 "
             "'log in via your web browser'"),
    # --- TLS needed: before mechanism wording, as RFC 4954's 538 text says "mechanism" --------
    Rule(EncryptionRequired, a.encryption_required, codes=_codes(538),
         why="RFC 4954 §6: 538 5.7.11 encryption required for requested mechanism"),
    Rule(EncryptionRequired, a.encryption_required, enhanced=("x.7.11",), words=TLS_WORDS,
         why="RFC 3207 §4 / RFC 4954 §6: 530 5.7.0 'Must issue a STARTTLS command first'; "
             "Microsoft 421 4.7.66 'TLS 1.0 and 1.1 are not supported'; Gmail 421 'TLS "
             "required for RCPT domain'; Yandex 530 5.7.7 'sending without SSL/TLS "
             "encryption is not allowed' (by wording, whatever the enhanced code)"),
    # --- the login mechanism ------------------------------------------------------------------
    Rule(MechanismUnsupported, a.mechanism_unsupported, phases=_AUTH, classes=frozenset({5}),
         words=(r"mechanism", r"auth\w* type", r"too weak"),
         why="RFC 4954 §4/§6: 504 unrecognized authentication type, 534 5.7.9 mechanism too "
             "weak; Dovecot says 'invalid authentication mechanism' in a 535"),
    Rule(AppPasswordRequired, a.app_password_required, phases=_AUTH, enhanced=("x.7.9",),
         why="Gmail reuses X.7.9 (RFC 4954: mechanism too weak) for 'app password required'"),
    Rule(MechanismUnsupported, a.mechanism_unsupported, phases=_AUTH, codes=_codes(504, 534),
         why="RFC 4954 §4: 504 to AUTH = mechanism not supported; §6: 534 = mechanism "
             "too weak"),
    Rule(MechanismUnsupported, a.mechanism_unsupported, phases=_AUTH, enhanced=("x.7.4",),
         why="RFC 3463 X.7.4 'security features not supported' (Microsoft 504 5.7.4)"),
    # --- throttling and quotas ----------------------------------------------------------------
    Rule(RateLimited, a.login_throttled, phases=_AUTH, classes=frozenset({4}),
         words=(*RATE_WORDS, r"too many"),
         why="Gmail 454 4.7.0 'Too many login attempts'; OCI 421 'Too many auth failures'; "
             "SendGrid 451 'Maximum credits exceeded' (a 5xx at AUTH stays a login failure)"),
    Rule(BY_PHASE, h.mailbox_full, phases=_SENDING, enhanced=("x.2.2",),
         words=(r"mailbox (is )?full", r"mailbox.{0,30}(over|exceed\w*) (its |the )?(quota|size)",
                r"shutoffquota"),
         why="RFC 3463 X.2.2 mailbox full (Microsoft 554 5.2.2 for the sender's own mailbox)"),
    Rule(MessageTooLarge, h.message_too_large, enhanced=("x.3.4", "x.2.3"),
         why="RFC 3463 X.3.4 message too big for system, X.2.3 message length exceeds "
             "administrative limit (Gmail 552 5.3.4 / 5.2.3)"),
    Rule(BY_PHASE, h.command_line_too_long, phases=_COMMANDS | {Phase.MESSAGE},
         words=(r"command line (is )?too long",),
         why="RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF, more "
             "only for extensions' parameters (DSN ORCPT/ENVID, RFC 3461 §4); aiosmtpd '500 "
             "Command line too long'"),
    Rule(BY_PHASE, h.command_line_too_long, phases=_COMMANDS,
         words=(r"line (is )?too long", r"line length"),
         why="RFC 5321 §4.2.2: a 500 'may include errors such as command line too long'; "
             "the reply to a command (CPython smtpd '500 Error: line too long' to MAIL or "
             "RCPT) is about that command's line, not the message's"),
    Rule(BY_PHASE, h.line_too_long, phases=frozenset({Phase.MESSAGE}),
         words=(r"line (is )?too long", r"line length"),
         why="RFC 5321 §4.5.3.1.6: text lines are at most 1000 octets including CRLF (the "
             "reply to the content: aiosmtpd '500 Line too long')"),
    Rule(MessageTooLarge, h.message_too_large, phases=frozenset({Phase.MAIL, *_CONTENT}),
         words=(r"\bsize\b", r"too (large|big)", r"storage allocation", r"message length"),
         why="RFC 1870 §6: a message over the SIZE limit is refused (552) at MAIL or after "
             "the content"),
    Rule(BY_PHASE, h.too_many_recipients, phases=frozenset({Phase.RCPT, *_CONTENT}),
         enhanced=("x.5.3",),
         words=(r"too many recipients", r"recipients? (limit|reached)",
                r"(maximum|limit of).{0,20}recipients"),
         why="RFC 3463 X.5.3 too many recipients; RFC 5321 §4.5.3.1.10 (452 at RCPT)"),
    Rule(RateLimited, h.quota, phases=_ALL - _AUTH, words=RATE_WORDS,
         why="Provider wording: Gmail 550 5.4.5 daily quota, SES 454 'Throttling failure', "
             "Microsoft 432 4.3.2 thread limit and SubmissionQuotaExceeded, 421 'Too many "
             "connections'"),
    Rule(RateLimited, h.quota, phases=_SENDING, classes=frozenset({5}), enhanced=("x.4.5",),
         why="Gmail reuses 5.4.5 (RFC 3463 X.4.5: mail system congestion) for sending quotas"),
    Rule(BY_PHASE, h.connection_rejected, phases=_SENDING, words=BLOCKED_WORDS,
         why="DNSBL/reputation refusals (Postfix 'Client host [..] blocked using ...'): "
             "about the client's IP address, whatever the command"),
    # --- account policy, login and sender identity --------------------------------------------
    Rule(BY_PHASE, h.account_policy, phases=_SENDING,
         words=(r"sandbox", r"not verified", r"unverified", r"identities failed",
                r"authorized recipients?"),
         why="SES 554 'Email address is not verified'; Mailgun 421/554 sandbox domains (a 4xx "
             "that retrying does not fix)"),
    Rule(BY_PHASE, h.email_authentication, phases=_SENDING,
         enhanced=tuple(f"x.7.{detail}" for detail in range(20, 27)),
         words=(r"\bdmarc\b", r"\bdkim\b", r"\bspf\b"),
         why="RFC 7372 §3: X.7.20-X.7.26 DKIM/SPF/DMARC failures (Gmail 550 5.7.26 'This "
             "mail is unauthenticated'): about the message, not about SMTP AUTH"),
    Rule(AuthenticationRequired, a.auth_required, phases=_SENDING, words=AUTH_REQUIRED_WORDS,
         why="RFC 4954 §6: 530 5.7.0 Authentication required; SendGrid 'Unauthenticated "
             "senders not allowed'; Postfix 'not logged in'"),
    Rule(AuthenticationRequired, a.auth_required, phases=_ENVELOPE, codes=_codes(530),
         why="RFC 4954 §6: 530 to MAIL/RCPT/DATA = authentication required"),
    Rule(SenderRejected, h.sender_identity, phases=frozenset({Phase.MAIL, Phase.RCPT}),
         words=SENDER_WORDS,
         why="Yandex/Postfix 553 5.7.1 'Sender address rejected: not owned by user' (Postfix "
             "may say it at RCPT); QQ 'mail from address must be same as authorization user'"),
    Rule(MessageRejected, h.sender_identity, phases=_CONTENT, words=SENDER_WORDS,
         why="Microsoft 550 5.7.60 / 554 5.2.0 SendAsDenied after the content: not allowed "
             "to send as the From address"),
    Rule(BY_PHASE, h.relay_denied, phases=_SENDING,
         words=(r"relay(ing)? (access )?(denied|not permitted|not allowed|prohibited)",
                r"unable to relay"),
         why="RFC 5321 §3.6.2: relaying refused to an unauthenticated client (Postfix 554 "
             "5.7.1 'Relay access denied')"),
    Rule(MessageTooLarge, h.message_too_large, phases=frozenset({Phase.MAIL, *_CONTENT}),
         codes=_codes(552), bare=True,
         why="RFC 1870 §6.1-6.2 and RFC 5321 §4.2.2: a bare 552 'exceeded storage "
             "allocation' is the size refusal at MAIL (SIZE=) or after the content; Gmail's "
             "552 5.7.0 'blocked content' is not"),
    # --- the server cannot serve now ----------------------------------------------------------
    Rule(ServiceUnavailable, h.service_unavailable, codes=_codes(421),
         why="RFC 5321 §3.8/§4.2.3: 421 service not available, closing transmission channel"),
    Rule(ServiceUnavailable, h.service_unavailable, phases=frozenset({Phase.GREETING}),
         classes=frozenset({4}),
         why="RFC 5321 §3.1: a 4xx greeting means try again later"),
    Rule(ConnectionRejected, h.connection_rejected, phases=frozenset({Phase.GREETING}),
         why="RFC 5321 §3.1: 554 greeting = no SMTP service here (often a blocklisted IP)"),
    Rule(ConnectionRejected, h.connection_rejected, phases=frozenset({Phase.EHLO}),
         words=BLOCKED_WORDS,
         why="Hosts refused for their IP reputation at EHLO (Postfix 'Client host rejected')"),
    # --- AUTH ---------------------------------------------------------------------------------
    Rule(CommandRejected, a.auth_not_offered, phases=_AUTH, codes=_codes(502, 503),
         why="RFC 5321 §4.2.4 / RFC 4954 §4: 502 AUTH not implemented, 503 not allowed here"),
    Rule(CommandRejected, h.command_rejected, phases=_AUTH, codes=_codes(500, 501),
         enhanced=("x.5.6",), words=(r"too long", r"base ?64", r"decode"),
         why="RFC 4954 §4: 500 5.5.6 AUTH line too long, 501 response not valid base64: "
             "the client's exchange was malformed, whatever the credential"),
    Rule(TokenRejected, a.invalid_credentials, phases=_AUTH, classes=frozenset({5}),
         kinds=frozenset({CredentialKind.OAUTH2}),
         why="RFC 7628 §3.2.2: a refused OAUTHBEARER/XOAUTH2 login is a refused token"),
    Rule(InvalidCredentials, a.invalid_credentials, phases=_AUTH, codes=_codes(535),
         why="RFC 4954 §6: 535 5.7.8 credentials invalid (Microsoft uses 5.7.3, Yahoo "
             "5.7.0, older Gmail 5.7.1)"),
    Rule(InvalidCredentials, a.invalid_credentials, phases=_AUTH, classes=frozenset({5}),
         enhanced=("x.7.8",), words=CREDENTIAL_WORDS,
         why="RFC 4954 §6 X.7.8; Microsoft 501 5.5.124 'Invalid XOAUTH2 auth data'"),
    Rule(CommandRejected, h.command_rejected, phases=_AUTH, codes=_codes(500, 501),
         why="RFC 5321 §4.2.2: 500 syntax error, 501 syntax error in parameters"),
    Rule(AuthenticationError, a.password_transition, phases=_AUTH, enhanced=("x.7.12",),
         why="RFC 4954 §6: 432 4.7.12 a password transition is needed"),
    Rule(ServiceUnavailable, a.auth_temporary, phases=_AUTH, classes=frozenset({4}),
         why="RFC 4954 §6: 454 4.7.0 temporary authentication failure"),
    Rule(AuthenticationError, a.auth_failed, phases=_AUTH,
         why="Any other failure to AUTH"),
    # --- protocol -----------------------------------------------------------------------------
    Rule(CommandRejected, h.ehlo_rejected, phases=frozenset({Phase.EHLO}),
         why="RFC 5321 §4.1.1.1: EHLO needs the client's domain or address literal"),
    Rule(CommandRejected, h.command_rejected, codes=_codes(500, 502, 503),
         why="RFC 5321 §4.2.2: 500/502 command not recognised, 503 bad sequence of commands"),
    Rule(CommandRejected, h.command_rejected, codes=_codes(504),
         phases=_ALL - {Phase.MAIL, Phase.RCPT},
         why="RFC 5321 §4.2.2: 504 parameter not implemented (at MAIL/RCPT the parameter is "
             "the address: see below)"),
    Rule(SenderRejected, h.sender_rejected, phases=frozenset({Phase.MAIL}),
         codes=_codes(501, 504, 553, 555),
         why="RFC 5321 §4.2.2: 501 bad argument, 504 parameter not implemented, 553 mailbox "
             "name not allowed, 555 MAIL parameters not recognised: the sender or its "
             "parameters"),
    Rule(SenderRejected, h.sender_rejected, phases=frozenset({Phase.MAIL}),
         enhanced=("x.1.*",),
         why="RFC 3463 X.1.x addressing status, about the sender at MAIL"),
    Rule(CommandRejected, h.command_rejected, phases=frozenset({Phase.MAIL, *_CONTENT}),
         enhanced=("x.5.*",),
         why="RFC 3463 X.5.x protocol status (Gmail 451 4.5.0 'SMTP protocol violation')"),
    Rule(ServiceUnavailable, h.service_unavailable, phases=frozenset({Phase.MAIL, *_CONTENT}),
         classes=frozenset({4}), codes=_codes(451, 452),
         why="RFC 5321 §4.2.2: 451 local error in processing, 452 insufficient system storage"),
    Rule(ServiceUnavailable, h.service_unavailable, phases=frozenset({Phase.MAIL, *_CONTENT}),
         classes=frozenset({4}), enhanced=("x.3.*", "x.4.*"),
         why="RFC 3463 X.3.x mail system and X.4.x network status, when transient"),
    Rule(MessageRejected, h.content_rejected, phases=_CONTENT, enhanced=("x.6.*",),
         words=(r"spam", r"virus", r"malware", r"phish", r"suspicious", r"\bcontent\b",
                r"unsolicited", r"\bpolicy\b"),
         why="RFC 3463 X.6.x content status; spam and virus filters"),
    # --- per-phase defaults (keep last: they make the table total) ----------------------------
    Rule(SenderRejected, h.sender_rejected, phases=frozenset({Phase.MAIL}),
         why="RFC 5321 §4.1.1.2: a failure to MAIL refuses the sender"),
    Rule(RecipientRejected, h.recipient_rejected, phases=frozenset({Phase.RCPT}),
         why="RFC 5321 §4.1.1.3: a failure to RCPT refuses that recipient"),
    Rule(MessageRejected, h.message_rejected, phases=_CONTENT,
         why="RFC 5321 §4.1.1.4: a failure to DATA or after the content refuses the message"),
    Rule(CommandRejected, h.command_rejected,
         phases=frozenset({Phase.RSET, Phase.NOOP, Phase.QUIT}),
         why="RFC 5321 §4.1.1.5, §4.1.1.9, §4.1.1.10: these commands fail only on protocol "
             "errors"),
)
# fmt: on


def classify(
    reply: Reply,
    phase: Phase,
    *,
    provider: str | None = None,
    credential_kind: CredentialKind | None = None,
) -> tuple[type[ReplyError], str | None]:
    """Pick the exception class and hint for a failure reply.

    Args:
        reply: the server's reply; must be a failure (code 400-599).
        phase: the client step that drew it; it picks the class as much as the code does.
        provider: a name from :mod:`smtpkit.errors._providers`; changes only the hint.
        credential_kind: what the client logged in with; changes the hint, and turns a
            refused OAuth2 login into :class:`~smtpkit.errors.TokenRejected`.

    Returns:
        ``(exception class, hint)``.

    Raises:
        ValueError: for a success or intermediate reply (code < 400): clients must not turn
            those into errors.

    Example::

        >>> classify(Reply(550, ("5.1.1 No such user",)), Phase.RCPT)[0].__name__
        'RecipientRejected'
        >>> classify(Reply(550, ("5.1.1 No such user",)), Phase.MAIL)[0].__name__
        'SenderRejected'
    """
    if reply.code < 400:
        raise ValueError(f"classify() takes failure replies (4xx/5xx), got {reply.code}")
    text = normalise_text(reply)
    for rule in RULES:
        if rule.matches(reply, phase, text, credential_kind):
            ctx = h.HintContext(reply, phase, provider, credential_kind, text)
            return rule.class_for(phase), rule.hint(ctx)
    raise AssertionError(f"no rule for {reply.code} in {phase}")  # pragma: no cover


def error_for_reply(
    reply: Reply,
    phase: Phase,
    *,
    command: str | None = None,
    recipient: str | None = None,
    provider: str | None = None,
    credential_kind: CredentialKind | None = None,
    challenge: Mapping[str, str] | None = None,
    rejected: Mapping[str, Reply] | None = None,
    transcript: Sequence[str] = (),
) -> ReplyError:
    """Build the exception for a failure reply.

    Args:
        reply, phase, credential_kind: as for :func:`classify`.
        command: the redacted command that drew the reply.
        recipient: the recipient concerned (RCPT replies).
        provider: defaults to :func:`detect_provider` of the reply.
        challenge: the decoded JSON of an OAuth2 error challenge (``334 <base64 JSON>``);
            its presence means the login was token-based, so it implies
            ``CredentialKind.OAUTH2`` when no kind is given. Kept on ``TokenRejected``.
        rejected: every refused recipient and its reply (kept on ``RecipientRejected``).
        transcript: the redacted transcript tail.

    Returns:
        An instance of the class :func:`classify` picks (never raised here).

    Raises:
        ValueError: for a success reply, as :func:`classify`.
    """
    if provider is None:
        provider = detect_provider(reply)
    if credential_kind is None and challenge is not None:
        credential_kind = CredentialKind.OAUTH2
    cls, hint = classify(reply, phase, provider=provider, credential_kind=credential_kind)
    options: ReplyErrorOptions = {
        "command": command,
        "recipient": recipient,
        "provider": provider,
        "hint": hint,
        "transcript": transcript,
    }
    if issubclass(cls, TokenRejected):
        return cls(reply, phase, challenge=challenge, **options)
    if issubclass(cls, RecipientRejected):
        return cls(reply, phase, rejected=rejected, **options)
    return cls(reply, phase, **options)


def render_markdown() -> str:
    """The rule table as Markdown, for ``docs/errors.md``."""
    return _render(RULES)

"""Short, actionable advice for failure replies, chosen by provider and credential kind.

Each hint function takes a :class:`HintContext` and returns one or two sentences saying what
the user should do. The rule table in :mod:`smtpkit.errors._table` names the hint each rule
uses, so the table decides *what went wrong* and the hints say *what to do about it*. This
module holds the context and the advice about sending, quotas and the session; advice about
TLS and logging in is in :mod:`smtpkit.errors._auth_hints`.

Invariants:
    * Hints are built only from fixed text, the provider's display name and facts derived
      from codes and wording: never from the reply's own text, addresses or credentials, so a
      hint can never carry a secret.
    * Every hint function returns a non-empty string for every input (the table relies on it).
    * Advice that depends on the credential kind says so; with no kind given, the hint
      covers each likely kind in turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from smtpkit.errors._providers import display_name
from smtpkit.errors._tree import CredentialKind
from smtpkit.replies import Phase, Reply

__all__ = ["Hint", "HintContext"]


@dataclass(frozen=True, slots=True)
class HintContext:
    """What a hint may depend on.

    Attributes:
        reply: the failure reply.
        phase: the client step that drew it.
        provider: the provider name (see :mod:`smtpkit.errors._providers`), or ``None``.
        credential_kind: what the client logged in with, when known.
        text: the reply text, lowercased, URLs removed, whitespace collapsed.
    """

    reply: Reply
    phase: Phase
    provider: str | None
    credential_kind: CredentialKind | None
    text: str

    def says(self, pattern: str) -> bool:
        """True when the normalised reply text matches ``pattern`` (a regular expression)."""
        return re.search(pattern, self.text) is not None

    @property
    def name(self) -> str:
        """The provider's display name, or "The server" when unknown."""
        return display_name(self.provider) or "The server"


#: A hint function: context in, advice out.
Hint = Callable[[HintContext], str]


def quota(ctx: HintContext) -> str:
    """A quota or rate limit: say whether it clears soon."""
    if ctx.says(r"credit|plan\b|billing"):
        return (
            "The account's sending credits or plan quota are used up: this does not clear by "
            "retrying soon; upgrade the plan or wait for the quota to reset."
        )
    if ctx.says(r"dai?ly|per day|24 ?h|\bday\b|tomorrow"):
        if ctx.provider == "gmail":
            return (
                "Gmail's daily sending quota or limit is used up (about 500 messages a day "
                "for consumer accounts, 2,000 for Workspace): sending stays blocked for up to "
                "24 hours, so retrying sooner will not help."
            )
        return (
            f"{ctx.name} says the daily sending quota or limit is used up: it clears only as "
            "the 24-hour window rolls over, so retrying soon will not help."
        )
    if ctx.says(r"concurren|connections|thread|parallel"):
        limit = " (Microsoft 365 allows 3 per mailbox)" if ctx.provider == "microsoft" else ""
        return (
            f"Too many concurrent connections{limit}: use fewer parallel connections and try "
            "again later, once one has closed."
        )
    if ctx.says(r"rate|throttl|too fast|per (second|minute|hour)|too many (messages|e?mails)"):
        return (
            f"{ctx.name} throttled the sending rate: this clears within seconds to minutes, "
            "so slow down and retry with backoff."
        )
    if ctx.provider == "microsoft":
        return (
            "Microsoft 365's submission quota or limit was hit (30 messages a minute, 10,000 "
            "recipients a day): slow down; the daily part clears over 24 hours."
        )
    return (
        "A sending quota or rate limit was hit: wait before retrying, and lower the sending "
        "volume if it recurs."
    )


def too_many_recipients(ctx: HintContext) -> str:
    """The message has more recipients than the server takes at once."""
    limit = " (Gmail takes 100 per message over SMTP)" if ctx.provider == "gmail" else ""
    return (
        f"Too many recipients for one message{limit}: split the recipient list and send the "
        "rest in further messages."
    )


def mailbox_full(ctx: HintContext) -> str:
    """A mailbox has no storage space left."""
    if ctx.phase is Phase.RCPT:
        return (
            "The recipient's mailbox is full (out of storage space): the recipient must free "
            "space; try again later or use another address."
        )
    if ctx.provider == "microsoft":
        return (
            "The sending mailbox is full: Microsoft 365 saves sent mail to Sent Items, so "
            "free storage space there (empty Sent Items or Deleted Items)."
        )
    return (
        "A mailbox is full (out of storage space), often the sender's own when sent mail is "
        "stored: free space, then send again."
    )


def account_policy(ctx: HintContext) -> str:
    """Sandbox or unverified identity: the provider's account policy refused the send."""
    return (
        "The provider refused this under account policy: verify your sending domain or "
        "address; sandbox accounts may only send to verified, authorized recipients."
    )


def sender_identity(ctx: HintContext) -> str:
    """The logged-in account may not use this sender/From address."""
    grant = "grant it Send As permission" if ctx.provider == "microsoft" else "add and verify"
    if ctx.provider != "microsoft":
        grant += " that address or domain with the provider"
    return (
        "The account you logged in with may not send as this sender/From address: use its "
        f"own address (or an alias it owns), or {grant}."
    )


def relay_denied(ctx: HintContext) -> str:
    """The server will not relay for an unauthenticated client."""
    return (
        "The server will not relay to this recipient for an unauthenticated client: log in "
        "(AUTH) on the submission port 587 or 465 before sending."
    )


def message_too_large(ctx: HintContext) -> str:
    """The message is bigger than the server's limit."""
    if ctx.provider == "gmail":
        return (
            "The message is too large for Gmail (25 MB, and attachments grow by a third when "
            "encoded): send smaller attachments or a link instead."
        )
    return (
        "The message exceeds the server's size limit (the SIZE value in its EHLO reply): send "
        "smaller attachments or a link instead."
    )


#: The command line each phase sends, as a hint names it.
_COMMAND_NAMES = {
    Phase.EHLO: "EHLO",
    Phase.MAIL: "MAIL FROM",
    Phase.RCPT: "RCPT TO",
    Phase.DATA: "DATA",
    Phase.RSET: "RSET",
    Phase.NOOP: "NOOP",
    Phase.QUIT: "QUIT",
}


def command_line_too_long(ctx: HintContext) -> str:
    """RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including CRLF.

    Extensions raise the limit for their parameters (DSN: RFC 3461 §4, ORCPT on RCPT and
    ENVID on MAIL), and those parameters are what usually makes MAIL or RCPT too long. Not
    about the message's lines (998 characters, §4.5.3.1.6: :func:`line_too_long`).
    """
    command = _COMMAND_NAMES.get(ctx.phase, "a")
    limit = (
        f"The server refused the {command} command line as too long: a command line is at "
        "most 512 octets (RFC 5321 §4.5.3.1.4), and extensions such as DSN (RFC 3461 §4) "
        "allow more only for their own parameters."
    )
    if ctx.phase is Phase.RCPT:
        return (
            f"{limit} Shorten the recipient's ORCPT value (or send it without DSN) or the address."
        )
    if ctx.phase is Phase.MAIL:
        return (
            f"{limit} Shorten the ENVID value (or send without DSN), other MAIL parameters, or "
            "the sender address."
        )
    return f"{limit} This is about a command, not the message's lines: check what it carries."


def line_too_long(ctx: HintContext) -> str:
    """RFC 5321 §4.5.3.1.6: a text line is at most 998 characters plus CRLF."""
    return (
        "A line of the message is longer than the server allows (998 characters, RFC 5321 "
        "§4.5.3.1.6): use quoted-printable or base64 transfer encoding for long lines."
    )


def email_authentication(ctx: HintContext) -> str:
    """RFC 7372: the message failed SPF, DKIM or DMARC checks."""
    return (
        "The message failed the receiver's email authentication (SPF, DKIM or DMARC): "
        "publish SPF and DKIM records for the From domain and send through a server "
        "allowed to send for it."
    )


def content_rejected(ctx: HintContext) -> str:
    """A spam, virus or policy filter refused the content."""
    return (
        "The server's filter refused the message content: check links and attachments, and "
        "that the From domain publishes SPF, DKIM and DMARC records."
    )


def connection_rejected(ctx: HintContext) -> str:
    """The server refused the session: usually the client's IP address."""
    if ctx.phase not in (Phase.GREETING, Phase.EHLO):
        return (
            "The server refused mail from this client's IP address (a blocklist or "
            "reputation check): send through your provider's submission server, or from "
            "another network."
        )
    return (
        "The server refused the connection, often because the sending IP address is "
        "blocklisted or not allowed: check the host and port, or send from another network."
    )


def service_unavailable(ctx: HintContext) -> str:
    """The server is temporarily unable to serve (421 and 45x)."""
    if ctx.says(r"per (session|connection)|message count"):
        return "The server limits messages per connection: open a new connection and go on sending."
    if ctx.says(r"storage|disk|space"):
        return "The server is short of storage for now: retry later with backoff."
    if ctx.reply.code == 421:
        return (
            "The server is closing the connection (a temporary condition): reconnect and "
            "retry later with backoff."
        )
    return "The server had a temporary problem: retry later with backoff."


def ehlo_rejected(ctx: HintContext) -> str:
    """EHLO/HELO was refused."""
    return (
        "The server refused the EHLO greeting: send the client's fully qualified hostname "
        "as the EHLO argument (Submitter(local_hostname=...)), not an empty or bare name."
    )


def command_rejected(ctx: HintContext) -> str:
    """A command was not understood or came out of sequence."""
    return (
        "The server refused the command as not understood or out of sequence: this points "
        "to a client bug or an unsupported extension; the transcript shows the exchange."
    )


def sender_rejected(ctx: HintContext) -> str:
    """MAIL FROM was refused."""
    if ctx.reply.is_transient:
        return (
            "The server deferred the envelope sender (MAIL FROM) for now: retry later; if it "
            "keeps failing, use the address of the account you log in with."
        )
    return (
        "The server refused the envelope sender (MAIL FROM): use the address of the account "
        "you log in with, or one it may send as, and check the address syntax."
    )


def recipient_rejected(ctx: HintContext) -> str:
    """RCPT TO was refused."""
    if ctx.reply.is_transient:
        # Greylisting and DNS lookup failures answer 45x to RCPT (RFC 5321 §4.2.2).
        return (
            "The server deferred this recipient for now (often greylisting or a lookup "
            "failure): retry later; if it keeps failing, check the address and its domain."
        )
    return (
        "The server refused this recipient: check the address for typos and that its domain "
        "exists and accepts mail."
    )


def message_rejected(ctx: HintContext) -> str:
    """The content was refused for a reason the table cannot narrow down."""
    return (
        "The server refused the message after receiving it: the reply text gives the reason "
        "(often a spam or policy filter, or the sender address)."
    )

"""Advice for TLS and login failures: the hints that depend most on provider and credential.

See :mod:`smtpkit.errors._hints` for the hint contract; the same invariants hold here: fixed
text only (never the reply's text or a credential), one or two sentences, never empty.
"""

from __future__ import annotations

import re

from smtpkit.errors._hints import HintContext, quota
from smtpkit.errors._providers import display_name
from smtpkit.errors._tree import CredentialKind

_PASSWORD = CredentialKind.PASSWORD
_APP_PASSWORD = CredentialKind.APP_PASSWORD
_OAUTH2 = CredentialKind.OAUTH2

#: Providers that refuse the account password over SMTP and want an app password instead.
_APP_PASSWORD_PROVIDERS = frozenset({"gmail", "yahoo", "icloud", "yandex", "mailru", "zoho"})

# Token-flavoured wording at AUTH: the server itself says the failure was about OAuth.
_TOKEN_WORDS = re.compile(r"oauth|bearer|token")


def tls_refused(ctx: HintContext) -> str:
    """STARTTLS was refused."""
    if ctx.says(r"pipelin"):
        # RFC 3207 §4.2: nothing may follow STARTTLS until the TLS handshake is done.
        return (
            "The server saw commands pipelined after STARTTLS: wait for its 220 reply and "
            "finish the TLS handshake before sending EHLO again (RFC 3207 §4.2)."
        )
    return (
        "The server refused STARTTLS: retry later, or connect with implicit TLS on port 465 "
        "if the server offers it."
    )


def encryption_required(ctx: HintContext) -> str:
    """The server wants (newer) TLS first."""
    if ctx.says(r"tls ?1\.[0-3]|tls version|ssl ?v?3"):
        return (
            "The server requires TLS 1.2 or newer: upgrade the TLS library (OpenSSL) or stop "
            "capping the TLS version; retrying unchanged will not help."
        )
    return (
        "The server requires an encrypted connection first: use STARTTLS on port 587 or "
        "implicit TLS on port 465 before logging in or sending."
    )


def basic_auth_disabled(ctx: HintContext) -> str:
    """Password (basic) SMTP AUTH is turned off for the account or tenant."""
    if ctx.says(r"client submission|no longer supported"):
        # Microsoft's announced reply once basic auth for SMTP AUTH is retired (550 5.7.30):
        # no tenant switch brings it back, so the advice is OAuth2 alone.
        return (
            "Microsoft no longer accepts a password (basic authentication) for SMTP client "
            "submission: log in with OAuth2 instead (XOAUTH2 with scope "
            "https://outlook.office.com/SMTP.Send; see docs/oauth.md)."
        )
    if ctx.provider == "microsoft" or ctx.says(r"smtpclientauthentication"):
        return (
            "SMTP AUTH with a password is disabled for this mailbox or tenant: an admin can "
            "enable it (Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled "
            "$false), or log in with OAuth2 instead."
        )
    return (
        "Password (basic) SMTP AUTH is disabled for this account: enable SMTP AUTH in the "
        "account's settings, or log in with OAuth2 instead."
    )


def app_password_required(ctx: HintContext) -> str:
    """The provider refuses the account password and wants an app password."""
    if ctx.provider == "gmail":
        return (
            "Google wants an app password here: turn on 2-Step Verification, create an app "
            "password (16 letters) and use it instead of the account password, or use OAuth2."
        )
    return (
        f"{display_name(ctx.provider) or 'This provider'} requires an app password "
        "(application password) for SMTP: create one in the account's security settings and "
        "use it instead of the account password, or use OAuth2."
    )


def web_login_required(ctx: HintContext) -> str:
    """The provider wants an interactive browser sign-in before it accepts SMTP logins."""
    name = "Google" if ctx.provider in (None, "gmail") else ctx.name
    return (
        f"{name} blocked this sign-in until someone logs in to the account in a web browser "
        "and clears the security check; then use an app password (needs 2-Step "
        "Verification) or OAuth2 rather than the account password."
    )


def mechanism_unsupported(ctx: HintContext) -> str:
    """The AUTH mechanism is not offered (or too weak for this server)."""
    if ctx.says(r"protection\.outlook"):
        return (
            "This is a Microsoft 365 MX endpoint, which accepts no authentication type at "
            "all: submit through smtp.office365.com port 587 instead."
        )
    if ctx.provider == "microsoft":
        return (
            "Microsoft 365 offers only the LOGIN and XOAUTH2 mechanisms (no PLAIN): choose "
            "one of those, or the authentication type the server lists after EHLO."
        )
    return (
        "The server does not support this authentication mechanism (authentication type): "
        "choose one listed in its EHLO AUTH line, e.g. PLAIN or LOGIN over TLS."
    )


def _token_advice(ctx: HintContext) -> str:
    if ctx.provider == "gmail":
        return (
            "Google rejected the OAuth2 token: refresh it, and check it was issued for this "
            "user with scope https://mail.google.com/."
        )
    if ctx.provider == "microsoft":
        return (
            "Microsoft rejected the OAuth2 token: it needs scope "
            "https://outlook.office.com/SMTP.Send, the user must be the mailbox address the "
            "token was issued for, and SMTP AUTH must be enabled for the mailbox."
        )
    return (
        "The OAuth2 token was rejected: refresh it, and check it was issued for the same "
        "user (the user address sent with it) with the provider's SMTP scope."
    )


def _password_advice(ctx: HintContext, kind: CredentialKind | None) -> str:
    provider = ctx.provider
    if provider == "gmail":
        if kind is _PASSWORD:
            return (
                "Google no longer accepts account passwords over SMTP: use an app password "
                "(needs 2-Step Verification) or OAuth2."
            )
        if kind is _APP_PASSWORD:
            return (
                "The app password was mistyped or revoked (it is 16 letters; spaces do not "
                "matter): create a new one in your Google Account."
            )
        return (
            "Google did not accept the credentials. Account passwords no longer work over "
            "SMTP: use an app password (needs 2-Step Verification) or an OAuth2 token, and if "
            "you already do, create a new app password or refresh the token."
        )
    if provider == "microsoft":
        return (
            "Microsoft 365 did not accept the credentials: the username must be the full "
            "mailbox address; with MFA or security defaults on, a password cannot work, so "
            "use an OAuth2 token."
        )
    if kind is _APP_PASSWORD:
        return "The app password was mistyped or revoked: create a new one and use it."
    if kind is _PASSWORD and provider in _APP_PASSWORD_PROVIDERS:
        return (
            f"{ctx.name} needs an app password for SMTP, not the account password: create "
            "one in the account's security settings (or use OAuth2)."
        )
    if kind is _PASSWORD:
        return (
            "The server rejected the username or password: the username is usually the full "
            "email address, and many providers want an app password instead of the account "
            "password."
        )
    return (
        "The server did not accept the credentials: check the username (usually the full "
        "email address) and the password, app password or OAuth2 token."
    )


def invalid_credentials(ctx: HintContext) -> str:
    """The login was refused: advice depends on what was sent and to whom."""
    kind = ctx.credential_kind
    if kind is _OAUTH2 or (kind is None and _TOKEN_WORDS.search(ctx.text)):
        advice = _token_advice(ctx)
    else:
        advice = _password_advice(ctx, kind)
    if ctx.says(r"too many"):
        advice += " Stop retrying until the credentials are fixed: repeated failures lock logins."
    return advice


def login_throttled(ctx: HintContext) -> str:
    """Too many logins in a short time (4xx at AUTH)."""
    if ctx.says(r"credit|plan\b|billing"):
        return quota(ctx)
    return (
        "Too many login attempts: wait a few minutes and try again later. Check the "
        "credentials, and reuse one authenticated connection for many messages instead of "
        "logging in for each."
    )


def password_transition(ctx: HintContext) -> str:
    """RFC 4954 §6: 432 4.7.12: the account must log in once with PLAIN first."""
    return (
        "The server needs a password transition: log in once with the PLAIN mechanism over "
        "TLS, then the chosen mechanism will work."
    )


def auth_temporary(ctx: HintContext) -> str:
    """RFC 4954 §6: 454 4.7.0 Temporary authentication failure."""
    return (
        "The server could not check the login right now (a temporary failure on its side): "
        "retry later with backoff; the credentials need no change."
    )


def auth_not_offered(ctx: HintContext) -> str:
    """AUTH is not accepted on this port or at this point."""
    return (
        "The server does not accept authentication here: connect to the submission port "
        "(587 with STARTTLS, or 465 with TLS) where AUTH is enabled."
    )


def auth_failed(ctx: HintContext) -> str:
    """A login failure the table cannot narrow down."""
    return (
        "The server refused the login: check the credentials and the AUTH mechanism; the "
        "reply text may say more."
    )


def auth_required(ctx: HintContext) -> str:
    """The server wants a login before MAIL/RCPT/DATA."""
    advice = (
        "The server requires you to log in before sending: give the client credentials so "
        "it authenticates (AUTH) after STARTTLS, on the submission port 587 or 465."
    )
    if ctx.provider == "microsoft":
        advice += " If you did log in, SMTP AUTH may be disabled for the mailbox."
    return advice

"""Provider presets for :class:`~smtpkit.testing.FakeTransport`: Gmail and Microsoft 365.

Job: a fake server that advertises what the provider advertises, demands what it demands
(STARTTLS before AUTH, AUTH before MAIL) and, on request, refuses with the provider's own
words, so a test sees the exact error class and hint a user would see in production::

    fake = gmail_fake({"me@gmail.com": "abcdefghijklmnop"})
    fake.exceed_daily_quota()
    submitter = Submitter("smtp.gmail.com", transport=fake,
                          auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop"))
    submitter.send(message)       # raises RateLimited, with Gmail's quota hint

Each situation is a method that scripts the provider's real reply (quoted in public sources,
kept in ``tests/data/replies.jsonl``) and returns the :class:`~smtpkit.testing.Scripted` step, so
a test can check ``step.used`` or ``step.cancel()`` it. Situations that persist at the real
provider (a wrong password, a daily quota) default to ``times=None`` (every time); passing
ones (a concurrency limit, login throttling) default to ``times=1``.

Invariants:
    * A preset is an ordinary ``FakeTransport``: everything documented there still applies,
      and a preset scripts nothing until a situation method is called.
    * The greeting names the provider's host (``smtp.gmail.com``), which is how the client
      recognises the provider and picks provider-specific hints.
    * A scripted AUTH reply answers every AUTH exchange, whatever the mechanism and the
      credentials; without one, wrong credentials get the fake's generic
      ``535 5.7.8 Authentication credentials invalid`` (same class, same hint).
"""

from __future__ import annotations

from collections.abc import Mapping

from smtpkit.testing._fake import FakeTransport
from smtpkit.testing._fake_config import FakeCapabilities, FakeTLS
from smtpkit.testing._script import Scripted

__all__ = ["GmailFake", "Microsoft365Fake", "gmail_fake", "microsoft365_fake"]

#: The host names the presets greet with.
GMAIL_HOST = "smtp.gmail.com"
MICROSOFT365_HOST = "smtp.office365.com"

# --- Gmail's replies, as they travel (lines joined with "\n") ----------------------------------
# Sources are the public reports quoted in tests/data/replies.jsonl (by id) or named.

#: replies.jsonl #45 (2024 wording): wrong password, or the account password where an app
#: password is needed.
GMAIL_BAD_CREDENTIALS = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
    "41be03b00d2f7-bc37526d91fsm18248934a12.22 - gsmtp"
)
#: replies.jsonl #4: the account has 2-Step Verification and needs an app password.
GMAIL_SECOND_FACTOR = (
    "534-5.7.9 Application-specific password required. For more information, go to\n"
    "534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor "
    "ffacd0b85a97d-368119970e7sm1809147f8f.21 - gsmtp"
)
#: replies.jsonl #260: Google wants an interactive sign-in in a browser first.
GMAIL_WEB_LOGIN_REQUIRED = (
    "534-5.7.14\n"
    "534-5.7.14 Please log in via your web browser and then try again.\n"
    "534-5.7.14 Learn more at\n"
    "534 5.7.14 https://support.google.com/mail/answer/78754 u9sm6356280wrm.70 - gsmtp"
)
#: replies.jsonl #36: too many logins in a short time (log in once per connection).
GMAIL_TOO_MANY_LOGINS = (
    "454-4.7.0 Too many login attempts, please try again later. Learn more at\n"
    "454 4.7.0  https://support.google.com/mail/answer/7126229 "
    "h6-20020a0561220b6600b0049d21a8f4b6sm1103848vkf.11 - gsmtp"
)
#: The reply after the content once the daily sending limit is reached (quoted in
#: gen-smtp/gen_smtp#140 and iiuni/projektzapisy#960). It clears after up to 24 hours.
GMAIL_DAILY_QUOTA = "550 5.4.5 Daily user sending quota exceeded. o65sm25351206pga.71 - gsmtp"

# --- Microsoft 365's replies ------------------------------------------------------------------

#: replies.jsonl #53: SMTP AUTH with a password is off for the tenant (the default since
#: basic authentication was retired); only OAuth2 (XOAUTH2) works.
MICROSOFT_BASIC_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[MN2PR05CA0004.namprd05.prod.outlook.com 2023-09-12T20:59:57.214Z 08DBB276B7E699C4]"
)
#: replies.jsonl #58: wrong user name or password.
MICROSOFT_BAD_CREDENTIALS = (
    "535 5.7.3 Authentication unsuccessful [BN3PR03CA0067.namprd03.prod.outlook.com]"
)
#: replies.jsonl #95: the mailbox may not send as the From address.
MICROSOFT_SEND_AS_DENIED = (
    "550 5.7.60 SMTP; Client does not have permissions to send as this sender "
    "[MW2PR1901MB2155.namprd19.prod.outlook.com]"
)
#: After the content when more than three connections submit at once (quoted in
#: sabuhish/fastapi-mail#75); it clears as soon as another connection finishes.
MICROSOFT_CONCURRENT_CONNECTIONS = (
    "432 4.3.2 Concurrent connections limit exceeded. Visit https://aka.ms/concurrent_sending "
    "for more information. [Hostname=OS0PR01MB6099.jpnprd01.prod.outlook.com]"
)
#: replies.jsonl #80: the mailbox's sending limits (recipients per day, messages per minute).
MICROSOFT_SUBMISSION_QUOTA = (
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"
)

#: What smtp.office365.com advertises after STARTTLS (replies.jsonl #72), less BINARYMIME,
#: which the fake does not implement.
MICROSOFT365_CAPABILITIES = FakeCapabilities(
    auth=("LOGIN", "XOAUTH2"),
    size=157_286_400,
    chunking=True,
    dsn=True,
)


class GmailFake(FakeTransport):
    """A :class:`FakeTransport` that behaves like ``smtp.gmail.com``; see :func:`gmail_fake`."""

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        hostname: str = GMAIL_HOST,
        tls: FakeTLS = FakeTLS.OK,
    ) -> None:
        super().__init__(
            capabilities=FakeCapabilities.gmail(),
            credentials=credentials,
            require_auth=True,
            auth_requires_tls=True,
            tls=tls,
            hostname=hostname,
        )

    def reject_password(self, *, times: int | None = None) -> Scripted:
        """Answer AUTH with ``535-5.7.8 Username and Password not accepted``
        (``InvalidCredentials``)."""
        return self.reply("auth", GMAIL_BAD_CREDENTIALS, times=times)

    def require_app_password(self, *, times: int | None = None) -> Scripted:
        """Answer AUTH with ``534-5.7.9 Application-specific password required``
        (``AppPasswordRequired``)."""
        return self.reply("auth", GMAIL_SECOND_FACTOR, times=times)

    def require_web_login(self, *, times: int | None = None) -> Scripted:
        """Answer AUTH with ``534-5.7.14 Please log in via your web browser``
        (``WebLoginRequired``)."""
        return self.reply("auth", GMAIL_WEB_LOGIN_REQUIRED, times=times)

    def throttle_logins(self, *, times: int | None = 1) -> Scripted:
        """Answer AUTH with ``454-4.7.0 Too many login attempts`` (``RateLimited``, transient)."""
        return self.reply("auth", GMAIL_TOO_MANY_LOGINS, times=times)

    def exceed_daily_quota(self, *, times: int | None = None) -> Scripted:
        """Answer the content with ``550 5.4.5 Daily user sending quota exceeded``
        (``RateLimited``, permanent for the day)."""
        return self.reply("message", GMAIL_DAILY_QUOTA, times=times)


class Microsoft365Fake(FakeTransport):
    """A :class:`FakeTransport` that behaves like ``smtp.office365.com``; see
    :func:`microsoft365_fake`."""

    def __init__(
        self,
        credentials: Mapping[str, str] | None = None,
        *,
        hostname: str = MICROSOFT365_HOST,
        tls: FakeTLS = FakeTLS.OK,
    ) -> None:
        super().__init__(
            capabilities=MICROSOFT365_CAPABILITIES,
            credentials=credentials,
            require_auth=True,
            auth_requires_tls=True,
            tls=tls,
            hostname=hostname,
        )

    def disable_basic_auth(self, *, times: int | None = None) -> Scripted:
        """Answer AUTH with ``535 5.7.139 ... SmtpClientAuthentication is disabled for the
        Tenant`` (``BasicAuthDisabled``).

        The scripted reply answers every AUTH, XOAUTH2 included: script it for tests that log
        in with a password.
        """
        return self.reply("auth", MICROSOFT_BASIC_AUTH_DISABLED, times=times)

    def reject_password(self, *, times: int | None = None) -> Scripted:
        """Answer AUTH with ``535 5.7.3 Authentication unsuccessful`` (``InvalidCredentials``)."""
        return self.reply("auth", MICROSOFT_BAD_CREDENTIALS, times=times)

    def deny_send_as(self, *, times: int | None = None) -> Scripted:
        """Answer the content with ``550 5.7.60 ... not have permissions to send as this
        sender`` (``MessageRejected``)."""
        return self.reply("message", MICROSOFT_SEND_AS_DENIED, times=times)

    def limit_concurrent_connections(self, *, times: int | None = 1) -> Scripted:
        """Answer the content with ``432 4.3.2 Concurrent connections limit exceeded``
        (``RateLimited``, transient)."""
        return self.reply("message", MICROSOFT_CONCURRENT_CONNECTIONS, times=times)

    def exceed_submission_quota(self, *, times: int | None = None) -> Scripted:
        """Answer the content with ``554 5.2.0 ...SubmissionQuotaExceededException``
        (``RateLimited``)."""
        return self.reply("message", MICROSOFT_SUBMISSION_QUOTA, times=times)


def gmail_fake(
    credentials: Mapping[str, str] | None = None,
    *,
    hostname: str = GMAIL_HOST,
    tls: FakeTLS = FakeTLS.OK,
) -> GmailFake:
    """A fake ``smtp.gmail.com``.

    Like Gmail it advertises ``AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER`` only after STARTTLS
    (``530 5.7.0 Must issue a STARTTLS command first`` before), ``SIZE 35882577``,
    ``CHUNKING`` and no ``DSN``, and refuses ``MAIL`` before AUTH.

    Args:
        credentials: user -> app password (or OAuth2 access token for XOAUTH2 and
            OAUTHBEARER); ``None`` accepts any.
        hostname: the name in the greeting and EHLO reply.
        tls: how TLS behaves (:class:`FakeTLS`).

    Situations (each returns the scripted step): :meth:`~GmailFake.reject_password`,
    :meth:`~GmailFake.require_app_password`, :meth:`~GmailFake.require_web_login`,
    :meth:`~GmailFake.throttle_logins`, :meth:`~GmailFake.exceed_daily_quota`.
    """
    return GmailFake(credentials, hostname=hostname, tls=tls)


def microsoft365_fake(
    credentials: Mapping[str, str] | None = None,
    *,
    hostname: str = MICROSOFT365_HOST,
    tls: FakeTLS = FakeTLS.OK,
) -> Microsoft365Fake:
    """A fake ``smtp.office365.com``.

    It advertises ``AUTH LOGIN XOAUTH2`` (no PLAIN) only after STARTTLS, ``SIZE 157286400``,
    ``CHUNKING`` and ``DSN``, and refuses ``MAIL`` before AUTH.

    Args:
        credentials: user -> password (or OAuth2 access token for XOAUTH2); ``None``
            accepts any.
        hostname: the name in the greeting and EHLO reply.
        tls: how TLS behaves (:class:`FakeTLS`).

    Situations (each returns the scripted step): :meth:`~Microsoft365Fake.disable_basic_auth`,
    :meth:`~Microsoft365Fake.reject_password`, :meth:`~Microsoft365Fake.deny_send_as`,
    :meth:`~Microsoft365Fake.limit_concurrent_connections`,
    :meth:`~Microsoft365Fake.exceed_submission_quota`.
    """
    return Microsoft365Fake(credentials, hostname=hostname, tls=tls)

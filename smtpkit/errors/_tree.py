"""The smtpkit exception tree.

::

    SMTPError
    ├── ConfigurationError(ValueError)
    │   ├── InsecureAuthRefused            AUTH would cross an unencrypted link
    │   └── NoCommonMechanism              no AUTH mechanism both sides speak
    ├── MessageError(ValueError)           the message/envelope cannot be sent as given
    │   └── DSNNotOffered                  DSN asked for; the server does not offer it
    ├── LocalProtocolError                 the caller drove the protocol core out of order
    ├── TokenRefreshError                  an OAuth2 token could not be obtained
    │   └── StoreLockTimeout(TimeoutError) a token store stayed locked too long
    ├── QuotaExceeded                      a sending quota would be crossed; nothing sent
    ├── QuotaStoreUnavailable              the quota store could not be asked; nothing sent
    ├── TransportError
    │   ├── ConnectError(ConnectionError)
    │   │   └── ProxyError                 the proxy failed (.proxy, .target)
    │   │       ├── ProxyAuthenticationError   it refused the proxy credentials
    │   │       └── ProxyConnectionRefused     it could not reach the server
    │   ├── TLSError
    │   │   ├── TLSModeMismatch            TLS spoken to a plaintext port or vice versa
    │   │   └── StartTLSNotOffered         STARTTLS required but not advertised
    │   ├── ServerDisconnected(ConnectionError)
    │   │   └── ConnectionStale            closed before anything was accepted
    │   ├── OperationTimeout(TimeoutError)
    │   ├── RemoteProtocolError            the server broke the SMTP grammar
    │   └── DeliveryUnknown                lost after the final "." - outcome unknown
    └── ReplyError                         the server answered with a failure reply
        ├── ServiceUnavailable             421 / 45x "try again later"
        ├── ConnectionRejected             greeting refused
        ├── TLSUnavailable (also TLSError) STARTTLS refused
        ├── AuthenticationError
        │   ├── InvalidCredentials
        │   ├── AppPasswordRequired
        │   ├── WebLoginRequired
        │   ├── BasicAuthDisabled
        │   ├── MechanismUnsupported
        │   ├── EncryptionRequired
        │   └── TokenRejected
        ├── AuthenticationRequired
        ├── SenderRejected
        ├── RecipientRejected              .recipient, .rejected
        ├── MessageRejected
        │   └── MessageTooLarge
        ├── RateLimited
        └── CommandRejected

Invariants:
    * Every error has ``.hint`` (a short actionable sentence or ``None``), ``.transcript``
      (the redacted tail of the conversation) and ``.is_transient``.
    * ``ReplyError.is_transient`` is true exactly for 4xx replies.
    * No error ever holds a secret: transcripts are redacted before they reach an error, and
      nothing here stores credentials. Every error pickles and unpickles to an equal state.
    * Every error is rebuilt as the same class from its ``args`` alone: ``args`` is
      ``(message, facts)`` with ``facts`` a JSON-safe dict of its attributes, and
      ``cls(*args)`` gives back an equal error (Celery's JSON result format; see
      :mod:`smtpkit.errors._wire`). ``repr()`` shows the message only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

from smtpkit.errors._wire import RebuildableError, encode_facts
from smtpkit.replies import Phase, Reply

__all__ = [
    "AppPasswordRequired",
    "AuthenticationError",
    "AuthenticationRequired",
    "BasicAuthDisabled",
    "CommandRejected",
    "ConfigurationError",
    "ConnectError",
    "ConnectionRejected",
    "ConnectionStale",
    "CredentialKind",
    "DSNNotOffered",
    "DeliveryUnknown",
    "EncryptionRequired",
    "InsecureAuthRefused",
    "InvalidCredentials",
    "LocalProtocolError",
    "MechanismUnsupported",
    "MessageError",
    "MessageRejected",
    "MessageTooLarge",
    "NoCommonMechanism",
    "OperationTimeout",
    "ProxyAuthenticationError",
    "ProxyConnectionRefused",
    "ProxyError",
    "QuotaExceeded",
    "QuotaStoreUnavailable",
    "RateLimited",
    "RecipientRejected",
    "RemoteProtocolError",
    "ReplyError",
    "SMTPError",
    "SenderRejected",
    "ServerDisconnected",
    "ServiceUnavailable",
    "StartTLSNotOffered",
    "StoreLockTimeout",
    "TLSError",
    "TLSModeMismatch",
    "TLSUnavailable",
    "TokenRefreshError",
    "TokenRejected",
    "TransportError",
    "WebLoginRequired",
]

#: How many transcript lines an error keeps: enough to see the exchange that failed.
TRANSCRIPT_TAIL = 20


class CredentialKind(enum.Enum):
    """What kind of secret the client authenticated with; it changes the advice we give."""

    PASSWORD = "password"  # noqa: S105 - a kind of credential, not a credential
    APP_PASSWORD = "app_password"  # noqa: S105
    OAUTH2 = "oauth2"


def _restore(cls: type[SMTPError], args: tuple[Any, ...], state: dict[str, Any]) -> SMTPError:
    """Unpickle any SMTPError without calling its ``__init__`` (whose signature varies)."""
    error = cls.__new__(cls)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SMTPError(Exception, metaclass=RebuildableError):
    """Base class of every error smtpkit raises."""

    #: Whether retrying the same operation later may succeed.
    default_transient: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.transcript: tuple[str, ...] = tuple(transcript)[-TRANSCRIPT_TAIL:]

    @property
    def is_transient(self) -> bool:
        """True when the same operation may succeed if tried again later."""
        return self.default_transient

    def attach_transcript(self, transcript: Sequence[str]) -> None:
        """Record the (already redacted) conversation tail that led to this error."""
        self.transcript = tuple(transcript)[-TRANSCRIPT_TAIL:]

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})" if self.message else self.hint
        return self.message

    @property
    def args(self) -> tuple[Any, ...]:
        """``(message, facts)``: enough to rebuild this error with ``type(self)(*args)``.

        Tools that store an exception as its type and ``args`` (Celery's JSON result
        format) rebuild it with ``cls(*args)``; the facts make that give back the same
        class with the same attributes (:mod:`smtpkit.errors._wire`).
        """
        return (self.message, encode_facts(self.__dict__))

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        # What repr() shows; the facts are always computed from the attributes.
        _BASE_ARGS.__set__(self, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), _BASE_ARGS.__get__(self), dict(self.__dict__)))


# BaseException's own ``args`` slot, under the property above: the ``(message,)`` repr() shows.
_BASE_ARGS = BaseException.__dict__["args"]


class ConfigurationError(SMTPError, ValueError):
    """The settings given to smtpkit are invalid or inconsistent."""


class InsecureAuthRefused(ConfigurationError):
    """AUTH was about to be sent over an unencrypted link to a non-loopback host."""


# Mechanisms that carry an OAuth2 bearer token instead of a password.
_OAUTH_MECHANISMS = frozenset({"XOAUTH2", "OAUTHBEARER", "XOAUTH"})


class NoCommonMechanism(ConfigurationError):
    """The server offers no AUTH mechanism that the strategy can use.

    Raised before anything is sent, so it costs no login attempt.

    Attributes:
        offered: the mechanisms the server advertised, sorted (empty when it offered none).
        supported: the mechanisms the strategy would use, in its preference order.
        strategy: the strategy's class name.
    """

    def __init__(
        self,
        *,
        offered: Iterable[str],
        supported: Sequence[str],
        strategy: str,
        encrypted: bool,
        hint: str | None = None,
    ) -> None:
        self.offered: tuple[str, ...] = tuple(sorted(offered))
        self.supported: tuple[str, ...] = tuple(supported)
        self.strategy = strategy
        wanted = ", ".join(self.supported) or "nothing"
        if self.offered:
            message = (
                f"no AUTH mechanism in common: the server offers {' '.join(self.offered)}; "
                f"{strategy} supports {wanted}"
            )
        else:
            message = (
                f"the server advertised no AUTH mechanisms (no AUTH in its EHLO reply); "
                f"{strategy} supports {wanted}"
            )
        if hint is None:
            hint = _no_mechanism_hint(self.offered, encrypted)
        super().__init__(message, hint=hint)


def _no_mechanism_hint(offered: Sequence[str], encrypted: bool) -> str:
    if not offered and not encrypted:
        # Gmail, Microsoft 365 and most submission servers advertise AUTH only after TLS
        # (RFC 3207 §4.2: the client must discard what it learnt before STARTTLS).
        return "the server offers AUTH only after TLS; use Security.STARTTLS or Security.TLS"
    if not offered:
        return (
            "check the host and port: submission is port 587 (STARTTLS) or 465 (TLS); "
            "port 25 relays between servers and often offers no AUTH"
        )
    if set(offered) <= _OAUTH_MECHANISMS:
        return "this server accepts only OAuth2 here; use an OAuth2 strategy (docs/oauth.md)"
    return f"use a strategy for one of the offered mechanisms: {', '.join(offered)}"


class MessageError(SMTPError, ValueError):
    """The message or envelope cannot be sent as given (bad address, bare CR/LF, ...)."""


class DSNNotOffered(MessageError):
    """Delivery status notifications were asked for and the server does not offer DSN.

    Raised before ``MAIL``: RFC 3461 §3 forbids DSN parameters to a server that did not
    advertise DSN, so nothing of the message was sent and another server may take it.
    """


class LocalProtocolError(SMTPError):
    """The caller drove the protocol core out of order (a bug in the driver, not the server)."""


class TokenRefreshError(SMTPError):
    """An OAuth2 access token could not be obtained or refreshed.

    Attributes:
        error_code: the token endpoint's OAuth2 error (``"invalid_grant"``), if any.
        challenge: when the refresh followed a token the SMTP server refused, the server's
            decoded JSON error challenge (``status``, ``schemes``, ``scope``); else empty.
    """

    def __init__(
        self,
        message: str = "",
        *,
        transient: bool = False,
        error_code: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
        challenge: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.transient = transient
        self.error_code = error_code
        self.challenge: dict[str, str] = dict(challenge or {})

    @property
    def is_transient(self) -> bool:
        return self.transient


class StoreLockTimeout(TokenRefreshError, TimeoutError):
    """Another thread or process held a token store's lock longer than the wait allowed.

    Always transient: the holder finishes (or dies, and the OS releases its lock).
    """

    def __init__(
        self,
        message: str = "",
        *,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, transient=True, hint=hint, transcript=transcript)


class QuotaExceeded(SMTPError):
    """Sending now would cross the account's sending quota; nothing was sent.

    Raised by :meth:`smtpkit.quotas.Quota.reserve` before a message's envelope, so the
    message can be sent unchanged once ``retry_after`` seconds have passed. Always
    transient.

    Attributes:
        limit: the limit that would be crossed: a :class:`smtpkit.providers.Limits` field
            (``"messages_per_day"``, ``"recipients_per_day"``, ``"messages_per_minute"``,
            ``"messages_per_second"``), or ``"exhausted"`` when the provider's own reply
            said the quota is used up.
        used: what the window already counts, reservations still in flight included.
        allowed: the limit (``0`` for ``"exhausted"``).
        retry_after: seconds until enough of the window has freed up for this message.
        key: the account the quota counts for (its user name and host by default).
    """

    default_transient = True

    def __init__(
        self,
        message: str = "",
        *,
        limit: str = "",
        used: int = 0,
        allowed: int = 0,
        retry_after: float = 0.0,
        key: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.retry_after = retry_after
        self.key = key


class QuotaStoreUnavailable(SMTPError):
    """The quota store could not be asked, so nothing was sent (the safe default).

    Always transient. Pass ``on_store_error="send"`` to :class:`smtpkit.quotas.Quota` to
    send uncounted instead (``docs/quotas.md`` says when that is right).

    Attributes:
        store: the store, described without credentials (``"redis 127.0.0.1:6379/0"``).
    """

    default_transient = True

    def __init__(
        self,
        message: str = "",
        *,
        store: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.store = store


class TransportError(SMTPError):
    """The connection failed below the level of SMTP replies."""


class ConnectError(TransportError, ConnectionError):
    """The TCP connection could not be established."""

    default_transient = True


class ProxyError(ConnectError):
    """The proxy between smtpkit and the mail server failed, so no SMTP was spoken.

    Raised when the proxy cannot be reached, breaks its own protocol (SOCKS4, SOCKS5 or
    HTTP CONNECT), or answers with a failure. Transient, as any connect failure.

    Attributes:
        proxy: the proxy as a URL without its password (``socks5://alice@127.0.0.1:1080``).
        target: the mail server the proxy was asked for (``smtp.example.com:587``).
    """

    def __init__(
        self,
        message: str = "",
        *,
        proxy: str | None = None,
        target: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.proxy = proxy
        self.target = target


class ProxyAuthenticationError(ProxyError):
    """The proxy refused its user name and password (or wants some and got none).

    Not transient: the same credentials will be refused again.
    """

    default_transient = False


class ProxyConnectionRefused(ProxyError):
    """The proxy could not, or would not, connect to the mail server.

    A SOCKS reply such as "connection refused" or "not allowed by ruleset", an HTTP ``403``
    or ``502`` to ``CONNECT``, or a tunnel that closed before the server said a word.
    """


class TLSError(TransportError):
    """TLS could not be negotiated, or the certificate did not verify."""


class TLSModeMismatch(TLSError):
    """TLS was spoken to a plaintext port (or plaintext to an implicit-TLS port)."""


class StartTLSNotOffered(TLSError):
    """STARTTLS was required but the server did not advertise it; nothing else was sent."""


class ServerDisconnected(TransportError, ConnectionError):
    """The server closed the connection while the client expected a reply."""

    default_transient = True


class ConnectionStale(ServerDisconnected):
    """The connection turned out closed before the server accepted anything of a message.

    Raised only when nothing of the message can have been accepted (its envelope went
    unanswered), so it can be sent again on a new connection with no risk of a duplicate;
    the Submitter does that once by itself.
    """


class OperationTimeout(TransportError, TimeoutError):
    """A connect, command or final reply took longer than its timeout."""

    default_transient = True


class RemoteProtocolError(TransportError):
    """The server sent bytes that are not valid SMTP (or exceeded a size cap)."""


class DeliveryUnknown(TransportError):
    """The connection failed after the message content was sent, before the final reply.

    The server may or may not have accepted the message. smtpkit never resends such a
    message by itself: doing so could deliver it twice.
    """

    def __init__(
        self,
        message: str = "",
        *,
        message_id: str | None = None,
        recipients: Sequence[str] = (),
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.message_id = message_id
        self.recipients: tuple[str, ...] = tuple(recipients)


class ReplyErrorOptions(TypedDict, total=False):
    """The keyword arguments every :class:`ReplyError` takes (see its attributes)."""

    command: str | None
    recipient: str | None
    provider: str | None
    hint: str | None
    transcript: Sequence[str]
    from_server: bool


class ReplyError(SMTPError):
    """The server answered a command with a failure reply.

    Attributes:
        reply: the server's reply (``.code``, ``.enhanced_code``, ``.lines``, ``.text``).
        phase: the client step that drew it (:class:`smtpkit.Phase`).
        command: the command that drew it, redacted (``"RCPT TO:<a@example.com>"``).
        recipient: the recipient concerned, for RCPT replies.
        provider: the provider recognised from the reply or configuration, if any.
        from_server: False when smtpkit produced the reply itself (e.g. the SIZE pre-check).
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        command: str | None = None,
        recipient: str | None = None,
        provider: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
        from_server: bool = True,
    ) -> None:
        where = f" to {command}" if command else f" during {phase.value.upper()}"
        message = f"{reply}{where}" if from_server else f"{reply} (checked locally)"
        super().__init__(message, hint=hint, transcript=transcript)
        self.reply = reply
        self.phase = phase
        self.command = command
        self.recipient = recipient
        self.provider = provider
        self.from_server = from_server

    @property
    def code(self) -> int:
        """The basic reply code, e.g. ``535``."""
        return self.reply.code

    @property
    def enhanced_code(self) -> str | None:
        """The RFC 3463 enhanced status code, e.g. ``"5.7.8"``, or ``None``."""
        return self.reply.enhanced_code

    @property
    def is_transient(self) -> bool:
        return self.reply.is_transient


class ServiceUnavailable(ReplyError):
    """The server is closing the channel or cannot serve now (421, 45x "try again later")."""


class ConnectionRejected(ReplyError):
    """The server refused the session at the greeting (often a blocklisted IP)."""


class TLSUnavailable(ReplyError, TLSError):
    """The server refused STARTTLS (454 TLS not available)."""


class AuthenticationError(ReplyError):
    """The server did not accept the login."""


class InvalidCredentials(AuthenticationError):
    """Username, password, app password or token not accepted."""


class AppPasswordRequired(AuthenticationError):
    """The account needs an app password (e.g. Gmail 534 5.7.9)."""


class WebLoginRequired(AuthenticationError):
    """The provider wants an interactive browser sign-in first (e.g. Gmail 534 5.7.14)."""


class BasicAuthDisabled(AuthenticationError):
    """Password (basic) authentication is turned off for the account or tenant."""


class MechanismUnsupported(AuthenticationError):
    """The server does not support the AUTH mechanism used (504 5.7.4 and friends)."""


class EncryptionRequired(AuthenticationError):
    """The server wants TLS before AUTH (530 5.7.0 Must issue a STARTTLS command first)."""


class TokenRejected(AuthenticationError):
    """An OAuth2 token was refused even after a refresh.

    Attributes:
        status, schemes, scope: decoded from the server's JSON challenge, when sent.
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        challenge: Mapping[str, str] | None = None,
        **options: Unpack[ReplyErrorOptions],
    ) -> None:
        super().__init__(reply, phase, **options)
        self.challenge: dict[str, str] = dict(challenge or {})

    @property
    def status(self) -> str | None:
        """The ``status`` field of the server's JSON challenge (e.g. ``"400"``)."""
        return self.challenge.get("status")

    @property
    def scope(self) -> str | None:
        """The ``scope`` field of the server's JSON challenge."""
        return self.challenge.get("scope")

    @property
    def schemes(self) -> str | None:
        """The ``schemes`` field of the server's JSON challenge."""
        return self.challenge.get("schemes")


class AuthenticationRequired(ReplyError):
    """The server wants the client to log in before sending (530 5.7.0 at MAIL)."""


class SenderRejected(ReplyError):
    """The envelope sender (MAIL FROM) was refused."""


class RecipientRejected(ReplyError):
    """Recipients were refused.

    Raised when every recipient is refused (partial refusals are reported in
    :attr:`smtpkit.SendResult.rejected` instead).

    Attributes:
        recipient: the first refused recipient.
        rejected: every refused recipient mapped to the server's reply.
    """

    def __init__(
        self,
        reply: Reply,
        phase: Phase,
        *,
        rejected: Mapping[str, Reply] | None = None,
        **options: Unpack[ReplyErrorOptions],
    ) -> None:
        super().__init__(reply, phase, **options)
        self.rejected: dict[str, Reply] = dict(rejected or {})
        if self.recipient is not None and self.recipient not in self.rejected:
            self.rejected[self.recipient] = reply


class MessageRejected(ReplyError):
    """The message content was refused after it was sent (or its DATA command was)."""


class MessageTooLarge(MessageRejected):
    """The message exceeds the server's size limit (checked before sending when advertised)."""


class RateLimited(ReplyError):
    """A sending quota or rate limit was hit; the hint says whether it clears soon."""


class CommandRejected(ReplyError):
    """A command was refused for syntax or sequence reasons (500-504)."""

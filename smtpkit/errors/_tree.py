"""The smtpkit exception tree.

::

    SMTPError
    ├── ConfigurationError(ValueError)
    │   ├── InsecureAuthRefused            AUTH would cross an unencrypted link
    │   └── NoCommonMechanism              no AUTH mechanism both sides speak
    ├── MessageError(ValueError)           the message/envelope cannot be sent as given
    │   └── ExtensionNotOffered            needs an extension not offered (.extension)
    │       └── DSNNotOffered              DSN asked for; the server does not offer it
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

The families live in modules of their own, and this module gathers them:
:mod:`~smtpkit.errors._base` (``SMTPError``: the facts every error carries, pickling),
:mod:`~smtpkit.errors._local` (configuration, message, protocol misuse, quotas),
:mod:`~smtpkit.errors._transport` (connect, proxy, TLS, lost links, timeouts),
:mod:`~smtpkit.errors._reply` (failure replies) and :mod:`~smtpkit.errors._auth` (login
and OAuth2 tokens). Every class keeps ``smtpkit.errors._tree`` as its ``__module__``.
"""

from __future__ import annotations

from smtpkit.errors._auth import (
    AppPasswordRequired,
    AuthenticationError,
    AuthenticationRequired,
    BasicAuthDisabled,
    CredentialKind,
    EncryptionRequired,
    InsecureAuthRefused,
    InvalidCredentials,
    MechanismUnsupported,
    NoCommonMechanism,
    StoreLockTimeout,
    TokenRefreshError,
    TokenRejected,
    WebLoginRequired,
)
from smtpkit.errors._base import (
    TRANSCRIPT_TAIL,  # noqa: F401 - importable here, as before
    SMTPError,
    _restore,
)
from smtpkit.errors._local import (
    ConfigurationError,
    DSNNotOffered,
    ExtensionNotOffered,
    LocalProtocolError,
    MessageError,
    QuotaExceeded,
    QuotaStoreUnavailable,
)
from smtpkit.errors._reply import (
    CommandRejected,
    ConnectionRejected,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    ServiceUnavailable,
    TLSUnavailable,
)
from smtpkit.errors._transport import (
    ConnectError,
    ConnectionStale,
    DeliveryUnknown,
    OperationTimeout,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    RemoteProtocolError,
    ServerDisconnected,
    StartTLSNotOffered,
    TLSError,
    TLSModeMismatch,
    TransportError,
)

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
    "ExtensionNotOffered",
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


def _keep_module_name() -> None:
    """Give every class of the tree, and the unpickling function, this module's name.

    A pickle names a class (and ``_restore``) by module and name, and Celery's JSON results
    store ``exc_module`` and look the class up there: every release so far defined the
    tree in this module. Keeping the name means a pickle or a stored result made by an
    older smtpkit loads in this one and the other way round, and documentation links stay
    right, wherever a family's module is.
    """
    namespace = globals()
    for name in __all__:
        namespace[name].__module__ = __name__
    _restore.__module__ = __name__


_keep_module_name()

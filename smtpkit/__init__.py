"""smtpkit: send mail through real SMTP submission servers.

The public API is re-exported here: :class:`Submitter`, :class:`SendResult`, the
:class:`Security` mode, :class:`Timeouts`, the reply values and every error class. Auth
strategies live in :mod:`smtpkit.auth`; the test kit in :mod:`smtpkit.testing`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, as type checkers and IDEs see them
    from smtpkit.config import Security, Timeouts
    from smtpkit.config._proxy import Proxy, ProxyKind
    from smtpkit.dkim import DKIMSigner
    from smtpkit.drivers import AsyncSubmitter, AsyncTokenProvider, Outgoing, Submitter
    from smtpkit.dsn import DSN, ESMTPParams, IfUnsupported, Notify, RecipientDSN, Ret
    from smtpkit.engine._result import BatchInterrupted, SendResult
    from smtpkit.errors import (
        AppPasswordRequired,
        AuthenticationError,
        AuthenticationRequired,
        BasicAuthDisabled,
        CommandRejected,
        ConfigurationError,
        ConnectError,
        ConnectionRejected,
        ConnectionStale,
        CredentialKind,
        DeliveryUnknown,
        DSNNotOffered,
        EncryptionRequired,
        ExtensionNotOffered,
        InsecureAuthRefused,
        InvalidCredentials,
        LocalProtocolError,
        MechanismUnsupported,
        MessageError,
        MessageRejected,
        MessageTooLarge,
        OperationTimeout,
        ProxyAuthenticationError,
        ProxyConnectionRefused,
        ProxyError,
        QuotaExceeded,
        QuotaStoreUnavailable,
        RateLimited,
        RecipientRejected,
        RemoteProtocolError,
        ReplyError,
        SenderRejected,
        ServerDisconnected,
        ServiceUnavailable,
        SMTPError,
        StartTLSNotOffered,
        TLSError,
        TLSModeMismatch,
        TLSUnavailable,
        TokenRefreshError,
        TokenRejected,
        TransportError,
        WebLoginRequired,
    )
    from smtpkit.failover import Failover, FailoverResult, FailoverStrategy
    from smtpkit.failover._async import AsyncFailover
    from smtpkit.replies import EnhancedStatus, Phase, Reply
    from smtpkit.retry import Retry

__version__ = "0.1.0.dev0"

#: Where each public name lives. ``import smtpkit`` imports none of them: pytest loads
#: smtpkit's plugin in every run of every project that installs smtpkit, and an eager root
#: cost each of them the whole engine, the drivers, ssl, socket, sqlite3 and the email
#: package (about 0.3 s of CPU). A name is imported on first use (PEP 562) and then kept
#: in the module's namespace, so later lookups cost nothing.
_HOMES: dict[str, str] = {
    "Security": "smtpkit.config",
    "Timeouts": "smtpkit.config",
    "Proxy": "smtpkit.config._proxy",
    "ProxyKind": "smtpkit.config._proxy",
    "DKIMSigner": "smtpkit.dkim",
    "Outgoing": "smtpkit.drivers",
    "Submitter": "smtpkit.drivers",
    "AsyncSubmitter": "smtpkit.drivers",
    "AsyncTokenProvider": "smtpkit.drivers",
    "DSN": "smtpkit.dsn",
    "ESMTPParams": "smtpkit.dsn",
    "IfUnsupported": "smtpkit.dsn",
    "Notify": "smtpkit.dsn",
    "RecipientDSN": "smtpkit.dsn",
    "Ret": "smtpkit.dsn",
    "BatchInterrupted": "smtpkit.engine._result",
    "SendResult": "smtpkit.engine._result",
    **dict.fromkeys(
        (
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
            "DeliveryUnknown",
            "DSNNotOffered",
            "EncryptionRequired",
            "ExtensionNotOffered",
            "InsecureAuthRefused",
            "InvalidCredentials",
            "LocalProtocolError",
            "MechanismUnsupported",
            "MessageError",
            "MessageRejected",
            "MessageTooLarge",
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
            "SenderRejected",
            "ServerDisconnected",
            "ServiceUnavailable",
            "SMTPError",
            "StartTLSNotOffered",
            "TLSError",
            "TLSModeMismatch",
            "TLSUnavailable",
            "TokenRefreshError",
            "TokenRejected",
            "TransportError",
            "WebLoginRequired",
        ),
        "smtpkit.errors",
    ),
    "Failover": "smtpkit.failover",
    "FailoverResult": "smtpkit.failover",
    "FailoverStrategy": "smtpkit.failover",
    "AsyncFailover": "smtpkit.failover._async",
    "EnhancedStatus": "smtpkit.replies",
    "Phase": "smtpkit.replies",
    "Reply": "smtpkit.replies",
    "Retry": "smtpkit.retry",
}

#: Subpackages that ``import smtpkit`` used to make reachable as attributes (it imported
#: them); ``smtpkit.errors.X`` after a bare ``import smtpkit`` keeps working.
_SUBMODULES = frozenset(
    {
        "auth", "config", "dkim", "drivers", "dsn", "engine", "errors", "failover", "hooks",
        "message", "oauth", "protocol", "providers", "quotas", "replies", "retry", "testing",
        "transports",
    }
)  # fmt: skip


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"smtpkit.{name}")
    else:
        raise AttributeError(f"module 'smtpkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "DSN",
    "AppPasswordRequired",
    "AsyncFailover",
    "AsyncSubmitter",
    "AsyncTokenProvider",
    "AuthenticationError",
    "AuthenticationRequired",
    "BasicAuthDisabled",
    "BatchInterrupted",
    "CommandRejected",
    "ConfigurationError",
    "ConnectError",
    "ConnectionRejected",
    "ConnectionStale",
    "CredentialKind",
    "DKIMSigner",
    "DSNNotOffered",
    "DeliveryUnknown",
    "ESMTPParams",
    "EncryptionRequired",
    "EnhancedStatus",
    "ExtensionNotOffered",
    "Failover",
    "FailoverResult",
    "FailoverStrategy",
    "IfUnsupported",
    "InsecureAuthRefused",
    "InvalidCredentials",
    "LocalProtocolError",
    "MechanismUnsupported",
    "MessageError",
    "MessageRejected",
    "MessageTooLarge",
    "Notify",
    "OperationTimeout",
    "Outgoing",
    "Phase",
    "Proxy",
    "ProxyAuthenticationError",
    "ProxyConnectionRefused",
    "ProxyError",
    "ProxyKind",
    "QuotaExceeded",
    "QuotaStoreUnavailable",
    "RateLimited",
    "RecipientDSN",
    "RecipientRejected",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "Ret",
    "Retry",
    "SMTPError",
    "Security",
    "SendResult",
    "SenderRejected",
    "ServerDisconnected",
    "ServiceUnavailable",
    "StartTLSNotOffered",
    "Submitter",
    "TLSError",
    "TLSModeMismatch",
    "TLSUnavailable",
    "Timeouts",
    "TokenRefreshError",
    "TokenRejected",
    "TransportError",
    "WebLoginRequired",
    "__version__",
]

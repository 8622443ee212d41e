"""smtpkit: send mail through real SMTP submission servers.

The public API is re-exported here: :class:`Submitter`, :class:`SendResult`, the
:class:`Security` mode, :class:`Timeouts`, the reply values and every error class. Auth
strategies live in :mod:`smtpkit.auth`; the test kit in :mod:`smtpkit.testing`.
"""

from typing import TYPE_CHECKING

from smtpkit.config import Security, Timeouts
from smtpkit.config._proxy import Proxy, ProxyKind
from smtpkit.dkim import DKIMSigner
from smtpkit.drivers import Outgoing, Submitter
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
from smtpkit.replies import EnhancedStatus, Phase, Reply
from smtpkit.retry import Retry

if TYPE_CHECKING:
    from smtpkit.drivers import AsyncSubmitter, AsyncTokenProvider
    from smtpkit.failover._async import AsyncFailover

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> object:
    # The asyncio driver is imported on first use: `import smtpkit` (and the pytest plugin
    # every test run loads) does not pay for asyncio.
    if name in ("AsyncSubmitter", "AsyncTokenProvider"):
        from smtpkit import drivers  # noqa: PLC0415

        return getattr(drivers, name)
    if name == "AsyncFailover":
        from smtpkit.failover._async import AsyncFailover  # noqa: PLC0415

        return AsyncFailover
    raise AttributeError(f"module 'smtpkit' has no attribute {name!r}")


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

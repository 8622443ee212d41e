"""Errors smtpkit raises on its own side: the settings, the message or a quota say no.

None of these means a server refused anything: each is decided before (or without) a
server reply, and nothing of the message was sent when it is raised.

Invariants:
    * ``ConfigurationError`` and ``MessageError`` are also ``ValueError``: bad input.
    * ``QuotaExceeded`` and ``QuotaStoreUnavailable`` are always transient: nothing was
      sent, so the same message can go later unchanged.
    * The login-related configuration errors (``InsecureAuthRefused``,
      ``NoCommonMechanism``) live with the other login errors in
      :mod:`smtpkit.errors._auth`.
"""

from __future__ import annotations

from collections.abc import Sequence

from smtpkit.errors._base import SMTPError

__all__ = [
    "ConfigurationError",
    "DSNNotOffered",
    "ExtensionNotOffered",
    "LocalProtocolError",
    "MessageError",
    "QuotaExceeded",
    "QuotaStoreUnavailable",
]


class ConfigurationError(SMTPError, ValueError):
    """The settings given to smtpkit are invalid or inconsistent."""


class MessageError(SMTPError, ValueError):
    """The message or envelope cannot be sent as given (bad address, bare CR/LF, ...)."""


class ExtensionNotOffered(MessageError):
    """The message needs an SMTP extension the server did not advertise in its EHLO reply.

    Raised before ``MAIL``, so nothing of the message was sent and a server that offers the
    extension may take it unchanged (:class:`smtpkit.Failover` moves it there). Raised for
    ``SMTPUTF8`` (a non-ASCII address or raw UTF-8 headers, RFC 6531 §3.4), ``8BITMIME``
    (8-bit content that cannot be re-encoded, RFC 6152 §3) and ``DSN``
    (:class:`DSNNotOffered`, RFC 3461 §3).

    Attributes:
        extension: the EHLO keyword the message needs (``"SMTPUTF8"``, ``"8BITMIME"``,
            ``"DSN"``).
    """

    #: The keyword when none is given (a subclass names its own).
    default_extension = ""

    def __init__(
        self,
        message: str = "",
        *,
        extension: str | None = None,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message, hint=hint, transcript=transcript)
        self.extension = self.default_extension if extension is None else extension


class DSNNotOffered(ExtensionNotOffered):
    """Delivery status notifications were asked for and the server does not offer DSN.

    Raised before ``MAIL``: RFC 3461 §3 forbids DSN parameters to a server that did not
    advertise DSN, so nothing of the message was sent and another server may take it.
    ``extension`` is ``"DSN"``.
    """

    default_extension = "DSN"


class LocalProtocolError(SMTPError):
    """The caller drove the protocol core out of order (a bug in the driver, not the server)."""


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

"""The Django email backend: Django's mail API on top of a :class:`~smtpkit.Submitter`.

With :mod:`smtpkit.django._options`, the only code that imports Django. Django is untyped
here, so ``Any`` stays in this adapter and never reaches smtpkit's own signatures.

Invariants:
    * Between ``open()`` and ``close()`` one authenticated connection is kept and reused by
      every ``send_messages()`` call, as Django's SMTP backend does; a ``send_messages()``
      call outside them opens and closes its own.
    * ``send_messages()`` returns how many messages the server accepted. A message some of
      whose recipients were refused counts as sent, and the refusals are never silent: they
      are logged at WARNING on logger ``smtpkit.django`` with each reply, and kept on the
      message object (``smtpkit_rejected``).
    * With ``fail_silently`` a failure makes ``send_messages()`` skip the message (or return
      0 when no connection could be opened); without it the typed
      :class:`~smtpkit.errors.SMTPError` propagates.
    * Unknown options reach ``BaseEmailBackend.__init__``, so Django 6.1+ reports them for
      ``MAILERS`` with the mailer's alias; on older Django they are an
      :class:`UnknownOption` (a ``TypeError``).
    * Every configuration problem is an smtpkit :class:`~smtpkit.ConfigurationError` with a
      hint, raised when the backend is created: a conflict between options is a
      :class:`BackendConfigurationError`, which is also Django's ``ImproperlyConfigured``.
      The options and the Submitter they build are :mod:`smtpkit.django._options`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from email.message import Message
from email.utils import getaddresses
from typing import Any

import django
from django.core.mail.backends.base import BaseEmailBackend

from smtpkit.django._options import (
    KNOWN_OPTIONS,
    SOURCE_OPTIONS,
    BackendConfigurationError,
    UnknownOption,
    build_submitter,
    legacy_settings,
)
from smtpkit.errors import MessageError, SMTPError

__all__ = ["BackendConfigurationError", "EmailBackend", "UnknownOption"]

logger = logging.getLogger("smtpkit.django")

#: Django 6.1 introduced ``MAILERS`` and backends that report unknown options themselves.
DJANGO_HAS_MAILERS = django.VERSION >= (6, 1)


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django is untyped
    """A Django email backend that sends through smtpkit.

    Django 5.2 and later, in ``settings.py``::

        EMAIL_BACKEND = "smtpkit.django.EmailBackend"
        EMAIL_HOST = "smtp.example.com"
        EMAIL_PORT = 587
        EMAIL_USE_TLS = True            # STARTTLS; EMAIL_USE_SSL = True for port 465
        EMAIL_HOST_USER = "me@example.com"
        EMAIL_HOST_PASSWORD = "..."
        # or instead of the EMAIL_* server settings:
        SMTPKIT_URL = "smtp+starttls://me%40example.com@smtp.example.com:587"
        SMTPKIT_PROVIDER = "gmail"      # a provider preset: host, port and security
        SMTPKIT_OPTIONS = {"retry": smtpkit.Retry(attempts=3)}  # any Submitter keyword

    Django 6.1 ``MAILERS``: the options are keyword arguments::

        MAILERS = {
            "default": {
                "BACKEND": "smtpkit.django.EmailBackend",
                "OPTIONS": {"provider": "gmail", "username": "me@gmail.com",
                            "password": "abcd efgh ijkl mnop"},
            },
        }

    The options (keywords, ``MAILERS`` ``OPTIONS``):

    * ``url``: a server URL, as for :meth:`smtpkit.Submitter.from_url`;
    * ``provider``: a provider preset, as for :meth:`smtpkit.Submitter.for_provider`;
    * ``submitter``: a ready :class:`~smtpkit.Submitter` (no other server option allowed);
    * ``host``, ``port``, ``username``, ``password``, ``use_tls``, ``use_ssl``, ``timeout``,
      ``ssl_keyfile``, ``ssl_certfile``: as for Django's SMTP backend. ``use_tls`` is
      STARTTLS (required, never downgraded), ``use_ssl`` implicit TLS; a client certificate
      is loaded into a TLS context that verifies the server;
    * any other :class:`~smtpkit.Submitter` keyword: ``auth`` (an OAuth2 strategy, say),
      ``tls_context``, ``retry``, ``security``, ``local_hostname``...

    Args:
        fail_silently: swallow send failures (the message is then not counted).
        **kwargs: the options above; anything else goes to Django, which reports it.

    Raises:
        BackendConfigurationError: conflicting or incomplete options, or a client
            certificate that cannot be loaded (a ``ConfigurationError`` that is also
            Django's ``ImproperlyConfigured``).
        ConfigurationError: an invalid value (bad URL, unknown provider, a host with a
            space...), with a hint.
    """

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        alias = kwargs.get("alias")
        ours = {name: kwargs.pop(name) for name in list(kwargs) if name in KNOWN_OPTIONS}
        # get_connection() passes username=None, password=None: None means "not given".
        ours = {name: value for name, value in ours.items() if value is not None}
        # Django's BaseEmailBackend reports unknown options (6.1+, with the mailer alias).
        # fail_silently is never passed up: Django 6.1 deprecates it there, and a backend
        # that supports it keeps its own attribute.
        super().__init__(**kwargs)
        if not DJANGO_HAS_MAILERS:
            unknown = sorted(set(kwargs) - {"alias"})
            if unknown:
                raise UnknownOption(
                    f"smtpkit.django.EmailBackend got unknown option(s): {', '.join(unknown)}",
                    hint=f"known options: {', '.join(sorted(KNOWN_OPTIONS))}",
                )
        self.fail_silently = fail_silently
        if alias is None and not ours.keys() & (SOURCE_OPTIONS | {"host"}):
            # Not a MAILERS entry and no server given: Django 5.2-style settings.
            ours = {**legacy_settings(), **ours}
        self.submitter = build_submitter(ours)
        self._lock = threading.RLock()
        self._opened = False

    # -- connection ------------------------------------------------------------------------

    def open(self) -> bool | None:
        """Connect and log in, and keep the connection until ``close()``.

        Returns:
            ``True`` when a connection was opened, ``False`` when one was already open,
            ``None`` when opening failed and ``fail_silently`` is set.
        """
        with self._lock:
            if self._opened:
                return False
            try:
                self.submitter.open()
            except SMTPError:
                self.submitter.close()
                if self.fail_silently:
                    logger.warning("could not open a connection to %r", self.submitter)
                    return None
                raise
            self._opened = True
            return True

    def close(self) -> None:
        """QUIT and close the kept connection. Never raises."""
        with self._lock:
            if self._opened:
                self._opened = False
                self.submitter.close()

    # -- sending ---------------------------------------------------------------------------

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Send Django ``EmailMessage`` objects; return how many the server accepted."""
        if not email_messages:
            return 0
        with self._lock:
            opened = self.open()
            if not self._opened:
                return 0
            sent = 0
            try:
                for message in email_messages:
                    if self._send(message):
                        sent += 1
            finally:
                if opened:
                    self.close()
        return sent

    def _send(self, email_message: Any) -> bool:
        recipients = list(email_message.recipients())
        if not recipients:
            return False
        try:
            sender = _addr_spec(email_message.from_email)
            envelope = [_addr_spec(address) for address in recipients]
            message: Message = email_message.message()
            result = self.submitter.send(message, sender=sender, recipients=envelope)
        except (SMTPError, ValueError) as error:
            email_message.smtpkit_result = None
            email_message.smtpkit_error = error
            if not self.fail_silently:
                raise
            logger.warning("message not sent: %s", error)
            return False
        email_message.smtpkit_result = result
        email_message.smtpkit_error = None
        email_message.smtpkit_rejected = dict(result.rejected)
        if result.rejected:
            refused = "; ".join(f"{addr}: {reply}" for addr, reply in result.rejected.items())
            logger.warning(
                "message_id=%s sent to %d recipient(s) but %d refused: %s",
                result.message_id,
                len(result.accepted),
                len(result.rejected),
                refused,
            )
        return True


def _addr_spec(address: object) -> str:
    """The bare address of ``"Name <a@example.com>"`` (one address, or MessageError)."""
    pairs = getaddresses([str(address)])
    if len(pairs) != 1 or not pairs[0][1]:
        raise MessageError(
            f"invalid address {address!r}: must be a single address",
            hint="e.g. 'Name <me@example.com>' or 'me@example.com'",
        )
    return pairs[0][1]

"""The Django email backend: Django's mail API on top of a :class:`~smtpkit.Submitter`.

This is the only module that imports Django. Django is untyped here, so ``Any`` stays in
this adapter and never reaches smtpkit's own signatures.

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
"""

from __future__ import annotations

import inspect
import logging
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from email.message import Message
from email.utils import getaddresses
from typing import Any

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend

from smtpkit import providers
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security
from smtpkit.config._configure import (
    OPTION_NAMES,
    options_for_provider,
    options_from_url,
    password_auth,
    preset_for_url,
)
from smtpkit.config._url import parse_url
from smtpkit.drivers import Submitter
from smtpkit.errors import ConfigurationError, MessageError, SMTPError

__all__ = ["BackendConfigurationError", "EmailBackend", "UnknownOption"]

logger = logging.getLogger("smtpkit.django")

#: Django 6.1 introduced ``MAILERS`` and backends that report unknown options themselves.
DJANGO_HAS_MAILERS = django.VERSION >= (6, 1)

#: Options with the meaning of Django's own SMTP backend (``MAILERS`` OPTIONS and
#: ``get_connection()`` keywords).
DJANGO_OPTIONS = frozenset(
    {
        "host",
        "port",
        "username",
        "password",
        "use_tls",
        "use_ssl",
        "timeout",
        "ssl_keyfile",
        "ssl_certfile",
    }
)
#: smtpkit's own options: where the settings come from.
SOURCE_OPTIONS = frozenset({"url", "provider", "submitter"})
#: Every keyword ``Submitter()`` takes (``retry=``, ``tls_context=``, ``auth=``...).
SUBMITTER_OPTIONS = frozenset(inspect.signature(Submitter.__init__).parameters) - {"self"}
KNOWN_OPTIONS = DJANGO_OPTIONS | SOURCE_OPTIONS | SUBMITTER_OPTIONS


class BackendConfigurationError(ConfigurationError, ImproperlyConfigured):  # type: ignore[misc]
    """Options that conflict or are incomplete: an smtpkit error and Django's own kind."""


class UnknownOption(ConfigurationError, TypeError):
    """An option the backend does not know (Django before 6.1, which cannot report it)."""


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
            ours = {**_legacy_settings(), **ours}
        self.submitter = _build_submitter(ours)
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


# -- configuration -------------------------------------------------------------------------


#: Django's defaults for the settings read in the pre-``MAILERS`` style.
_DEFAULTS: dict[str, Any] = {
    "EMAIL_HOST": "localhost",
    "EMAIL_PORT": 25,
    "EMAIL_HOST_USER": "",
    "EMAIL_HOST_PASSWORD": "",
    "EMAIL_USE_TLS": False,
    "EMAIL_USE_SSL": False,
    "EMAIL_TIMEOUT": None,
    "EMAIL_SSL_CERTFILE": None,
    "EMAIL_SSL_KEYFILE": None,
    "SMTPKIT_URL": None,
    "SMTPKIT_PROVIDER": None,
    "SMTPKIT_OPTIONS": None,
}


def _setting(name: str, default: Any = None) -> Any:
    """A setting the project set explicitly, else ``default``.

    Only explicitly set settings are read: Django 6.1 warns on every read of a deprecated
    ``EMAIL_*`` setting, and a project should not be warned about settings it never set.
    """
    if not settings.is_overridden(name):
        return default
    return getattr(settings, name, default)


def _legacy_settings() -> dict[str, Any]:
    """Options from ``SMTPKIT_*`` and ``EMAIL_*`` settings (the pre-``MAILERS`` style)."""

    def get(name: str) -> Any:
        return _setting(name, _DEFAULTS[name])

    extra = get("SMTPKIT_OPTIONS") or {}
    if not isinstance(extra, Mapping):
        raise BackendConfigurationError(
            "SMTPKIT_OPTIONS must be a dict of Submitter keywords",
            hint='e.g. SMTPKIT_OPTIONS = {"timeout": 30}',
        )
    options: dict[str, Any] = {}
    password = get("EMAIL_HOST_PASSWORD") or None
    if get("SMTPKIT_URL"):
        # The URL names the server and user; the password may stay in its own setting.
        options.update(url=get("SMTPKIT_URL"), password=password)
    else:
        options.update(
            username=get("EMAIL_HOST_USER") or None,
            password=password,
            use_tls=get("EMAIL_USE_TLS"),
            use_ssl=get("EMAIL_USE_SSL"),
            timeout=get("EMAIL_TIMEOUT"),
            ssl_keyfile=get("EMAIL_SSL_KEYFILE"),
            ssl_certfile=get("EMAIL_SSL_CERTFILE"),
        )
        if get("SMTPKIT_PROVIDER"):
            # The preset names the server; an explicitly set EMAIL_PORT still wins.
            options.update(provider=get("SMTPKIT_PROVIDER"), port=_setting("EMAIL_PORT"))
        else:
            options.update(host=get("EMAIL_HOST"), port=get("EMAIL_PORT"))
    options.update(extra)
    return options


def _security(options: Mapping[str, Any]) -> Security | None:
    use_tls, use_ssl = bool(options.get("use_tls")), bool(options.get("use_ssl"))
    security = options.get("security")
    if use_tls and use_ssl:
        raise BackendConfigurationError(
            "use_tls (EMAIL_USE_TLS, STARTTLS) and use_ssl (EMAIL_USE_SSL, implicit TLS) "
            "are mutually exclusive: set at most one",
            hint="use_ssl for port 465, use_tls for port 587",
        )
    if security is not None and (use_tls or use_ssl):
        raise BackendConfigurationError(
            "give either security= or use_tls/use_ssl, not both",
            hint="drop use_tls/use_ssl and keep security=",
        )
    if use_ssl:
        return Security.TLS
    if use_tls:
        return Security.STARTTLS
    return security  # Submitter checks the type


def _client_cert(options: Mapping[str, Any]) -> ssl.SSLContext | None:
    certfile, keyfile = options.get("ssl_certfile"), options.get("ssl_keyfile")
    if not certfile and not keyfile:
        return None
    if not certfile:
        raise BackendConfigurationError(
            "ssl_keyfile (EMAIL_SSL_KEYFILE) needs ssl_certfile too",
            hint="set ssl_certfile (EMAIL_SSL_CERTFILE) to the client certificate's file",
        )
    if options.get("tls_context") is not None:
        raise BackendConfigurationError(
            "give either tls_context= or ssl_certfile/ssl_keyfile, not both",
            hint="load the client certificate into your context with load_cert_chain()",
        )
    for what, path in (("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path and not isinstance(path, str | os.PathLike):
            raise BackendConfigurationError(
                f"{what} must be a file path, got {type(path).__name__}",
                hint="e.g. EMAIL_SSL_CERTFILE = '/etc/ssl/client.pem'",
            )
    # Unlike a bare SSLContext, the default context verifies the server (DESIGN rule 7).
    context = ssl.create_default_context()
    problem = None
    try:
        # An encrypted key would make OpenSSL prompt on the terminal and block the process:
        # an empty passphrase makes it fail instead.
        context.load_cert_chain(certfile, keyfile or None, password=lambda: b"")
    except (OSError, ssl.SSLError) as error:  # ssl.SSLError is an OSError; both named
        problem = error.strerror or type(error).__name__
    if problem is not None:
        raise BackendConfigurationError(
            f"cannot load the client certificate {certfile!r}: {problem}",
            hint="ssl_certfile (and ssl_keyfile) must be readable PEM files; "
            "the key must match the certificate and must not be encrypted",
        )
    return context


def _password_auth(
    options: Mapping[str, Any], preset: Callable[[], providers.Preset | None]
) -> AuthStrategy | None:
    """The strategy for ``username``/``password``: an app password where the preset (the
    URL's, the named one or the host's) takes only those, as ``Submitter.from_url`` does."""
    username, password = options.get("username"), options.get("password")
    if options.get("auth") is not None or not username:
        return None
    if not password:
        raise BackendConfigurationError(
            f"username {username!r} is set but no password",
            hint="set password= (EMAIL_HOST_PASSWORD), or pass auth= for OAuth2",
        )
    return password_auth(username, password, preset())


def _build_submitter(given: Mapping[str, Any]) -> Submitter:
    """A Submitter from backend options (keywords, or the settings when not ``MAILERS``)."""
    options = {name: value for name, value in given.items() if value is not None}
    submitter = options.pop("submitter", None)
    if submitter is not None:
        others = sorted(name for name, value in options.items() if value is not False)
        if not isinstance(submitter, Submitter):
            raise BackendConfigurationError(
                f"submitter= must be a smtpkit.Submitter, got {type(submitter).__name__}",
                hint="e.g. submitter=smtpkit.Submitter.from_env()",
            )
        if others:
            raise BackendConfigurationError(
                f"submitter= is a ready Submitter: drop the other options ({', '.join(others)})",
                hint="configure the server on the Submitter itself",
            )
        return submitter
    if options.get("url") and options.get("provider"):
        raise BackendConfigurationError(
            "give either url= (SMTPKIT_URL) or provider=, not both",
            hint="a URL to a provider's host already picks its preset (or add ?provider=NAME)",
        )
    security = _security(options)
    cert_context = _client_cert(options)
    # Keywords options_from_url/options_for_provider check, and the rest of Submitter's.
    known: dict[str, Any] = {k: v for k, v in options.items() if k in OPTION_NAMES}
    extra = {k: v for k, v in options.items() if k in SUBMITTER_OPTIONS and k not in OPTION_NAMES}
    known.pop("security", None)
    if security is not None:
        known["security"] = security
    if cert_context is not None:
        known["tls_context"] = cert_context
    url = options.get("url")
    provider_name = options.get("provider")
    if url:
        known.pop("host", None)
        auth = _password_auth(options, lambda: preset_for_url(parse_url(url)))
        if auth is not None:
            known["auth"] = auth
        password = None if auth is not None else options.get("password")
        return Submitter(**options_from_url(url, password=password, **known), **extra)
    if provider_name:
        known.pop("host", None)
        known.pop("provider", None)
        auth = _password_auth(options, lambda: providers.get(provider_name))
        if auth is not None:
            known["auth"] = auth
        return Submitter(**options_for_provider(provider_name, **known), **extra)
    host = known.pop("host", None)
    if not host:
        raise BackendConfigurationError(
            "smtpkit.django.EmailBackend needs host= (EMAIL_HOST), url= (SMTPKIT_URL), "
            "provider= (SMTPKIT_PROVIDER) or submitter=",
            hint='e.g. SMTPKIT_URL = "smtp+starttls://me%40example.com@smtp.example.com:587"',
        )
    auth = _password_auth(options, lambda: providers.for_host(host))
    if auth is not None:
        known["auth"] = auth
    # Django's meaning: neither use_tls nor use_ssl is plain SMTP (no TLS at all).
    known.setdefault("security", Security.NONE)
    return Submitter(host, **known, **extra)

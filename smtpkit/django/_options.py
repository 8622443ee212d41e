"""The Django backend's options: what they are, where they come from, the Submitter they build.

:func:`build_submitter` turns the backend's keywords (``MAILERS`` ``OPTIONS``,
``get_connection()``) or, outside ``MAILERS``, the ``EMAIL_*`` and ``SMTPKIT_*`` settings
(:func:`legacy_settings`) into a :class:`~smtpkit.Submitter`: Django's own SMTP options
with their meaning (``use_tls`` is STARTTLS, ``use_ssl`` implicit TLS, a client certificate
in a context that verifies the server), smtpkit's sources (``url``, ``provider``,
``submitter``) and any other ``Submitter`` keyword.

Invariants:
    * Every problem is found here, when the backend is created, and is an smtpkit
      :class:`~smtpkit.ConfigurationError` with a hint; a conflict between options is a
      :class:`BackendConfigurationError`, which is also Django's ``ImproperlyConfigured``.
    * Only settings the project set explicitly are read (Django 6.1 warns on every read of
      a deprecated ``EMAIL_*`` setting).
    * ``use_tls`` is required STARTTLS, never downgraded; a client certificate goes into a
      context that verifies the server. (Neither ``use_tls`` nor ``use_ssl`` is plain SMTP,
      as in Django.) Errors name the option or the file, never a password.
"""

from __future__ import annotations

import inspect
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from smtpkit import providers
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security
from smtpkit.config._configure import options_for_provider, options_from_url, preset_for_url
from smtpkit.config._credentials import password_auth
from smtpkit.config._options import OPTION_NAMES
from smtpkit.config._url import parse_url
from smtpkit.drivers import Submitter
from smtpkit.errors import ConfigurationError

__all__ = [
    "DJANGO_OPTIONS",
    "KNOWN_OPTIONS",
    "SOURCE_OPTIONS",
    "SUBMITTER_OPTIONS",
    "BackendConfigurationError",
    "UnknownOption",
    "build_submitter",
    "legacy_settings",
]

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

    # Pickles and Celery's JSON results name an error's class by its module: it stays the
    # one this class was defined in before the options moved out of it.
    __module__ = "smtpkit.django._backend"


class UnknownOption(ConfigurationError, TypeError):
    """An option the backend does not know (Django before 6.1, which cannot report it)."""

    # Pickles and Celery's JSON results name an error's class by its module: it stays the
    # one this class was defined in before the options moved out of it.
    __module__ = "smtpkit.django._backend"


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


def legacy_settings() -> dict[str, Any]:
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


def build_submitter(given: Mapping[str, Any]) -> Submitter:
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

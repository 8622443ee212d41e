"""Turn a server URL, ``SMTPKIT_URL`` or a provider preset into Submitter keyword arguments.

Pure configuration: these functions build values and never connect. ``Submitter.from_url``
and ``Submitter.for_provider`` call them::

    Submitter(**options_from_url("smtp+starttls://me%40example.com:pw@mail.example.com"))
    Submitter(**options_for_provider("gmail", auth=AppPasswordAuth("me@gmail.com", "...")))

The pieces live beside it: :mod:`~smtpkit.config._options` (``SubmitterOptions``),
:mod:`~smtpkit.config._query` (the query values) and :mod:`~smtpkit.config._credentials`
(the AUTH strategy, token stores and CA files).

URL query options (everything else is refused, naming the unknown option):

==========================  ====================================================================
``timeout=30``              seconds for every step (connect, each command, the final reply)
``auth=MECHANISM``          ``plain``, ``login`` (password with only that mechanism),
                            ``password`` (an account password: PLAIN, else LOGIN),
                            ``app_password``, ``xoauth2``, ``oauthbearer`` (the URL
                            password is then an access token, unless ``token_store`` is
                            given). Without it (or with ``plain``/``login``) a password is
                            an app password where the URL's preset takes only those
                            (Gmail, Yahoo, iCloud, Yandex, Mail.ru, Outlook.com)
``token_store=PATH``        an OAuth2 token store (``smtpkit.oauth.FileTokenStore``); implies
                            ``auth=xoauth2``; refresh tokens rotate into the same file
``local_hostname=NAME``     the name sent in EHLO
``provider=NAME``           a preset name (``gmail``, ``ses:eu-west-1``) for precise hints
                            and the preset's connection and rate limits; by default the
                            preset serving the URL's host, if any
``allow_plaintext=true``    required for ``smtp://`` (no TLS at all) to a host that is not
                            loopback (without it, the address connected to must be loopback
                            too); with credentials it also allows AUTH over that link
``cafile=PATH``             trust this PEM CA file instead of the system's store (a private
                            CA, or the one ``smtpkit serve`` prints); TLS URLs only
``proxy=URL``               connect through a SOCKS5/SOCKS4/HTTP CONNECT proxy
                            (``socks5h://user:pw@host:1080``, percent-encoded as a query
                            value), or ``proxy=env`` for ``ALL_PROXY``/``HTTPS_PROXY``
                            (:class:`smtpkit.Proxy`); TLS still runs end to end
``window=16``               whole BDAT transactions in flight per connection when the
                            server offers PIPELINING and CHUNKING (1 to 256; ``1``: one
                            at a time)
``quota=URL``               count every message in this quota store before it is sent,
                            against the preset's limits (``sqlite:///var/lib/app/q.db``,
                            ``redis://:pw@host:6379/0``, percent-encoded as a query value;
                            :mod:`smtpkit.quotas`); the store URL's password is masked
==========================  ====================================================================

Invariants:
    * The password never appears in a ``repr`` or an error message: URLs are quoted redacted
      and the password stays in a :class:`~smtpkit.auth.Secret` until the strategy holds it.
    * ``smtp://`` to a non-loopback host is refused unless the URL says ``allow_plaintext=true``
      (DESIGN rule 7: secure by default, opt-outs loudly named): a host name that does not
      look like loopback at once, one that does when the connection reaches an address that
      is not loopback (``LoopbackOnlyTransport``; the name alone proves nothing).
    * Keyword overrides win over the URL; unknown overrides raise ConfigurationError.
    * A recognised preset (named, or serving the URL's host) brings its documented limits:
      ``max_connections`` and ``rate_limit`` (:func:`limit_options`); overrides win, and
      ``rate_limit=None`` turns the throttle off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from smtpkit import providers
from smtpkit.auth import Secret
from smtpkit.config import Security, check_ehlo_name, is_loopback
from smtpkit.config._credentials import ENV_PASSWORD, ca_context, url_auth
from smtpkit.config._options import SubmitterOptions, check_overrides
from smtpkit.config._query import (
    flag,
    loopback_proxy,
    timeout_option,
    url_proxy,
    url_quota,
    url_window,
)
from smtpkit.config._url import ServerURL, parse_url, redact_url
from smtpkit.errors import ConfigurationError
from smtpkit.transports import LoopbackOnlyTransport, SocketTransport, Transport

__all__ = [
    "ENV_URL",
    "URL_OPTIONS",
    "SubmitterOptions",
    "limit_options",
    "options_for_provider",
    "options_from_env",
    "options_from_url",
    "preset_for_url",
]

#: The environment variable holding the server URL.
ENV_URL = "SMTPKIT_URL"

#: The query options a server URL may carry.
URL_OPTIONS = frozenset(
    {
        "timeout",
        "auth",
        "token_store",
        "local_hostname",
        "provider",
        "allow_plaintext",
        "cafile",
        "proxy",
        "window",
        "quota",
    }
)


# -- presets ---------------------------------------------------------------------------------


def limit_options(preset: providers.Preset) -> SubmitterOptions:
    """The Submitter settings that keep within a preset's documented limits.

    ``concurrent_connections`` becomes ``max_connections`` and a per-minute or per-second
    message limit becomes ``rate_limit`` (messages per second: 30 a minute is ``0.5``).
    Daily quotas and recipient counts are left to the server (and to the error hints).

    >>> limit_options(providers.get("microsoft365"))
    {'max_connections': 3, 'rate_limit': 0.5}
    >>> limit_options(providers.get("gmail"))
    {}
    """
    limits = preset.limits
    options: SubmitterOptions = {}
    if limits.concurrent_connections is not None:
        options["max_connections"] = limits.concurrent_connections
    rates = []
    if limits.messages_per_second is not None:
        rates.append(float(limits.messages_per_second))
    if limits.messages_per_minute is not None:
        rates.append(limits.messages_per_minute / 60)
    if rates:
        options["rate_limit"] = min(rates)
    return options


def options_for_provider(name: str, **overrides: Unpack[SubmitterOptions]) -> SubmitterOptions:
    """Submitter options from a provider preset (see :mod:`smtpkit.providers`).

    >>> options = options_for_provider("ses:eu-west-1")
    >>> options["host"], options["port"], options["security"].name
    ('email-smtp.eu-west-1.amazonaws.com', 587, 'STARTTLS')

    Overriding ``security`` alone also picks the preset's port for that mode (Gmail with
    ``Security.TLS`` gets 465). The preset's documented connection and message-rate limits
    become ``max_connections`` and ``rate_limit`` (see :func:`limit_options`):

    >>> options = options_for_provider("microsoft365")
    >>> options["max_connections"], options["rate_limit"]
    (3, 0.5)

    Args:
        name: a preset name or alias, optionally with ``:region``.
        **overrides: ``auth=`` (the authentication strategy) and any other Submitter
            keyword; these win over the preset.

    Raises:
        ConfigurationError: an unknown preset, region or option.
    """
    check_overrides(overrides)
    preset = providers.get(name)
    options: SubmitterOptions = {
        "host": preset.host,
        "port": preset.port,
        "security": preset.security,
        "provider": preset.key,
        **limit_options(preset),
    }
    security = overrides.get("security")
    if isinstance(security, Security) and "port" not in overrides:
        ports = [port for port, mode in preset.alternatives if mode is security]
        if security is preset.security:
            ports.insert(0, preset.port)
        options["port"] = ports[0] if ports else security.default_port
    options.update(overrides)
    return options


def preset_for_url(server: ServerURL) -> providers.Preset | None:
    """The preset a parsed URL names (``?provider=``) or whose host it is, if any."""
    name = server.options.get("provider")
    return providers.get(name) if name is not None else providers.for_host(server.host)


def options_from_url(
    url: str,
    *,
    password: str | Secret | None = None,
    **overrides: Unpack[SubmitterOptions],
) -> SubmitterOptions:
    """Submitter options from a server URL.

    >>> options = options_from_url("smtps://me%40example.com:s3cret@mail.example.com?timeout=20")
    >>> options["host"], options["port"], options["security"].name, options["timeout"]
    ('mail.example.com', 465, 'TLS', 20.0)

    Args:
        url: ``smtp+starttls://``, ``smtps://`` or ``smtp://`` with optional
            ``user:password@`` (percent-encoded) and query options (module docstring).
        password: used when the URL has a user name but no password.
        **overrides: Submitter keywords that win over the URL.

    Raises:
        ConfigurationError: a malformed URL, an unknown or invalid query option, plaintext to
            a non-loopback host without ``allow_plaintext=true``, or missing credentials.
            The message shows the URL with its password replaced by ``***``.
    """
    check_overrides(overrides)
    server = parse_url(url)
    shown = redact_url(url)
    query = dict(server.options)
    unknown = sorted(set(query) - URL_OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown URL option(s) {', '.join(unknown)} in {shown}",
            hint=f"URL options are: {', '.join(sorted(URL_OPTIONS))}",
        )
    if password is not None and not isinstance(password, str | Secret):
        raise ConfigurationError(
            f"password must be a str or a smtpkit.auth.Secret, got {type(password).__name__}",
            hint="decode bytes first, e.g. password=raw.decode('utf-8')",
        )
    secret = server.password
    if secret is None and password is not None:
        secret = password if isinstance(password, Secret) else Secret(password)
    options: SubmitterOptions = {
        "host": server.host,
        "port": server.port,
        "security": server.security,
        **url_window(query, shown),
        **url_quota(query, shown),
    }
    plaintext_ok = flag("allow_plaintext", query.get("allow_plaintext", "false"), shown)
    if "allow_plaintext" in query and server.security is not Security.NONE:
        raise ConfigurationError(
            f"allow_plaintext in {shown} only applies to smtp:// URLs (this one uses TLS)"
        )
    if server.security is Security.NONE and not is_loopback(server.host) and not plaintext_ok:
        raise ConfigurationError(
            f"{shown} asks for plaintext SMTP to {server.host}, which is not loopback: "
            "messages (and any password) would cross the network unencrypted",
            hint=(
                "use smtp+starttls:// (port 587) or smtps:// (port 465); for a trusted "
                "network add ?allow_plaintext=true"
            ),
        )
    if "timeout" in query:
        options["timeout"] = timeout_option(query["timeout"], shown)
    if "cafile" in query:
        if server.security is Security.NONE:
            raise ConfigurationError(
                f"cafile in {shown} only applies to TLS URLs (smtp+starttls:// or smtps://)"
            )
        if "tls_context" not in overrides:
            options["tls_context"] = ca_context(query["cafile"], what=f"cafile in {shown}:")
    options.update(url_proxy(query, server, shown))
    if "local_hostname" in query:
        name = query["local_hostname"].strip()
        if not name:
            raise ConfigurationError(f"local_hostname in {shown} is empty")
        try:
            options["local_hostname"] = check_ehlo_name(name) or name
        except ConfigurationError as error:
            raise ConfigurationError(f"{error.message} in {shown}", hint=error.hint) from None
    preset = preset_for_url(server)
    if preset is not None:
        options["provider"] = preset.key
        options.update(limit_options(preset))
    if "auth" not in overrides:
        auth = url_auth(server, query, secret, shown, preset)
        if auth is not None:
            options["auth"] = auth
            if server.security is Security.NONE and plaintext_ok:
                options["allow_unencrypted_auth"] = True
    options.update(overrides)
    inner = options.get("transport")
    if (
        options["security"] is Security.NONE
        and not plaintext_ok
        and (inner is None or (isinstance(inner, Transport) and not isinstance(inner, type)))
    ):
        # The host looked like loopback (checked above), but a name proves nothing
        # ("evil.localhost" may resolve anywhere): the address the connection reaches
        # decides, when connecting and before anything is sent.
        proxy = loopback_proxy(options, shown)
        options["transport"] = LoopbackOnlyTransport(
            inner or SocketTransport(proxy=proxy), origin=shown
        )
    return options


def options_from_env(
    environ: Mapping[str, str], **overrides: Unpack[SubmitterOptions]
) -> SubmitterOptions | None:
    """Submitter options from ``SMTPKIT_URL`` (and ``SMTPKIT_PASSWORD``), or ``None`` if unset.

    Args:
        environ: the environment, usually ``os.environ``.
        **overrides: Submitter keywords that win over the URL.

    Raises:
        ConfigurationError: as :func:`options_from_url`; messages name ``SMTPKIT_URL``.
    """
    if not isinstance(environ, Mapping):
        raise ConfigurationError(
            f"environ must be a mapping such as os.environ, got {type(environ).__name__}",
            hint="leave it out to read os.environ",
        )
    url = environ.get(ENV_URL) or ""
    password = environ.get(ENV_PASSWORD) or None
    for name, value in ((ENV_URL, url), (ENV_PASSWORD, password)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"{name} must be a str, got {type(value).__name__}",
                hint="environment values are text; decode bytes before passing them",
            )
    url = url.strip()
    if not url:
        return None
    try:
        return options_from_url(url, password=password, **overrides)
    except ConfigurationError as error:
        error.message = f"{ENV_URL}: {error.message}"
        error.args = (error.message,)
        raise

"""Turn a server URL, ``SMTPKIT_URL`` or a provider preset into Submitter keyword arguments.

Pure configuration: these functions build values and never connect. ``Submitter.from_url``
and ``Submitter.for_provider`` call them::

    Submitter(**options_from_url("smtp+starttls://me%40example.com:pw@mail.example.com"))
    Submitter(**options_for_provider("gmail", auth=AppPasswordAuth("me@gmail.com", "...")))

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

import ipaddress
import math
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Literal, TypedDict, Unpack

from smtpkit import providers
from smtpkit.auth import (
    AppPasswordAuth,
    AuthStrategy,
    OAuthBearerAuth,
    PasswordAuth,
    Secret,
    TokenProvider,
    XOAuth2Auth,
)
from smtpkit.config import Security, Timeouts, check_ehlo_name, is_loopback
from smtpkit.config._checks import MAX_WINDOW, check_window
from smtpkit.config._proxy import Proxy, proxy_option
from smtpkit.config._url import ServerURL, parse_url, redact_url
from smtpkit.dkim import DKIMSigner
from smtpkit.errors import ConfigurationError
from smtpkit.quotas import Quota
from smtpkit.retry import Retry
from smtpkit.transports import LoopbackOnlyTransport, SocketTransport, Transport

__all__ = [
    "URL_OPTIONS",
    "SubmitterOptions",
    "limit_options",
    "options_for_provider",
    "options_from_env",
    "options_from_url",
    "password_auth",
    "preset_for_url",
]

#: The environment variable holding the server URL.
ENV_URL = "SMTPKIT_URL"
#: The environment variable holding the password when the URL has none.
ENV_PASSWORD = "SMTPKIT_PASSWORD"  # noqa: S105 - a variable name, not a password

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
    }
)
_AUTH_CHOICES = ("password", "plain", "login", "app_password", "xoauth2", "oauthbearer")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SubmitterOptions(TypedDict, total=False):
    """Keyword arguments for :class:`smtpkit.Submitter` (``Submitter(**options)``).

    Every keyword of ``Submitter.__init__`` is here; a test keeps the two in step.
    """

    host: str
    port: int
    security: Security
    auth: AuthStrategy | None
    timeout: float | Timeouts | None
    tls_context: ssl.SSLContext | None
    local_hostname: str | None
    transport: Transport | None
    proxy: Proxy | str | None
    dkim: DKIMSigner | None
    allow_unencrypted_auth: bool
    provider: str | None
    retry: Retry | None
    max_connections: int
    max_messages_per_connection: int | None
    idle_timeout: float
    rate_limit: float | None
    use_chunking: bool
    window: int
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime] | None
    quota: Quota | Literal[False] | None


#: Every key :class:`SubmitterOptions` allows, for checking overrides at run time.
OPTION_NAMES = frozenset(SubmitterOptions.__annotations__)


def _check_overrides(overrides: Mapping[str, object]) -> None:
    unknown = sorted(set(overrides) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"unknown Submitter option(s): {', '.join(unknown)}",
            hint=f"options are: {', '.join(sorted(OPTION_NAMES))}",
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
    _check_overrides(overrides)
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


# -- URLs ------------------------------------------------------------------------------------


def _flag(name: str, value: str, shown: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} in {shown} must be true or false")


def _timeout(value: str, shown: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"timeout={value!r} in {shown} must be a number of seconds greater than 0"
        )
    return seconds


def _url_window(query: Mapping[str, str], shown: str) -> SubmitterOptions:
    """``{"window": N}`` for the URL's ``window=`` option."""
    if "window" not in query:
        return {}
    value = query["window"]
    try:
        window = int(value.strip())
    except ValueError:
        window = 0
    try:
        check_window(window)
    except ConfigurationError as error:
        raise ConfigurationError(
            f"window={value!r} in {shown} must be an integer from 1 to {MAX_WINDOW}",
            hint=error.hint,
        ) from None
    return {"window": window}


def ca_context(path: str, *, what: str = "the CA file") -> ssl.SSLContext:
    """A verifying client TLS context that trusts the PEM CA bundle at ``path`` only.

    Verification stays on (certificate and host name); only the trusted roots change.

    Raises:
        ConfigurationError: the file cannot be read or holds no PEM certificate.
    """
    full = os.path.expanduser(path)
    try:
        return ssl.create_default_context(cafile=full)
    except ssl.SSLError:  # an OSError too: test it first
        raise ConfigurationError(
            f"{what} {path!r} holds no PEM CA certificate",
            hint="give the CA certificate file (-----BEGIN CERTIFICATE-----), e.g. the one "
            "smtpkit serve prints",
        ) from None
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ConfigurationError(
            f"cannot read {what} {path!r}: {reason}", hint="check the path of the CA file"
        ) from None


def _token_provider(path: str, shown: str) -> tuple[TokenProvider, str | None]:
    """A refreshing token provider from a token store file, and the mailbox it names."""
    # Imported here: smtpkit.oauth pulls in requests, which plain `import smtpkit` (and the
    # pytest plugin every test run loads) should not pay for.
    from smtpkit.oauth import provider_from_store  # noqa: PLC0415

    try:
        return provider_from_store(path)
    except ConfigurationError as error:
        raise ConfigurationError(
            f"{error.message} (token_store in {shown})", hint=error.hint
        ) from None


def _auth(
    server: ServerURL,
    query: Mapping[str, str],
    password: Secret | None,
    shown: str,
    preset: providers.Preset | None,
) -> AuthStrategy | None:
    choice = query.get("auth", "").strip().lower() or None
    store = query.get("token_store")
    if choice is not None and choice not in _AUTH_CHOICES:
        raise ConfigurationError(
            f"auth={query['auth']!r} in {shown} is not a known choice",
            hint=f"choices: {', '.join(_AUTH_CHOICES)}",
        )
    if store is not None:
        if choice not in (None, "xoauth2", "oauthbearer"):
            raise ConfigurationError(
                f"token_store in {shown} is for OAuth2: use auth=xoauth2 or auth=oauthbearer"
            )
        choice = choice or "xoauth2"
    user = server.username
    if choice in ("xoauth2", "oauthbearer"):
        token_source: TokenProvider
        if store is not None:
            token_source, stored_user = _token_provider(store, shown)
            user = user or stored_user
        elif password is not None:
            from smtpkit.oauth import StaticToken  # noqa: PLC0415 - only for this choice

            try:
                token_source = StaticToken(password)
            except ConfigurationError as error:  # its message never quotes the token
                raise ConfigurationError(
                    f"{error.message} (the password of {shown}, used as the token for "
                    f"auth={choice})",
                    hint=error.hint,
                ) from None
        else:
            raise ConfigurationError(
                f"auth={choice} in {shown} needs an access token (as the URL password) or "
                "token_store=PATH"
            )
        if not user:
            raise ConfigurationError(
                f"auth={choice} in {shown} needs the mailbox address as the URL user name"
            )
        cls = XOAuth2Auth if choice == "xoauth2" else OAuthBearerAuth
        return cls(user, token_source)
    if user is None:
        if choice is not None:
            raise ConfigurationError(f"auth={choice} in {shown} needs a user name in the URL")
        return None
    if password is None:
        raise ConfigurationError(
            f"the URL {shown} names user {user!r} but no password was given",
            hint=f"put it in the URL (percent-encoded) or set {ENV_PASSWORD}",
        )
    mechanisms = {"plain": ("PLAIN",), "login": ("LOGIN",)}.get(choice or "", ("PLAIN", "LOGIN"))
    return password_auth(
        user, password, preset, mechanisms=mechanisms, app_password=_app_password(choice)
    )


def _app_password(choice: str | None) -> bool | None:
    """What ``auth=`` says about the credential: ``app_password`` yes, ``password`` no.

    ``plain`` and ``login`` name a mechanism, not a kind of credential: ``None`` (the
    preset decides), as without ``auth=``.
    """
    return {"app_password": True, "password": False}.get(choice or "")


def password_auth(
    user: str,
    password: str | Secret,
    preset: providers.Preset | None,
    *,
    mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
    app_password: bool | None = None,
) -> PasswordAuth:
    """The password strategy for ``preset``: an app password where the preset wants one.

    A refused login then gets the advice for the credential the provider takes (Yandex,
    Gmail, Yahoo... accept only app passwords from mail programs). ``app_password`` says
    it explicitly (a URL's ``auth=app_password`` or ``auth=password``); ``None`` lets the
    preset decide (:attr:`~smtpkit.providers.Preset.wants_app_password`).
    """
    if app_password is None:
        app_password = preset is not None and preset.wants_app_password
    cls = AppPasswordAuth if app_password else PasswordAuth
    return cls(user, password, mechanisms=mechanisms)


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
    _check_overrides(overrides)
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
        **_url_window(query, shown),
    }
    plaintext_ok = _flag("allow_plaintext", query.get("allow_plaintext", "false"), shown)
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
        options["timeout"] = _timeout(query["timeout"], shown)
    if "cafile" in query:
        if server.security is Security.NONE:
            raise ConfigurationError(
                f"cafile in {shown} only applies to TLS URLs (smtp+starttls:// or smtps://)"
            )
        if "tls_context" not in overrides:
            options["tls_context"] = ca_context(query["cafile"], what=f"cafile in {shown}:")
    options.update(_url_proxy(query, server, shown))
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
        auth = _auth(server, query, secret, shown, preset)
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
        proxy = _loopback_proxy(options, shown)
        options["transport"] = LoopbackOnlyTransport(
            inner or SocketTransport(proxy=proxy), origin=shown
        )
    return options


def _url_proxy(query: Mapping[str, str], server: ServerURL, shown: str) -> SubmitterOptions:
    """``{"proxy": Proxy}`` for the URL's ``proxy=`` option (a proxy URL, or ``env``)."""
    if "proxy" not in query:
        return {}
    try:
        proxy = proxy_option(query["proxy"], host=server.host)
    except ConfigurationError as error:
        raise ConfigurationError(f"{error.message} (proxy in {shown})", hint=error.hint) from None
    return {"proxy": proxy} if proxy is not None else {}


def _loopback_proxy(options: SubmitterOptions, shown: str) -> Proxy | None:
    """The proxy for plaintext to a loopback host; its target must be a loopback IP literal.

    Through a proxy the socket's peer is the proxy, so the rule that relaxes plaintext for
    loopback can only trust a loopback *address* named in the URL (and a proxy that is on
    this machine too; see ``smtpkit.transports._proxy_route.tunnel_peer``).
    """
    proxy = proxy_option(options.get("proxy"), host=options["host"])
    if proxy is None:
        return None
    options["proxy"] = proxy  # resolved once, so the Submitter keeps this very transport
    host = options["host"].strip("[]")
    try:
        literal = ipaddress.ip_address(host).is_loopback
    except ValueError:
        literal = False
    if not literal:
        raise ConfigurationError(
            f"{shown} asks for plaintext SMTP through a proxy to {options['host']}: through a "
            "proxy only a loopback IP address (127.0.0.1, [::1]) shows that nothing crosses a "
            "network unencrypted",
            hint="write the host as 127.0.0.1 or [::1], use smtp+starttls:// or smtps://, or "
            "for a trusted network add ?allow_plaintext=true",
        )
    return proxy


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

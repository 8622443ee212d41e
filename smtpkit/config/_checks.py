"""Checks of Submitter options: every value's type, range and wire safety, before any I/O.

``Submitter.__init__`` calls :func:`check_submitter_options` first, so a bad value fails at
construction with a :class:`~smtpkit.ConfigurationError` that says what to pass instead,
never later, after EHLO or STARTTLS already went out, as an ``AttributeError`` or
``TypeError``. :func:`check_pool_limits` is the same check for ``PoolLimits``.

Invariants:
    * Every refusal is a ``ConfigurationError`` with a hint; nothing else escapes.
    * A refused ``auth`` value is never quoted: a ``"user:password"`` string or a
      ``(user, password)`` tuple holds the password. Only its type is named.
    * Host and EHLO names are checked by :func:`smtpkit.config.check_host` and
      :func:`smtpkit.config.check_ehlo_name` (no whitespace or control character: a CR or
      LF would end a command line early and inject another one).
    * Numbers are real numbers, never ``bool``, ``NaN`` or infinite; counts are integers.
"""

from __future__ import annotations

import math
import ssl

from smtpkit.auth import AuthStrategy, TokenProvider
from smtpkit.config import Security, Timeouts, check_ehlo_name, check_host
from smtpkit.errors import ConfigurationError
from smtpkit.retry import Retry
from smtpkit.transports import Transport

__all__ = [
    "check_auth",
    "check_count",
    "check_pool_limits",
    "check_seconds",
    "check_submitter_options",
    "check_transport",
]

_AUTH_HINT = (
    "pass a strategy, e.g. auth=PasswordAuth('me@example.com', password) (AppPasswordAuth "
    "for Gmail, Yahoo, iCloud...; XOAuth2Auth for OAuth2), or put the credentials in a URL: "
    "Submitter.from_url('smtp+starttls://me%40example.com:password@host')"
)


def _type_name(value: object) -> str:
    return type(value).__name__


def check_auth(auth: object) -> None:
    """Refuse anything but an authentication strategy instance (or ``None``)."""
    if auth is None:
        return
    if isinstance(auth, type):
        raise ConfigurationError(
            f"auth is the class {auth.__name__}, not a strategy",
            hint=f"create one: auth={auth.__name__}('me@example.com', ...)",
        )
    if isinstance(auth, AuthStrategy):
        return
    if isinstance(auth, TokenProvider):
        raise ConfigurationError(
            f"auth is a token provider ({_type_name(auth)}), not an authentication strategy",
            hint="wrap it: auth=XOAuth2Auth('me@example.com', provider)",
        )
    # Never show the value: a "user:password" str or a (user, password) tuple holds a secret.
    raise ConfigurationError(
        f"auth must be an authentication strategy from smtpkit.auth, not a {_type_name(auth)}",
        hint=_AUTH_HINT,
    )


def check_transport(transport: object) -> None:
    """Refuse anything but a transport instance (or ``None``)."""
    if transport is None:
        return
    if isinstance(transport, type) or not isinstance(transport, Transport):
        what = f"the class {transport.__name__}" if isinstance(transport, type) else None
        raise ConfigurationError(
            f"transport must be a Transport (an object with connect(endpoint)), got "
            f"{what or _type_name(transport)}",
            hint="leave it out for real sockets; tests pass smtpkit.testing.FakeTransport()",
        )


def _positive_number(value: object) -> bool:
    """A finite real number > 0: not a bool, not NaN, not infinite, not a numeric str."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_count(name: str, value: object, *, example: int = 4, optional: bool = False) -> None:
    """An ``int`` of at least 1 (``None`` too when ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1" + (" or None" if optional else "")
        raise ConfigurationError(
            f"{name} must be {allowed}, got {value!r}", hint=f"e.g. {name}={example}"
        )


#: The largest BDAT window accepted: each message in it may end unknown on a connection loss.
MAX_WINDOW = 256


def check_window(value: object) -> None:
    """The BDAT window: an ``int`` from 1 to :data:`MAX_WINDOW`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW:
        raise ConfigurationError(
            f"window must be an integer from 1 to {MAX_WINDOW}, got {value!r}",
            hint="e.g. window=16; window=1 sends one transaction at a time (up to that many "
            "messages may end DeliveryUnknown when a connection is lost)",
        )


def check_seconds(name: str, value: object, *, example: float = 30) -> None:
    """A finite number of seconds greater than 0."""
    if not _positive_number(value):
        raise ConfigurationError(
            f"{name} must be a finite number of seconds > 0, got {value!r}",
            hint=f"e.g. {name}={example:g}",
        )


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be True or False, got {value!r}", hint=f"e.g. {name}=True"
        )


def _check_callable(name: str, value: object, *, optional: bool = False) -> None:
    if (value is None and optional) or (value is not None and callable(value)):
        return
    raise ConfigurationError(
        f"{name} must be a function returning the time, got {_type_name(value)}",
        hint="leave it out unless a test injects a fake clock",
    )


def check_pool_limits(
    *,
    max_connections: object,
    max_messages_per_connection: object,
    idle_timeout: object,
    health_check_after: object = 10.0,
    acquire_timeout: object = 120.0,
) -> None:
    """The connection pool's limits (``PoolLimits`` and the Submitter's keywords)."""
    check_count("max_connections", max_connections)
    check_count(
        "max_messages_per_connection", max_messages_per_connection, example=100, optional=True
    )
    check_seconds("idle_timeout", idle_timeout, example=60)
    check_seconds("health_check_after", health_check_after, example=10)
    check_seconds("acquire_timeout", acquire_timeout, example=120)


def check_submitter_options(
    host: object,
    port: object,
    *,
    security: object,
    auth: object,
    timeout: object,
    tls_context: object,
    local_hostname: object,
    transport: object,
    allow_unencrypted_auth: object,
    provider: object,
    retry: object,
    max_connections: object,
    max_messages_per_connection: object,
    idle_timeout: object,
    rate_limit: object,
    use_chunking: object,
    window: object,
    clock: object,
    wall_clock: object,
) -> None:
    """Every ``Submitter()`` keyword, checked before anything is built or connected.

    Raises:
        ConfigurationError: the first wrong value, with a hint saying what to pass.
    """
    check_host(host)
    if not isinstance(security, Security):
        raise ConfigurationError(
            f"security must be a smtpkit.Security member, got {security!r}",
            hint="use Security.STARTTLS (port 587), Security.TLS (465) or Security.NONE",
        )
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
    ):
        raise ConfigurationError(
            f"port must be an integer from 1 to 65535, got {port!r}",
            hint="587 for STARTTLS, 465 for implicit TLS; None picks the one for security=",
        )
    check_auth(auth)
    Timeouts.coerce(timeout)  # type: ignore[arg-type]  # refuses wrong types itself
    if tls_context is not None and not isinstance(tls_context, ssl.SSLContext):
        raise ConfigurationError(
            f"tls_context must be an ssl.SSLContext, got {_type_name(tls_context)}",
            hint="e.g. ssl.create_default_context(cafile=...); None uses the system's CAs",
        )
    check_ehlo_name(local_hostname)
    check_transport(transport)
    _check_flag("allow_unencrypted_auth", allow_unencrypted_auth)
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        raise ConfigurationError(
            f"provider must be a preset name such as 'gmail', or None; got {provider!r}",
            hint="python -m smtpkit.providers lists the presets",
        )
    if retry is not None and (isinstance(retry, type) or not isinstance(retry, Retry)):
        raise ConfigurationError(
            f"retry must be a smtpkit.Retry value, got {_type_name(retry)}",
            hint="e.g. retry=Retry(attempts=3, backoff=1.0)",
        )
    check_pool_limits(
        max_connections=max_connections,
        max_messages_per_connection=max_messages_per_connection,
        idle_timeout=idle_timeout,
    )
    if rate_limit is not None and not _positive_number(rate_limit):
        raise ConfigurationError(
            f"rate_limit must be a finite number of messages per second > 0, or None; "
            f"got {rate_limit!r}",
            hint="e.g. rate_limit=0.5 for 30 messages a minute; None for no limit",
        )
    _check_flag("use_chunking", use_chunking)
    check_window(window)
    _check_callable("clock", clock)
    _check_callable("wall_clock", wall_clock, optional=True)

"""Checks for the test kit's constructor arguments: one typed error, with a hint, at once.

Job: ``FakeTransport`` and ``LocalServer`` call these before they build anything, so a wrong
value is a :class:`~smtpkit.errors.ConfigurationError` that names the argument and says what
to pass, instead of a ``TypeError`` from deep inside a session (or, for LocalServer, on the
server thread where the test never sees it) or a value accepted silently.

Invariants:
    * Every check returns the value to keep (a ``Path`` from a ``str``, a ``dict`` copy of
      credentials), so a caller cannot keep the unchecked one by mistake.
    * No error message echoes a credential value: only user names and types are shown.
    * A host name never carries whitespace or a control character: it is sent in the greeting
      and the EHLO reply, where a CR LF would start a line of the caller's choosing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TypeVar

from smtpkit.errors import ConfigurationError

__all__ = [
    "check_callable",
    "check_credentials",
    "check_flag",
    "check_host_name",
    "check_instance",
    "check_mechanisms",
    "check_optional_flag",
    "check_path",
    "check_positive_int",
    "check_token_check",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

#: The longest host name (RFC 1035 §2.3.4: 255 octets).
_MAX_HOST_NAME = 255


def _type(value: object) -> str:
    return type(value).__name__


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a ``bool``."""
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"{name} must be True or False, got {_type(value)} {value!r}",
            hint=f"pass {name}=True or {name}=False",
        )
    return value


def check_optional_flag(name: str, value: object) -> bool | None:
    """``value`` if it is a ``bool`` or ``None``."""
    return None if value is None else check_flag(name, value)


def check_positive_int(name: str, value: object, *, maximum: int | None = None) -> int | None:
    """``value`` if it is ``None`` or an ``int`` from 1 (to ``maximum``)."""
    if value is None:
        return None
    top = f" and at most {maximum}" if maximum is not None else ""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < 1
        or (maximum is not None and value > maximum)
    ):
        raise ConfigurationError(
            f"{name} must be an int of at least 1{top}, or None; got {_type(value)} {value!r}",
            hint=f"pass a number such as {name}=10 (not a string), or leave it out",
        )
    return value


def check_host_name(name: str, value: object) -> str:
    """``value`` if it is a non-empty name without whitespace or control characters."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= _MAX_HOST_NAME
        or not value.isprintable()  # no CR, LF or other control, no U+2028
        or any(char.isspace() for char in value)
    ):
        raise ConfigurationError(
            f"{name} must be a host name such as 'mail.example.test' (no spaces, line breaks "
            f"or other control characters), got {value!r}",
            hint=f"pass {name}='mail.example.test', or leave it out for the default",
        )
    return value


def check_credentials(value: object, name: str = "credentials") -> dict[str, str] | None:
    """A copy of ``value`` if it maps user names (``str``) to passwords or tokens (``str``)."""
    if value is None:
        return None
    hint = f"pass {name}={{'me@example.test': 'secret'}}, or None to accept any"
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{name} must be a mapping of user name to secret, got {_type(value)}", hint=hint
        )
    for user, secret in value.items():
        if not isinstance(user, str) or not user:
            raise ConfigurationError(
                f"{name}: every user name must be a non-empty str, got {user!r}", hint=hint
            )
        if not isinstance(secret, str):  # the value is a secret: name its type only
            raise ConfigurationError(
                f"{name}: the secret of {user!r} must be a str, got {_type(secret)}", hint=hint
            )
    return dict(value)


def check_token_check(value: T) -> T:
    """``value`` if it is ``None``, a callable ``(user, token) -> bool`` or a mapping of user
    name to token (``str`` to ``str``)."""
    if value is None or callable(value):
        return value
    if isinstance(value, Mapping):
        check_credentials(value, "oauth_tokens")
        return value
    raise ConfigurationError(
        f"oauth_tokens must be a mapping of user to token, a callable or None, got {_type(value)}",
        hint="pass oauth_tokens={'me@example.test': 'ya29.token'} or "
        "oauth_tokens=lambda user, token: token == 'ya29.token'",
    )


def check_callable(name: str, value: F | None, *, example: str) -> F | None:
    """``value`` if it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise ConfigurationError(
            f"{name} must be a callable or None, got {_type(value)} {value!r}",
            hint=f"pass a function, e.g. {name}={example}",
        )
    return value


def check_path(name: str, value: object) -> Path | None:
    """``value`` as a :class:`~pathlib.Path` if it is ``None``, a ``str`` or path-like."""
    if value is None:
        return None
    if isinstance(value, str | os.PathLike) and not isinstance(value, bytes):
        path = os.fspath(value)
        if isinstance(path, str) and path:
            return Path(path)
    raise ConfigurationError(
        f"{name} must be a path (str or pathlib.Path) or None, got {_type(value)} {value!r}",
        hint=f"pass {name}=pathlib.Path('...'), e.g. pytest's tmp_path / 'name'",
    )


def check_mechanisms(value: object, supported: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` (a collection of SASL mechanism names, any case) upper-cased; each must be
    one of ``supported``. An empty collection is valid: no AUTH is offered."""
    if (
        isinstance(value, str | bytes)
        or not isinstance(value, Collection)
        or not all(isinstance(name, str) and name.upper() in supported for name in value)
    ):
        raise ConfigurationError(
            f"auth_mechanisms must be a collection of names from {supported}, got {value!r}",
            hint="pass e.g. auth_mechanisms=('PLAIN', 'LOGIN'), or () to offer no AUTH",
        )
    return tuple(name.upper() for name in value)


def check_instance(name: str, value: object, kind: type[T], *, example: str) -> T:
    """``value`` if it is a ``kind``."""
    if not isinstance(value, kind):
        raise ConfigurationError(
            f"{name} must be a {kind.__name__}, got {_type(value)} {value!r}",
            hint=f"pass {name}={example}",
        )
    return value

"""Test kit: an in-memory fake transport and a real SMTP server on loopback.

* :class:`FakeTransport` plugs into ``Submitter(..., transport=fake)`` and plays a
  scriptable SMTP server in memory (no sockets, no extra dependencies).
* :func:`gmail_fake` and :func:`microsoft365_fake` are fakes preset like ``smtp.gmail.com``
  and ``smtp.office365.com``, with methods that make them refuse in the provider's own words.
* :class:`LocalServer` is a real server (aiosmtpd, trustme certificates) on 127.0.0.1 for
  integration tests; it needs the ``testing`` extra: ``pip install 'smtpkit[testing]'``.

Both servers speak one vocabulary: the same scripting verbs (``reply``, ``disconnect``,
``timeout``, ``delay``), the same record of what arrived (:class:`ReceivedMessage` in
``messages`` and ``dropped``), ``auth_attempts``, ``protocol_errors``, ``wait_for`` and
``assert_sent``.

Every name is imported on first use, so ``import smtpkit.testing`` (and the pytest plugin,
:mod:`smtpkit.testing.pytest_plugin`, which every pytest run loads once smtpkit is installed)
costs nothing in projects that do not use it, and the fake never loads the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from smtpkit.testing._deprecation import renamed

if TYPE_CHECKING:
    from smtpkit.testing._fake import FakeStream, FakeTransport
    from smtpkit.testing._fake_config import FakeCapabilities, FakeTLS
    from smtpkit.testing._presets import (
        GmailFake,
        Microsoft365Fake,
        gmail_fake,
        microsoft365_fake,
    )
    from smtpkit.testing._record import AuthAttempt, ReceivedMessage
    from smtpkit.testing._script import ScriptAction, Scripted
    from smtpkit.testing._server import LocalServer

__all__ = [
    "AuthAttempt",
    "FakeCapabilities",
    "FakeStream",
    "FakeTLS",
    "FakeTransport",
    "GmailFake",
    "LocalServer",
    "Microsoft365Fake",
    "ReceivedMessage",
    "ScriptAction",
    "Scripted",
    "gmail_fake",
    "microsoft365_fake",
]

_LAZY = {
    "FakeStream": "smtpkit.testing._fake",
    "FakeTransport": "smtpkit.testing._fake",
    "FakeCapabilities": "smtpkit.testing._fake_config",
    "FakeTLS": "smtpkit.testing._fake_config",
    "ScriptAction": "smtpkit.testing._script",
    "Scripted": "smtpkit.testing._script",
    "GmailFake": "smtpkit.testing._presets",
    "Microsoft365Fake": "smtpkit.testing._presets",
    "gmail_fake": "smtpkit.testing._presets",
    "microsoft365_fake": "smtpkit.testing._presets",
    "LocalServer": "smtpkit.testing._server",
    "ReceivedMessage": "smtpkit.testing._record",
    "AuthAttempt": "smtpkit.testing._record",
}

#: Old names kept for one release: old name -> the name to use.
_RENAMED = {"SentMessage": "ReceivedMessage"}

#: Modules that need the ``testing`` extra (aiosmtpd, trustme).
_NEED_EXTRA = frozenset({"smtpkit.testing._server"})


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        renamed(name, f"smtpkit.testing.{_RENAMED[name]}")
        return __getattr__(_RENAMED[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smtpkit.testing' has no attribute {name!r}")
    if module not in _NEED_EXTRA:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"smtpkit.testing.{name} needs the testing extra: pip install 'smtpkit[testing]'"
        ) from error
    globals()[name] = value
    return value

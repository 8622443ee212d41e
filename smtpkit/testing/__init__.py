"""Test kit: an in-memory fake transport and a real SMTP server on loopback.

* :class:`FakeTransport` plugs into ``Submitter(..., transport=fake)`` and plays a
  scriptable SMTP server in memory (no sockets, no extra dependencies).
* :class:`LocalServer` is a real server (aiosmtpd, trustme certificates) on 127.0.0.1 for
  integration tests; it needs the ``testing`` extra: ``pip install 'smtpkit[testing]'``.

Names that need the extra are imported on first use, so ``import smtpkit.testing`` costs
nothing in projects that only use the fake.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from smtpkit.testing._fake import FakeStream, FakeTransport, SentMessage
from smtpkit.testing._fake_script import FakeCapabilities, FakeTLS, ScriptAction, Scripted

if TYPE_CHECKING:
    from smtpkit.testing._server import LocalServer
    from smtpkit.testing._server_state import AuthAttempt, ReceivedMessage

__all__ = [
    "AuthAttempt",
    "FakeCapabilities",
    "FakeStream",
    "FakeTLS",
    "FakeTransport",
    "LocalServer",
    "ReceivedMessage",
    "ScriptAction",
    "Scripted",
    "SentMessage",
]

_LAZY = {
    "LocalServer": "smtpkit.testing._server",
    "ReceivedMessage": "smtpkit.testing._server_state",
    "AuthAttempt": "smtpkit.testing._server_state",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smtpkit.testing' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"smtpkit.testing.{name} needs the testing extra: pip install 'smtpkit[testing]'"
        ) from error
    globals()[name] = value
    return value

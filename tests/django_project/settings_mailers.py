"""Django 6.1 style: MAILERS, the backend's options as keyword arguments."""

from __future__ import annotations

from urllib.parse import quote

from tests.django_project._common import *  # noqa: F403
from tests.django_project._common import PASSWORD, PORT, TLS_CONTEXT, USER

_BACKEND = "smtpkit.django.EmailBackend"

MAILERS = {
    "default": {
        "BACKEND": _BACKEND,
        "OPTIONS": {
            "host": "127.0.0.1",
            "port": PORT,
            "use_tls": True,
            "username": USER,
            "password": PASSWORD,
            "timeout": 5,
            "tls_context": TLS_CONTEXT,
        },
    },
    "by_url": {
        "BACKEND": _BACKEND,
        "OPTIONS": {
            "url": f"smtp+starttls://{quote(USER)}:{quote(PASSWORD)}@127.0.0.1:{PORT}?timeout=5",
            "tls_context": TLS_CONTEXT,
        },
    },
    "silent": {
        "BACKEND": _BACKEND,
        "OPTIONS": {
            "url": f"smtp+starttls://{quote(USER)}:{quote(PASSWORD)}@127.0.0.1:{PORT}?timeout=5",
            "tls_context": TLS_CONTEXT,
            "fail_silently": True,
        },
    },
    "typo": {"BACKEND": _BACKEND, "OPTIONS": {"hots": "127.0.0.1"}},
}

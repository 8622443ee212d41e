"""Settings shared by both setting styles; the scenario runner sets the environment first."""

from __future__ import annotations

import os
import ssl

SECRET_KEY = "smtpkit-tests-only"
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
DEFAULT_FROM_EMAIL = "App <app@example.test>"

#: The LocalServer the scenario runner started (loopback only).
PORT = int(os.environ["SMTPKIT_TEST_PORT"])
USER = os.environ["SMTPKIT_TEST_USER"]
PASSWORD = os.environ["SMTPKIT_TEST_PASSWORD"]
#: Trust the LocalServer's own throw-away CA, and nothing else.
TLS_CONTEXT = ssl.create_default_context(cafile=os.environ["SMTPKIT_TEST_CA"])

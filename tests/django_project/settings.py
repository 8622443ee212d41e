"""Django 5.2 style: EMAIL_BACKEND and the EMAIL_* settings."""

from __future__ import annotations

from tests.django_project._common import *  # noqa: F403
from tests.django_project._common import PASSWORD, PORT, TLS_CONTEXT, USER

EMAIL_BACKEND = "smtpkit.django.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = PORT
EMAIL_USE_TLS = True
EMAIL_HOST_USER = USER
EMAIL_HOST_PASSWORD = PASSWORD
EMAIL_TIMEOUT = 5
# A private CA: Django has no setting for one, so pass a verifying context.
SMTPKIT_OPTIONS = {"tls_context": TLS_CONTEXT}

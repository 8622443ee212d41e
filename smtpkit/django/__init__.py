"""Django integration: ``EMAIL_BACKEND = "smtpkit.django.EmailBackend"`` (``docs/django.md``).

Needs the ``django`` extra: ``pip install 'smtpkit[django]'``. Works with Django 5.2
(``EMAIL_BACKEND`` and the ``EMAIL_*`` settings) and Django 6.1's ``MAILERS`` (options as
keyword arguments).
"""

from smtpkit.django._backend import BackendConfigurationError, EmailBackend, UnknownOption

__all__ = ["BackendConfigurationError", "EmailBackend", "UnknownOption"]

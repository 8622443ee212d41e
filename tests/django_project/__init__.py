"""A small Django project for the smtpkit.django tests (run in subprocesses by the tests)."""

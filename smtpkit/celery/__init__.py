"""Celery integration: a task that sends queued messages (``docs/celery.md``).

Needs the ``celery`` extra: ``pip install 'smtpkit[celery]'``::

    from smtpkit.celery import make_send_task, message_payload, register_submitter

    register_submitter("default", lambda: smtpkit.Submitter.from_env())
    send_email = make_send_task(app)
    send_email.delay(**message_payload(msg))
"""

from smtpkit.celery._payload import message_payload, summarize
from smtpkit.celery._registry import close_submitters, get_submitter, register_submitter
from smtpkit.celery._task import DEFAULT_RETRY, make_send_task

__all__ = [
    "DEFAULT_RETRY",
    "close_submitters",
    "get_submitter",
    "make_send_task",
    "message_payload",
    "register_submitter",
    "summarize",
]

"""A Celery task that sends a serialised message through a named Submitter configuration.

The task's retry decisions live here; the payload it takes is :mod:`smtpkit.celery._payload`
and the Submitters it sends with come from :mod:`smtpkit.celery._registry` (the one module
that imports Celery). Celery is untyped, so ``Any`` stays in this adapter.

Invariants:
    * The task's arguments are the JSON payload of :mod:`smtpkit.celery._payload`, fixed
      when it is queued, so every retry sends the same message.
    * What is retried is decided by the :class:`~smtpkit.Retry` policy itself
      (:meth:`~smtpkit.Retry.is_retryable`: only failures where the server cannot have taken
      the message, never an authentication failure, even a ``454``), plus a transient
      :class:`~smtpkit.errors.TokenRefreshError` (no SMTP command was sent); waits use the
      policy's backoff, jitter and cap. A :class:`~smtpkit.errors.DeliveryUnknown` (the
      connection failed after the content was sent) is never retried unless the task was
      made with ``retry_unknown=True``.
    * ``QuotaExceeded`` (the account's sending quota, counted before anything was sent) is
      retried when the quota frees up (``retry_after``, plus up to 10% so a fleet's tasks
      do not all come back at once), as often as it takes: a wait, not a failure, so it
      uses none of the policy's tries. ``QuotaStoreUnavailable`` (nothing was sent) is
      retried like a transient failure.
    * Each worker process sends with its own Submitter, made on first use
      (:mod:`smtpkit.celery._registry`): nothing made in a parent process is used after a
      fork.
    * The task acknowledges late (``acks_late=True``): a message is taken off the queue
      only when the task finished. ``reject_on_worker_lost`` stays off, so a worker that dies
      mid-send does not cause a blind resend.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

from smtpkit.celery._payload import PAYLOAD_VERSION, decode_message, message_payload, summarize
from smtpkit.celery._registry import (
    DEFAULT_NAME,
    close_submitters,
    get_submitter,
    register_submitter,
)
from smtpkit.errors import (
    ConfigurationError,
    QuotaExceeded,
    QuotaStoreUnavailable,
    SMTPError,
    TokenRefreshError,
)
from smtpkit.retry import Retry

__all__ = [
    "DEFAULT_RETRY",
    "close_submitters",
    "get_submitter",
    "make_send_task",
    "message_payload",
    "register_submitter",
    "summarize",
]

logger = logging.getLogger("smtpkit.celery")

#: Retry policy of :func:`make_send_task`: 5 tries, 30 s, 60 s, 120 s, 240 s (+ up to 20%
#: jitter), no wait over 10 minutes. Provider throttling (``421``/``454``) clears in minutes.
DEFAULT_RETRY = Retry(attempts=5, backoff=30.0, multiplier=2.0, max_backoff=600.0, jitter=0.2)
#: A quota retry waits ``retry_after`` plus up to this share of it (spreads a fleet's tasks).
QUOTA_JITTER = 0.1


def _should_retry(policy: Retry, error: SMTPError) -> bool:
    """Whether the task retries ``error``: as ``policy`` says, or a transient token failure.

    The policy never retries an authentication failure, even a transient one (Gmail's ``454
    4.7.0 Too many login attempts``: more logins prolong the lockout). A transient
    :class:`~smtpkit.errors.TokenRefreshError` (the token endpoint unreachable, another
    process holding the token store) failed before any SMTP command: nothing was sent.
    """
    if policy.is_retryable(error) or isinstance(error, QuotaStoreUnavailable):
        return True  # (the quota store could not be asked: nothing was sent)
    return isinstance(error, TokenRefreshError) and error.is_transient


def _quota_countdown(error: QuotaExceeded, rng: random.Random | None = None) -> float:
    """The wait before a retry for the quota: ``retry_after`` and a little jitter."""
    wait = max(error.retry_after, 0.0)
    return wait * (1 + QUOTA_JITTER * (rng or random).random())  # jitter, not cryptography


def _countdown(policy: Retry, error: SMTPError, retries_done: int) -> float:
    """The wait before retry number ``retries_done + 1``, from the policy's own backoff."""
    for _ in range(retries_done + 1):  # bounded: retries_done < policy.attempts
        policy = policy.increment(error)
    return policy.delay()


def make_send_task(
    app: Any,
    *,
    name: str = "smtpkit.send",
    retry: Retry = DEFAULT_RETRY,
    retry_unknown: bool = False,
    **task_options: Any,
) -> Any:
    """Register and return a Celery task that sends one queued message.

    Example (in the module that defines your app)::

        app = Celery("proj", broker="redis://...")
        smtpkit.celery.register_submitter("default", lambda: smtpkit.Submitter.from_env())
        send_email = smtpkit.celery.make_send_task(app)

        # anywhere:
        send_email.delay(**smtpkit.celery.message_payload(msg))

    The task returns :func:`summarize` of the result. A failure that is final raises the
    typed :class:`~smtpkit.errors.SMTPError` (the task fails); one the ``retry`` policy
    retries (:meth:`~smtpkit.Retry.is_retryable`), a transient token refresh failure, or a
    quota store that could not be asked, is retried after ``retry.delay()`` seconds, at
    most ``retry.attempts`` tries in all. A :class:`~smtpkit.QuotaExceeded` (the Submitter's
    quota: nothing was sent) is retried when the quota frees up (``retry_after``), without
    using a try.

    Args:
        app: the Celery application.
        name: the task name.
        retry: the retry policy: what may be retried (:meth:`~smtpkit.Retry.is_retryable`)
            and how long to wait (``attempts``, ``backoff``, ``multiplier``, ``max_backoff``,
            ``jitter``). Its ``retry_unknown`` is ignored: use the keyword.
        retry_unknown: also retry ``DeliveryUnknown``; the message may then arrive twice.
        **task_options: more ``app.task`` options (``queue=``, ``rate_limit=``...).

    Raises:
        ConfigurationError: ``app`` is not a Celery application, or an argument has the
            wrong type (``retry="3"``, ``retry_unknown="yes"``).
    """
    if not callable(getattr(app, "task", None)):
        raise ConfigurationError(
            f"app must be a Celery application, got {type(app).__name__}",
            hint="e.g. make_send_task(Celery('proj', broker=...))",
        )
    if not isinstance(name, str) or not name:
        raise ConfigurationError(
            f"name must be a non-empty task name, got {name!r}", hint="e.g. name='smtpkit.send'"
        )
    if not isinstance(retry, Retry):
        raise ConfigurationError(
            f"retry must be a smtpkit.Retry value, got {type(retry).__name__}",
            hint="e.g. retry=Retry(attempts=5, backoff=30.0)",
        )
    if not isinstance(retry_unknown, bool):
        raise ConfigurationError(
            f"retry_unknown must be True or False, got {retry_unknown!r}",
            hint="True may deliver a message twice; leave it False unless duplicates are fine",
        )
    policy = dataclasses.replace(retry, retry_unknown=retry_unknown)
    options: dict[str, Any] = {
        "acks_late": True,
        "serializer": "json",
        "max_retries": retry.attempts - 1,
        **task_options,
    }

    @app.task(bind=True, name=name, **options)  # type: ignore[untyped-decorator]
    def send_message(
        self: Any,
        message: str,
        *,
        raw: bool = False,
        sender: str | None = None,
        recipients: list[str] | None = None,
        submitter: str = DEFAULT_NAME,
        version: int = PAYLOAD_VERSION,
        quota_waits: int = 0,
    ) -> dict[str, Any]:
        if version > PAYLOAD_VERSION:
            raise ConfigurationError(f"payload version {version} is newer than this worker")
        outgoing = decode_message(message, raw)
        target = get_submitter(submitter)
        try:
            result = target.send(outgoing, sender=sender, recipients=recipients)
        except QuotaExceeded as error:
            # Not a failure: the account's quota is used up for now and nothing was sent.
            # Counted apart (quota_waits) so it uses none of the policy's tries.
            countdown = _quota_countdown(error)
            logger.info("sending quota reached (%s); retry in %.1fs", error.limit, countdown)
            kwargs = {**(self.request.kwargs or {}), "quota_waits": quota_waits + 1}
            # (max_retries: Celery's own count includes these waits; this one is always allowed)
            allowed = int(self.request.retries or 0) + 1
            raise self.retry(
                exc=error, countdown=countdown, kwargs=kwargs, max_retries=allowed
            ) from error
        except SMTPError as error:
            retries_done = int(self.request.retries or 0) - quota_waits
            if not _should_retry(policy, error) or retries_done + 1 >= policy.attempts:
                raise
            countdown = _countdown(policy, error, retries_done)
            logger.warning(
                "transient failure (%s); retry %d of %d in %.1fs",
                error,
                retries_done + 1,
                policy.attempts - 1,
                countdown,
            )
            # Celery counts the quota's waits as retries too: its limit moves past them.
            limit = None if self.max_retries is None else self.max_retries + quota_waits
            raise self.retry(exc=error, countdown=countdown, max_retries=limit) from error
        return summarize(result)

    return send_message

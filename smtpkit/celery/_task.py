"""A Celery task that sends a serialised message through a named Submitter configuration.

This is the only module that imports Celery; Celery is untyped here, so ``Any`` stays in
this adapter.

Invariants:
    * The task's arguments are JSON: the message travels as base64 of its bytes, with
      ``Message-ID`` and ``Date`` fixed when it is queued, so every retry sends the same
      message (recipients' servers can drop a duplicate by its Message-ID).
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
    * Queuing a message never does a DNS lookup: a missing ``Message-ID`` is made by
      :func:`smtpkit.message.make_message_id`.
    * Each worker process builds its own Submitter (and so its own token provider and
      connections) on first use, keyed by configuration name and process id: nothing
      made in a parent process is used after a fork. A factory runs outside the registry's
      lock, once per name at a time (other threads wait for it), so it may itself call
      :func:`get_submitter` for another name.
    * The task acknowledges late (``acks_late=True``): a message is taken off the queue
      only when the task finished. ``reject_on_worker_lost`` stays off, so a worker that dies
      mid-send does not cause a blind resend.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.policy
import logging
import os
import random
import threading
from collections.abc import Callable, Sequence
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.utils import formatdate, getaddresses
from typing import Any

from celery import signals

from smtpkit.drivers import Submitter
from smtpkit.engine._result import SendResult
from smtpkit.errors import (
    ConfigurationError,
    QuotaExceeded,
    QuotaStoreUnavailable,
    SMTPError,
    TokenRefreshError,
)
from smtpkit.message import make_message_id
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
#: The configuration name used when none is given.
DEFAULT_NAME = "default"
#: Payload format version, so a worker can refuse a payload from a newer client.
PAYLOAD_VERSION = 1
#: A quota retry waits ``retry_after`` plus up to this share of it (spreads a fleet's tasks).
QUOTA_JITTER = 0.1

SubmitterFactory = Callable[[], Submitter]


@dataclasses.dataclass(eq=False)
class _Build:
    """A Submitter being made by ``thread`` (an ident); ``done`` is set when it finished."""

    thread: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)


class _Registry:
    """Named Submitter factories, and the Submitters this process made from them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factories: dict[str, SubmitterFactory] = {}
        self._made: dict[tuple[str, int], Submitter] = {}
        self._building: dict[tuple[str, int], _Build] = {}

    def register(self, name: str, factory: SubmitterFactory) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a Submitter configuration needs a non-empty name")
        if not callable(factory):
            raise ConfigurationError(f"the factory for {name!r} must be callable")
        with self._lock:
            self._factories[name] = factory
            stale = [key for key in self._made if key[0] == name]
            dropped = [self._made.pop(key) for key in stale]
        for submitter in dropped:
            submitter.close()

    def get(self, name: str) -> Submitter:
        key = (name, os.getpid())
        me = threading.get_ident()
        while True:
            # The user's factory never runs under self._lock: it may call get_submitter()
            # itself. One thread builds each name; the others wait for it, then look again.
            with self._lock:
                submitter = self._made.get(key)
                if submitter is not None:
                    return submitter
                factory = self._factory(name)
                build = self._building.get(key)
                if build is None:
                    build = self._building[key] = _Build(me)
                    break
            if build.thread == me:
                raise ConfigurationError(
                    f"the factory for {name!r} asks for the Submitter it is making",
                    hint="a factory may call get_submitter() for other names, not its own",
                )
            build.done.wait()
        try:
            submitter = self._build(name, factory)
        finally:
            with self._lock:
                del self._building[key]
            build.done.set()
        with self._lock:
            if self._factories.get(name) is factory and key not in self._made:
                self._made[key] = submitter
                return submitter
        # register() replaced the factory while it ran: this Submitter is stale.
        submitter.close()
        return self.get(name)

    def _factory(self, name: str) -> SubmitterFactory:
        factory = self._factories.get(name)
        if factory is None:
            known = ", ".join(sorted(self._factories)) or "none"
            raise ConfigurationError(
                f"no Submitter configuration named {name!r} in this process (registered: {known})",
                hint="call smtpkit.celery.register_submitter(name, factory) in the "
                "module that defines your Celery app, so workers run it too",
            )
        return factory

    @staticmethod
    def _build(name: str, factory: SubmitterFactory) -> Submitter:
        submitter = factory()
        if not isinstance(submitter, Submitter):
            raise ConfigurationError(f"the factory for {name!r} did not return a Submitter")
        # Keep connections between tasks: one login per connection, not per message
        # (Gmail answers repeated logins with 454 4.7.0 Too many login attempts).
        submitter.__enter__()
        return submitter

    def close(self) -> None:
        pid = os.getpid()
        with self._lock:
            mine = [key for key in self._made if key[1] == pid]
            closing = [self._made.pop(key) for key in mine]
            # Entries of other processes (copied by fork) are dropped without touching
            # their sockets, which belong to the parent.
            self._made = {key: s for key, s in self._made.items() if key[1] == pid}
        for submitter in closing:
            submitter.close()


_registry = _Registry()


def register_submitter(name: str, factory: SubmitterFactory) -> None:
    """Name a way to build a Submitter, for tasks to send with.

    Call it at import time of the module that defines the Celery app, so every worker
    process has it. The factory runs lazily, once per worker process, on the first task
    that names it; build token providers inside it, so each process has its own (a
    ``token_store`` URL option or :class:`smtpkit.oauth.FileTokenStore` shares rotated
    refresh tokens between processes through the file, replaced atomically).

    Example::

        register_submitter("default", lambda: Submitter.from_env())
        register_submitter(
            "gmail",
            lambda: Submitter.from_url(
                "smtp+starttls://me%40gmail.com@smtp.gmail.com?token_store=/etc/app/gmail.json"
            ),
        )

    Registering a name again replaces it (and closes the Submitters made from it here).
    """
    _registry.register(name, factory)


def get_submitter(name: str = DEFAULT_NAME) -> Submitter:
    """The Submitter this process uses for ``name`` (made on first use).

    Raises:
        ConfigurationError: no configuration of that name was registered.
    """
    return _registry.get(name)


def close_submitters() -> None:
    """Close this process's Submitters (run at worker shutdown; safe to call any time)."""
    _registry.close()


def _close_on_shutdown(**_: object) -> None:
    close_submitters()


# weak=False: the receivers are module functions, kept alive anyway.
signals.worker_process_shutdown.connect(_close_on_shutdown, weak=False)
signals.worker_shutdown.connect(_close_on_shutdown, weak=False)


# -- payloads ------------------------------------------------------------------------------


def _with_fixed_headers(message: Message) -> bytes:
    """The message's bytes, with a Message-ID and Date added when missing."""
    if message.get("Message-ID") is not None and message.get("Date") is not None:
        return message.as_bytes()
    copy = message_from_bytes(message.as_bytes(), policy=email.policy.default)
    if copy.get("Date") is None:
        copy["Date"] = formatdate(localtime=False, usegmt=True)
    if copy.get("Message-ID") is None:
        # The Sender's domain first (it names the generating domain), else From's; never a
        # DNS lookup for the local host name.
        senders = getaddresses([str(copy.get("Sender") or "")])
        copy["Message-ID"] = make_message_id(copy, sender=senders[0][1] if senders else "")
    return copy.as_bytes()


def message_payload(
    message: Message | bytes,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    submitter: str = DEFAULT_NAME,
) -> dict[str, Any]:
    """The JSON-safe keyword arguments of the send task for ``message``.

    ``task.apply_async(kwargs=message_payload(msg))`` or ``task.delay(**message_payload(msg))``.

    Args:
        message: an ``EmailMessage`` (its ``Bcc`` travels to the worker, which takes it out
            of the headers when sending), or raw bytes (then ``sender`` and ``recipients``
            are required and the bytes are sent as they are).
        sender: the envelope sender; default: from the headers, on the worker.
        recipients: the envelope recipients; default: To, Cc and Bcc, on the worker.
        submitter: the registered configuration to send with.

    Raises:
        ConfigurationError: raw bytes without an envelope, or an argument of the wrong type.
    """
    _check_envelope(sender, recipients, submitter)
    if isinstance(message, bytes | bytearray):
        if sender is None or not recipients:
            raise ConfigurationError(
                "raw message bytes need sender= and recipients=",
                hint="e.g. message_payload(raw, sender='me@example.com', "
                "recipients=['you@example.com'])",
            )
        raw, octets = True, bytes(message)
    elif isinstance(message, Message):
        raw, octets = False, _with_fixed_headers(message)
    else:
        raise ConfigurationError(
            f"cannot queue a {type(message).__name__} as a message",
            hint="pass an email.message.EmailMessage, or the message as bytes",
        )
    return {
        "message": base64.b64encode(octets).decode("ascii"),
        "raw": raw,
        "sender": sender,
        "recipients": list(recipients) if recipients is not None else None,
        "submitter": submitter,
        "version": PAYLOAD_VERSION,
    }


def _check_envelope(sender: object, recipients: object, submitter: object) -> None:
    """The payload's JSON fields: each of the type the worker expects (checked when queued)."""
    if sender is not None and not isinstance(sender, str):
        raise ConfigurationError(
            f"sender must be an address (str) or None, got {type(sender).__name__}",
            hint="e.g. sender='me@example.com'",
        )
    if recipients is not None and (
        isinstance(recipients, str)
        or not isinstance(recipients, Sequence)
        or not all(isinstance(address, str) for address in recipients)
    ):
        raise ConfigurationError(
            "recipients must be a list of addresses (str) or None",
            hint="e.g. recipients=['you@example.com'] (a list even for one address)",
        )
    if not isinstance(submitter, str) or not submitter:
        raise ConfigurationError(
            f"submitter must be the name of a registered configuration, got {submitter!r}",
            hint="the name given to register_submitter(); default 'default'",
        )


def _decode(message: str, raw: bool) -> EmailMessage | bytes:
    try:
        octets = base64.b64decode(message.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError) as error:
        raise ConfigurationError("the task's message is not valid base64") from error
    if raw:
        return octets
    parsed = message_from_bytes(octets, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)  # the default policy's message class
    return parsed


def summarize(result: SendResult) -> dict[str, Any]:
    """A JSON-safe summary of a :class:`~smtpkit.SendResult` (what the task returns).

    Example::

        {"message_id": "<...@example.com>", "sender": "app@example.com",
         "accepted": ["a@example.com"],
         "rejected": {"b@example.com": [550, "5.1.1", "User unknown"]},
         "reply": [250, "2.0.0 OK queued as 1234"]}
    """
    return {
        "message_id": result.message_id,
        "sender": result.sender,
        "accepted": list(result.accepted),
        "rejected": {
            address: [reply.code, reply.enhanced_code, reply.text]
            for address, reply in result.rejected.items()
        },
        "reply": [result.reply.code, "\n".join(result.reply.lines)],
    }


# -- the task ------------------------------------------------------------------------------


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
        outgoing = _decode(message, raw)
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

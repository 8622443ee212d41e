"""The send task's payload: a message as JSON-safe keyword arguments, and back.

:func:`message_payload` is what the caller queues (``task.delay(**message_payload(msg))``);
the worker decodes it and returns :func:`summarize` of the result.

Invariants:
    * The payload is JSON: the message travels as base64 of its bytes, with ``Message-ID``
      and ``Date`` fixed when it is queued, so every retry sends the same message
      (recipients' servers can drop a duplicate by its Message-ID).
    * Queuing a message never does a DNS lookup: a missing ``Message-ID`` is made by
      :func:`smtpkit.message.make_message_id`.
    * Every field is checked for its type when the payload is made, so a bad argument fails
      in the caller, not later in a worker. The payload carries a format version a worker
      refuses when it is newer than its own.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
from collections.abc import Sequence
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.utils import formatdate, getaddresses
from typing import Any

from smtpkit.celery._registry import DEFAULT_NAME
from smtpkit.engine._result import SendResult
from smtpkit.errors import ConfigurationError
from smtpkit.message import make_message_id

__all__ = [
    "PAYLOAD_VERSION",
    "decode_message",
    "message_payload",
    "summarize",
]

#: Payload format version, so a worker can refuse a payload from a newer client.
PAYLOAD_VERSION = 1


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


def decode_message(message: str, raw: bool) -> EmailMessage | bytes:
    """The message a payload carries: raw bytes, or parsed (``email.policy.default``).

    Raises:
        ConfigurationError: the payload's message is not base64.
    """
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

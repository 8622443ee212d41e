"""``Message-ID`` values (RFC 5322 §3.6.4) made without a DNS lookup.

Invariant: the right side is the sender's domain, else the ``From`` domain, else
``local_hostname``, else :data:`DEFAULT_MSGID_DOMAIN`; never ``socket.getfqdn()``.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from email.message import Message

from smtpkit.errors import MessageError
from smtpkit.message._headers import extract_addresses, idna_domain, split_address

__all__ = ["DEFAULT_MSGID_DOMAIN", "make_message_id", "make_msgid"]

#: Message-ID domain when neither the sender nor ``local_hostname`` gives one. Passing a
#: domain to ``make_msgid`` always matters: without one it calls ``socket.getfqdn()``, a
#: DNS lookup that can block for seconds.
DEFAULT_MSGID_DOMAIN = "localhost"


# The process id in every Message-ID, read once and again in a child after fork().
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def make_msgid(idstring: str | None = None, domain: str | None = None) -> str:
    """``email.utils.make_msgid`` (the same form: ``<time.pid.random[.idstring]@domain>``)
    without a ``getpid()`` system call per message; ``domain`` is required (the stock
    default is ``socket.getfqdn()``, a DNS lookup that can block for seconds)."""
    if domain is None:
        raise ValueError("make_msgid needs a domain")
    tail = "" if idstring is None else f".{idstring}"
    # random: the stock draw (not secret; seeded runs stay reproducible).
    return f"<{int(time.time() * 100)}.{_PID[0]}.{random.getrandbits(64)}{tail}@{domain}>"


def make_message_id(
    message: Message, *, sender: str = "", local_hostname: str | None = None
) -> str:
    """A new ``Message-ID`` value for ``message`` (not added to it), with no DNS lookup.

    RFC 5322 §3.6.4: the right side names the generating domain: that of ``sender``, else
    of the ``From`` address, else ``local_hostname``, else :data:`DEFAULT_MSGID_DOMAIN`
    (never ``socket.getfqdn()``, which can block for seconds)::

        >>> msg = Message()
        >>> msg["From"] = "Alice <alice@example.com>"
        >>> make_message_id(msg).endswith("@example.com>")
        True
    """
    return make_msgid(domain=_msgid_domain(message, sender, local_hostname))


def _msgid_domain(work: Message, sender: str, local_hostname: str | None) -> str:
    """RFC 5322 §3.6.4: the right side of a msg-id should name the generating domain."""
    domain = split_address(sender)[1]
    if domain and domain.isascii():
        return domain  # the common case: the sender's domain, already ASCII (IDNA)
    for address in _msgid_candidates(work, sender):
        domain = split_address(address)[1]
        if domain:
            try:
                return idna_domain(domain)
            except MessageError:
                continue
    if local_hostname:
        return idna_domain(local_hostname)
    return DEFAULT_MSGID_DOMAIN


def _msgid_candidates(work: Message, sender: str) -> Iterator[str]:
    """The sender, then the From addresses, which are parsed only if the sender has no
    usable domain (the null sender, or a local name)."""
    yield sender
    with contextlib.suppress(MessageError):  # an unparsable From just gives no candidate
        yield from extract_addresses(work.get_all("From", []))

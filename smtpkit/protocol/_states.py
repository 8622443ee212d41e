"""The client's state table.

Two tables drive the client (see :class:`~smtpkit.protocol.ClientConnection`):

* ``SEND`` says which command may be sent in which state and where it leads. A pair that is
  not in the table is illegal: the connection raises ``LocalProtocolError`` naming both.
* ``ON_REPLY`` says where the reply to a *synchronising* command leads. Those are the
  commands a client must wait on before sending anything else (RFC 2920 §3.1: EHLO, DATA,
  QUIT, and, from their own RFCs, STARTTLS and AUTH); the replies to other commands do not move
  the state, because with pipelining they arrive after later commands were already sent.

Invariants:
    * Every state has at least one way out (QUIT or a reply).
    * ``State.CLOSED`` accepts nothing.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

__all__ = ["ON_REPLY", "SEND", "ReplyKind", "State"]


class State(enum.Enum):
    """Where the client is in the session."""

    # Members are singletons compared by identity, so identity hashing is exact; it keeps the
    # table lookups (one per command and reply) in C instead of Enum's Python-level
    # ``__hash__``, which hashes the member's name.
    __hash__ = object.__hash__

    AWAIT_GREETING = "awaiting the greeting"
    GREETED = "greeted (EHLO needed)"
    EHLO_SENT = "EHLO sent"
    READY = "ready (no transaction)"
    STARTTLS_SENT = "STARTTLS sent"
    TLS_HANDSHAKE = "TLS handshake pending"
    AUTH_SENT = "AUTH step sent"
    AUTH_CHALLENGE = "AUTH challenge received"
    ENVELOPE = "in a mail transaction"
    DATA_SENT = "DATA sent"
    CONTENT = "sending message content"
    CHUNKING = "sending BDAT chunks"
    QUIT_SENT = "QUIT sent"
    CLOSED = "closed"


class ReplyKind(enum.Enum):
    """Which kind of reply a synchronising command got (RFC 5321 §4.2.1: the first digit)."""

    __hash__ = object.__hash__  # as for State

    POSITIVE = "2xx"
    INTERMEDIATE = "3xx"
    NEGATIVE = "4xx/5xx"

    @classmethod
    def of(cls, code: int) -> ReplyKind:
        """The kind of a basic reply code."""
        if code < 300:
            return cls.POSITIVE
        if code < 400:
            return cls.INTERMEDIATE
        return cls.NEGATIVE


S = State
# (state, command kind) -> next state. Command kinds are verbs, plus "" for an AUTH
# continuation line, "." for the end of DATA content and "BDAT LAST" for the last chunk.
SEND = MappingProxyType(
    {
        (S.GREETED, "EHLO"): S.EHLO_SENT,
        (S.GREETED, "HELO"): S.EHLO_SENT,
        (S.READY, "EHLO"): S.EHLO_SENT,
        (S.READY, "STARTTLS"): S.STARTTLS_SENT,
        (S.READY, "AUTH"): S.AUTH_SENT,
        (S.AUTH_CHALLENGE, ""): S.AUTH_SENT,
        (S.READY, "MAIL"): S.ENVELOPE,
        (S.ENVELOPE, "RCPT"): S.ENVELOPE,
        (S.ENVELOPE, "DATA"): S.DATA_SENT,
        (S.ENVELOPE, "BDAT"): S.CHUNKING,
        (S.ENVELOPE, "BDAT LAST"): S.READY,
        (S.CHUNKING, "BDAT"): S.CHUNKING,
        (S.CHUNKING, "BDAT LAST"): S.READY,
        (S.CONTENT, "."): S.READY,
        (S.GREETED, "RSET"): S.GREETED,
        (S.READY, "RSET"): S.READY,
        (S.ENVELOPE, "RSET"): S.READY,
        (S.CHUNKING, "RSET"): S.READY,
        (S.GREETED, "NOOP"): S.GREETED,
        (S.READY, "NOOP"): S.READY,
        (S.ENVELOPE, "NOOP"): S.ENVELOPE,
        (S.GREETED, "QUIT"): S.QUIT_SENT,
        (S.READY, "QUIT"): S.QUIT_SENT,
        (S.ENVELOPE, "QUIT"): S.QUIT_SENT,
        (S.CHUNKING, "QUIT"): S.QUIT_SENT,
    }
)

POS, MID, NEG = ReplyKind.POSITIVE, ReplyKind.INTERMEDIATE, ReplyKind.NEGATIVE
# (state, reply kind) -> next state, for replies to synchronising commands only.
ON_REPLY = MappingProxyType(
    {
        (S.AWAIT_GREETING, POS): S.GREETED,
        # A 554 greeting (RFC 5321 §3.1): the client may only QUIT, which GREETED allows.
        (S.AWAIT_GREETING, NEG): S.GREETED,
        (S.EHLO_SENT, POS): S.READY,
        (S.EHLO_SENT, NEG): S.GREETED,
        (S.STARTTLS_SENT, POS): S.TLS_HANDSHAKE,
        (S.STARTTLS_SENT, NEG): S.READY,
        (S.AUTH_SENT, POS): S.READY,
        (S.AUTH_SENT, MID): S.AUTH_CHALLENGE,
        (S.AUTH_SENT, NEG): S.READY,
        (S.DATA_SENT, MID): S.CONTENT,
        # A refused DATA leaves the transaction open on the server; RSET closes it.
        (S.DATA_SENT, NEG): S.ENVELOPE,
        (S.QUIT_SENT, POS): S.CLOSED,
        (S.QUIT_SENT, NEG): S.CLOSED,
    }
)

#: Commands after which nothing may be sent until their reply arrives.
#: QUIT is one: its reply (221, or an error) takes QUIT_SENT to CLOSED through ON_REPLY.
SYNCHRONISING = frozenset({"EHLO", "HELO", "STARTTLS", "AUTH", "", "DATA", "QUIT", "<greeting>"})

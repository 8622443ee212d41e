"""A thread-safe pool of authenticated SMTP sessions.

Invariants:
    * At most ``max_connections`` sessions exist at once (idle plus in use plus opening).
    * A session is handed to one thread at a time.
    * A session idle longer than ``idle_timeout`` is closed instead of reused (providers close
      idle sessions themselves; reusing one would cost a failed write). One idle longer than
      ``health_check_after`` is checked with NOOP before reuse.
    * A session that has sent ``max_messages_per_connection`` messages, or whose login
      expires (an OAuth2 token bound to the session), is closed on release.
    * :meth:`close` closes idle sessions at once and every session in use (or being
      opened) when it is released: none of them is ever handed out again. The pool stays
      usable; later sessions are new ones.
    * Sessions idle longer than ``idle_timeout`` are closed (QUIT) the next time the pool
      is used, as ``httpx`` expires kept-alive connections: a pool needs no thread.
    * A forked child never uses a session of its parent: after ``fork()`` the child's pools
      forget every session (closing only the child's copy of the socket, without QUIT, so
      the parent's conversation is untouched) and open their own.
    * Opening a connection happens outside the pool lock, so one slow server handshake never
      blocks threads that could reuse an idle session.
    * With a login gate (the Submitter has credentials), until a login has succeeded only
      one connection opens at a time, and a refused login (see :func:`ends_logins`) is
      raised to every thread that was waiting to open one: a wrong password costs one AUTH,
      not one per thread (providers lock an account out after repeated failures).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from smtpkit._checks import check_pool_limits
from smtpkit._session import Session
from smtpkit.errors import (
    AuthenticationError,
    ConfigurationError,
    OperationTimeout,
    ReplyError,
    SMTPError,
)
from smtpkit.replies import Phase

__all__ = ["PoolLimits", "SessionPool", "ends_logins"]


def ends_logins(error: BaseException) -> bool:
    """Whether a failure to open a session would repeat on every new connection at once.

    True for a refused login (an ``AuthenticationError``, including a token still refused
    after the forced refresh, or any other failure reply to AUTH such as Gmail's ``454 4.7.0
    Too many login attempts``) and for a ``ConfigurationError``: logging in again only
    prolongs a provider's lockout. A ``TokenRefreshError`` (the token endpoint failed) is
    not one: it never reached the server.
    """
    if isinstance(error, (AuthenticationError, ConfigurationError)):
        return True
    return isinstance(error, ReplyError) and error.phase is Phase.AUTH


@dataclass(frozen=True)
class PoolLimits:
    """Connection pool limits.

    Attributes:
        max_connections: sessions open at once. Microsoft 365 allows 3 per mailbox.
        max_messages_per_connection: close a session after this many messages (``None``:
            no cap). Some servers limit messages per session (Postfix's default is 100 per
            client in a burst; Exchange closes after a few hundred).
        idle_timeout: close sessions idle this long instead of reusing them. Servers close
            idle sessions after a few minutes (RFC 5321 §4.5.3.2.7 suggests 5).
        health_check_after: send NOOP before reusing a session idle this long.
        acquire_timeout: how long a thread waits for a free session.
    """

    max_connections: int = 4
    max_messages_per_connection: int | None = 100
    idle_timeout: float = 60.0
    health_check_after: float = 10.0
    acquire_timeout: float = 120.0

    def __post_init__(self) -> None:
        # Types too (max_connections="4", idle_timeout=nan), as ConfigurationError.
        check_pool_limits(
            max_connections=self.max_connections,
            max_messages_per_connection=self.max_messages_per_connection,
            idle_timeout=self.idle_timeout,
            health_check_after=self.health_check_after,
            acquire_timeout=self.acquire_timeout,
        )


class SessionPool:
    """Hands out sessions to threads; opens, reuses, checks and closes them."""

    def __init__(
        self,
        open_session: Callable[[], Session],
        limits: PoolLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        expires: Callable[[Session], bool] | None = None,
        login_gate: bool = False,
    ) -> None:
        self._open_session = open_session
        self._limits = limits
        self._clock = clock
        self._expires = expires or (lambda _session: False)
        self._lock = threading.Condition()
        self._idle: deque[Session] = deque()
        self._count = 0  # idle + in use + being opened
        # close() starts a new generation; a session of an older one is closed on release.
        self._generation = 0
        self._born: dict[Session, int] = {}
        self._login_gate = login_gate
        self._proven = False  # a session opened (logged in) since the last refused login
        self._opening = 0
        self._refusals = 0  # refused logins so far; the last one is kept to hand out
        self._last_refusal: SMTPError | None = None
        _POOLS.add(self)

    @property
    def limits(self) -> PoolLimits:
        """The limits in force."""
        return self._limits

    @property
    def size(self) -> int:
        """Sessions that exist now (idle, in use, or being opened)."""
        with self._lock:
            return self._count

    @property
    def idle(self) -> int:
        """Sessions waiting for reuse."""
        with self._lock:
            return len(self._idle)

    def acquire(self) -> Session:
        """A healthy session for the calling thread's exclusive use.

        Raises:
            OperationTimeout: no session became free within ``acquire_timeout``.
            SMTPError: opening a new session failed, or (with the login gate) another
                thread's login was refused while this one waited to open a connection.
        """
        deadline = self._clock() + self._limits.acquire_timeout
        for stale in self._expired():
            self.discard(stale)
        seen: int | None = None
        while True:
            candidate: Session | None = None
            with self._lock:
                if seen is None:
                    seen = self._refusals
                while not self._idle:  # bounded by the deadline
                    if self._refusals != seen and self._last_refusal is not None:
                        # A login was refused while we waited: ours would be refused too.
                        raise self._last_refusal
                    if self._count < self._limits.max_connections and not self._gated():
                        break
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        raise OperationTimeout(
                            f"no SMTP connection became free within "
                            f"{self._limits.acquire_timeout:g} s "
                            f"(max_connections={self._limits.max_connections})"
                        )
                    self._lock.wait(min(remaining, 1.0))
                if self._idle:
                    candidate = self._idle.pop()  # most recently used: likeliest alive
                else:
                    self._count += 1
                    self._opening += 1
                generation = self._generation  # a close() from now on retires the new one
            if candidate is None:
                return self._open(generation)
            if self._usable(candidate):
                candidate.reused = True
                return candidate
            self.discard(candidate)

    def _expired(self) -> list[Session]:
        """Take the idle sessions past ``idle_timeout`` out of the pool (oldest first)."""
        now = self._clock()
        limit = self._limits.idle_timeout
        expired: list[Session] = []
        with self._lock:
            # Released sessions are appended on the right: the oldest are on the left.
            while self._idle and now - self._idle[0].last_used > limit:
                expired.append(self._idle.popleft())
        return expired

    def _gated(self) -> bool:
        """Whether a new connection must wait for the login of one being opened."""
        return self._login_gate and not self._proven and self._opening > 0

    def _open(self, generation: int) -> Session:
        try:
            session = self._open_session()
        except BaseException as error:
            with self._lock:
                self._count -= 1
                self._opening -= 1
                if isinstance(error, SMTPError) and ends_logins(error):
                    self._proven = False
                    self._refusals += 1
                    self._last_refusal = error
                self._lock.notify_all()
            raise
        with self._lock:
            self._opening -= 1
            self._proven = True
            self._born[session] = generation
            self._lock.notify_all()
        return session

    def _usable(self, session: Session) -> bool:
        if not session.alive or self._expires(session):
            return False
        idle_for = self._clock() - session.last_used
        if idle_for > self._limits.idle_timeout:
            return False
        if idle_for > self._limits.health_check_after:
            return session.noop()
        return True

    def release(self, session: Session) -> None:
        """Give a session back; it is closed if dead, capped, expired, or the pool was
        closed since it was opened."""
        cap = self._limits.max_messages_per_connection
        spent = cap is not None and session.messages_sent >= cap
        if session.alive and not spent and not self._expires(session):
            with self._lock:
                if self._born.get(session) == self._generation:
                    self._idle.append(session)
                    self._lock.notify()
                    return
        self.discard(session)

    def discard(self, session: Session) -> None:
        """Close a session handed out by :meth:`acquire` and free its place.

        The place is freed after QUIT, not before: a server that limits connections
        (Microsoft 365: 3 per mailbox) still counts one that is saying goodbye.
        """
        try:
            session.quit()
        finally:
            with self._lock:
                self._count -= 1
                self._born.pop(session, None)
                self._lock.notify()

    def close(self) -> None:
        """Close idle sessions (QUIT) now, and sessions in use when they are released."""
        with self._lock:
            self._generation += 1
            idle = list(self._idle)
            self._idle.clear()
        for session in idle:
            self.discard(session)

    def _forget_after_fork(self) -> None:
        """In a forked child: drop every session inherited from the parent.

        Each session's socket is the parent's conversation: the child closes only its own
        copy of the descriptor (no QUIT, no shutdown), so the parent goes on undisturbed.
        The lock is replaced: another parent thread may have held it at the fork.
        """
        self._lock = threading.Condition()
        inherited = list(self._born)
        self._idle.clear()
        self._born.clear()
        self._count = 0
        self._opening = 0
        self._generation += 1
        for session in inherited:
            session.abort()


#: Every pool in this process, so that a forked child can make them forget the parent's
#: sessions (weak: a pool goes away with its Submitter).
_POOLS: weakref.WeakSet[SessionPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

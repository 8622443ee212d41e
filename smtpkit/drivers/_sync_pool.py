"""A thread-safe pool of authenticated connections, shared by the threads of one submitter.

The counting and the decisions are :class:`~smtpkit.drivers._pool_state.PoolState`'s (and,
for one link, the engine's ``ReusePolicy``); this module does the locking and the waiting.

Invariants:
    * At most ``max_connections`` connections exist at once (idle, in use, being opened or
      closed); a place is freed only after QUIT.
    * A connection is handed to one thread at a time, and opened outside the lock, so one
      slow handshake never holds back a thread that could reuse an idle connection.
    * Idle connections past ``idle_timeout`` are closed (QUIT) the next time the pool is
      used, as ``httpx`` expires kept-alive connections: a pool needs no thread.
    * :meth:`SyncPool.close` closes idle connections at once and those in use (or being
      opened) when they are given back; the pool stays usable.
    * A forked child never uses a connection of its parent: after ``fork()`` the child's
      pools forget every connection, closing only the child's copy of each socket (no QUIT,
      no shutdown), so the parent's conversation goes on undisturbed.
    * Shutdown never hangs on a server that does not answer QUIT: :meth:`SyncPool.close`
      gives all its idle connections one budget together; at interpreter exit every pool
      shares :data:`EXIT_BUDGET`; :meth:`SyncPool.abandon` (garbage collection) sends
      nothing and waits for nothing.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

from smtpkit.drivers._pool_state import OPEN, WAIT, PoolState
from smtpkit.drivers._sync_io import SyncConnection, SyncDriver
from smtpkit.engine import Reuse
from smtpkit.engine._link import QUIT_TIMEOUT
from smtpkit.errors import SMTPError

#: Seconds that interpreter exit waits, in all, for QUIT replies on kept connections
#: (each pool's command timeout, if shorter, bounds its own share).
EXIT_BUDGET = 1.0

__all__ = ["SyncPool"]


class SyncPool:
    """Hands out connections to threads; opens, reuses, checks and closes them."""

    def __init__(self, state: PoolState[SyncConnection], driver: SyncDriver) -> None:
        self.state = state
        self._driver = driver
        self._lock = threading.Condition()
        self._members: set[SyncConnection] = set()  # every connection that exists
        _POOLS.add(self)

    @property
    def size(self) -> int:
        """Connections that exist now (idle, in use, being opened or closed)."""
        with self._lock:
            return self.state.count

    @property
    def idle(self) -> int:
        """Connections waiting for reuse."""
        with self._lock:
            return len(self.state.idle)

    # -- handing out ---------------------------------------------------------------------

    def acquire(self) -> SyncConnection:
        """A usable connection for the calling thread's exclusive use.

        Raises:
            OperationTimeout: none became free within ``acquire_timeout``.
            SMTPError: opening a new connection failed, or (with the login gate) another
                thread's login was refused while this one waited to open one.
        """
        state = self.state
        with self._lock:
            expired = state.expired()
            seen = state.refusals
        for conn in expired:
            self.discard(conn)
        clock = self._driver.clock
        deadline = clock() + state.limits.acquire_timeout
        while True:
            with self._lock:
                while (choice := state.pick(seen)) == WAIT:  # bounded by the deadline
                    remaining = deadline - clock()
                    if remaining <= 0:
                        raise state.timeout()
                    self._lock.wait(min(remaining, 1.0))
                generation = state.generation  # a close() from now on retires the new one
            if choice == OPEN:
                return self._open_counted(generation)
            assert isinstance(choice, SyncConnection)
            if self._usable(choice):
                assert choice.link is not None
                choice.link.reused = True
                return choice
            self.discard(choice)

    def _open_counted(self, generation: int) -> SyncConnection:
        try:
            conn = self._driver.open_connection(generation)
        except BaseException as error:
            with self._lock:
                self.state.open_failed(error)
                self._lock.notify_all()
            raise
        with self._lock:
            self._members.add(conn)
            if self.state.opened():
                self._lock.notify_all()  # threads held back by the login gate may go on
        return conn

    def _usable(self, conn: SyncConnection) -> bool:
        decision = self.state.reuse(conn)
        if decision is Reuse.CHECK:
            return self._driver.probe_connection(conn)
        return decision is Reuse.USE

    # -- giving back ---------------------------------------------------------------------

    def release(self, conn: SyncConnection, *, keep: bool = True) -> None:
        """Give a connection back: kept for reuse when the policy allows, else closed."""
        with self._lock:
            if self.state.give_back(conn, keep=keep):
                self._lock.notify()
                return
        self.discard(conn)

    def discard(self, conn: SyncConnection, *, by: float | None = None) -> None:
        """Close a connection (QUIT when still usable) and then free its place.

        The place is freed after QUIT, not before: a server that limits connections
        (Microsoft 365: 3 per mailbox) still counts one that is saying goodbye. With
        ``by`` (a value of the driver's clock) the QUIT reply is waited for until then at
        most, and once it has passed the connection is closed without QUIT.
        """
        try:
            if by is None:
                self._driver.close_connection(conn)
            else:
                self._close_by(conn, by)
        finally:
            with self._lock:
                if conn in self._members:
                    self._members.discard(conn)
                    self.state.freed()
                self._lock.notify()

    def _close_by(self, conn: SyncConnection, deadline: float) -> None:
        driver = self._driver
        try:
            if conn.link is not None and conn.stream is not None and driver.clock() < deadline:
                driver.run(driver.closing_by(conn.link, deadline), conn)
        except SMTPError:
            pass  # closing never fails: the stream is closed below
        finally:
            conn.abort()

    def close(self, budget: float | None = None) -> None:
        """Close idle connections (QUIT) now, and those in use when they are given back.

        The idle ones share one wait for their QUIT replies: ``budget`` seconds (default:
        the command timeout, at most the engine's QUIT cap), not one timeout each, so
        closing a pool to a server that stopped answering takes that long at most.
        """
        with self._lock:
            idle = self.state.retire()
        if not idle:
            return
        if budget is None:
            budget = min(self._driver.settings.timeouts.command, QUIT_TIMEOUT)
        deadline = self._driver.clock() + budget
        for conn in idle:
            self.discard(conn, by=deadline)

    def abandon(self) -> None:
        """Close every connection's socket at once: no QUIT, no wait, no lock waited for.

        For the garbage collector, which runs finalizers on whatever thread happens to
        trigger it (a request handler, an event loop, a thread holding other locks):
        a QUIT there would block that thread on a network round trip, up to a command
        timeout per connection. Closing without QUIT is what a crashed client does;
        servers expect it (RFC 5321 §4.1.1.10 asks the client to QUIT, but a server must
        cope with a connection that simply ends). Deferring the QUIT to a thread of our
        own was the other choice: it would outlive the object and still be cut off at
        exit. Nothing can be in use: a send holds the Submitter, which is being collected.
        """
        locked = self._lock.acquire(blocking=False)  # never wait on the collecting thread
        try:
            members = list(self._members)
            self._members.clear()
            if locked:
                self.state.forget()
        finally:
            if locked:
                self._lock.release()
        for conn in members:
            conn.abort()  # closes the socket: no QUIT, no TLS close_notify, no wait

    def _forget_after_fork(self) -> None:
        """In a forked child: drop every connection inherited from the parent.

        The lock is replaced: another parent thread may have held it at the fork.
        """
        self._lock = threading.Condition()
        inherited = list(self._members)
        self._members.clear()
        self.state.forget()
        for conn in inherited:
            conn.abort()  # closes the child's descriptor only: no QUIT, no shutdown


#: Every pool in this process, so that a forked child can make them forget the parent's
#: connections (weak: a pool goes away with its submitter).
_POOLS: weakref.WeakSet[SyncPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._forget_after_fork()


def close_at_exit(budget: float = EXIT_BUDGET) -> None:
    """Close every live pool's idle connections within ``budget`` seconds in all.

    Registered with :mod:`atexit`: an application that exits with a Submitter still
    holding connections says QUIT, but waits for the replies only this long together,
    so a server that stopped answering delays exit by about a second, not a command
    timeout per connection.
    """
    ends = time.monotonic() + budget
    for pool in list(_POOLS):
        left = ends - time.monotonic()
        try:
            pool.close(budget=max(0.0, min(left, pool._driver.settings.timeouts.command)))
        except Exception:  # noqa: S112 - exit goes on; one pool's bug must not stop the others
            continue


atexit.register(close_at_exit)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

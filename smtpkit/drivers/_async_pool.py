"""A pool of authenticated connections shared by the tasks of one event loop.

The decisions are the engine's :class:`~smtpkit.engine.ReusePolicy` (reuse, NOOP first, or
drop an idle link; keep one given back or not); this module does the waiting: tasks queue
for a connection in arrival order, at most ``max_connections`` exist at once, and opening
one happens outside any queue so a slow handshake never holds back a task that could reuse
an idle connection.

Invariants:
    * At most ``max_connections`` connections exist (idle, in use or opening).
    * With a login gate (the submitter has credentials), until a login has succeeded only
      one connection opens at a time, and a refused login (``smtpkit._pool.ends_logins``)
      is raised to every task that was waiting to open one: one wrong password costs one
      AUTH, not one per task (provider lockouts).
    * A connection is used by one task at a time; one given back mid-transaction never
      happens: a cancelled or failed send aborts its connection (:meth:`AsyncPool.discard`).
    * An idle connection is closed (QUIT) once it has been idle ``idle_timeout`` seconds,
      by a timer, so an application that keeps a submitter for its lifetime holds no
      connection the server will drop anyway.
    * The pool belongs to one event loop at a time: used from another loop (a second
      ``asyncio.run``), it forgets the connections of the first, which cannot be used there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from smtpkit._pool import PoolLimits, ends_logins
from smtpkit.drivers._async_io import Connection
from smtpkit.engine import Reuse, ReusePolicy
from smtpkit.errors import OperationTimeout, SMTPError

__all__ = ["AsyncPool"]


class AsyncPool:
    """Hands out connections to tasks; opens, reuses, checks and closes them."""

    def __init__(
        self,
        *,
        limits: PoolLimits,
        policy: ReusePolicy,
        open_connection: Callable[[int], Awaitable[Connection]],
        close_connection: Callable[[Connection], Awaitable[None]],
        probe_connection: Callable[[Connection], Awaitable[bool]],
        clock: Callable[[], float],
        wall_clock: Callable[[], datetime],
        login_gate: bool = False,
    ) -> None:
        self.limits = limits
        self.policy = policy
        self._open = open_connection
        self._close = close_connection
        self._probe = probe_connection
        self._clock = clock
        self._wall_clock = wall_clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._count = 0
        self._generation = 0
        self._closing: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._login_gate = login_gate
        self._proven = False  # a connection opened (logged in) since the last refused login
        self._opening = 0
        self._refusals = 0
        self._last_refusal: SMTPError | None = None

    @property
    def size(self) -> int:
        """Connections that exist now (idle, in use or being opened)."""
        return self._count

    @property
    def idle(self) -> int:
        """Connections waiting for reuse."""
        return len(self._idle)

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Connections of another (finished) loop cannot be used here.
            for conn in self._idle:
                conn.abort()
            self._idle.clear()
            self._waiters.clear()
            self._closing.clear()
            self._count = 0
            self._opening = 0
            self._timer = None
            self._loop = loop
        return loop

    # -- handing out ---------------------------------------------------------------------

    async def acquire(self) -> Connection:
        """A usable connection for the calling task's exclusive use.

        Raises:
            OperationTimeout: none became free within ``acquire_timeout``.
            SMTPError: opening a new connection failed.
        """
        loop = self._bind()
        deadline = self._clock() + self.limits.acquire_timeout
        seen = self._refusals
        while True:
            if self._idle:
                conn = self._idle.pop()  # most recently used: the likeliest to be alive
                if await self._usable(conn):
                    assert conn.link is not None
                    conn.link.reused = True
                    return conn
                continue
            if self._refusals != seen and self._last_refusal is not None:
                raise self._last_refusal  # refused while we waited: ours would be too
            gated = self._login_gate and not self._proven and self._opening > 0
            if self._count < self.limits.max_connections and not gated:
                return await self._open_counted()
            await self._wait(loop, deadline)

    async def _open_counted(self) -> Connection:
        self._count += 1
        self._opening += 1
        try:
            conn = await self._open(self._generation)
        except BaseException as error:
            self._count -= 1
            self._opening -= 1
            if isinstance(error, SMTPError) and ends_logins(error):
                self._proven = False
                self._refusals += 1
                self._last_refusal = error
                self._wake_all()
            else:
                self._wake()
            raise
        self._opening -= 1
        self._proven = True
        self._wake_all()  # gated tasks may open theirs now
        return conn

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock())):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, but leaving: pass the turn on to the next task
            if isinstance(error, TimeoutError):
                raise OperationTimeout(
                    f"no SMTP connection became free within {self.limits.acquire_timeout:g} s "
                    f"(max_connections={self.limits.max_connections})"
                ) from None
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_all(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _usable(self, conn: Connection) -> bool:
        link = conn.link
        assert link is not None
        decision = self.policy.on_acquire(link, self._clock(), self._wall_clock())
        if decision is Reuse.USE:
            return True
        if decision is Reuse.CHECK:
            try:
                if await self._probe(conn):
                    return True
            except BaseException:
                self._forget(conn)
                raise
        self._forget(conn)
        return False

    def _forget(self, conn: Connection) -> None:
        """Abort a connection that was counted, and free its place."""
        conn.abort()
        self._count -= 1
        self._wake()

    # -- giving back ---------------------------------------------------------------------

    async def release(self, conn: Connection, *, keep: bool = True) -> None:
        """Give a connection back after a finished transaction: kept for reuse when the
        policy allows, else closed politely (QUIT)."""
        self._bind()
        link = conn.link
        usable = link is not None and link.alive
        if (
            keep
            and usable
            and conn.generation == self._generation
            and link is not None
            and self.policy.keep(link, self._wall_clock())
        ):
            self._idle.append(conn)
            self._wake()
            self._arm_timer()
            return
        self._count -= 1
        self._wake()
        if usable:
            await self._close(conn)
        else:
            conn.abort()

    def discard(self, conn: Connection) -> None:
        """Abort a connection now (a cancelled or failed transaction): never reused."""
        if self._loop is None:
            conn.abort()
            return
        self._forget(conn)

    # -- idle expiry and closing ---------------------------------------------------------

    def _arm_timer(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.policy.idle_timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._clock()
        kept: deque[Connection] = deque()
        for conn in self._idle:
            link = conn.link
            if link is not None and now - link.last_used < self.policy.idle_timeout:
                kept.append(conn)
            else:
                self._count -= 1
                self._spawn_close(conn)
        self._idle = kept
        self._wake()
        if self._idle:
            self._arm_timer()

    def _spawn_close(self, conn: Connection) -> None:
        assert self._loop is not None
        task = asyncio.ensure_future(self._close(conn), loop=self._loop)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """QUIT every idle connection; those in use close when given back. The pool stays
        usable: later acquisitions open new connections."""
        self._bind()
        self._generation += 1
        idle = list(self._idle)
        self._idle.clear()
        self._count -= len(idle)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._wake()
        closing = [*(self._close(conn) for conn in idle), *self._closing]
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)

    def abandon(self) -> None:
        """Abort every idle connection without a word (the loop is going away)."""
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.abort()
        self._count -= len(self._idle)
        self._idle.clear()

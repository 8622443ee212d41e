"""A pool of authenticated connections shared by the tasks of one event loop.

The counting and the decisions are :class:`~smtpkit.drivers._pool_state.PoolState`'s (and,
for one link, the engine's ``ReusePolicy``); this module does the waiting: tasks queue for
a connection in arrival order, and opening one happens outside any queue so a slow
handshake never holds back a task that could reuse an idle connection.

Invariants:
    * At most ``max_connections`` connections exist (idle, in use, opening or closing).
    * A refused login is raised to every task that was waiting to open a connection: one
      wrong password costs one AUTH, not one per task (provider lockouts).
    * A connection is used by one task at a time; one given back mid-transaction never
      happens: a cancelled or failed send aborts its connection (:meth:`AsyncPool.discard`).
    * An idle connection is closed (QUIT) once it has been idle ``idle_timeout`` seconds,
      by a timer, so an application that keeps a submitter for its lifetime holds no
      connection the server will drop anyway.
    * The pool belongs to one event loop at a time: used from another loop (a second
      ``asyncio.run``), it forgets the connections of the first, which cannot be used there.
    * Shutdown never hangs on a server that does not answer QUIT: :meth:`AsyncPool.aclose`
      gives all its idle connections one budget together (as ``SyncPool.close``), and
      :meth:`AsyncPool.abandon` (garbage collection) sends nothing and waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections import deque

from smtpkit.drivers._async_io import AsyncConnection, AsyncDriver
from smtpkit.drivers._pool_state import OPEN, WAIT, PoolState
from smtpkit.engine import Reuse
from smtpkit.engine._link import QUIT_TIMEOUT
from smtpkit.transports._release import call_on_loop

__all__ = ["AsyncPool"]


class AsyncPool:
    """Hands out connections to tasks; opens, reuses, checks and closes them."""

    def __init__(self, state: PoolState[AsyncConnection], driver: AsyncDriver) -> None:
        self.state = state
        self._driver = driver
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def size(self) -> int:
        """Connections that exist now (idle, in use, being opened or closed)."""
        return self.state.count

    @property
    def idle(self) -> int:
        """Connections waiting for reuse."""
        return len(self.state.idle)

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Connections of another (finished) loop cannot be used here.
            for conn in self.state.idle:
                conn.abort()
            self.state.forget()
            self._waiters.clear()
            self._closing.clear()
            self._timer = None
            self._loop = loop
        return loop

    # -- handing out ---------------------------------------------------------------------

    async def acquire(self) -> AsyncConnection:
        """A usable connection for the calling task's exclusive use.

        Raises:
            OperationTimeout: none became free within ``acquire_timeout``.
            SMTPError: opening a new connection failed.
        """
        loop = self._bind()
        state = self.state
        deadline = self._driver.clock() + state.limits.acquire_timeout
        seen = state.refusals
        while True:
            choice = state.pick(seen)
            if choice == WAIT:
                await self._wait(loop, deadline)
            elif choice == OPEN:
                return await self._open_counted(state.generation)
            else:
                assert isinstance(choice, AsyncConnection)
                assert choice.link is not None
                if await self._usable(choice):
                    choice.link.reused = True
                    return choice

    async def _open_counted(self, generation: int) -> AsyncConnection:
        try:
            conn = await self._driver.open_connection(generation)
        except BaseException as error:
            if self.state.open_failed(error):
                self._wake_all()  # a refused login: every waiting task gets it
            else:
                self._wake()
            raise
        if self.state.opened():
            self._wake_all()  # tasks held back by the login gate may open theirs now
        return conn

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(max(0.0, deadline - self._driver.clock())):
                await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, but leaving: pass the turn on to the next task
            if isinstance(error, TimeoutError):
                raise self.state.timeout() from None
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

    async def _usable(self, conn: AsyncConnection) -> bool:
        decision = self.state.reuse(conn)
        if decision is Reuse.USE:
            return True
        if decision is Reuse.CHECK:
            try:
                if await self._driver.probe_connection(conn):
                    return True
            except BaseException:
                self._forget(conn)
                raise
        self._forget(conn)
        return False

    def _forget(self, conn: AsyncConnection) -> None:
        """Abort a connection that was counted, and free its place."""
        conn.abort()
        self.state.freed()
        self._wake()

    # -- giving back ---------------------------------------------------------------------

    async def release(self, conn: AsyncConnection, *, keep: bool = True) -> None:
        """Give a connection back after a finished transaction: kept for reuse when the
        policy allows, else closed politely (QUIT) before its place is freed."""
        self._bind()
        if self.state.give_back(conn, keep=keep):
            self._wake()
            self._arm_timer()
            return
        try:
            if conn.link is not None and conn.link.alive:
                await self._driver.close_connection(conn)
        finally:
            self._forget(conn)

    def discard(self, conn: AsyncConnection) -> None:
        """Abort a connection now (a cancelled or failed transaction): never reused."""
        if self._loop is None:
            conn.abort()
            return
        self._forget(conn)

    # -- idle expiry and closing ---------------------------------------------------------

    def _arm_timer(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self.state.policy.idle_timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        for conn in self.state.expired():
            self._spawn_close(conn)
        if self.state.idle:
            self._arm_timer()

    def _spawn_close(self, conn: AsyncConnection) -> None:
        assert self._loop is not None
        task = asyncio.ensure_future(self._close_counted(conn), loop=self._loop)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_counted(self, conn: AsyncConnection, by: float | None = None) -> None:
        try:
            await self._driver.close_connection(conn, by=by)
        finally:
            self.state.freed()
            self._wake()

    async def aclose(self) -> None:
        """QUIT every idle connection; those in use close when given back. The pool stays
        usable: later acquisitions open new connections.

        The QUIT replies are waited for within one budget for all connections together (the
        command timeout, at most the engine's QUIT cap), as ``SyncPool.close`` does: closes
        the idle timer started earlier are cut off at the same deadline.
        """
        self._bind()
        idle = self.state.retire()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        driver = self._driver
        budget = min(driver.settings.timeouts.command, QUIT_TIMEOUT)
        deadline = driver.clock() + budget
        closing = [
            *(asyncio.ensure_future(self._close_counted(conn, deadline)) for conn in idle),
            *self._closing,
        ]
        if not closing:
            return
        late = set(closing)  # all of them, should aclose() itself be cancelled
        try:
            _, late = await asyncio.wait(closing, timeout=max(0.0, deadline - driver.clock()))
        finally:
            for task in late:  # a close still waiting after the deadline: aborted
                task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)

    def abandon(self) -> int:
        """Close every idle connection's socket at once: no QUIT, no wait. How many.

        For the garbage collector, which runs finalizers on whatever thread triggers it,
        and may do so after the pool's loop has closed: a QUIT would need that loop (and
        block on a round trip); closing without QUIT is what a crashed client does, and
        servers cope with it (RFC 5321 §4.1.1.10). Each stream's ``abort`` is safe from
        any thread (:func:`smtpkit.transports._release.release_transport`). Nothing can
        be in use: a send holds the submitter, which is being collected.
        """
        idle = list(self.state.idle)
        self.state.forget()
        timer, self._timer = self._timer, None
        if timer is not None and self._loop is not None:
            call_on_loop(self._loop, timer.cancel)
        for conn in idle:
            conn.abort()
        return len(idle)

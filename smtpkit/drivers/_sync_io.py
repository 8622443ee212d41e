"""The threaded driver loop: perform the engine's effects on a blocking ``Stream``.

:meth:`SyncDriver.run` is the whole driver: it resumes the engine's generator with each
effect's answer, or throws the effect's ``SMTPError`` into it, until the step returns. The
stream lives in a :class:`SyncConnection` next to the engine's
:class:`~smtpkit.engine.Link`; ``Connect`` fills it, ``Close`` empties it.

Deadlines become socket timeouts: before each ``Receive`` the stream gets the time left
until the reply is due (``Stream.set_timeout``), so a server dripping a reply byte by byte
times out when the reply is due, whatever the read size (DESIGN rule 11).

Token providers are called on the sending thread; the providers in :mod:`smtpkit.oauth`
already share one refresh among threads (single flight).

Invariants:
    * No SMTP decision here: every byte written and every reply judged is the engine's.
    * A step that raises leaves its generator closed; the caller then aborts the stream
      (``Connection.abort``) unless the link is still usable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from smtpkit.auth import AccessToken
from smtpkit.drivers._driving import AnyReporter, Connection, DriverBase, Reporter, Taker
from smtpkit.engine import Connected, Report, Steps, Submission
from smtpkit.errors import LocalProtocolError, SMTPError
from smtpkit.transports import Stream, Transport, peer_address

if TYPE_CHECKING:
    from smtpkit.engine import Close, Connect, FetchToken, Receive, StartTLS, Write

__all__ = ["SyncConnection", "SyncDriver"]

R = TypeVar("R")
J = TypeVar("J", bound=Submission)

#: A socket timeout this close to the time left is left as it is: setting it costs a
#: system call per read, and a reply deadline missed by a millisecond changes nothing.
_SLACK = 0.001


class SyncConnection(Connection[Stream]):
    """A link and its blocking stream."""

    __slots__ = ()

    def drop(self, stream: Stream) -> None:
        stream.close()


class SyncDriver(DriverBase[Transport]):
    """Performs engine effects on blocking streams, on the calling thread."""

    def run(
        self,
        steps: Steps[R],
        conn: SyncConnection,
        take: Taker | None = None,
        report: AnyReporter | None = None,
    ) -> R:
        """Drive ``steps`` to its end on ``conn``; its result, or what it raised."""
        send, throw, handlers = steps.send, steps.throw, self._handlers
        try:
            effect = send(None)
            while True:
                kind = type(effect)
                handler = handlers.get(kind)
                try:
                    if handler is not None:
                        answer = handler(effect, conn)
                    elif kind is Report and report is not None:  # every message: inline
                        report(effect.job, effect.result)  # type: ignore[union-attr]
                        answer = None
                    else:
                        answer = self.local(effect, take, report)
                except SMTPError as error:
                    effect = throw(error)
                else:
                    effect = send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            steps.close()  # a no-op after StopIteration; after an exception, ends the step

    # -- the effects that do I/O ---------------------------------------------------------

    def write(self, effect: Write, conn: SyncConnection) -> None:
        stream = conn.stream
        if stream is None:
            stream = conn.open_stream()  # raises: the engine never asks without a stream
        if conn.timeout != effect.timeout:
            stream.set_timeout(effect.timeout)
            conn.timeout = effect.timeout
        stream.send(effect.data)

    def receive(self, effect: Receive, conn: SyncConnection) -> bytes:
        stream = conn.stream
        if stream is None:
            stream = conn.open_stream()  # raises: the engine never asks without a stream
        left = effect.deadline - self.clock()
        if left <= 0:
            left = self.left(effect.deadline)  # raises OperationTimeout
        if conn.timeout is None or abs(conn.timeout - left) > _SLACK:
            stream.set_timeout(left)
            conn.timeout = left
        return stream.receive()

    def connect(self, effect: Connect, conn: SyncConnection) -> Connected:
        conn.abort()
        conn.stream = stream = self.transport.connect(self.endpoint)
        conn.timeout = None
        return Connected(peer_address(stream), stream.is_encrypted)

    def start_tls(self, effect: StartTLS, conn: SyncConnection) -> None:
        stream = conn.open_stream()
        # CPython bounds the whole handshake by the socket timeout.
        stream.set_timeout(self.left(effect.deadline))
        conn.timeout = None
        stream.start_tls(self.context(), effect.server_hostname)

    def fetch_token(self, effect: FetchToken, conn: SyncConnection) -> AccessToken:
        provider = effect.provider
        token = provider.get_token(force_refresh=effect.force_refresh, rejected=effect.rejected)
        if not isinstance(token, AccessToken):
            raise LocalProtocolError(
                f"{type(provider).__name__}.get_token() returned {type(token).__name__}, "
                "not an AccessToken"
            )
        return token

    def close(self, effect: Close, conn: SyncConnection) -> None:
        conn.abort()

    # -- the engine's steps on one connection ------------------------------------------

    def open_connection(self, generation: int = 0) -> SyncConnection:
        """A new connection, negotiated and logged in (``open_link``)."""
        conn = SyncConnection(generation)
        try:
            conn.link = self.run(self.opening(), conn)
        except BaseException:
            conn.abort()
            raise
        return conn

    def close_connection(self, conn: SyncConnection) -> None:
        """QUIT and close (``close_link``); never raises an ``SMTPError``."""
        try:
            if conn.link is not None and conn.stream is not None:
                self.run(self.closing(conn.link), conn)
        except SMTPError:
            pass  # closing never fails: the stream is closed below
        finally:
            conn.abort()

    def probe_connection(self, conn: SyncConnection) -> bool:
        """NOOP before reusing an idle connection (``probe_link``)."""
        assert conn.link is not None
        return self.run(self.probing(conn.link), conn)

    def transact(
        self,
        conn: SyncConnection,
        first: J,
        take: Callable[[], J | None] | None,
        report: Reporter[J],
    ) -> None:
        """Run the engine's transactions on ``conn``: ``first``, then what ``take`` gives.

        Raises:
            BaseException: what stopped the run (a bug, ``KeyboardInterrupt``); every
                message it had open is reported first and the connection is aborted. An
                ``SMTPError`` the engine did not turn into outcomes is not raised: it is the
                outcome of the messages open, and the connection is aborted.
        """
        assert conn.link is not None
        run = self.transactions(conn.link, first)
        try:
            self.run(run.steps(), conn, take, report)  # type: ignore[arg-type]  # jobs come back as handed out
        except BaseException as error:
            conn.abort()
            self.abandon(run, error, report)
            if not isinstance(error, SMTPError):
                raise

"""``Submitter``: the threaded driver of the send engine, the class most applications use.

The options are :class:`~smtpkit.drivers._client.SubmitterBase`'s and the SMTP logic is the
engine's (:mod:`smtpkit.engine`); this module performs it with sockets and threads: a pool
of authenticated connections shared by threads, ``time.sleep`` for backoffs and the rate
limit (between transactions only), worker threads for ``send_many``.

Invariants:
    * ``send`` returns a :class:`~smtpkit.SendResult` only for a message the server accepted.
    * Connections are kept across calls, as ``httpx.Client`` keeps them: one login per
      connection, reused by later ``send``/``send_many`` calls until idle longer than
      ``idle_timeout``, ``close()`` (or the end of a ``with`` block) or interpreter exit,
      which send QUIT within one short budget for all connections together, or garbage
      collection of the Submitter, which closes the sockets without QUIT or any wait. A
      forked child never uses its parent's connections.
    * A reused connection the server closed while idle is replaced transparently, but only
      when the server had not accepted anything of the message (so no message is ever sent
      twice).
    * ``send`` and ``send_many`` are safe to call from many threads: connections come from a
      pool, each used by one thread at a time, with one login per connection.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence, Sized
from email.message import Message
from types import TracebackType

from smtpkit.dkim import DKIMSigner
from smtpkit.drivers._batch_results import interrupt_note
from smtpkit.drivers._batch_state import BatchState
from smtpkit.drivers._client import SubmitterBase, no_prepare
from smtpkit.drivers._common import Outgoing, check_batch_options
from smtpkit.drivers._sync_batch import SharedPacing, run_batch
from smtpkit.drivers._sync_io import SyncConnection, SyncDriver
from smtpkit.drivers._sync_pool import SyncPool
from smtpkit.drivers._tracker import SendTracker
from smtpkit.dsn import DSN, ESMTPParams
from smtpkit.engine import SendOptions
from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError
from smtpkit.transports import SocketTransport, Transport

__all__ = ["Submitter"]

_NONE = object()  # what next() gives for an empty input


class Submitter(SubmitterBase[Transport]):
    """Send messages through one SMTP submission server.

    Example::

        from email.message import EmailMessage
        import smtpkit
        from smtpkit.auth import AppPasswordAuth

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "me@gmail.com", "you@example.com", "Hi"
        msg.set_content("Hello!")

        submitter = smtpkit.Submitter(
            "smtp.gmail.com", auth=AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop")
        )
        result = submitter.send(msg)
        print(result.message_id, result.reply)

    It keeps its authenticated connections between calls (one login per connection;
    logging in per message trips Gmail's "454 4.7.0 Too many login attempts"), so a
    long-lived Submitter, such as a module-level one in a web app, logs in once and reuses
    the connection. A kept connection idle longer than ``idle_timeout`` is closed the next
    time the Submitter is used; ``close()`` closes them all, and so does the end of a
    ``with`` block, the Submitter being garbage-collected, or interpreter exit.

    Args:
        host: the server's host name or address.
        port: defaults to 465 for ``Security.TLS`` and 587 otherwise.
        security: ``Security.STARTTLS`` (default; required, never downgraded),
            ``Security.TLS`` (implicit TLS) or ``Security.NONE``.
        auth: an authentication strategy from :mod:`smtpkit.auth`, or ``None``.
        timeout: seconds for every step, or a :class:`~smtpkit.Timeouts`.
        tls_context: an ``ssl.SSLContext``; default ``ssl.create_default_context()``.
        local_hostname: the name to send in EHLO.
        transport: how to open connections; default a socket transport. Tests pass
            :class:`smtpkit.testing.FakeTransport`.
        allow_unencrypted_auth: send credentials over plaintext to a non-loopback host.
            Dangerous: anyone on the path can read them.
        provider: a provider name (e.g. ``"gmail"``) that sharpens error hints; set by
            :meth:`for_provider` and :meth:`from_url`.
        retry: a :class:`~smtpkit.Retry` policy for transient failures before the server
            could have accepted a message. Default: no retry (a connection found closed
            while idle is still replaced once, transparently).
        max_connections: connections open at once (the pool size).
        max_messages_per_connection: replace a connection after this many messages.
        idle_timeout: close kept connections idle this long instead of reusing them
            (seconds; checked whenever the Submitter is used).
        rate_limit: at most this many messages per second (all threads together).
        use_chunking: send with BDAT (RFC 3030) when the server offers CHUNKING.
        dkim: a :class:`~smtpkit.dkim.DKIMSigner` that signs every message after smtpkit's
            own header changes (docs/dkim.md); ``send(..., dkim=)`` overrides it.
        window: with PIPELINING and CHUNKING, keep up to this many whole transactions in
            flight on one connection (``1``: one at a time). A lost connection can leave
            up to ``window`` messages ``DeliveryUnknown``; see docs/performance.md.
        clock, wall_clock: monotonic and UTC clocks, injectable for tests.
        quota: a :class:`smtpkit.quotas.Quota` each message is counted in before its
            envelope is sent (shared by every worker of the account: see
            docs/quotas.md); it gets the preset's limits and the account (user name and
            host) where it has none. Default: with a preset that has daily limits, a
            :class:`~smtpkit.quotas.MemoryQuotaStore` counting them for this Submitter;
            ``False``: no quota. Over a limit, nothing is sent and the message ends with
            :class:`~smtpkit.QuotaExceeded` (a place freeing up within a minute is waited
            for, like the rate limit).
    """

    def _start(self, transport: Transport | None) -> None:
        driver = SyncDriver(
            transport if transport is not None else SocketTransport(),
            self._settings,
            self._endpoint,
            self._tls_context,
            self._clock,
        )
        self._driver = driver
        # One pacing for the Submitter's life, so that separate send() calls share the rate.
        self._pacing = SharedPacing(self._rate_limit)
        # The pool must not refer back to the Submitter, so that the finalizer below can
        # close it when the Submitter is collected.
        self._pool = SyncPool(self._pool_state(SyncConnection), driver)
        self._keep_lock = threading.Lock()
        self._keep_open = 0  # nesting depth of with-blocks / open() calls
        # Kept connections live as long as the Submitter. Garbage collection closes their
        # sockets without QUIT (SyncPool.abandon: the collector may run on any thread, which
        # must not block on the network); interpreter exit says QUIT within a shared
        # budget of about a second (smtpkit.drivers._sync_pool.close_at_exit), so the
        # finalizer does not run at exit.
        self._finalizer = weakref.finalize(self, self._pool.abandon)
        self._finalizer.atexit = False

    # -- connections ---------------------------------------------------------------------

    def open(self) -> Submitter:
        """Connect and log in now (the connection is then kept for later sends).

        Pair it with :meth:`close`; ``open()``/``close()`` pairs and ``with`` blocks nest,
        and the outermost one closes the connections.
        """
        with self._keep_lock:
            self._keep_open += 1
        try:
            conn = self._pool.acquire()
        except BaseException:
            self.close()  # a failed open() keeps nothing
            raise
        self._pool.release(conn)
        return self

    def close(self) -> None:
        """Send QUIT on every kept connection and close them. Never raises.

        The QUIT replies are waited for within one budget for all connections together
        (the command timeout, at most 5 s), so a server that stopped answering cannot make
        ``close()`` take a timeout per connection. Connections other threads are using are
        closed when they finish with them. The Submitter stays usable: a later send opens a
        new connection.
        """
        with self._keep_lock:
            self._keep_open = max(0, self._keep_open - 1)
            last = self._keep_open == 0
        if last:
            self._pool.close()

    def __enter__(self) -> Submitter:
        with self._keep_lock:
            self._keep_open += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        message: Message | bytes,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        dsn: DSN | None = None,
        params: ESMTPParams | None = None,
        dkim: DKIMSigner | None = None,
    ) -> SendResult:
        """Send one message and return what the server said.

        Args:
            message: an ``email.message.EmailMessage``, or the raw message as ``bytes``
                (then ``sender`` and ``recipients`` are required).
            sender: the envelope sender; default: the Sender or From header.
            recipients: the envelope recipients; default: To, Cc and Bcc (Bcc is never
                transmitted in the headers).
            dsn: delivery status notifications to ask for (:class:`~smtpkit.dsn.DSN`, RFC
                3461; docs/dsn.md). A server without DSN: ``MessageError`` before MAIL,
                unless the DSN says ``if_unsupported="send_without"``.
            params: other ``MAIL FROM``/``RCPT TO`` parameters
                (:class:`~smtpkit.dsn.ESMTPParams`).
            dkim: sign this message with this :class:`~smtpkit.dkim.DKIMSigner` instead of
                the submitter's ``dkim`` (docs/dkim.md).

        Returns:
            A :class:`~smtpkit.SendResult`. Recipients the server refused while others were
            accepted are listed in ``result.rejected``.

        Raises:
            RecipientRejected: every recipient was refused.
            DeliveryUnknown: the connection failed after the content was sent.
            SMTPError: any other failure, typed (see :mod:`smtpkit.errors`).
        """
        options = SendOptions.of(dsn, params, dkim)  # wrong types: ConfigurationError
        state, outcomes = self._one(message, sender, recipients, options)
        tracker = self._tracker(None, per_message=False)
        self._run(state, tracker, workers=1, lookahead=False)
        # The hooks run once the run is over: after the RSET that follows a refusal.
        return self._answer(state, outcomes, tracker)

    def send_many(
        self,
        messages: Iterable[Message | Outgoing],
        *,
        concurrency: int | None = None,
        on_result: Callable[[int, SendResult | SMTPError], None] | None = None,
        max_per_second: float | None = None,
        max_per_connection: int | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages over pooled, pipelined connections.

        Messages stream over up to ``concurrency`` connections; on each, the end of one
        message travels with the next one's envelope (RFC 2920 §3.1), so a steady stream
        costs about one round trip per message.

        A refused login is not repeated for each message: until a login has succeeded,
        connections log in one at a time, and once the server refuses one (an
        ``AuthenticationError``, a failure reply to AUTH such as ``454 4.7.0 Too many login
        attempts``, or a ``ConfigurationError``) the batch opens no new connection: every
        message not yet started ends with that same error, without a retry. The next call
        tries again.

        Args:
            messages: ``EmailMessage`` objects, or :class:`Outgoing` for an explicit
                envelope or raw bytes.
            concurrency: connections to use at most (default: ``max_connections``). More
                than ``max_connections`` (the pool size, often a provider's limit) is a
                ``ConfigurationError``: raise ``max_connections`` on the Submitter instead.
            on_result: called as ``on_result(index, outcome)`` as each message finishes,
                from a reporting thread of the batch, one call at a time; never inside an
                open SMTP transaction. ``send_many`` returns after the last call.
            max_per_second: at most this many messages per second (default: the
                Submitter's ``rate_limit``).
            max_per_connection: open a new connection after this many messages.

        Returns:
            One outcome per message in input order: a ``SendResult``, or the ``SMTPError``
            that message ended with (nothing is raised for a single message's failure).

        Raises:
            BatchInterrupted: ``on_result`` raised. No further message is started, the
                messages already on their way finish, and the error carries every outcome
                (``None`` for a message not sent), raised from the callback's exception.
                Resend only ``error.not_sent``: the others were sent or failed for good.
            KeyboardInterrupt: Ctrl-C in the calling thread, raised as it is once no
                transaction is open (within the command timeout): no further message is
                started, the messages on their way finish (or end ``DeliveryUnknown``),
                and every outcome reaches ``on_result`` before it is raised. Its note
                counts the messages accepted, unknown, failed and not sent.
        """
        limit = self._limits.max_connections
        workers = check_batch_options(
            concurrency, max_per_second, max_per_connection, on_result, limit
        )
        # Read lazily (a generator of 10,000 messages is never held whole): the first one
        # now, to return [] for none; the count only when the caller's collection has one.
        source = iter(messages)
        first = next(source, _NONE)
        if first is _NONE:
            return []
        total = len(messages) if isinstance(messages, Sized) else None
        tracker = self._tracker(on_result, background=True)
        state = self._batch(
            tracker.finished,
            pacing=SharedPacing(max_per_second) if max_per_second else None,
            per_connection=max_per_connection,
            cancelled=lambda: tracker.error is not None,
        )
        state.read_from(itertools.chain((first,), source), total)  # type: ignore[arg-type]
        try:
            self._run(state, tracker, workers=min(workers, total or workers))
        except BaseException as error:
            tracker.close()  # every outcome reaches on_result before the interrupt goes on
            if not isinstance(error, Exception):  # Ctrl-C, SystemExit: raised as they are
                count = max(state.created, total or 0)
                error.add_note(interrupt_note(state.outcomes, count, reported=bool(on_result)))
            raise
        tracker.close()
        return state.results(tracker.error)

    def _run(
        self, state: BatchState, tracker: SendTracker, *, workers: int, lookahead: bool = True
    ) -> None:
        run_batch(
            state,
            workers=workers,
            pool=self._pool,
            driver=self._driver,
            start=tracker.prepare(no_prepare),
            sleep=self._retry.sleep,
            lookahead=lookahead,
        )

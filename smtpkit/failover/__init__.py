"""Failover and round robin across several submission servers, with the Submitter's API.

Job: :class:`Failover` sends each message through one of several
:class:`~smtpkit.Submitter` objects and moves it to the next one only when the failure left
it certainly not accepted, for a reason of the server (:func:`is_server_failure`)::

    primary = smtpkit.Submitter.from_url("smtp+starttls://me%40example.com@smtp.example.com")
    backup = smtpkit.Submitter.from_url("smtps://relay@backup.example.net")
    with smtpkit.Failover([primary, backup], cooldown=60) as mail:
        result = mail.send(message)
        print(result.server)             # "smtp.example.com:587", or the backup's

Invariants:
    * Built on the public Submitter API only (``send``, ``send_many``, the error classes).
    * A message is never sent twice by the failover: it moves only on a failure where no
      server can have accepted it; ``DeliveryUnknown`` is returned or raised as it is.
    * Every outcome says which server handled it: a :class:`FailoverResult` (a
      ``SendResult``) has ``server`` and ``servers_tried``; an error gets the same two
      attributes on a copy (the original, possibly shared by a batch, is not changed).
      Both pickle and survive ``type(error)(*error.args)``. :func:`handled_by` reads them.
    * ``send_many`` keeps the Submitter's contract: outcomes in input order, ``on_result``
      called once per message with its final outcome, one call at a time, never inside an
      open SMTP transaction; ``BatchInterrupted`` when ``on_result`` raises.
    * Thread-safe: the shared state is the cool-downs and the round-robin turn
      (:mod:`smtpkit.failover._board`), under one lock; each Submitter is thread-safe.

The decisions live in :mod:`smtpkit.failover._board` (what moves, which server next),
:mod:`smtpkit.failover._core` (outcomes, one message's route) and
:mod:`smtpkit.failover._batch` (a batch's bookkeeping), shared with the asyncio twin
:class:`smtpkit.AsyncFailover`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from email.message import Message
from types import TracebackType
from typing import TYPE_CHECKING, Any

from smtpkit import BatchInterrupted, Outgoing, SendResult, Submitter
from smtpkit.dkim import DKIMSigner
from smtpkit.dsn import DSN, ESMTPParams
from smtpkit.errors import ConfigurationError, SMTPError
from smtpkit.failover._batch import BatchBook
from smtpkit.failover._board import FailoverStrategy, is_server_failure
from smtpkit.failover._core import (
    DEFAULT_COOLDOWN,
    FailoverBase,
    FailoverResult,
    Outcome,
    handled_by,
    server_labels,
)

if TYPE_CHECKING:
    from smtpkit.failover._async import AsyncFailover

__all__ = [
    "AsyncFailover",
    "Failover",
    "FailoverResult",
    "FailoverStrategy",
    "handled_by",
    "is_server_failure",
    "server_labels",
]

# Pickles and the API reference name the public path, not the private module.
FailoverResult.__module__ = FailoverStrategy.__module__ = __name__


def __getattr__(name: str) -> object:
    # The asyncio twin is imported on first use, as smtpkit.AsyncSubmitter is.
    if name == "AsyncFailover":
        from smtpkit.failover._async import AsyncFailover  # noqa: PLC0415

        return AsyncFailover
    raise AttributeError(f"module 'smtpkit.failover' has no attribute {name!r}")


class Failover(FailoverBase[Submitter]):
    """Send through the first healthy server of several, or spread messages among them.

    ``send`` and ``send_many`` take the same arguments and return the same kinds of values
    as :class:`~smtpkit.Submitter`'s; results are :class:`FailoverResult` objects.

    A message moves to the next server only when :func:`is_server_failure` says its
    failure left it certainly not accepted, for a reason of the server: the server is down
    or refuses connections, TLS or the login fails, it answers ``421`` or another ``4xx``
    before the content, or reports a quota. A ``5xx`` refusal of the sender, a recipient or
    the message is the message's own outcome and is not tried elsewhere, and
    ``DeliveryUnknown`` (the connection failed after the final ``.``) is returned or raised
    as it is: the message may have been delivered, and a resend could deliver it twice.
    A message refused before ``MAIL`` because it needs an extension the server does not
    offer (``ExtensionNotOffered``: ``SMTPUTF8`` for a non-ASCII address, ``8BITMIME`` for
    8-bit raw bytes, ``DSN`` for a DSN request) moves on as well (nothing was sent; another
    server may offer it), without a cool-down; when no server is left, its hint names the
    extension.

    A server that failed that way (or lost a connection after the content) is skipped for
    ``cooldown`` seconds. When every server is cooling down, a message is still tried
    once, on the server whose cool-down ends first; a refusal for a missing extension does
    not count as that try.

    Args:
        submitters: the servers, as Submitter objects, in order of preference.
        strategy: ``FailoverStrategy.FAILOVER`` (default: the first server that is not
            cooling down) or ``FailoverStrategy.ROUND_ROBIN`` (each message starts at the
            next server in turn); also ``"failover"`` or ``"round_robin"``.
        cooldown: seconds a failing server is skipped (0: never skipped).
        clock: a monotonic clock, injectable for tests.

    Raises:
        ConfigurationError: an empty list, something that is not a Submitter, the same
            Submitter twice, an unknown strategy or a negative cool-down.
    """

    _kind = Submitter
    _twin = "Failover"

    def __init__(
        self,
        submitters: Sequence[Submitter],
        *,
        strategy: FailoverStrategy | str = FailoverStrategy.FAILOVER,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(submitters, strategy=strategy, cooldown=cooldown, clock=clock)

    # -- connections ---------------------------------------------------------------------

    def __enter__(self) -> Failover:
        entered: list[Submitter] = []
        try:
            for submitter in self._submitters:
                submitter.__enter__()
                entered.append(submitter)
        except BaseException:
            for submitter in entered:
                submitter.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every Submitter's kept connections (``Submitter.close``). Never raises."""
        for submitter in self._submitters:
            submitter.close()

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
    ) -> FailoverResult:
        """Send one message through the first server that takes it.

        Args:
            message, sender, recipients, dsn, params, dkim: as for
                :meth:`smtpkit.Submitter.send`, handed to each server tried. A message a
                server cannot take because it lacks an extension the message needs
                (SMTPUTF8, 8BITMIME, DSN) moves on to the next server without cooling that
                one down (:func:`~smtpkit.failover._board.may_move`).

        Returns:
            A :class:`FailoverResult`: the server's ``SendResult`` and which server it was.

        Raises:
            SMTPError: the error of the last server tried (with ``server`` and
                ``servers_tried`` attributes): a failure that does not move (a ``5xx``
                refusal, ``DeliveryUnknown``), or the last server failure when no server
                was left to try.
        """
        route = self._route()
        for server in route:
            submitter = self._submitters[server]
            try:
                result = submitter.send(
                    message, sender=sender, recipients=recipients, dsn=dsn, params=params, dkim=dkim
                )
            except SMTPError as error:
                route.failed(error)
                continue
            return route.accepted(result)
        raise route.failure()

    def send_many(
        self,
        messages: Iterable[Message | Outgoing],
        *,
        concurrency: int | None = None,
        on_result: Callable[[int, SendResult | SMTPError], None] | None = None,
        max_per_second: float | None = None,
        max_per_connection: int | None = None,
    ) -> list[SendResult | SMTPError]:
        """Send many messages; each goes where :meth:`send` would send it.

        The messages for each server go to that Submitter's ``send_many`` (pooled,
        pipelined), all servers at once, each on its own thread; those that failed with a
        server failure then go, together, to their next server. ``concurrency``,
        ``max_per_second`` and ``max_per_connection`` apply to each server's share.

        Args:
            messages, concurrency, on_result, max_per_second, max_per_connection: as for
                :meth:`smtpkit.Submitter.send_many`. ``on_result`` gets each message's
                final outcome once, from a reporting thread, one call at a time.

        Returns:
            One outcome per message in input order: a :class:`FailoverResult`, or the
            ``SMTPError`` it ended with (with ``server`` and ``servers_tried``).

        Raises:
            BatchInterrupted: ``on_result`` raised; as for ``Submitter.send_many`` (a
                message that only met server failures counts as not sent).
        """
        if max_per_second is not None and max_per_second <= 0:
            raise ConfigurationError("max_per_second must be a positive number of messages/s")
        items = list(messages)
        book = BatchBook(self, len(items))
        options: dict[str, Any] = {
            "concurrency": concurrency,
            "max_per_second": max_per_second,
            "max_per_connection": max_per_connection,
        }
        calls = threading.Lock()  # on_result: one call at a time, across server batches

        def run(server: int, group: list[int]) -> None:
            _run_share(
                self._submitters[server],
                server,
                group,
                items=items,
                book=book,
                on_result=on_result,
                calls=calls,
                options=options,
            )

        while book.waiting:  # bounded: each round tries every message on one more server
            shares = book.take_round()
            threads = [
                threading.Thread(target=run, args=share, name="smtpkit-failover")
                for share in shares[1:]
            ]
            for thread in threads:
                thread.start()
            run(*shares[0])  # the caller's thread takes one server's share
            for thread in threads:
                thread.join()
        return book.finish()


def _run_share(
    submitter: Submitter,
    server: int,
    group: list[int],
    *,
    items: list[Message | Outgoing],
    book: BatchBook,
    on_result: Callable[[int, Outcome], None] | None,
    calls: threading.Lock,
    options: dict[str, Any],
) -> None:
    """Send one round's ``group`` (message indices) through ``server``."""
    reported: set[int] = set()  # only this share's reporting thread adds to it

    def report(local: int, outcome: Outcome) -> None:
        reported.add(local)
        index = group[local]
        final = book.settle(server, index, outcome)
        if book.stopped:
            raise _Stopped  # stop this server's batch too: no further message starts
        if final is None or on_result is None:
            return
        with calls:
            if book.stopped:
                raise _Stopped
            try:
                on_result(index, final)
            except BaseException as error:
                book.stop(error)
                raise

    try:
        submitter.send_many([items[index] for index in group], on_result=report, **options)
    except BatchInterrupted as interrupted:
        book.interrupted(server, group, interrupted, reported)
    except BaseException as error:  # bad arguments or a bug: send_many re-raises it
        book.crashed(error)


class _Stopped(Exception):
    """Raised from a server batch's ``on_result`` to stop it once the caller's raised."""

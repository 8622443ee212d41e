"""One ``send_many`` call's bookkeeping, shared by :class:`~smtpkit.Failover` and
:class:`~smtpkit.AsyncFailover`, with no I/O.

Job: :class:`BatchBook` numbers a batch's messages by input position, groups the messages
due each round by server, and settles each outcome a server batch reports: final (and
annotated) or on to the message's next server. The drivers only send and call back.

Invariants:
    * :class:`BatchBook` gives each message one final outcome; after :meth:`BatchBook.stop`
      a message that met only server failures has none (``None``: not sent, may be sent
      again), as ``BatchInterrupted`` documents.
    * A message moves exactly as :class:`smtpkit.failover._core.Route` moves one in
      ``send`` (:func:`~smtpkit.failover._board.may_move`), including a try on a cooling
      server while every server it tried lacked an extension it needs, and ends as it
      does when no server is left (``FailoverBase._exhausted``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from smtpkit import BatchInterrupted, SendResult
from smtpkit.failover._board import lacks_extension, may_move
from smtpkit.failover._core import FailoverBase, Outcome

__all__ = ["BatchBook"]


class BatchBook:
    """One ``send_many`` call's bookkeeping, shared by the drivers' server batches.

    Messages are numbered by input position. Each round, :meth:`take_round` groups the
    messages due by server; a driver sends each group with that server's ``send_many`` and
    passes every outcome to :meth:`settle`, which says whether it is final (and reports
    it) or where the message goes next round. Safe across threads: a message belongs to
    one server batch at a time, and the shared flags are under a lock.
    """

    def __init__(self, failover: FailoverBase[Any], count: int) -> None:
        self._failover = failover
        board = failover._board
        self._board = board
        self._orders = board.orders(count)
        self._tried: list[list[int]] = [[] for _ in range(count)]
        # Per message: every server tried so far lacked an extension it needs (Route's too).
        self._only_lacking = [True] * count
        self._next: list[int | None] = [board.pick(order, ()) for order in self._orders]
        self.outcomes: list[Outcome | None] = [None] * count
        self._lock = threading.Lock()
        self.stopped = False
        self.callback_error: BaseException | None = None
        self.crash: BaseException | None = None

    @property
    def waiting(self) -> bool:
        """Whether messages are due for another round (and the batch was not stopped)."""
        return not self.stopped and any(server is not None for server in self._next)

    def take_round(self) -> list[tuple[int, list[int]]]:
        """The messages due now, grouped by server (in server order)."""
        groups: dict[int, list[int]] = {}
        for index, server in enumerate(self._next):
            if server is not None:
                groups.setdefault(server, []).append(index)
                self._next[index] = None
        return sorted(groups.items())

    def settle(self, server: int, index: int, outcome: Outcome) -> Outcome | None:
        """Record message ``index``'s ``outcome`` on ``server``.

        Returns:
            Its final outcome (annotated), or ``None`` when it goes on to another server
            next round, or ends unsent because the batch was stopped.
        """
        failover = self._failover
        tried = self._tried[index]
        tried.append(server)
        if isinstance(outcome, SendResult):
            final: Outcome | None = failover._routed(outcome, tried)
        else:
            final = failover._judge(server, outcome, tried)
            if may_move(outcome):
                if self.stopped:
                    final = None  # accepted nowhere: it may be sent again
                else:
                    if not lacks_extension(outcome):
                        self._only_lacking[index] = False
                    following = self._board.pick(
                        self._orders[index], tried, retry_cooling=self._only_lacking[index]
                    )
                    if following is not None:
                        self._next[index] = following
                        return None
                    final = failover._exhausted(final, tried)
        self.outcomes[index] = final
        return final

    def stop(self, callback_error: BaseException | None = None) -> None:
        """No further message starts: ``on_result`` raised ``callback_error``."""
        with self._lock:
            self.stopped = True
            if callback_error is not None and self.callback_error is None:
                self.callback_error = callback_error

    def crashed(self, error: BaseException) -> None:
        """A server batch raised something unexpected: the batch stops and re-raises it."""
        with self._lock:
            self.stopped = True
            if self.crash is None:
                self.crash = error

    def interrupted(
        self,
        server: int,
        group: Sequence[int],
        interrupted: BatchInterrupted,
        reported: set[int],
    ) -> None:
        """A server batch raised ``interrupted`` (its ``on_result`` stopped it): settle the
        outcomes it had but never reported; ``reported`` holds the positions it did."""
        if not self.stopped:  # pragma: no cover - only the batch's on_result raises in there
            self.crashed(interrupted)
            return
        for local, outcome in enumerate(interrupted.outcomes):
            if outcome is not None and local not in reported:
                self.settle(server, group[local], outcome)

    def finish(self) -> list[Outcome]:
        """Every outcome in input order, or BatchInterrupted (or the crash) to raise."""
        if self.crash is not None:
            raise self.crash
        if self.callback_error is not None:
            not_sent = sum(outcome is None for outcome in self.outcomes)
            raise BatchInterrupted(
                f"on_result raised {type(self.callback_error).__name__}; no further message "
                f"was started ({len(self.outcomes) - not_sent} finished, {not_sent} not "
                "sent); the outcomes are in .outcomes",
                self.outcomes,
            ) from self.callback_error
        finished = [outcome for outcome in self.outcomes if outcome is not None]
        if len(finished) != len(self.outcomes):  # pragma: no cover - a bug guard
            raise AssertionError("a message ended without an outcome")
        return finished

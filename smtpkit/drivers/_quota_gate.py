"""The quota calls of one ``send``/``send_many``: a place reserved before each message's
envelope, and settled by that message's outcome (``docs/quotas.md``).

Both drivers use one :class:`QuotaGate` per call through :class:`BatchState` (which owns
the decisions) and do only the waiting and the threads:

* :meth:`QuotaGate.ask` reserves a job's place (``Quota.reserve``: the one store call,
  which may do I/O) and keeps it for the job; its :class:`Verdict` says granted or refused;
* :meth:`QuotaGate.settle` gives each try's outcome to the place (``Reservation.settle``:
  kept when accepted or unknown, given back when refused, the account marked exhausted on
  the provider's own quota reply);
* :meth:`QuotaGate.wait_for` says which refusals are worth waiting for between
  transactions: a place that frees up within :data:`MAX_WAIT` seconds (a per-second or
  per-minute limit, or the oldest message of a day about to leave its window), as the rate
  limit is waited for. Any other refusal ends the message with it, and ``send_many`` stops
  taking messages: each one left ends with the same error (nothing is skipped silently).

Invariants:
    * A place is asked for before a connection is taken for a message or, inside an open
      transaction (the engine's ``TakeNext``), before the job is handed to the engine; the
      ask never waits for a place: a refusal is the answer at once.
    * Every place asked for is settled exactly once: by the outcome of the try it was
      asked for, or given back by :meth:`close` when its message never started (a place
      asked ahead whose batch stopped). A worker killed in between leaves it counted until
      its window passes, which errs on the safe side.
    * A job's recipients are counted only when a limit counts recipients (reading the
      headers costs a little per message).
    * ``ask`` and ``settle`` may run on any thread; the gate's own bookkeeping is guarded
      by one lock held only for dictionary updates, never during a store call.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from smtpkit.drivers._common import Job, Outcome
from smtpkit.drivers._recipient_cap import recipient_count
from smtpkit.engine._result import SendResult
from smtpkit.errors import (
    ConfigurationError,
    DeliveryUnknown,
    MessageError,
    QuotaExceeded,
    QuotaStoreUnavailable,
    SMTPError,
)
from smtpkit.providers import Limits, Preset
from smtpkit.quotas import MemoryQuotaStore, Quota, Reservation, Unit, account_key

__all__ = ["MAX_WAIT", "QuotaGate", "Verdict", "recipient_count", "submitter_quota"]

#: The longest a message waits for its place (between transactions, holding no
#: connection): long enough for a per-minute limit, short enough not to hold a worker for a
#: daily one. A longer ``retry_after`` ends the message with ``QuotaExceeded``.
MAX_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the quota said about one job: a place, or the refusal that is its outcome.

    Attributes:
        refusal: ``None`` when a place was reserved (kept by the gate for the job), else
            ``QuotaExceeded``, ``QuotaStoreUnavailable`` or ``MessageError`` (the message
            alone is larger than a limit).
    """

    refusal: SMTPError | None = None


GRANTED = Verdict()


class Answer(Protocol):
    """An ask running in a worker thread: a ``concurrent.futures`` or an asyncio future."""

    def done(self) -> bool: ...

    def result(self) -> object: ...


class QuotaGate:
    """The quota's two calls for the jobs of one batch (see the module docstring).

    Args:
        quota: the Submitter's quota, bound to its account and limits.
        provider: the preset's provider family, to read the provider's quota replies.
        inline: the lookahead may call the store inline, inside an open transaction: a
            :class:`MemoryQuotaStore`, whose calls take microseconds. With a store that
            does I/O (SQLite, Redis) a store call there would delay the message by its
            round trip, so each message's place is asked for *ahead*, in a worker thread,
            while the message before it is on the wire (:meth:`ask_ahead`).
        threads: for a store that does I/O, ask ahead in up to this many threads of the
            gate's own (the threaded driver); 0 when the driver sets :attr:`spawn` itself
            (the asyncio driver: its loop's executor).
        depth: how many messages waiting to start are asked for ahead at most (one per
            connection: each connection's next message finds its place ready). These
            places count from the ask; those never used are given back at the end.
    """

    __slots__ = (
        "_ahead",
        "_counts_recipients",
        "_executor",
        "_held",
        "_lock",
        "_provider",
        "_settled",
        "_threads",
        "companion",
        "defer",
        "depth",
        "inline",
        "quota",
        "spawn",
    )

    def __init__(
        self,
        quota: Quota,
        *,
        provider: str | None,
        inline: bool = True,
        threads: int = 0,
        depth: int = 1,
    ) -> None:
        self.quota = quota
        self.depth = depth
        self._provider = provider
        self.inline = inline
        self._counts_recipients = any(rule.unit is Unit.RECIPIENTS for rule in quota.rules)
        self._lock = threading.Lock()
        self._held: dict[int, Reservation] = {}  # job index -> the place of its current try
        self._ahead: dict[int, Answer | None] = {}  # job index -> its ask made ahead
        self._settled: set[int] = set()  # settled before its ask (made ahead) came back
        #: ``spawn(job)``: start asking for ``job``'s place in a worker thread (a driver
        #: that cannot call the store inline sets it); ``None``: never ahead.
        self.spawn: Callable[[Job], Answer] | None = None
        #: ``defer(call)``: run a store call that gives a place back off this thread.
        self.defer: Callable[[Callable[[], object]], None] | None = None
        #: What the driver keeps with the gate for its threads (asyncio: the calls out).
        self.companion: object | None = None
        self._threads = threads
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if not inline and threads > 0:
            self.spawn = self._spawn

    def _spawn(self, job: Job) -> concurrent.futures.Future[Verdict]:
        if self._executor is None:  # made on first use: a lone send() never asks ahead
            self._executor = concurrent.futures.ThreadPoolExecutor(
                self._threads, thread_name_prefix="smtpkit-quota"
            )
        return self._executor.submit(self.ask, job)

    @staticmethod
    def fast(quota: Quota) -> bool:
        """Whether ``quota``'s store answers in microseconds, with no I/O (memory)."""
        return isinstance(quota.store, MemoryQuotaStore)

    # -- the first call: a place before the envelope ---------------------------------------

    def ask(self, job: Job) -> Verdict:
        """Reserve ``job``'s place (one store call); never raises for a quota's answer."""
        recipients = 1
        if self._counts_recipients:
            recipients = recipient_count(job) or 1  # unreadable: preparation refuses it
        try:
            reservation = self.quota.reserve(messages=1, recipients=recipients)
        except (QuotaExceeded, QuotaStoreUnavailable, MessageError) as refusal:
            return Verdict(refusal)
        with self._lock:
            if job.index in self._settled:  # asked ahead, ended before the answer came
                self._settled.discard(job.index)
                late = True
            else:
                self._held[job.index] = reservation
                late = False
        if late:
            reservation.release()
        return GRANTED

    @staticmethod
    def wait_for(refusal: SMTPError) -> float | None:
        """Seconds to wait before asking again, or ``None``: the refusal is the outcome."""
        if isinstance(refusal, QuotaExceeded) and 0 <= refusal.retry_after <= MAX_WAIT:
            return max(refusal.retry_after, 0.001)
        return None

    # -- asking ahead (a store that does I/O) ----------------------------------------------

    def ask_ahead(self, job: Job) -> None:
        """Start asking for ``job``'s place in a worker thread, unless already asked."""
        spawn = self.spawn
        if spawn is None:
            return
        with self._lock:
            if job.index in self._ahead or job.index in self._held:
                return
            self._ahead[job.index] = None  # claimed: spawn below fills it in
        self._ahead[job.index] = spawn(job)

    def ask_now(self, job: Job) -> Verdict:
        """``job``'s verdict between transactions: its ask made ahead (waited for, on a
        thread that may block), else asked here."""
        future = self.pending(job)
        if isinstance(future, concurrent.futures.Future):
            result = future.result()
            assert isinstance(result, Verdict)
            return result
        return self.ask(job)

    def pending(self, job: Job) -> Answer | None:
        """The ask made ahead for ``job``, if any; forgets it."""
        with self._lock:
            return self._ahead.pop(job.index, None)

    def peek_ready(self, job: Job) -> Verdict | None:
        """The verdict of an ask made ahead for ``job`` if it has come back, else ``None``."""
        with self._lock:
            future = self._ahead.get(job.index)
            if future is None or not future.done():
                return None
            del self._ahead[job.index]
        result = future.result()
        assert isinstance(result, Verdict)
        return result

    def asked(self, job: Job) -> bool:
        """Whether ``job`` holds a place now, or its ask made ahead is out."""
        return job.index in self._held or job.index in self._ahead

    # -- the second call: the outcome ------------------------------------------------------

    def settle(self, job: Job, outcome: Outcome) -> None:
        """Settle the place of ``job``'s try with its outcome (never raises)."""
        with self._lock:
            reservation = self._held.pop(job.index, None)
            if reservation is None:
                if job.index in self._ahead:
                    out = self._ahead[job.index]
                    if out is None or not out.done():
                        self._settled.add(job.index)  # still out: given back on return
                return
        error = None if isinstance(outcome, SendResult) else outcome
        if error is None or isinstance(error, DeliveryUnknown):
            reservation.keep()  # no store call: an accepted message costs nothing more
            return
        self._run(lambda: reservation.settle(error, provider=self._provider))

    def close(self) -> None:
        """Give back every place held by a job that never started (end of the batch); an
        ask still out gives its place back when it returns (waited for here, with the
        gate's own threads)."""
        with self._lock:
            unused = list(self._held.values())
            self._held.clear()
            self._settled.update(
                index for index, out in self._ahead.items() if out is None or not out.done()
            )
        for reservation in unused:
            self._run(reservation.release)
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _run(self, call: Callable[[], object]) -> None:
        if self.defer is None:
            call()
        else:
            self.defer(call)


def submitter_quota(
    quota: object, preset: Preset | None, username: str | None, host: str
) -> Quota | None:
    """The quota a Submitter counts with, bound to its account (no I/O).

    ``quota`` as given to the Submitter: a :class:`~smtpkit.quotas.Quota` gets the preset's
    limits and the account key where it has none (values the user gave win); ``None`` gets
    the default, a :class:`~smtpkit.quotas.MemoryQuotaStore` counting the preset's *daily*
    limits (the per-minute and per-second ones are the ``rate_limit``'s job in one process,
    which waits instead of refusing, and ``rate_limit=None`` turns it off); ``False`` counts
    nothing.

    Raises:
        ConfigurationError: ``quota`` is of another type, or a quota with no limits.
    """
    if quota is False:
        return None
    key = account_key(username or "", host)
    limits = preset.limits if preset is not None else None
    if quota is None:
        if limits is None or limits.messages_per_day is limits.recipients_per_day is None:
            return None
        daily = Limits(
            messages_per_day=limits.messages_per_day,
            recipients_per_day=limits.recipients_per_day,
            day_window=limits.day_window,
        )
        return Quota(MemoryQuotaStore(), daily, key)
    if not isinstance(quota, Quota):
        raise ConfigurationError(
            f"quota must be a smtpkit.quotas.Quota, None (the default) or False (none), "
            f"not {type(quota).__name__}",
            hint="e.g. quota=Quota(SQLiteQuotaStore('/var/lib/app/quota.db'))",
        )
    bound = quota.bind(limits=limits, key=key)
    if not bound.rules:
        raise ConfigurationError(
            f"{bound!r} counts no limit: the submitter has no provider preset with limits",
            hint="pass the account's limits, e.g. Quota(store, limits=Limits("
            "messages_per_day=500)), or provider='gmail'",
        )
    return bound

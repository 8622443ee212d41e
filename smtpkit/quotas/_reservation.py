"""One message's place in a quota, from ``Quota.reserve`` until the outcome settles it.

``settle(error)`` is the driver's second call: it keeps the place when the message was
accepted or its fate is unknown, gives it back when the server cannot have accepted it, and
lets the provider's own quota reply mark the whole account exhausted.

Invariants:
    * Keeping is the default: only an smtpkit error that proves the server did not accept
      the message gives the place back; ``DeliveryUnknown``, a bug or ``KeyboardInterrupt``
      keep it.
    * ``release``, ``keep`` and ``settle`` never raise: they run while the caller handles
      the send's own outcome. A store that cannot be asked leaves the place counted until
      its window passes (logged), which errs on the safe side.
    * A reservation is settled once; later calls change nothing.
"""

from __future__ import annotations

import enum
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from smtpkit.errors import DeliveryUnknown, QuotaStoreUnavailable, ReplyError, SMTPError
from smtpkit.quotas._replies import quota_reply_window
from smtpkit.quotas._rules import Request

if TYPE_CHECKING:
    from smtpkit.quotas._quota import Quota

__all__ = ["Reservation", "ReservationState"]

logger = logging.getLogger("smtpkit.quotas")


class ReservationState(enum.Enum):
    """Where a reservation stands."""

    OPEN = "open"  # counted; the message is in flight
    KEPT = "kept"  # counted until its window passes
    RELEASED = "released"  # given back


class Reservation:
    """One message's place in the quota, from :meth:`Quota.reserve` until settled.

    Attributes:
        messages, recipients: what it counts.
        at: the time the store counted it at.
        recorded: False when it was granted uncounted (``on_store_error="send"``).
    """

    def __init__(self, quota: Quota, request: Request, at: float, *, recorded: bool) -> None:
        self._quota = quota
        self._request = request
        self.messages = request.messages
        self.recipients = request.recipients
        self.at = at
        self.recorded = recorded
        self._state = ReservationState.OPEN

    @property
    def state(self) -> ReservationState:
        """Open, kept or released."""
        return self._state

    def keep(self) -> None:
        """The server accepted the message, or its fate is unknown: it stays counted."""
        if self._state is ReservationState.OPEN:
            self._state = ReservationState.KEPT

    def release(self) -> bool:
        """The server cannot have accepted the message: give its place back.

        Never raises (it runs while the caller handles the send's own error): when the
        store cannot be asked, the place stays counted until its window passes, which errs
        on the safe side, and a warning is logged.

        Returns:
            True when the place was given back.
        """
        if self._state is not ReservationState.OPEN:
            return self._state is ReservationState.RELEASED
        self._state = ReservationState.RELEASED
        try:
            # Uncounted ones too: the store may have counted it before its answer was lost.
            self._quota.store.release(self._quota._bound_key(), self._request)
        except QuotaStoreUnavailable as error:
            if self.recorded:
                logger.warning("a quota reservation stays counted: %s", error.message)
                return False
        return True

    def settle(self, error: BaseException | None, *, provider: str | None = None) -> None:
        """Keep or release according to the send's outcome (the driver's second call).

        * ``None`` (accepted) or :class:`~smtpkit.errors.DeliveryUnknown`: keep.
        * a provider quota reply (:func:`quota_reply_window` gives a window): mark the
          account exhausted for that window, then release (the message was refused).
        * any other smtpkit error: the server did not accept the message: release.
        * anything else (a bug, ``KeyboardInterrupt``): the outcome is unknown: keep.

        Never raises; a store failure only leaves the place counted (logged).
        """
        if error is None or isinstance(error, DeliveryUnknown) or not isinstance(error, SMTPError):
            self.keep()
            return
        if isinstance(error, ReplyError):
            window = quota_reply_window(error, provider)
            if window is not None:
                now = self._quota._clock()
                try:
                    self._quota.exhaust(now + window, now=now)
                except QuotaStoreUnavailable as failure:
                    logger.warning("could not mark the quota exhausted: %s", failure.message)
        self.release()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.settle(error)

    def __repr__(self) -> str:
        return (
            f"Reservation(messages={self.messages}, recipients={self.recipients}, "
            f"state={self._state.value}, recorded={self.recorded})"
        )

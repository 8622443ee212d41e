"""``send_many``'s answer: one outcome per message, in input order, or why there is none.

:class:`~smtpkit.drivers._batch_state.BatchState` records outcomes as jobs end, in any
order; these turn them into what ``send_many`` returns or raises, the same for both
drivers.

Invariants:
    * One entry per message the batch knows of, in input order: its final outcome, else
      the error of its last try (it waited for a retry when the batch stopped), else
      ``None`` (never tried).
    * An interrupt (Ctrl-C) is raised as it is, with a note (:func:`interrupt_note`) that
      counts what was accepted, unknown and not sent.
    * What crashed the batch is raised first; then :class:`~smtpkit.BatchInterrupted` when
      ``on_result`` raised, carrying every entry and raised from the callback's error;
      otherwise every message has an outcome, or it is a bug (``AssertionError``).
"""

from __future__ import annotations

from collections.abc import Mapping

from smtpkit.drivers._common import Outcome
from smtpkit.engine._result import BatchInterrupted
from smtpkit.errors import DeliveryUnknown, SMTPError

__all__ = ["batch_results", "interrupt_note", "outcomes_in_order"]

#: The indices a note lists at most per kind (a batch may have 10,000 messages).
_LISTED = 10


def outcomes_in_order(
    outcomes: Mapping[int, Outcome], last_errors: Mapping[int, SMTPError], count: int
) -> list[Outcome | None]:
    """One entry per message ``0 .. count - 1``: its outcome, its last error, or ``None``."""
    return [outcomes.get(index) or last_errors.get(index) for index in range(count)]


def batch_results(
    outcomes: list[Outcome | None],
    crash: BaseException | None,
    callback_error: BaseException | None,
) -> list[Outcome]:
    """``send_many``'s answer from :func:`outcomes_in_order`'s entries.

    Raises:
        BatchInterrupted: ``callback_error`` (what ``on_result`` raised) is not
            ``None``; it carries every outcome and is raised from that error.
        BaseException: ``crash``, what crashed the batch.
    """
    if crash is not None:
        raise crash
    if callback_error is not None:
        not_sent = sum(outcome is None for outcome in outcomes)
        raise BatchInterrupted(
            f"on_result raised {type(callback_error).__name__}; no further message was "
            f"started ({len(outcomes) - not_sent} finished, {not_sent} not sent); "
            "the outcomes are in .outcomes",
            outcomes,
        ) from callback_error
    finished = [outcome for outcome in outcomes if outcome is not None]
    if len(finished) != len(outcomes):  # pragma: no cover - a bug guard
        raise AssertionError("a message ended without an outcome")
    return finished


def interrupt_note(outcomes: Mapping[int, Outcome], count: int, *, reported: bool) -> str:
    """The note ``send_many`` adds to a ``KeyboardInterrupt`` (or ``SystemExit``) that
    stopped it: how many messages were accepted, have an unknown outcome, failed or were
    not sent, with their first indices, so that a Ctrl-C never hides a sent message.

    Args:
        outcomes: the final outcomes by index; a message without one was not sent (never
            started, or only tried and not accepted, waiting for another try).
        count: how many messages the batch knows of.
        reported: ``on_result`` was given (it had every outcome before the raise).
    """
    kinds: dict[str, list[int]] = {"accepted": [], "unknown": [], "failed": [], "not sent": []}
    for index in range(count):
        outcome = outcomes.get(index)
        if outcome is None:
            kinds["not sent"].append(index)
        elif isinstance(outcome, DeliveryUnknown):
            kinds["unknown"].append(index)  # may have been delivered: never resend blindly
        elif isinstance(outcome, SMTPError):
            kinds["failed"].append(index)  # not accepted (a refusal, or stopped before)
        else:
            kinds["accepted"].append(index)
    parts = []
    for kind, indices in kinds.items():
        if indices:
            shown = ", ".join(map(str, indices[:_LISTED]))
            more = ", ..." if len(indices) > _LISTED else ""
            parts.append(f"{len(indices)} {kind} ({shown}{more})")
    where = "each outcome went to on_result" if reported else "pass on_result to get each"
    return f"send_many was interrupted: {'; '.join(parts)}; {where}"

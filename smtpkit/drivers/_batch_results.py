"""``send_many``'s answer: one outcome per message, in input order, or why there is none.

:class:`~smtpkit.drivers._batch_state.BatchState` records outcomes as jobs end, in any
order; these turn them into what ``send_many`` returns or raises, the same for both
drivers.

Invariants:
    * One entry per message the batch knows of, in input order: its final outcome, else
      the error of its last try (it waited for a retry when the batch stopped), else
      ``None`` (never tried).
    * What crashed the batch is raised first; then :class:`~smtpkit.BatchInterrupted` when
      ``on_result`` raised, carrying every entry and raised from the callback's error;
      otherwise every message has an outcome, or it is a bug (``AssertionError``).
"""

from __future__ import annotations

from collections.abc import Mapping

from smtpkit.drivers._common import Outcome
from smtpkit.engine._result import BatchInterrupted
from smtpkit.errors import SMTPError

__all__ = ["batch_results", "outcomes_in_order"]


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

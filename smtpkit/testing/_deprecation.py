"""Old names of the test kit that keep working for one release, with a warning.

Job: one helper that warns, so every renamed attribute says the same thing and a test suite
can turn exactly these warnings into errors (``filterwarnings`` on the message prefix
``smtpkit.testing.``).

Invariants:
    * The message names the old spelling in full (``smtpkit.testing.X.y``) and the new one.
    * The warning points at the caller's line, not at the kit.
"""

from __future__ import annotations

import warnings

__all__ = ["renamed"]


def renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``smtpkit.testing.<old>`` is deprecated in favour of ``<new>``."""
    warnings.warn(
        f"smtpkit.testing.{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )

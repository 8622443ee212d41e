"""Progress for ``smtpkit send`` when it sends many messages.

Invariants:
    * The bar is drawn only on a terminal (``isatty``); otherwise nothing is printed until
      the summary, so logs and pipes stay clean.
    * Every message ends in exactly one count: sent or failed.
"""

from __future__ import annotations

import threading
from typing import TextIO

from smtpkit.engine._result import SendResult
from smtpkit.errors import SMTPError

__all__ = ["Progress"]

#: Characters in the bar.
BAR_WIDTH = 30


class Progress:
    """Counts outcomes from ``Submitter.send_many(on_result=...)`` and draws a bar."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.sent = 0
        self.failed = 0
        self._stream = stream
        self._draw = stream.isatty()
        self._lock = threading.Lock()

    def __call__(self, index: int, outcome: SendResult | SMTPError) -> None:
        with self._lock:
            if isinstance(outcome, SendResult):
                self.sent += 1
            else:
                self.failed += 1
            if self._draw:
                self._stream.write("\r" + self.line())
                self._stream.flush()

    def line(self) -> str:
        """``[#########.....] 12/40 sent, 1 failed``."""
        done = self.sent + self.failed
        filled = BAR_WIDTH * done // max(1, self.total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}] {done}/{self.total} sent {self.sent}, failed {self.failed}"

    def finish(self) -> None:
        """End the bar's line."""
        if self._draw:
            self._stream.write("\n")
            self._stream.flush()

"""What one fake session reports to the fake transport that owns it.

:class:`SessionEvents` is the contract between a connection's session
(:mod:`smtpkit.testing._fake_wire` and the layers built on it) and the records the test
reads: scripted steps and delays are taken from it, and messages, AUTH attempts,
transcript lines, flights, simulated waiting and client mistakes are reported to it.
:class:`~smtpkit.testing._fake_record.Recorder` implements it.

Invariants:
    * A scripted step or delay is consumed as it is taken (:mod:`smtpkit.testing._script`).
    * What is reported is already redacted: no transcript line or AUTH attempt holds a
      password, a token or message content.
"""

from __future__ import annotations

from typing import Protocol

from smtpkit.replies import Phase
from smtpkit.testing._record import AuthAttempt, ReceivedMessage
from smtpkit.testing._script import Scripted

__all__ = ["SessionEvents"]


class SessionEvents(Protocol):
    """What a session reports to the fake transport that owns it."""

    def take_script(self, phase: Phase, recipient: str | None) -> Scripted | None:
        """The scripted step for this phase (and recipient), consumed; or ``None``."""
        ...

    def take_delay(self, phase: Phase, recipient: str | None) -> Scripted | None:
        """The scripted delay for this phase (and recipient), consumed; or ``None``."""
        ...

    def wait(self, connection: int, seconds: float) -> None:
        """Record simulated seconds a client spent waiting for a delayed reply."""
        ...

    def received(self, message: ReceivedMessage, *, accepted: bool) -> ReceivedMessage:
        """Keep content: accepted (250) or dropped (no final reply); returns it as kept."""
        ...

    def attempt(self, attempt: AuthAttempt) -> None:
        """Record a completed AUTH exchange."""
        ...

    def transcript(self, connection: int, line: str) -> None:
        """Record one redacted transcript line (``C:`` lines also join the open flight)."""
        ...

    def new_flight(self, connection: int) -> None:
        """The client sent again after reading: what follows travels in a new flight."""
        ...

    def mistake(self, connection: int, text: str) -> None:
        """Record a client mistake the server noticed."""
        ...

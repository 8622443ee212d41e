"""What the fake server's sessions report, kept for the test: records, transcript, flights.

Job: :class:`Recorder` implements :class:`~smtpkit.testing._fake_events.SessionEvents` on top
of the records both test servers share (:class:`~smtpkit.testing._record.Records`), adding
what only the fake can show: the transcript, the flights, and the simulated waiting.

Invariants:
    * Everything is appended under ``Recorder.lock``; readers copy under the same lock, so
      several connections, on several threads, can share one fake server.
    * A flight holds the ``C:`` lines of one connection sent between two reads; empty
      flights (bytes that did not complete a line) are not shown.
    * Nothing recorded holds a password or token: AUTH attempts keep the user name only and
      transcript lines are redacted by the session.
"""

from __future__ import annotations

from smtpkit.replies import Phase
from smtpkit.testing._record import AuthAttempt, ReceivedMessage, Records
from smtpkit.testing._script import Script, Scripted

__all__ = ["Recorder"]


class Recorder(Records):
    """What every session reports, kept under one lock (implements ``SessionEvents``)."""

    def __init__(self, script: Script) -> None:
        super().__init__(queue_prefix="FAKE")
        self.script = script
        self.lines: list[str] = []
        self.flights: list[tuple[int, list[str]]] = []
        self._open: dict[int, list[str]] = {}
        self.waited = 0.0  # simulated seconds clients spent waiting for delayed replies

    def take_script(self, phase: Phase, recipient: str | None) -> Scripted | None:
        step = self.script.take(phase, recipient)
        if step is not None:
            who = f" {recipient}" if recipient else ""
            self.note(f"{phase.value.upper()}{who}: scripted {step.action.value}")
        return step

    def take_delay(self, phase: Phase, recipient: str | None) -> Scripted | None:
        return self.script.take(phase, recipient, delay=True)

    def wait(self, connection: int, seconds: float) -> None:
        with self.lock:
            self.waited += seconds

    def received(self, message: ReceivedMessage, *, accepted: bool) -> ReceivedMessage:
        return self.add_message(message, accepted=accepted)

    def attempt(self, attempt: AuthAttempt) -> None:
        self.auth_attempt(attempt)

    def transcript(self, connection: int, line: str) -> None:
        with self.lock:
            self.lines.append(line)
            flight = self._open.get(connection)
            if flight is not None and line.startswith("C: "):
                flight.append(line[3:])

    def new_flight(self, connection: int) -> None:
        flight: list[str] = []
        with self.lock:
            self._open[connection] = flight
            self.flights.append((connection, flight))

    def mistake(self, connection: int, text: str) -> None:
        self.protocol_error(f"connection {connection}: {text}")

    def clear(self) -> None:
        super().clear()
        with self.lock:
            self.lines.clear()
            self.flights.clear()
            self._open.clear()
            self.waited = 0.0

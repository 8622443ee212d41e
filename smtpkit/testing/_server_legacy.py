"""LocalServer's old names, kept for one release with a ``DeprecationWarning``.

Job: :class:`LegacyServerNames` maps the names LocalServer had before it spoke the fake's
vocabulary onto the new ones, so existing tests keep running while they move:

==================================================  ==============================================
old                                                 new
==================================================  ==============================================
``server.errors``                                   ``server.server_errors``
``server.reject_recipient(address, reply)``         ``server.reply("rcpt", reply,
                                                    recipient=address, times=None)``
``server.fail_next(phase, reply, times)``           ``server.reply(phase, reply, times=times)``
``server.drop_connection_after_data()``             ``server.disconnect("message")`` (the message
                                                    then lands in ``dropped``, not ``messages``)
==================================================  ==============================================

Invariants:
    * Each old name warns once per call and behaves exactly as it did: the old verbs still
      accept only 4xx/5xx replies, and ``drop_connection_after_data(deliver=True)`` still keeps
      the message in ``messages``.
"""

from __future__ import annotations

from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase
from smtpkit.testing._deprecation import renamed
from smtpkit.testing._kit import ScriptableServer
from smtpkit.testing._server_state import FailurePhase, ServerState, normalize_reply

__all__ = ["LegacyServerNames"]


class LegacyServerNames(ScriptableServer):
    """The deprecated names of :class:`~smtpkit.testing.LocalServer`."""

    _state: ServerState

    @property
    def errors(self) -> list[BaseException]:
        """Deprecated: ``server_errors``."""
        renamed("LocalServer.errors", "LocalServer.server_errors")
        with self._records.lock:
            return list(self._records.server_errors)

    def reject_recipient(self, address: str, reply: str = "550 5.1.1 User unknown") -> None:
        """Deprecated: ``reply("rcpt", reply, recipient=address, times=None)``."""
        renamed(
            "LocalServer.reject_recipient",
            'LocalServer.reply("rcpt", reply, recipient=address, times=None)',
        )
        self.reply(Phase.RCPT, normalize_reply(reply), recipient=address, times=None)

    def fail_next(self, phase: FailurePhase, reply: str, times: int = 1) -> None:
        """Deprecated: ``reply(phase, reply, times=times)``."""
        renamed("LocalServer.fail_next", "LocalServer.reply(phase, reply, times=times)")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigurationError(f"times must be a positive integer, got {times!r}")
        self.reply(phase, normalize_reply(reply), times=times)

    def drop_connection_after_data(self, times: int = 1, *, deliver: bool = True) -> None:
        """Deprecated: ``disconnect("message", times=times)``.

        Unlike :meth:`disconnect`, which keeps the content in :attr:`dropped`, this keeps it
        in :attr:`messages` with ``deliver=True`` (and discards it otherwise), as it always
        did.
        """
        renamed("LocalServer.drop_connection_after_data", 'LocalServer.disconnect("message")')
        self._state.drop_after_data(times, deliver=deliver)

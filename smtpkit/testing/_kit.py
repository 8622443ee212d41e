"""The words both test servers speak: scripting verbs, what arrived, and ``assert_sent``.

Job: :class:`ScriptableServer`, the base of :class:`~smtpkit.testing.FakeTransport` and
:class:`~smtpkit.testing.LocalServer`. A test moved from one to the other keeps its
scripting (``reply``, ``disconnect``, ``timeout``, ``delay``, each with ``recipient=`` and
``times=``) and its checks (``messages``, ``dropped``, ``auth_attempts``,
``protocol_errors``, ``wait_for``, ``assert_sent``)::

    server.reply("rcpt", "550 5.1.1 User unknown", recipient="gone@example.com")
    server.disconnect("message")           # content received, no final reply
    ...
    server.assert_sent(to="new@example.com", subject="Welcome")

Invariants:
    * Every verb checks its arguments when the test calls it (``ConfigurationError``), never
      when the server uses the step.
    * Readers return copies taken under the records' lock.
"""

from __future__ import annotations

from smtpkit.errors import ConfigurationError
from smtpkit.replies import Phase
from smtpkit.testing._match import describe, matches
from smtpkit.testing._record import AuthAttempt, ReceivedMessage, Records
from smtpkit.testing._script import (
    Script,
    ScriptAction,
    Scripted,
    build_reply,
    coerce_phase,
    parse_reply,
)

__all__ = ["ScriptableServer"]


class ScriptableServer:
    """Scripting and inspection shared by the fake and the real test server.

    Subclasses set ``_script`` and ``_records`` in ``__init__``.
    """

    _script: Script
    _records: Records
    #: What tests usually call this server, for assertion messages.
    _noun = "server"

    # -- scripting ------------------------------------------------------------------------

    def reply(
        self,
        phase: Phase | str,
        reply: str | None = None,
        *,
        code: int | None = None,
        enhanced: str | None = None,
        text: str | None = None,
        recipient: str | None = None,
        times: int | None = 1,
    ) -> Scripted:
        """Answer ``phase`` with a scripted reply instead of the server's own.

        Give the reply as it travels (``"550 5.1.1 User unknown"``, multi-line with
        ``\\n``) or by parts (``code=550, enhanced="5.1.1", text="User unknown"``).

        Args:
            phase: a :class:`~smtpkit.Phase` or its value (``"rcpt"``). ``"greeting"`` is
                the server's first line; ``"auth"`` the final AUTH reply (after the
                credentials); ``"data"`` the reply to DATA and to non-final BDAT chunks;
                ``"message"`` the reply after the content.
            recipient: only for ``"rcpt"``: apply to this address only.
            times: how many times to use it; ``None`` means every time.

        The command succeeds when the scripted code is of the class the server would answer
        with (``354`` for DATA, ``2xx`` otherwise): a refused RCPT adds no recipient. A
        ``421`` reply also closes the connection (RFC 5321 §3.8). In a reply to
        ``"message"``, ``{id}`` is replaced by the queue id the server assigned.

        Returns:
            The scripted step (``.used``, ``.exhausted``, ``.cancel()``).
        """
        if (reply is None) == (code is None):
            raise ConfigurationError("give either a reply text or code= (with enhanced/text)")
        if reply is not None:
            if enhanced is not None or text is not None:
                raise ConfigurationError("enhanced= and text= go with code=, not a reply text")
            value = parse_reply(reply)
        else:
            assert code is not None
            value = build_reply(code, enhanced, text)
        return self._add(
            Scripted(
                coerce_phase(phase),
                ScriptAction.REPLY,
                reply=value,
                recipient=recipient,
                times=times,
            )
        )

    def disconnect(
        self, phase: Phase | str, *, recipient: str | None = None, times: int | None = 1
    ) -> Scripted:
        """Close the connection at ``phase`` instead of answering.

        At ``"message"`` the content was fully received first: the client cannot know
        whether it will be delivered. Such content is kept in :attr:`dropped`.
        """
        return self._add(
            Scripted(coerce_phase(phase), ScriptAction.DISCONNECT, recipient=recipient, times=times)
        )

    def timeout(
        self, phase: Phase | str, *, recipient: str | None = None, times: int | None = 1
    ) -> Scripted:
        """Never answer at ``phase``: the client gives up with ``OperationTimeout``.

        The connection stays open and the server reads nothing more from it. At
        ``"message"`` the content was received first and is kept in :attr:`dropped`.
        """
        return self._add(
            Scripted(coerce_phase(phase), ScriptAction.TIMEOUT, recipient=recipient, times=times)
        )

    def delay(
        self,
        phase: Phase | str,
        seconds: float,
        *,
        recipient: str | None = None,
        times: int | None = 1,
    ) -> Scripted:
        """Hold back the reply at ``phase`` for ``seconds``.

        The reply itself is the server's own, or one scripted with :meth:`reply` for the same
        phase. A client whose timeout is shorter gives up with ``OperationTimeout``, as with
        a slow server. FakeTransport never sleeps: it compares ``seconds`` with the client's
        timeout for that reply and adds the simulated wait to ``fake.waited``. LocalServer
        really waits, so keep ``seconds`` small there.

        At ``"message"`` the server has already accepted the content when it delays the
        final reply: a client that gives up cannot know the outcome, and the message is in
        :attr:`messages` (a real server would deliver it).
        """
        return self._add(
            Scripted(
                coerce_phase(phase),
                ScriptAction.DELAY,
                recipient=recipient,
                times=times,
                seconds=seconds,
            )
        )

    def _add(self, step: Scripted) -> Scripted:
        return self._script.add(step)

    @property
    def scripts(self) -> list[Scripted]:
        """Every scripted step, in the order scripted."""
        return self._script.steps

    # -- what arrived ---------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """A copy of the accepted messages (a ``2xx`` after the content), oldest first."""
        with self._records.lock:
            return list(self._records.messages)

    @property
    def dropped(self) -> list[ReceivedMessage]:
        """Content received without a final reply (a scripted disconnect or timeout at
        ``"message"``): the client cannot know whether it will be delivered."""
        with self._records.lock:
            return list(self._records.dropped)

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        """Completed AUTH exchanges as ``(mechanism, username, success)``, oldest first."""
        with self._records.lock:
            return list(self._records.attempts)

    @property
    def protocol_errors(self) -> list[str]:
        """Client mistakes the server noticed (BDAT without CHUNKING, a parameter of an
        extension not offered, bare LF in the content, ...), oldest first."""
        with self._records.lock:
            return list(self._records.protocol_errors)

    @property
    def connections(self) -> int:
        """How many connections were opened (for the fake: calls to ``connect``)."""
        with self._records.lock:
            return self._records.connections

    def clear(self) -> None:
        """Forget what arrived, AUTH attempts and errors; scripted steps stay."""
        self._records.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages were accepted; return all of them.

        Useful when mail is sent from another thread or process (a task queue worker).

        Raises:
            TimeoutError: fewer messages arrived; the message quotes recent server events.
            ConfigurationError: ``count`` or ``timeout`` is not a positive finite number.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigurationError(f"count must be a positive integer, got {count!r}")
        if not 0 < timeout < float("inf"):
            raise ConfigurationError(f"timeout must be a finite number > 0, got {timeout!r}")
        return self._records.wait_for(count, timeout, repr(self))

    def assert_sent(
        self,
        *,
        to: str | None = None,
        subject: str | None = None,
        sender: str | None = None,
        count: int | None = None,
        contains: str | None = None,
    ) -> list[ReceivedMessage]:
        """Check that accepted messages match; return the matching ones.

        Args:
            to: an accepted recipient (case-insensitive).
            subject: the exact decoded subject.
            sender: the envelope sender (case-insensitive).
            count: exactly this many must match (default: at least one).
            contains: text found in a decoded text part, a header, or the raw content.

        Raises:
            AssertionError: naming the criteria and listing every message that arrived.
        """
        sent = self.messages
        found = [m for m in sent if matches(m, to, subject, sender, contains)]
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        asked = ", ".join(
            f"{name}={value!r}"
            for name, value in (
                ("to", to),
                ("subject", subject),
                ("sender", sender),
                ("contains", contains),
                ("count", count),
            )
            if value is not None
        )
        wanted = "at least one" if count is None else str(count)
        raise AssertionError(
            f"assert_sent({asked}): expected {wanted} matching message(s), found "
            f"{len(found)}.\n{describe(sent, self.dropped, name=self._noun)}"
        )

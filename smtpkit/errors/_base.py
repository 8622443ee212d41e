"""The root of the exception tree: what every smtpkit error carries and how it travels.

:class:`SMTPError` holds the message, the hint and the redacted transcript tail every error
has, says whether it is transient, and is the one place that decides how an error pickles
(``__reduce__``) and how it is rebuilt from its ``args`` (with :mod:`smtpkit.errors._wire`).
The families below it live in their own modules; :mod:`smtpkit.errors._tree` draws the whole
tree.

Invariants:
    * ``transcript`` never holds more than :data:`TRANSCRIPT_TAIL` lines, and only lines
      that were redacted before they got here: no error holds a secret.
    * ``args`` is ``(message, facts)`` and ``type(error)(*error.args)`` rebuilds an equal
      error; ``repr()`` shows the message only.
    * Unpickling never calls a subclass's ``__init__`` (their signatures differ):
      :func:`_restore` rebuilds the state as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from smtpkit.errors._wire import RebuildableError, encode_facts

__all__ = ["TRANSCRIPT_TAIL", "SMTPError"]

#: How many transcript lines an error keeps: enough to see the exchange that failed.
TRANSCRIPT_TAIL = 20


def _restore(cls: type[SMTPError], args: tuple[Any, ...], state: dict[str, Any]) -> SMTPError:
    """Unpickle any SMTPError without calling its ``__init__`` (whose signature varies)."""
    error = cls.__new__(cls)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class SMTPError(Exception, metaclass=RebuildableError):
    """Base class of every error smtpkit raises."""

    #: Whether retrying the same operation later may succeed.
    default_transient: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        hint: str | None = None,
        transcript: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.transcript: tuple[str, ...] = tuple(transcript)[-TRANSCRIPT_TAIL:]

    @property
    def is_transient(self) -> bool:
        """True when the same operation may succeed if tried again later."""
        return self.default_transient

    def attach_transcript(self, transcript: Sequence[str]) -> None:
        """Record the (already redacted) conversation tail that led to this error."""
        self.transcript = tuple(transcript)[-TRANSCRIPT_TAIL:]

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})" if self.message else self.hint
        return self.message

    @property
    def args(self) -> tuple[Any, ...]:
        """``(message, facts)``: enough to rebuild this error with ``type(self)(*args)``.

        Tools that store an exception as its type and ``args`` (Celery's JSON result
        format) rebuild it with ``cls(*args)``; the facts make that give back the same
        class with the same attributes (:mod:`smtpkit.errors._wire`).
        """
        return (self.message, encode_facts(self.__dict__))

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        # What repr() shows; the facts are always computed from the attributes.
        _BASE_ARGS.__set__(self, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), _BASE_ARGS.__get__(self), dict(self.__dict__)))


# BaseException's own ``args`` slot, under the property above: the ``(message,)`` repr() shows.
_BASE_ARGS = BaseException.__dict__["args"]

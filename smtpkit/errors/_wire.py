"""Errors as JSON-safe facts: what lets an SMTPError cross a process boundary as itself.

Celery's JSON result format (like any store that keeps an exception as type, module and
``args``) rebuilds an exception with ``cls(*args)``. smtpkit's constructors take replies,
phases and keywords, so the message alone cannot rebuild them: Celery then hands the caller a
plain ``Exception("<class '...RecipientRejected'>(...)")``. So every SMTPError shows
``args == (message, facts)``, where ``facts`` is a JSON-safe dict of everything the error
holds, tagged so each value comes back as its own type (a ``Reply`` as a ``Reply``, a
``Phase`` as a ``Phase``, a tuple as a tuple), and ``cls(message, facts)`` rebuilds an equal
error without running ``__init__`` (:class:`RebuildableError`).

Invariants:
    * ``facts`` holds only JSON types: dicts with ``str`` keys, lists, ``str``, ``int``,
      ``float``, ``bool`` and ``None``.
    * Decoding builds only the value types named here (``Reply``, ``Phase``, tuples, dicts,
      lists, scalars); any other tag is a ``ValueError``. Data read back from a result
      backend never makes smtpkit import or call something it names.
    * ``facts`` holds the error's own attributes and nothing else, so it can hold no secret
      the error does not (and errors hold none: transcripts are redacted before they reach
      one). A value of a type not listed here travels as ``None``; every error class in
      smtpkit keeps its facts in listed types (``tests/test_errors_wire.py`` checks them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smtpkit.replies import Phase, Reply

__all__ = ["MARKER", "RebuildableError", "decode_facts", "encode_facts", "is_facts"]

#: The key (and format version) that marks a dict as an error's facts.
MARKER = "smtpkit.error"
_VERSION = 1

# The enums a fact may hold, by name. Looked up in this table only: never imported by name.
_ENUMS: dict[str, type[Phase]] = {"Phase": Phase}


def encode_facts(attributes: Mapping[str, object]) -> dict[str, Any]:
    """The JSON-safe facts of an error whose ``__dict__`` is ``attributes``."""
    return {MARKER: _VERSION, "attrs": {name: _encode(value) for name, value in attributes.items()}}


def is_facts(value: object) -> bool:
    """Whether ``value`` is what :func:`encode_facts` makes (after a JSON round trip too)."""
    return isinstance(value, dict) and value.get(MARKER) == _VERSION and "attrs" in value


def decode_facts(facts: Mapping[str, Any]) -> dict[str, object]:
    """The attributes encoded in ``facts``.

    Raises:
        ValueError: ``facts`` holds a tag or a value this module does not make.
    """
    attrs = facts.get("attrs")
    if not isinstance(attrs, dict) or not all(isinstance(name, str) for name in attrs):
        raise ValueError("error facts without an attribute table")
    return {name: _decode(value) for name, value in attrs.items()}


def _encode(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Reply):
        return {"$reply": {"code": value.code, "lines": list(value.lines)}}
    if isinstance(value, Phase):
        return {"$enum": type(value).__name__, "value": value.value}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(item) for item in value]}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        # Pairs, not a JSON object: keys keep their type and never collide with the tags.
        return {"$dict": [[_encode(key), _encode(item)] for key, item in value.items()]}
    return None


def _decode(value: Any) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise ValueError(f"unknown value in error facts: {type(value).__name__}")
    if "$tuple" in value and isinstance(value["$tuple"], list):
        return tuple(_decode(item) for item in value["$tuple"])
    if "$dict" in value and isinstance(value["$dict"], list):
        return dict(_pair(item) for item in value["$dict"])
    if "$reply" in value and isinstance(value["$reply"], dict):
        code, lines = value["$reply"].get("code"), value["$reply"].get("lines")
        if (
            isinstance(code, int)
            and isinstance(lines, list)
            and all(isinstance(line, str) for line in lines)
        ):
            return Reply(code, tuple(lines))  # Reply checks the code's range itself
    if "$enum" in value and value["$enum"] in _ENUMS:
        return _ENUMS[value["$enum"]](value.get("value"))
    raise ValueError(f"unknown tag in error facts: {sorted(value)!r}")


def _pair(item: object) -> tuple[Any, object]:
    if not isinstance(item, list) or len(item) != 2:
        raise ValueError("unknown dict entry in error facts")
    key = _decode(item[0])
    if isinstance(key, list | dict):
        raise ValueError("unknown dict key in error facts")
    return key, _decode(item[1])


class RebuildableError(type):
    """Metaclass of SMTPError: ``cls(message, facts)`` rebuilds an error from its ``args``.

    Any other call is the class's ordinary constructor. The facts form is recognised only
    by its marker, which no constructor of smtpkit takes as its second argument.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not kwargs and len(args) == 2 and is_facts(args[1]):
            message, facts = args
            if not isinstance(message, str):
                raise ValueError("error facts without a message")
            error = cls.__new__(cls)  # type: ignore[call-overload]
            # __init__ is skipped (its signature varies); the state comes from the facts.
            BaseException.__init__(error, message)
            error.__dict__.update(decode_facts(facts))
            return error
        return super().__call__(*args, **kwargs)

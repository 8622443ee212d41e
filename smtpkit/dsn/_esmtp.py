"""ESMTP parameter text: the syntax of ``MAIL``/``RCPT`` parameters and xtext encoding.

Job: the pure text rules that :mod:`smtpkit.dsn` (the ``DSN`` and ``ESMTPParams`` values)
applies when a value is built, so a wrong parameter is refused with a
:class:`~smtpkit.errors.ConfigurationError` before anything is sent:

* ``esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`` and
  ``esmtp-value = 1*(%d33-60 / %d62-126)`` (RFC 5321 §4.1.2): no space, no ``=``, no
  control character, so no parameter can end the command line or smuggle another one;
* ``xtext`` (RFC 3461 §4): printable ASCII except ``+`` and ``=`` as is, every other octet
  as ``+`` and two upper-case hex digits, for ``ENVID`` and ``ORCPT`` (and ``AUTH=``, RFC
  4954 §5);
* ``utf-8-addr-xtext`` (RFC 6533 §3): the ``ORCPT`` form of a non-ASCII address, ASCII
  only, so it needs no SMTPUTF8.

Invariants:
    * Every function returns text that fullmatches the esmtp-value grammar (or raises).
    * Nothing here knows which extension a keyword belongs to: the server refuses a keyword
      it does not know (``555``, RFC 5321 §4.1.1.11).
"""

from __future__ import annotations

import re

from smtpkit.errors import ConfigurationError

__all__ = [
    "KEYWORD_RE",
    "VALUE_RE",
    "check_keyword",
    "check_value",
    "utf8_addr_xtext",
    "xtext",
]

#: RFC 5321 §4.1.2 esmtp-keyword (used with fullmatch: "$" would accept a final "\n").
KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
#: RFC 5321 §4.1.2 esmtp-value: printable ASCII except "=" and space.
VALUE_RE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")

# RFC 3461 §4: xchar is "!" to "~" except "+" and "=".
_XCHAR = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"+", "="}
# RFC 6533 §3: QCHAR is printable ASCII except "+", "=" and "\\"; anything else is \x{HEX}.
_QCHAR = _XCHAR - {"\\"}


def check_keyword(keyword: object, *, where: str) -> str:
    """Return ``keyword`` upper-cased (RFC 5321 §2.4: keywords are case-insensitive).

    Raises:
        ConfigurationError: not a str, or not ``(ALPHA / DIGIT) *(ALPHA / DIGIT / "-")``.
    """
    if not isinstance(keyword, str) or not KEYWORD_RE.fullmatch(keyword):
        raise ConfigurationError(
            f"{where}: {keyword!r} is not an ESMTP keyword (RFC 5321 §4.1.2: letters, digits "
            "and '-', starting with a letter or digit)",
            hint='e.g. {"MT-PRIORITY": "3"}; the keyword alone is the mapping key',
        )
    return keyword.upper()


def check_value(keyword: str, value: object, *, where: str) -> str | None:
    """Return ``value`` if it is a valid esmtp-value, or ``None`` (the keyword alone).

    Raises:
        ConfigurationError: not a str or ``None``, empty, or holding a space, ``=``, a
            control or a non-ASCII character (RFC 5321 §4.1.2).
    """
    if value is None:
        return None
    if not isinstance(value, str) or not VALUE_RE.fullmatch(value):
        raise ConfigurationError(
            f"{where}: the value of {keyword} must be printable ASCII without spaces or '=' "
            f"(RFC 5321 §4.1.2 esmtp-value), got {value!r}",
            hint="encode it first, e.g. with smtpkit.dsn.xtext() when the extension says the "
            "value is xtext (RFC 3461 §4); None sends the keyword alone",
        )
    return value


def xtext(text: str) -> str:
    """Encode ``text`` as RFC 3461 §4 xtext: ``+`` and ``=`` and non-printables as ``+HH``.

    >>> xtext("a+b=c d")
    'a+2Bb+3Dc+20d'

    Raises:
        ConfigurationError: ``text`` is not a str, or holds a non-ASCII character (xtext
            carries US-ASCII only).
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"xtext encodes a str, got {type(text).__name__}")
    if not text.isascii():
        raise ConfigurationError(
            f"xtext carries US-ASCII only (RFC 3461 §4), got {text!r}",
            hint="use ASCII text; a non-ASCII address goes in ORCPT as utf-8-addr-xtext "
            "(smtpkit does that itself, RFC 6533)",
        )
    return "".join(ch if ch in _XCHAR else f"+{ord(ch):02X}" for ch in text)


def utf8_addr_xtext(address: str) -> str:
    r"""Encode an address as RFC 6533 §3 utf-8-addr-xtext (``\x{HEX}`` for the rest).

    >>> utf8_addr_xtext("jöran+x@exämple.org")
    'j\\x{F6}ran\\x{2B}x@ex\\x{E4}mple.org'
    """
    return "".join(ch if ch in _QCHAR else f"\\x{{{ord(ch):X}}}" for ch in address)

"""Header folding for :mod:`smtpkit.message`: the stock octets, computed quickly when it is safe.

:meth:`Folder.fold` returns exactly what ``policy.fold_binary(name, value)`` returns, which
is what ``email.generator.BytesGenerator`` writes for a header. The stock folder re-walks
the header's parse tree token by token (``_refold_parse_tree``) even when the value fits on
one line; that was most of the cost of serialising a small message. When the value is known
to fit on one line, needs no encoding and holds no line break, the stock folder's result is
``"Name: value" + linesep``; the folder writes that directly and otherwise calls the stock
code. ``tests/test_message_fold.py`` checks the equality on random values for every policy,
on whatever Python runs the suite. An address header's text is its parse tree's (its
``str()`` is re-rendered from the addresses); for the commonest tree, one bare
``local@domain``, :func:`address_tree_text` reads the dot-atoms directly instead of
walking every node (``tests/test_message_address_fast_path.py`` compares the two).

Invariants:
    * ``fold`` equals ``policy.fold_binary(name, value)`` for every input it accepts.
    * Its result is one header field: CRLF-terminated, every other line break followed by
      white space (RFC 5322 §2.2.3), no line over 998 octets (§2.1.1); else MessageError.
    * Nothing about a message is cached: a folder holds only facts about a policy (header
      objects are created per message and cannot be weakly referenced, so a cache of them
      would have to keep them alive).
"""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from email import _header_value_parser as parser
from email import headerregistry
from email.policy import Compat32, EmailPolicy, Policy
from typing import Any

from smtpkit.errors import MessageError
from smtpkit.message._headers import LINE_BREAK_HINT
from smtpkit.message._lines import MAX_LINE_OCTETS, first_long_line

__all__ = ["Folder", "address_tree_text", "folder_for", "tree_text"]

# Header classes whose parse() sets the decoded text to str(parse_tree), so str(header)
# equals the text the folder starts from when no surrogate escape was sanitised away.
# Address headers are not among them: their str() is re-rendered from the addresses.
_DECODED_IS_TREE = frozenset(
    {
        headerregistry.UnstructuredHeader,
        headerregistry.UniqueUnstructuredHeader,
        headerregistry.DateHeader,
        headerregistry.UniqueDateHeader,
        headerregistry.MIMEVersionHeader,
        headerregistry.ContentTypeHeader,
        headerregistry.ContentDispositionHeader,
        headerregistry.ContentTransferEncodingHeader,
        headerregistry.MessageIDHeader,
    }
)
# A line break in a folded header that is not folding white space (RFC 5322 §2.2.3).
_BARE_BREAK_RE = re.compile(rb"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")
_TOKEN_LIST_STR: object = parser.TokenList.__str__
_STR_STR: object = str.__str__
_BASE_FOLD: object = headerregistry.BaseHeader.fold


def _folding_code(kind: type[Any]) -> tuple[object, object]:
    return kind.fold_binary, getattr(kind, "_fold", None)


# The folding code the quick path mirrors; a policy class that overrides it folds itself.
_EMAIL_FOLD = _folding_code(EmailPolicy)
_COMPAT32_FOLD = _folding_code(Compat32)


#: :func:`_header_kind` for a class that is not a registry header folded by the stock code.
_NOT_A_HEADER: Any = object()
# Header class -> whether its text is its parse tree's text, or _NOT_A_HEADER. Classes are
# few (the registry makes one per header name kind); bounded all the same.
_HEADER_KINDS: dict[type[Any], Any] = {}
_HEADER_KINDS_KEPT = 256
_BASE_NAME: object = headerregistry.BaseHeader.__dict__["name"]


def _header_kind(kind: type[Any]) -> Any:
    """What :meth:`Folder.quick_text` needs to know about a value's class, worked out once.

    A class made by ``HeaderRegistry`` (a str subclass of ``BaseHeader`` whose ``fold`` and
    ``name`` are the stock ones) gives whether its text is the tree's text (its first base
    parses that way); any other class gives :data:`_NOT_A_HEADER`.
    """
    if (
        issubclass(kind, headerregistry.BaseHeader)
        and issubclass(kind, str)
        and kind.fold is _BASE_FOLD
        and inspect_attr(kind, "name") is _BASE_NAME
    ):
        bases = kind.__bases__
        found: Any = bool(bases) and bases[0] in _DECODED_IS_TREE
    else:
        found = _NOT_A_HEADER
    if len(_HEADER_KINDS) >= _HEADER_KINDS_KEPT:
        _HEADER_KINDS.clear()
    _HEADER_KINDS[kind] = found
    return found


def inspect_attr(kind: type[Any], name: str) -> object:
    """The class attribute ``name`` as defined (a property object, not its value)."""
    for klass in kind.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


# Token classes as plain objects, so that mypy does not narrow a node to the stub's class.
_ADDRESS_LIST: object = parser.AddressList
_ADDRESS: object = parser.Address
_MAILBOX: object = parser.Mailbox
_ADDR_SPEC: object = parser.AddrSpec
_LOCAL_PART: object = parser.LocalPart
_DOMAIN: object = parser.Domain
_DOT_ATOM: object = parser.DotAtom
_DOT_ATOM_TEXT: object = parser.DotAtomText
_VALUE_TERMINAL: object = parser.ValueTerminal


def address_tree_text(tree: Any) -> str:
    """:func:`tree_text` of an ``address-list`` parse tree, quicker for the commonest value:
    one bare ``local@domain`` of dot-atoms (RFC 5322 §3.4.1) with no white space or comment.

    The shape is checked node by node (every token's exact class and child count, and
    that the dot-atoms hold only ``ValueTerminal`` s); any other tree, e.g. ``Name <a@b>``,
    several addresses, comments or quoting, takes :func:`tree_text`. The joined terminals
    are the text the generic walk gives: it visits the same terminals in the same order,
    and a ``ValueTerminal``'s text is itself.
    """
    node: Any = tree
    if type(node) is _ADDRESS_LIST and len(node) == 1:
        node = node[0]
        if type(node) is _ADDRESS and len(node) == 1:
            node = node[0]
            if type(node) is _MAILBOX and len(node) == 1:
                node = node[0]
                if type(node) is _ADDR_SPEC and len(node) == 3:
                    local, at, domain = node
                    if (
                        type(local) is _LOCAL_PART
                        and len(local) == 1
                        and type(domain) is _DOMAIN
                        and len(domain) == 1
                        and type(at) is _VALUE_TERMINAL
                    ):
                        local, domain = local[0], domain[0]
                        if (
                            type(local) is _DOT_ATOM
                            and len(local) == 1
                            and type(domain) is _DOT_ATOM
                            and len(domain) == 1
                        ):
                            local, domain = local[0], domain[0]
                            if type(local) is _DOT_ATOM_TEXT and type(domain) is _DOT_ATOM_TEXT:
                                for terminal in local + domain:
                                    if type(terminal) is not _VALUE_TERMINAL:
                                        return tree_text(tree)
                                text: str = "".join(local) + at + "".join(domain)
                                return text
    return tree_text(tree)


def tree_text(tree: Any) -> str:
    """``str(tree)`` for a parse tree of ``email._header_value_parser``, about four times
    faster: the stock ``__str__`` joins a generator at every node; this walks the tree once,
    depth first, with a stack of iterators instead of a call per node. Nodes that define
    their own ``__str__`` (comments, encoded-word white space, MIME parameters) use it."""
    parts: list[str] = []
    add = parts.append
    stack = [iter(tree)]
    push, pop = stack.append, stack.pop
    while stack:
        for node in stack[-1]:
            kind = type(node)
            if kind.__str__ is _TOKEN_LIST_STR:
                push(iter(node))  # a plain token list: its children, in order
                break
            # A terminal is a str (subclass) whose text is itself.
            add(node if kind.__str__ is _STR_STR else str(node))
        else:
            pop()
    return "".join(parts)


@dataclass(frozen=True)
class Folder:
    """Folds headers for one generator policy (see the module docstring)."""

    policy: Policy[Any]
    #: An EmailPolicy (header objects, source text) rather than compat32 text.
    email_policy: bool
    #: Non-ASCII text is written as UTF-8 (SMTPUTF8), not as encoded-words.
    utf8: bool
    #: A line of up to this many characters is written as it is by the stock folder (and
    #: allowed by RFC 5322); 0 when the quick path never applies.
    limit: int
    linesep: str
    #: Source text is refolded even when short (refold_source="all").
    refold_all: bool

    def fold(self, name: str, value: Any) -> bytes:
        """The octets of one header field, exactly as ``policy.fold_binary`` writes them."""
        quick = self.quick(name, value)
        if quick is not None:
            return quick
        return checked(self.policy.fold_binary(name, value), name)

    def quick(self, name: str, value: Any) -> bytes | None:
        """The octets when the value goes on one line as it is, else ``None``."""
        line = self.quick_text(name, value)
        if line is None:
            return None
        if line.isascii():
            return line.encode("ascii")
        try:  # quick_text gives non-ASCII only for a UTF-8 EmailPolicy
            return line.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the stock code encodes it
            return None

    def head(self, headers: list[tuple[str, Any]]) -> bytes:
        """All of ``headers`` folded, as :meth:`fold` would write them one by one.

        The loop is :meth:`quick_text` with :meth:`_line` written out (one call per field
        instead of three): a message's fields are folded here, every message.
        """
        limit = self.limit
        if limit:
            lines: list[str] = []
            add = lines.append
            sep = self.linesep
            refold_all = self.refold_all
            non_ascii_ok = self.utf8 and self.email_policy
            pair = self._pair
            for name, value in headers:
                if type(value) is str and not refold_all:
                    line = f"{name}: {value}"
                else:
                    found = pair(name, value)
                    if found is None:
                        break
                    if isinstance(found, str):
                        add(found)  # an empty header's label, checked by _pair
                        continue
                    line = f"{found[0]}: {found[1]}"
                # isprintable() is false for CR, LF, every other character splitlines()
                # breaks at, and tabs: such a value (or a name, though the scan allows
                # only ftext) takes the stock path. Non-ASCII is looked for once, below.
                if len(line) > limit or not line.isprintable():
                    break
                add(line)
            else:
                text = f"{sep.join(lines)}{sep}" if lines else ""
                if text.isascii():
                    return text.encode("ascii")
                if non_ascii_ok:  # else the stock code writes encoded-words
                    try:
                        return text.encode("utf-8")
                    except UnicodeEncodeError:
                        pass
        return b"".join([self.fold(name, value) for name, value in headers])

    def quick_text(self, name: str, value: Any) -> str | None:
        """The folded line as text when the value goes on one line as it is, else ``None``.

        The text is ASCII, or (for an EmailPolicy with ``utf8``) UTF-8 text that the stock
        folder writes as it is unless it holds a lone surrogate.
        """
        if not self.limit:
            return None
        if type(value) is str:  # text, the common case of compat32 and of generated values
            return None if self.refold_all else self._line(name, value)
        found = self._pair(name, value)
        if found is None:
            return None
        if type(found) is str:
            return found + self.linesep
        return self._line(*found)

    def _pair(self, name: str, value: Any) -> tuple[str, str] | str | None:
        """For a value that is not a plain ``str``: the label and text :meth:`_line` would
        write, the whole line without its line break for an empty header, or ``None`` (the
        stock folder decides)."""
        kind = type(value)
        decoded_is_tree = _HEADER_KINDS.get(kind)
        if decoded_is_tree is None:
            decoded_is_tree = _header_kind(kind)
        if decoded_is_tree is _NOT_A_HEADER:
            if isinstance(value, str) and not hasattr(value, "name"):
                return None if self.refold_all else (name, value)
            return None  # a compat32 Header, or a header class that folds itself
        if not self.email_policy:
            return None
        tree = getattr(value, "_parse_tree", None)
        header_name = getattr(value, "_name", None)
        if tree is None or type(header_name) is not str or not header_name.isascii():
            return None
        if not tree:
            # An empty value: the folder writes the label alone.
            if len(header_name) + 1 > self.limit:
                return None
            return f"{header_name}:"
        # The registry makes a class per header, (specialised class, BaseHeader): the first
        # base says how the value was parsed. The header's own text (it is a str) is the
        # tree's text unless surrogates were replaced by U+FFFD, which leaves non-ASCII
        # behind; else render the tree.
        text: str = value if decoded_is_tree else ""
        if not text or not text.isascii():
            text = tree_text(tree) if decoded_is_tree else address_tree_text(tree)
        return header_name, text

    def _line(self, name: str, text: str) -> str | None:
        # isprintable() is false for CR, LF and every other character splitlines() breaks
        # at, and for tabs: such values take the stock path. Without utf8, ASCII is
        # required (the stock code encodes non-ASCII as encoded-words).
        if len(name) + 2 + len(text) > self.limit or not text.isprintable():
            return None
        if not text.isascii() and not (self.utf8 and self.email_policy):
            return None
        return f"{name}: {text}{self.linesep}"


@functools.lru_cache(maxsize=32)
def folder_for(policy: Policy[Any]) -> Folder:
    """The folder for ``policy`` (policies are immutable; a few are in use at a time)."""
    maxlen = policy.max_line_length
    code = _folding_code(type(policy))
    if isinstance(policy, EmailPolicy) and code == _EMAIL_FOLD:
        # EmailPolicy folds a value that fits in max_line_length (0/None: no limit) as it is.
        limit = min(maxlen or sys.maxsize, MAX_LINE_OCTETS)
        return Folder(
            policy,
            email_policy=True,
            utf8=policy.utf8,
            limit=limit,
            linesep=policy.linesep,
            refold_all=policy.refold_source == "all",
        )
    # compat32's Header leaves short printable ASCII as it is when it has a line length
    # (with 0 or None it applies a default of its own). Another folder: the stock path.
    quick = isinstance(policy, Compat32) and code == _COMPAT32_FOLD
    return Folder(
        policy,
        email_policy=isinstance(policy, EmailPolicy),
        utf8=False,
        limit=min(maxlen, MAX_LINE_OCTETS) if maxlen and quick else 0,
        linesep=policy.linesep,
        refold_all=False,
    )


def checked(folded: bytes, name: str) -> bytes:
    """``folded`` after checking it is one header field, CRLF-ended, lines <= 998 octets.

    The email package may or may not check this itself, depending on the Python version
    (``verify_generated_headers`` arrived in 3.12.5 and 3.13); smtpkit always does.
    """
    inner = folded[:-2]
    if not folded.endswith(b"\r\n") or (
        (b"\r" in inner or b"\n" in inner) and _BARE_BREAK_RE.search(inner) is not None
    ):
        raise MessageError(
            f"header {name!r} would be written as more than one header line: {folded!r}",
            hint=LINE_BREAK_HINT,
        )
    if len(inner) > MAX_LINE_OCTETS and (found := first_long_line(inner)) is not None:
        raise MessageError(
            f"header {name!r} would be written with a line of {found[1]} octets; RFC 5322 "
            f"§2.1.1 allows at most {MAX_LINE_OCTETS}",
            hint="the message's policy cannot fold this value: build the message with "
            "email.policy.default (it folds long words as encoded-words), or shorten it",
        )
    return folded

"""The row type of the reply classification table, and how a row matches a reply.

A :class:`Rule` matches when every *restriction* it names holds (phase, basic code, code
class, credential kind) and, if it names *evidence* (enhanced codes or wording), at least one
piece of evidence is present. The rows themselves live in :mod:`smtpkit.errors._table`.

Invariants:
    * Matching is a pure function of the reply, phase, normalised text and credential kind.
    * Wording is matched on :func:`normalise_text`: lowercased, URLs removed, whitespace
      collapsed, so line breaks and links in replies never decide a match.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from smtpkit.errors._hints import Hint
from smtpkit.errors._tree import (
    AuthenticationError,
    CommandRejected,
    ConnectionRejected,
    CredentialKind,
    MessageRejected,
    RecipientRejected,
    ReplyError,
    SenderRejected,
    TLSUnavailable,
)
from smtpkit.replies import Phase, Reply

__all__ = [
    "ALL_PHASES",
    "BY_PHASE",
    "PHASE_CLASS",
    "ByPhase",
    "Rule",
    "normalise_text",
    "render_markdown",
]


class ByPhase(enum.Enum):
    """The type of :data:`BY_PHASE`."""

    BY_PHASE = "by phase"


#: A rule outcome meaning "the class the phase implies" (see :data:`PHASE_CLASS`).
BY_PHASE = ByPhase.BY_PHASE

#: The class a failure implies when only the phase is known (RFC 5321 §4.1.1: each command
#: has one object: the session, the sender, a recipient, the message).
PHASE_CLASS: Mapping[Phase, type[ReplyError]] = {
    Phase.GREETING: ConnectionRejected,
    Phase.EHLO: CommandRejected,
    Phase.STARTTLS: TLSUnavailable,
    Phase.AUTH: AuthenticationError,
    Phase.MAIL: SenderRejected,
    Phase.RCPT: RecipientRejected,
    Phase.DATA: MessageRejected,
    Phase.MESSAGE: MessageRejected,
    Phase.RSET: CommandRejected,
    Phase.NOOP: CommandRejected,
    Phase.QUIT: CommandRejected,
}

ALL_PHASES = frozenset(Phase)
_ANY_BUT_AUTH = ALL_PHASES - {Phase.AUTH}

# Links change and carry ids (``?p=BadCredentials``) that would otherwise look like wording.
_URL_RE = re.compile(r"<?\b(?:https?://|www\.)\S+")


def normalise_text(reply: Reply) -> str:
    """The reply text as rules see it: lowercased, URLs removed, whitespace collapsed."""
    return " ".join(_URL_RE.sub(" ", reply.text.lower()).split())


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table.

    Attributes:
        outcome: the exception class, or :data:`BY_PHASE` for the class the phase implies.
        hint: the hint function (see :mod:`smtpkit.errors._hints`).
        why: the RFC section or provider behaviour the row encodes.
        phases: restriction: the phases the row applies to.
        codes: restriction: basic codes (``None`` = any).
        classes: restriction: first digits of the basic code, 4 and/or 5.
        kinds: restriction: credential kinds (``None`` = any, including unknown).
        bare: restriction: only replies without a valid enhanced code.
        enhanced: evidence: enhanced codes as ``"x.7.8"`` (any class) or ``"x.7.*"``.
        words: evidence: regular-expression fragments searched in the normalised text.
    """

    outcome: type[ReplyError] | ByPhase
    hint: Hint
    why: str
    phases: frozenset[Phase] = ALL_PHASES
    codes: frozenset[int] | None = None
    classes: frozenset[int] = frozenset({4, 5})
    kinds: frozenset[CredentialKind] | None = None
    bare: bool = False
    enhanced: tuple[str, ...] = ()
    words: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _wanted: tuple[tuple[int, int | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile("|".join(f"(?:{w})" for w in self.words)) if self.words else None
        object.__setattr__(self, "_pattern", pattern)
        wanted = []
        for code in self.enhanced:
            klass, subject, detail = code.split(".")
            if klass != "x":
                raise ValueError(f"enhanced codes in rules match any class: x.S.D, got {code}")
            wanted.append((int(subject), None if detail == "*" else int(detail)))
        object.__setattr__(self, "_wanted", tuple(wanted))

    def matches(self, reply: Reply, phase: Phase, text: str, kind: CredentialKind | None) -> bool:
        """Whether this row applies to ``reply`` drawn in ``phase``.

        Args:
            reply: the failure reply.
            phase: the client step that drew it.
            text: :func:`normalise_text` of the reply.
            kind: the credential kind, when known.
        """
        if phase not in self.phases or reply.code // 100 not in self.classes:
            return False
        if self.codes is not None and reply.code not in self.codes:
            return False
        if self.kinds is not None and kind not in self.kinds:
            return False
        status = reply.status
        if self.bare and status is not None:
            return False
        if not self._wanted and self._pattern is None:
            return True
        if status is not None:
            for subject, detail in self._wanted:
                if subject == status.subject and detail in (None, status.detail):
                    return True
        return self._pattern is not None and self._pattern.search(text) is not None

    def class_for(self, phase: Phase) -> type[ReplyError]:
        """The exception class this row gives in ``phase``."""
        return PHASE_CLASS[phase] if isinstance(self.outcome, ByPhase) else self.outcome


def _phases_cell(phases: frozenset[Phase]) -> str:
    if phases == ALL_PHASES:
        return "any"
    if phases == _ANY_BUT_AUTH:
        return "any but auth"
    return ", ".join(p.value for p in Phase if p in phases)


def _codes_cell(rule: Rule) -> str:
    if rule.codes is not None:
        cell = ", ".join(str(code) for code in sorted(rule.codes))
    elif rule.classes == {4, 5}:
        cell = "any"
    else:
        cell = " ".join(f"{klass}xx" for klass in sorted(rule.classes))
    if rule.kinds is not None:
        cell += " with " + ", ".join(sorted(kind.value for kind in rule.kinds))
    if rule.bare:
        cell += " without enhanced code"
    return cell


def render_markdown(rules: Sequence[Rule]) -> str:
    """The rules as a Markdown table, one row per rule, in order."""
    out = [
        "| # | phases | codes | evidence (enhanced code or wording) | class | hint | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, rule in enumerate(rules, 1):
        evidence = [f"`{code}`" for code in rule.enhanced]
        evidence += ["`" + word.replace("|", "\\|") + "`" for word in rule.words]
        outcome = "by phase" if isinstance(rule.outcome, ByPhase) else f"`{rule.outcome.__name__}`"
        out.append(
            f"| {number} | {_phases_cell(rule.phases)} | {_codes_cell(rule)} "
            f"| {' or '.join(evidence) or '-'} | {outcome} | `{rule.hint.__name__}` "
            f"| {rule.why} |"
        )
    return "\n".join(out) + "\n"

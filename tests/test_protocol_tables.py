"""The protocol core's state tables are keyed by public values, and names mean one thing.

The tables in ``smtpkit.protocol._states`` are looked up once per command and reply; they
are keyed by the ``State`` and ``ReplyKind`` members themselves (identity-hashed), never by
private enum attributes such as ``_name_``, which the enum module may change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import smtpkit.protocol._states as states
from smtpkit.protocol._states import ON_REPLY, SEND, ReplyKind, State

PROTOCOL = Path(states.__file__).resolve().parent
PACKAGE = PROTOCOL.parent


def test_no_private_enum_attribute_is_read_in_the_protocol_core() -> None:
    for path in sorted(PROTOCOL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("_name_", "_value_", "_member_map_"), (
                    f"{path.name}:{node.lineno} reads {node.attr}"
                )


def test_the_tables_are_keyed_by_members() -> None:
    assert all(isinstance(state, State) and isinstance(kind, str) for state, kind in SEND)
    assert all(isinstance(s, State) and isinstance(k, ReplyKind) for s, k in ON_REPLY)
    assert SEND[(State.READY, "MAIL")] is State.ENVELOPE
    assert ON_REPLY[(State.DATA_SENT, ReplyKind.of(354))] is State.CONTENT
    assert ON_REPLY[(State.AUTH_SENT, ReplyKind.of(334))] is State.AUTH_CHALLENGE
    assert ON_REPLY[(State.EHLO_SENT, ReplyKind.of(550))] is State.GREETED


def test_members_hash_by_identity_and_stay_distinct() -> None:
    assert len({*State, *ReplyKind}) == len(State) + len(ReplyKind)
    assert hash(State.READY) == object.__hash__(State.READY)


def test_outcome_names_one_thing_in_the_package() -> None:
    """``Outcome`` is the per-message result (a SendResult or an SMTPError), nothing else."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                assert node.name != "Outcome", f"{path}:{node.lineno} defines a class Outcome"

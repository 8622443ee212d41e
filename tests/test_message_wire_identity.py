"""Preparing a message never changes the caller's object, and the octets stay pinned.

``tests/wire_corpus.py`` builds a corpus (multipart, attachments, non-ASCII headers, Bcc,
Resent blocks, existing Message-IDs, 8-bit bodies with and without 8BITMIME, long headers,
parsed and compat32 messages, raw bytes) and ``tests/data/wire_corpus/`` holds the octets
and facts the copying serialiser produced for each. Preparation must give the same.
"""

from __future__ import annotations

import json
import sys
import threading
from email.message import Message
from typing import Any

import pytest
from wire_corpus import CASES, DATA, NOW, Case, deterministic, facts, prepare_case

from smtpkit.message import prepare_message

EXPECTED = json.loads((DATA / "facts.json").read_text())
#: The Python whose generator wrote the pinned octets (the one CI runs).
WRITTEN_WITH = (3, 11)


def snapshot(message: Message) -> Any:
    """Everything a Message holds, with the identity of each header value and part."""
    payload = message._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        body: Any = [(id(part), snapshot(part)) for part in payload]
    else:
        body = payload
    return (
        id(message.policy),
        [(name, id(value), type(value), str(value)) for name, value in message._headers],  # type: ignore[attr-defined]
        id(message._headers),  # type: ignore[attr-defined]
        body,
        message.preamble,
        message.epilogue,
        message.get_default_type(),
        message.get_unixfrom(),
        id(message._charset),  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_octets_and_facts_are_unchanged(case: Case) -> None:
    prepared = prepare_case(case)
    envelope = ("sender", "recipients", "message_id")
    assert {k: facts(prepared)[k] for k in envelope} == {
        k: EXPECTED[case.name][k] for k in envelope
    }
    if sys.version_info[:2] != WRITTEN_WITH:
        # The stock generator itself differs between versions (3.13 encodes raw 8-bit
        # header text as unknown-8bit encoded-words): the octets are those of one Python.
        pytest.skip(f"octets pinned with Python {WRITTEN_WITH}")
    assert prepared.content == (DATA / f"{case.name}.eml").read_bytes()
    assert facts(prepared) == EXPECTED[case.name]
    assert b"".join(prepared.iter_content(997)) == prepared.content


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_callers_message_is_not_modified(case: Case) -> None:
    message = case.build()
    if isinstance(message, bytes):
        pytest.skip("bytes are immutable")
    before = snapshot(message)
    options = {"now": NOW, **case.options}
    with deterministic():
        first = prepare_message(message, **options).content
    assert snapshot(message) == before
    with deterministic():
        assert prepare_message(message, **options).content == first


def test_one_message_prepared_from_many_threads_at_once() -> None:
    # send_many may prepare the same object on several connections at once: nothing may
    # be stored on it, not even for a moment (the stock flatten swaps msg.policy).
    case = next(c for c in CASES if c.name == "attachments")
    message = case.build()
    before = snapshot(message)
    outputs: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(15):
                content = prepare_message(message, now=NOW).content
                outputs.append(content.split(b"\r\n\r\n", 1)[1][:20])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(outputs) == 60
    assert snapshot(message) == before

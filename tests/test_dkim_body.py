"""The streamed DKIM body hash equals dkimpy's whole-message canonicalization.

``smtpkit.dkim._body.ContentHasher`` is what lets smtpkit sign a large message without
holding it whole; these tests hold it to dkimpy's ``canonicalize_body`` (the reference the
verifier uses) for bodies cut into chunks anywhere, including inside a CRLF.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpkit.dkim._body import ContentHasher

canonicalization = pytest.importorskip("dkim.canonicalization")

ALGORITHMS = {False: canonicalization.Simple, True: canonicalization.Relaxed}

# Lines made of the characters canonicalization cares about: spaces, tabs, text; and
# empty lines, so trailing-empty-line handling is exercised.
line = st.text(alphabet=" \tab.", max_size=12).map(lambda s: s.encode("ascii"))
bodies = st.lists(line, max_size=12).map(lambda lines: b"".join(x + b"\r\n" for x in lines))


def streamed(content: bytes, cuts: list[int], *, relaxed: bool) -> tuple[bytes, bytes, bool]:
    hasher = ContentHasher(relaxed=relaxed)
    start = 0
    for cut in sorted(set(cuts)):
        hasher.feed(content[start:cut])
        start = cut
    hasher.feed(content[start:])
    ends = hasher.ends_with_crlf()
    head, digest = hasher.finish()
    return head, digest, ends


def reference(body: bytes, *, relaxed: bool) -> bytes:
    return hashlib.sha256(ALGORITHMS[relaxed].canonicalize_body(body)).digest()


@settings(max_examples=300, deadline=None)
@given(body=bodies, cuts=st.lists(st.integers(0, 200), max_size=6), relaxed=st.booleans())
def test_body_hash_matches_dkimpy_for_any_chunking(
    body: bytes, cuts: list[int], relaxed: bool
) -> None:
    head = b"From: a@example.test\r\nSubject: x\r\n"
    content = head + b"\r\n" + body
    got_head, digest, ends = streamed(content, cuts, relaxed=relaxed)
    assert got_head == head + b"\r\n"
    assert digest == reference(body, relaxed=relaxed)
    assert ends is (content.endswith(b"\r\n"))


@pytest.mark.parametrize("relaxed", [False, True])
def test_a_last_line_without_crlf_is_hashed_as_sent_with_one(relaxed: bool) -> None:
    # DATA adds the CRLF before "." and smtpkit adds it for BDAT when it signs: the
    # receiver's body ends with CRLF, so the hash must be of that body.
    content = b"From: a@example.test\r\n\r\nline one\r\nlast  \t"
    _, digest, ends = streamed(content, [30], relaxed=relaxed)
    assert not ends
    assert digest == reference(b"line one\r\nlast  \t\r\n", relaxed=relaxed)


@pytest.mark.parametrize("relaxed", [False, True])
@pytest.mark.parametrize(
    "content",
    [
        b"From: a@example.test\r\n",  # headers only, no empty line
        b"From: a@example.test\r\n\r\n",  # an empty body
        b"From: a@example.test\r\n\r\n\r\n\r\n",  # only empty lines
    ],
)
def test_empty_bodies(content: bytes, relaxed: bool) -> None:
    head, digest, _ = streamed(content, [5], relaxed=relaxed)
    assert head == b"From: a@example.test\r\n\r\n"
    assert digest == reference(b"", relaxed=relaxed)
    # RFC 6376 §3.4.3/§3.4.4: simple hashes one CRLF, relaxed nothing.
    assert digest == hashlib.sha256(b"" if relaxed else b"\r\n").digest()


def test_content_that_starts_with_an_empty_line_has_no_header_fields() -> None:
    head, digest, _ = streamed(b"\r\nbody\r\n", [1], relaxed=False)
    assert head == b"\r\n"
    assert digest == reference(b"body\r\n", relaxed=False)


def test_a_million_empty_lines_are_counted_not_kept() -> None:
    hasher = ContentHasher(relaxed=False)
    hasher.feed(b"From: a@example.test\r\n\r\ntext\r\n")
    for _ in range(100):
        hasher.feed(b"\r\n" * 10_000)
    assert len(hasher._carry) == 0
    assert hasher._blank == 1_000_000
    hasher.feed(b"more\r\n")
    _, digest = hasher.finish()
    assert digest == reference(b"text\r\n" + b"\r\n" * 1_000_000 + b"more\r\n", relaxed=False)

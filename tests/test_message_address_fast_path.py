"""The quick text of a one-address parse tree is exactly the generic tree walk's text.

``address_tree_text`` reads a bare ``local@domain`` tree directly and hands every other
shape to ``tree_text``. Generated address values (bare, named, quoted, commented, with
white space, encoded-words, non-ASCII, several addresses, broken ones) are compared with
``str(tree)``; the folded octets of whole messages are compared with the stock generator.
"""

from __future__ import annotations

import string
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from io import BytesIO

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtpkit.message import _fold as fold
from smtpkit.message._fold import address_tree_text, folder_for, tree_text

ATOM = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~", min_size=1)
DOT_ATOM = st.lists(ATOM, min_size=1, max_size=3).map(".".join)
ODD = st.sampled_from(
    [" ", "  ", "\t", "(c)", '"q"', ".", "..", "@", "<", ">", ",", ";", ":", "[1.2.3.4]", "é",
     "=?utf-8?q?x?=", "\udce9", "\\", ""]
)  # fmt: skip
BARE = st.builds(lambda local, domain: f"{local}@{domain}", DOT_ATOM, DOT_ATOM)
# Bare addresses with odd pieces spliced in anywhere, named forms, lists and groups.
SPLICED = st.builds(
    lambda text, odd, at: text[:at] + odd + text[at:],
    BARE,
    ODD,
    st.integers(min_value=0, max_value=40),
)
VALUE = st.one_of(
    BARE,
    SPLICED,
    st.builds(lambda name, addr: f"{name} <{addr}>", ATOM, BARE),
    st.lists(BARE | SPLICED, min_size=2, max_size=3).map(", ".join),
    st.builds(lambda addr: f"Team: {addr};", BARE),
    st.text(alphabet=string.printable, max_size=20),
)
NAMES = ["From", "To", "Cc", "Sender", "Reply-To", "Resent-To", "Subject", "X-Custom"]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES), text=VALUE)
def test_address_tree_text_is_the_tree_walk(name: str, text: str) -> None:
    try:
        header = HeaderRegistry()(name, text)
    except Exception:
        assume(False)
    tree = header._parse_tree  # type: ignore[attr-defined]
    assert address_tree_text(tree) == tree_text(tree) == str(tree)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sender=VALUE, recipient=VALUE)
def test_folded_address_headers_are_the_stock_octets(sender: str, recipient: str) -> None:
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = recipient
    except Exception:
        assume(False)
    headers = list(message._headers)  # type: ignore[attr-defined]
    for pol in (policy.SMTP, policy.SMTPUTF8, policy.SMTP.clone(max_line_length=20)):
        buffer = BytesIO()
        try:
            BytesGenerator(buffer, policy=pol).flatten(message)
        except Exception:
            continue  # the stock generator refuses it; the folder's own checks are elsewhere
        stock = buffer.getvalue().split(b"\r\n\r\n", 1)[0] + b"\r\n"
        try:
            ours = folder_for(pol).head(headers)
        except Exception:
            continue  # smtpkit refuses more (line breaks, 998 octets): tested elsewhere
        assert ours == stock


@pytest.mark.parametrize(
    "text",
    ["a@b.c", "first.last@example.com", "a@b", "x+tag@sub.example.org", "o'neil@example.ie"],
)
def test_bare_addresses_take_the_quick_shape(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = HeaderRegistry()("To", text)._parse_tree  # type: ignore[attr-defined]

    def walk(_: object) -> str:
        raise AssertionError("the generic walk ran for a bare address")

    monkeypatch.setattr(fold, "tree_text", walk)
    assert address_tree_text(tree) == text == str(tree)


def test_other_shapes_take_the_tree_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[object] = []
    monkeypatch.setattr(fold, "tree_text", lambda tree: walked.append(tree) or str(tree))
    for text in ("Bob <b@c.d>", " a@b.c", "a@b.c (x)", '"a"@b.c', "a@[1.2.3.4]", "a@b, c@d"):
        tree = HeaderRegistry()("To", text)._parse_tree  # type: ignore[attr-defined]
        assert address_tree_text(tree) == text
    assert len(walked) == 6

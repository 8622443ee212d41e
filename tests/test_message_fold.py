"""The quick paths of message preparation give exactly what the stock code gives.

Each shortcut is checked against the standard library on random input, on whatever Python
runs the suite: header folding, parse-tree text, dates, Message-IDs and dates kept as text,
addresses read from header objects, and the boundary check that replaced a regex.
"""

from __future__ import annotations

import re
import string
from datetime import datetime, timedelta, timezone
from email import policy
from email.headerregistry import HeaderRegistry
from email.policy import Policy
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtpkit.errors import MessageError
from smtpkit.message._fold import folder_for, tree_text
from smtpkit.message._generate import _has_delimiter_line
from smtpkit.message._headers import _from_text, _parsed_addresses
from smtpkit.message._object import _plain, format_date

POLICIES: dict[str, Policy[Any]] = {
    "SMTP": policy.SMTP,
    "SMTPUTF8": policy.SMTPUTF8,
    "SMTP-7bit": policy.SMTP.clone(cte_type="7bit"),
    "SMTP-40": policy.SMTP.clone(max_line_length=40),
    "SMTP-unlimited": policy.SMTP.clone(max_line_length=None),
    "SMTP-refold-all": policy.SMTP.clone(refold_source="all"),
    "SMTP-refold-none": policy.SMTP.clone(refold_source="none"),
    "compat32": policy.compat32.clone(linesep="\r\n"),
    "compat32-40": policy.compat32.clone(linesep="\r\n", max_line_length=40),
    "compat32-7bit": policy.compat32.clone(linesep="\r\n", cte_type="7bit"),
}
NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Sender",
    "Subject",
    "Message-ID",
    "Date",
    "Content-Type",
    "Content-Disposition",
    "Content-Transfer-Encoding",
    "MIME-Version",
    "References",
    "X-Custom",
    "Resent-Date",
]
PIECES = [
    "a@example.com",
    "Bob <b@example.org>",
    '"Smith, J" <j@example.net>',
    "Group: x@example.com, y@example.com;",
    "<id.1@example.com>",
    "Thu, 01 Jan 2026 00:00:00 +0000",
    'text/plain; charset="utf-8"',
    'attachment; filename="a b.txt"',
    "=?utf-8?q?caf=C3=A9?=",
    "Grüße",
    "用户@例子.广告",
    "\udce9",
    "(comment)",
    "1.0",
    "base64",
    "\t",
    "\r\n ",
    "\n",
    "x" * 30,
    "\xa0",
]
TEXT = st.lists(
    st.sampled_from(PIECES) | st.text(alphabet=string.printable, max_size=12), max_size=8
).map(" ".join)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except MessageError as exc:
        return "error", type(exc).__name__
    except Exception as exc:  # the email package raises many kinds on odd input
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(NAMES),
    text=TEXT,
    pol=st.sampled_from(sorted(POLICIES)),
    as_object=st.booleans(),
)
def test_folding_gives_the_stock_octets(name: str, text: str, pol: str, as_object: bool) -> None:
    gen_policy = POLICIES[pol]
    value: Any = text
    if as_object:
        try:  # what EmailMessage stores: a header object
            value = policy.default.header_store_parse(name, text)[1]
        except Exception:
            assume(False)
    stock = outcome(lambda: gen_policy.fold_binary(name, value))
    ours = outcome(lambda: folder_for(gen_policy).fold(name, value))
    if stock[0] == "ok" and ours[0] == "error":
        # smtpkit refuses what the stock folder would write as more than one header line
        # or with a line over 998 octets; nothing else.
        folded: bytes = stock[1]
        assert re.search(rb"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n", folded[:-2]) or any(
            len(line) > 998 for line in folded.split(b"\r\n")
        )
    else:
        assert ours == stock


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), text=TEXT)
def test_tree_text_is_str_of_the_tree(name: str, text: str) -> None:
    try:
        header = HeaderRegistry()(name, text)
    except Exception:
        assume(False)
    tree = header._parse_tree  # type: ignore[attr-defined]
    assert tree_text(tree) == str(tree)


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 1, 1)),
    minutes=st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
    seconds=st.sampled_from([0, 0, 0, 30]),
)
def test_format_date_is_format_datetime(moment: datetime, minutes: int, seconds: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=minutes, seconds=seconds)))
    assert format_date(aware) == format_datetime(aware)


@settings(max_examples=150, deadline=None)
@given(
    domain=st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,10}){0,3}", fullmatch=True),
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 1, 1)),
    minutes=st.integers(min_value=-23 * 60, max_value=23 * 60),
    pol=st.sampled_from(["SMTP", "SMTPUTF8", "SMTP-40", "SMTP-refold-all", "SMTP-refold-none"]),
)
def test_ids_and_dates_kept_as_text_fold_like_header_objects(
    domain: str, moment: datetime, minutes: int, pol: str
) -> None:
    gen_policy = POLICIES[pol]
    date = format_date(moment.replace(tzinfo=timezone(timedelta(minutes=minutes))))
    for name, value in (("Message-ID", make_msgid(domain=domain)), ("Date", date)):
        parsed = policy.default.header_store_parse(name, value)[1]
        if _plain(gen_policy, name, value):  # type: ignore[arg-type]
            assert gen_policy.fold_binary(name, value) == gen_policy.fold_binary(name, parsed)


@settings(max_examples=200, deadline=None)
@given(text=TEXT, name=st.sampled_from(["To", "From", "Cc", "Reply-To"]))
def test_addresses_read_from_header_objects_are_the_parsed_ones(text: str, name: str) -> None:
    try:
        header = policy.default.header_store_parse(name, text)[1]
    except Exception:
        assume(False)
    addresses = _parsed_addresses(header)
    if addresses is not None:  # what parsing its text gives (or the error it raises)
        assert addresses == outcome(lambda: _from_text([str(header)]))[1]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        (b"--b", True),
        (b"--b--", True),
        (b"x\n--b\n", True),
        (b"x\r\n--b\r\n", False),  # the stock "$" does not match before "\r\n"
        (b"x\n--b--\nmore", True),
        (b"x--b\n", False),
        (b"\n--bb\n", False),
        (b"\n--b---\n", False),
        (b"\n--b -\n--b", True),
    ],
)
def test_the_boundary_check_matches_the_stock_regex(text: bytes, found: bool) -> None:
    assert _has_delimiter_line(text, b"--b") is found
    stock = re.compile(b"^" + re.escape(b"--b") + b"(--)?$", re.MULTILINE)
    assert (stock.search(text) is not None) is found


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from([b"--b", b"--", b"\n", b"\r\n", b"x", b"-"])).map(b"".join))
def test_the_boundary_check_matches_the_stock_regex_on_random_text(text: bytes) -> None:
    stock = re.compile(b"^" + re.escape(b"--b") + b"(--)?$", re.MULTILINE)
    assert _has_delimiter_line(text, b"--b") is (stock.search(text) is not None)

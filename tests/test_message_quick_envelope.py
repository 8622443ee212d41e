"""The scan's quick envelope equals the envelope read field by field with ``get_all``.

``header_sender`` and ``header_recipients`` of :mod:`smtpkit.message._scan` read the
addresses of cleanly parsed header objects directly; the functions of the same name in
:mod:`smtpkit.message._headers` read every value through ``message.get_all`` and
``extract_addresses``. Both are run on generated messages (bare, named, quoted, grouped,
broken and non-ASCII addresses, with and without Sender, Cc, Bcc, compat32 text) and must
give the same addresses or the same error.
"""

from __future__ import annotations

import string
from email import policy
from email.message import EmailMessage, Message
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smtpkit.errors import MessageError
from smtpkit.message import _headers, _scan

ATOM = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~", min_size=1)
DOT_ATOM = st.lists(ATOM, min_size=1, max_size=2).map(".".join)
BARE = st.builds(lambda local, domain: f"{local}@{domain}", DOT_ATOM, DOT_ATOM)
ODD = st.sampled_from(
    ['"a b"@c.d', '"a"@c.d', "a.@c.d", "x@[1.2.3.4]", "Name", "", "u:;", "Team: a@b.c;",
     "用户@例子.广告", "é@x.y", "a@b.c (c)", "=?utf-8?q?x?= <a@b.c>", "<a@b.c>", "a@b.c,,"]
)  # fmt: skip
ONE = st.one_of(BARE, ODD, st.builds(lambda n, a: f"{n} <{a}>", ATOM, BARE))
VALUE = st.lists(ONE, min_size=1, max_size=3).map(", ".join)
FIELDS = st.dictionaries(st.sampled_from(["Sender", "From", "To", "Cc", "Bcc"]), VALUE)


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except MessageError as exc:
        return "error", exc.message
    except Exception as exc:  # the email package raises many kinds on odd input
        return "error", type(exc).__name__


def build(fields: dict[str, str], compat32: bool) -> Message:
    message: Message = Message(policy=policy.compat32) if compat32 else EmailMessage()
    for name, value in fields.items():
        message[name] = value
    return message


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=FIELDS, compat32=st.booleans())
def test_quick_envelope_is_the_get_all_envelope(fields: dict[str, str], compat32: bool) -> None:
    try:
        message = build(fields, compat32)
    except Exception:
        assume(False)
    scan = _scan.scan_headers(message)
    assert outcome(lambda: _scan.header_sender(scan)) == outcome(
        lambda: _headers.header_sender(message, None)
    )
    assert outcome(lambda: _scan.header_recipients(scan)) == outcome(
        lambda: _headers.header_recipients(message, None)
    )


def test_quick_envelope_reads_header_objects() -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["To"] = "Bob <b@example.org>, c@example.net"
    message["Bcc"] = '"x y"@example.com'
    scan = _scan.scan_headers(message)
    assert _scan._quick_addresses(scan, ("from",)) == ["a@example.com"]
    assert _scan.header_recipients(scan) == [
        "b@example.org",
        "c@example.net",
        '"x y"@example.com',
    ]


def test_text_values_take_the_full_path() -> None:
    message = Message(policy=policy.compat32)
    message["From"] = "a@example.com"
    scan = _scan.scan_headers(message)
    assert _scan._quick_addresses(scan, ("from",)) is None  # compat32 keeps text
    assert _scan.header_sender(scan) == "a@example.com"

"""``Folder.head`` writes a whole header list as the stock folder writes it field by field.

Generated header lists (address, unstructured, MIME and empty fields; text and header
objects; ASCII, non-ASCII, surrogates, line breaks, long values) under every policy must
give the octets of ``policy.fold_binary`` for each field, joined, or an error where the
stock folder would write more than one header line or a line over 998 octets.
"""

from __future__ import annotations

import re
import string
from email import policy
from email.policy import Policy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpkit.message._fold import folder_for

POLICIES: dict[str, Policy[Any]] = {
    "SMTP": policy.SMTP,
    "SMTPUTF8": policy.SMTPUTF8,
    "SMTP-40": policy.SMTP.clone(max_line_length=40),
    "SMTP-refold-all": policy.SMTP.clone(refold_source="all"),
    "compat32": policy.compat32.clone(linesep="\r\n"),
    "compat32-40": policy.compat32.clone(linesep="\r\n", max_line_length=40),
}
NAMES = ["From", "To", "Subject", "Message-ID", "Content-Type", "MIME-Version", "X-Custom"]
PIECES = ["a@example.com", "Bob <b@example.org>", "Grüße", "用户@例子.广告", "\udce9",
          "\t", "\r\n ", "\n", "\x0b", "x" * 30, "", "=?utf-8?q?caf=C3=A9?=", "1.0",
          "text/plain"]  # fmt: skip
TEXT = st.lists(
    st.sampled_from(PIECES) | st.text(alphabet=string.printable, max_size=8), max_size=5
).map(" ".join)


def _field(name: str, text: str, as_object: bool) -> tuple[str, Any]:
    if as_object:
        try:
            return policy.default.header_store_parse(name, text)
        except Exception:
            pass
    return name, text


FIELD = st.builds(_field, st.sampled_from(NAMES), TEXT, st.booleans())


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as exc:
        return "error", type(exc).__name__


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(FIELD, max_size=6), pol=st.sampled_from(sorted(POLICIES)))
def test_head_is_the_stock_fields_joined(fields: list[tuple[str, Any]], pol: str) -> None:
    gen_policy = POLICIES[pol]
    stock = outcome(lambda: b"".join(gen_policy.fold_binary(n, v) for n, v in fields))
    ours = outcome(lambda: folder_for(gen_policy).head(fields))
    if stock[0] == "ok" and ours[0] == "error":
        # smtpkit refuses only what would be more than one header line or a long line.
        folded: bytes = stock[1]
        assert re.search(rb"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n", folded[:-2]) or any(
            len(line) > 998 for line in folded.split(b"\r\n")
        )
    elif stock[0] == "error":
        # Both refuse (smtpkit may refuse an earlier field than the one the stock code
        # fails on, so the error types can differ); smtpkit never writes what it cannot.
        assert ours[0] == "error"
    else:
        assert ours == stock


def test_an_empty_header_is_its_label() -> None:
    fields = [policy.default.header_store_parse("Subject", ""), ("X-A", "b")]
    assert folder_for(policy.SMTP).head(fields) == b"Subject:\r\nX-A: b\r\n"
    assert folder_for(policy.SMTP).quick_text(*fields[0]) == "Subject:\r\n"

"""The scan checks every value for line breaks, also under a field name it has seen before.

The scan remembers valid field names and then checks only the value; these tests prepare
a message with the same names twice (the second time the names are known) and require the
same refusal for every line-break character.
"""

from __future__ import annotations

from email.message import Message

import pytest

from smtpkit.errors import MessageError
from smtpkit.message import prepare_message
from smtpkit.message._headers import KNOWN_FIELD_NAMES, LINE_BREAK_CHARACTERS


def _message(subject: str) -> Message:
    message = Message()  # compat32: values are stored as given, unchecked
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message["X-Scan-Check"] = subject
    message.set_payload("hi\n")
    return message


@pytest.mark.parametrize("char", list(LINE_BREAK_CHARACTERS))
def test_a_known_name_with_a_line_break_is_refused(char: str) -> None:
    prepare_message(_message("fine"))
    assert KNOWN_FIELD_NAMES.get("X-Scan-Check") == "x-scan-check"
    with pytest.raises(MessageError, match="line break"):
        prepare_message(_message(f"x{char}Bcc: c@example.com"))
    with pytest.raises(MessageError, match="line break"):
        prepare_message(_message(f"x{char}"))


def test_folding_white_space_under_a_known_name_is_kept() -> None:
    prepare_message(_message("fine"))
    prepared = prepare_message(_message("a long\r\n subject"))
    assert b"X-Scan-Check: a long\r\n subject\r\n" in prepared.content

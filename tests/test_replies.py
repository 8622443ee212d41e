"""Unit tests for the reply values: Reply, EnhancedStatus, Phase."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit.protocol import ReplyParser
from smtpkit.replies import EnhancedStatus, Phase, Reply


def reparse(data: bytes) -> Reply:
    parser = ReplyParser()
    parser.feed(data)
    reply = parser.next_reply()
    assert reply is not None
    assert parser.buffered == 0
    return reply


# -- EnhancedStatus ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5.7.8 Username and Password not accepted", EnhancedStatus(5, 7, 8)),
        ("5.7.139 Authentication unsuccessful", EnhancedStatus(5, 7, 139)),
        ("4.7.0 Try again later", EnhancedStatus(4, 7, 0)),
        ("2.0.0", EnhancedStatus(2, 0, 0)),
        ("2.1.5\tOK", EnhancedStatus(2, 1, 5)),
        ("5.100.999 x", EnhancedStatus(5, 100, 999)),
        ("#4.5.3 Too many recipients", EnhancedStatus(4, 5, 3)),
    ],
)
def test_enhanced_status_parse(text: str, expected: EnhancedStatus) -> None:
    assert EnhancedStatus.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "OK",
        "6.6.0 invalid class",
        "3.0.0 invalid class",
        "1.2.3 invalid class",
        "5.7 missing detail",
        "5.7.1234 detail too long",
        "5.1234.1 subject too long",
        "5.7.8x glued to text",
        "5.7.8.1 four parts",
        " 5.7.8 leading space",
        "5..8 empty subject",
        "5.\u0667.1 non-ASCII digit",  # ARABIC-INDIC DIGIT SEVEN
        "\uff15.7.1 fullwidth digit",
    ],
)
def test_enhanced_status_parse_refuses(text: str) -> None:
    assert EnhancedStatus.parse(text) is None


def test_enhanced_status_str() -> None:
    assert str(EnhancedStatus(5, 7, 139)) == "5.7.139"


# -- Reply ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 99, 199, 600, 1000, -250])
def test_invalid_code_raises_value_error(code: int) -> None:
    with pytest.raises(ValueError, match="200-599"):
        Reply(code, ("x",))


def test_empty_lines_become_one_empty_line() -> None:
    assert Reply(250, ()).lines == ("",)
    assert Reply(250) == Reply(250, ("",))


def test_status_and_enhanced_code() -> None:
    reply = Reply(535, ("5.7.8 Username and Password not accepted.",))
    assert reply.status == EnhancedStatus(5, 7, 8)
    assert reply.enhanced_code == "5.7.8"


def test_enhanced_code_class_must_match_the_basic_code() -> None:
    # S: 250 5.1.1 ...   (a 2xx reply cannot carry a 5.x.x status)
    reply = Reply(250, ("5.1.1 mismatch",))
    assert reply.status is None
    assert reply.enhanced_code is None
    assert reply.text == "5.1.1 mismatch"


def test_enhanced_code_only_read_from_the_first_line() -> None:
    reply = Reply(550, ("No such user", "5.1.1 later line"))
    assert reply.enhanced_code is None
    assert reply.text == "No such user\n5.1.1 later line"


def test_text_strips_the_enhanced_code_from_each_line() -> None:
    # S: 534-5.7.14 <https://accounts.google.com/signin/continue?...> Please log in via
    # S: 534-5.7.14 your web browser and then try again.
    # S: 534 5.7.14  Learn more at
    reply = Reply(
        534,
        (
            "5.7.14 <https://accounts.google.com/signin/continue> Please log in via",
            "5.7.14 your web browser and then try again.",
            "5.7.14  Learn more at",
        ),
    )
    assert reply.text == (
        "<https://accounts.google.com/signin/continue> Please log in via\n"
        "your web browser and then try again.\n"
        "Learn more at"
    )


def test_text_does_not_cut_a_longer_code_that_shares_the_prefix() -> None:
    # The reply's code is 5.7.1; "5.7.14" on a later line is a different code, and cutting
    # "5.7.1" out of it would leave a stray "4".
    reply = Reply(550, ("5.7.1 first", "5.7.14 second"))
    assert reply.enhanced_code == "5.7.1"
    assert reply.text == "first\n5.7.14 second"


def test_text_strips_the_same_code_written_with_leading_zeros() -> None:
    reply = Reply(550, ("5.7.01 first", "5.7.1 second"))
    assert reply.enhanced_code == "5.7.1"
    assert reply.text == "first\nsecond"


def test_text_strips_a_hash_prefixed_code() -> None:
    # S: 452 #4.5.3 Too many recipients
    reply = Reply(452, ("#4.5.3 Too many recipients",))
    assert reply.enhanced_code == "4.5.3"
    assert reply.text == "Too many recipients"


def test_text_without_enhanced_code_is_stripped_lines() -> None:
    assert Reply(250, ("  smtp.example.com  ", "SIZE 1000 ")).text == "smtp.example.com\nSIZE 1000"


@pytest.mark.parametrize(
    ("code", "positive", "transient", "permanent"),
    [
        (220, True, False, False),
        (250, True, False, False),
        (334, True, False, False),
        (354, True, False, False),
        (421, False, True, False),
        (451, False, True, False),
        (499, False, True, False),
        (500, False, False, True),
        (550, False, False, True),
        (599, False, False, True),
    ],
)
def test_classification(code: int, positive: bool, transient: bool, permanent: bool) -> None:
    reply = Reply(code, ("x",))
    assert reply.is_positive is positive
    assert reply.is_transient is transient
    assert reply.is_permanent is permanent


def test_to_bytes_single_and_multi_line() -> None:
    assert Reply(250, ("OK",)).to_bytes() == b"250 OK\r\n"
    assert Reply(250, ("mx.example.com", "SIZE 1000", "SMTPUTF8")).to_bytes() == (
        b"250-mx.example.com\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\n"
    )


def test_to_bytes_empty_text() -> None:
    assert Reply(250).to_bytes() == b"250\r\n"
    assert Reply(250, ("", "OK")).to_bytes() == b"250-\r\n250 OK\r\n"


def test_to_bytes_keeps_trailing_spaces() -> None:
    # S: 534 5.7.14  Learn more at<SP>
    reply = Reply(534, ("5.7.14  Learn more at ",))
    assert reply.to_bytes() == b"534 5.7.14  Learn more at \r\n"
    assert reparse(reply.to_bytes()) == reply


def test_to_bytes_utf8() -> None:
    assert Reply(250, ("Grüße",)).to_bytes() == "250 Grüße\r\n".encode()


@pytest.mark.parametrize(
    "wire",
    [
        b"250 OK\r\n",
        b"250\r\n",
        b"250-smtp.gmail.com at your service, [203.0.113.5]\r\n250-SIZE 35882577\r\n"
        b"250 SMTPUTF8\r\n",
        b"535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
        b"535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp\r\n",
        b"550 5.7.139 trailing space \r\n",
    ],
)
def test_wire_round_trip(wire: bytes) -> None:
    assert reparse(wire).to_bytes() == wire


_text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\n\x85\x0b\x0c\x1c\x1d\x1e"
    ),
    max_size=40,
)


@given(
    code=st.integers(200, 599).filter(lambda c: c // 10 % 10 <= 5),
    lines=st.lists(_text, min_size=1, max_size=5),
)
def test_to_bytes_round_trip_property(code: int, lines: list[str]) -> None:
    if lines[-1] == "":
        # "250" and "250 " are the same reply.
        lines[-1] = "x"
    reply = Reply(code, tuple(lines))
    assert reparse(reply.to_bytes()) == reply


def test_str() -> None:
    assert str(Reply(250, ("mx.example.com", "SIZE 1000"))) == "250 mx.example.com SIZE 1000"
    assert str(Reply(250)) == "250"


def test_reply_is_immutable_and_pickles() -> None:
    reply = Reply(550, ("5.1.1 no such user",))
    with pytest.raises(AttributeError):
        reply.code = 250  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(reply)) == reply
    assert pickle.loads(pickle.dumps(EnhancedStatus(5, 7, 8))) == EnhancedStatus(5, 7, 8)


# -- Phase -------------------------------------------------------------------------------------


def test_phase_values() -> None:
    assert [p.value for p in Phase] == [
        "greeting",
        "ehlo",
        "starttls",
        "auth",
        "mail",
        "rcpt",
        "data",
        "message",
        "rset",
        "noop",
        "quit",
    ]
    assert Phase("rcpt") is Phase.RCPT

"""The test kit's line patterns match the whole value: a trailing newline is not "the end".

With ``re.match`` and a pattern ending in ``$``, ``$`` also matches just before a final
``"\\n"``, so ``"5.1.1\\n"`` passed for an enhanced code and ``"5\\n"`` for a BDAT size. The kit
uses ``fullmatch`` everywhere; these tests hold each place where a newline would otherwise
slip into a value (and from there onto the wire).
"""

from __future__ import annotations

import pytest

from smtpkit import ConfigurationError
from smtpkit.testing import FakeCapabilities, FakeTransport, LocalServer
from smtpkit.testing._envelope import parse_bdat, parse_mail, parse_rcpt
from smtpkit.testing._script import build_reply, parse_reply
from smtpkit.testing._server_state import normalize_reply

OFFERED = FakeCapabilities(dsn=True)


@pytest.mark.parametrize("enhanced", ["5.1.1\n", "5.1.1\r\n", "\n5.1.1"])
def test_an_enhanced_code_with_a_line_break_is_refused(enhanced: str) -> None:
    # Before: "5.1.1\n" passed, and the reply line "5.1.1\n User unknown" went on the wire.
    with pytest.raises(ConfigurationError, match="enhanced"):
        build_reply(550, enhanced, "User unknown")
    with pytest.raises(ConfigurationError, match="enhanced"):
        FakeTransport().reply("rcpt", code=550, enhanced=enhanced, text="User unknown")
    with pytest.raises(ConfigurationError, match="enhanced"):
        LocalServer().reply("rcpt", code=550, enhanced=enhanced, text="User unknown")


def test_a_mechanism_name_with_a_line_break_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="mechanism"):
        FakeCapabilities(auth=("PLAIN\n",))
    assert FakeCapabilities(auth=("PLAIN", "XOAUTH2")).auth == ("PLAIN", "XOAUTH2")


@pytest.mark.parametrize("arg", ["5\n", "5 LAST\n", "5\r", "", "LAST", "5 LAST LAST", "-1"])
def test_a_bdat_argument_must_be_exactly_a_size_and_last(arg: str) -> None:
    assert parse_bdat(arg) is None


def test_bdat_arguments_that_are_right() -> None:
    assert parse_bdat("5") == (5, False)
    assert parse_bdat("0 LAST") == (0, True)
    assert parse_bdat("12  last") == (12, True)


@pytest.mark.parametrize("arg", ["FROM:<a@example.test>\n", "FROM:<a@example.test> SIZE=5\n"])
def test_mail_arguments_with_a_trailing_newline_are_refused(arg: str) -> None:
    refused = parse_mail(arg, esmtp=True, offered=OFFERED)
    assert not isinstance(refused, tuple), refused
    assert refused.code == 501
    assert parse_mail(arg.rstrip("\n"), esmtp=True, offered=OFFERED)[0] == "a@example.test"


def test_rcpt_arguments_with_a_trailing_newline_are_refused() -> None:
    refused = parse_rcpt("TO:<b@example.test>\n", esmtp=True, offered=OFFERED, smtputf8=False)
    assert not isinstance(refused, tuple), refused
    assert refused.code == 501
    accepted = parse_rcpt("TO:<b@example.test>", esmtp=True, offered=OFFERED, smtputf8=False)
    assert accepted == ("b@example.test", ())


def test_a_reply_text_ending_in_a_line_break_is_one_line_on_both_servers() -> None:
    # A reply is text: one final line break ends it (as in a triple-quoted string), on the
    # fake's parser and on LocalServer's alike; it never becomes an empty last line.
    assert parse_reply("250 ok\n") == parse_reply("250 ok")
    assert normalize_reply("535 5.7.8 Bad login\n") == "535 5.7.8 Bad login"
    assert normalize_reply("535 5.7.8 Bad login\r\n") == "535 5.7.8 Bad login"
    assert normalize_reply("535-5.7.8 Bad\n535 5.7.8 login\n") == "535-5.7.8 Bad\r\n535 5.7.8 login"


@pytest.mark.parametrize("reply", ["250 ok\r", "250\rok", "2500 ok", "250ok", " 250 ok"])
def test_a_reply_whose_first_line_is_not_a_code_line_is_refused(reply: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_reply(reply)

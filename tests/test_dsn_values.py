"""DSN and ESMTPParams values: what they put on the wire and what they refuse (no sockets)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpkit import DSN, ConfigurationError, ESMTPParams, IfUnsupported, Notify, RecipientDSN, Ret
from smtpkit.dsn import xtext
from smtpkit.protocol import Command

ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")  # RFC 5321 §4.1.2 esmtp-value


def xtext_decode(text: str) -> str:
    return re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


# -- xtext (RFC 3461 §4) -------------------------------------------------------------------


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)))
def test_xtext_is_an_esmtp_value_that_decodes_back(text: str) -> None:
    encoded = xtext(text)
    assert encoded == "" or ESMTP_VALUE.fullmatch(encoded)
    assert "=" not in encoded
    assert xtext_decode(encoded) == text


def test_xtext_encodes_plus_equals_space_and_controls_only() -> None:
    assert xtext("a+b=c d\r\n~!") == "a+2Bb+3Dc+20d+0D+0A~!"


def test_xtext_refuses_non_ascii() -> None:
    with pytest.raises(ConfigurationError, match="US-ASCII"):
        xtext("café")


# -- DSN -----------------------------------------------------------------------------------


def test_strings_are_accepted_for_the_enums_in_any_case() -> None:
    dsn = DSN(notify=("Delay", "FAILURE"), ret="headers", if_unsupported="send_without")
    assert dsn.notify == (Notify.FAILURE, Notify.DELAY)  # a fixed order, duplicates merged
    assert dsn.ret is Ret.HEADERS
    assert dsn.if_unsupported is IfUnsupported.SEND_WITHOUT
    assert DSN(ret="hdrs").ret is Ret.HEADERS
    assert DSN(notify="success").notify == (Notify.SUCCESS,)


def test_the_wire_parameters() -> None:
    dsn = DSN(notify=(Notify.FAILURE,), ret=Ret.FULL, envid="id=1")
    assert dsn.mail_params() == ["RET=FULL", "ENVID=id+3D1"]
    assert dsn.rcpt_params(["b@example.test"]) == [
        ["NOTIFY=FAILURE", "ORCPT=rfc822;b@example.test"]
    ]
    assert DSN().mail_params() == []  # RET and ENVID only when asked for


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"notify": ("never", "failure")}, "NEVER cannot be combined"),
        ({"notify": ()}, "empty"),
        ({"notify": ("sometimes",)}, "Notify member"),
        ({"notify": 3}, "sequence of Notify"),
        ({"ret": "body"}, "Ret member"),
        ({"if_unsupported": "ignore"}, "IfUnsupported member"),
        ({"envid": "caf\u00e9"}, "printable ASCII"),
        ({"envid": "a\r\nRCPT TO:<x@y>"}, "printable ASCII"),
        ({"envid": ""}, "printable ASCII"),
        ({"envid": "x" * 101}, "RFC 3461 §4.4"),
        ({"envid": "+" * 34}, "RFC 3461 §4.4"),  # 102 characters once encoded
        ({"orcpt": "yes"}, "True or False"),
        ({"recipients": {"b@example.test": "never"}}, "RecipientDSN"),
    ],
)
def test_bad_dsn_values_are_refused(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        DSN(**options)  # type: ignore[arg-type]


def test_an_envid_of_100_characters_is_the_limit() -> None:
    assert DSN(envid="x" * 100).mail_params() == ["ENVID=" + "x" * 100]


@pytest.mark.parametrize("orcpt", ["", "a b@example.test", "a\r\n@example.test"])
def test_bad_original_recipients_are_refused(orcpt: str) -> None:
    with pytest.raises(ConfigurationError):
        RecipientDSN(orcpt=orcpt)


def test_an_orcpt_over_500_characters_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="500"):
        RecipientDSN(orcpt="+" * 200 + "@example.test")  # 600+ characters as xtext


def test_values_are_hashable_and_equal_by_content() -> None:
    one = DSN(notify=("failure",), recipients={"b@x.test": RecipientDSN(orcpt="c@x.test")})
    two = DSN(notify=[Notify.FAILURE], recipients={"b@x.test": RecipientDSN(orcpt="c@x.test")})
    assert one == two
    assert len({one, two, DSN()}) == 2
    params = ESMTPParams(mail={"x-a": "1"}, per_recipient={"b@x.test": {"X-B": None}})
    assert params == ESMTPParams(mail={"X-A": "1"}, per_recipient={"b@x.test": {"x-b": None}})
    assert len({params, ESMTPParams()}) == 2


def test_dsn_values_are_frozen() -> None:
    dsn = DSN()
    with pytest.raises(AttributeError):
        dsn.ret = Ret.FULL  # type: ignore[misc]
    with pytest.raises(TypeError):
        dsn.recipients["x@y"] = RecipientDSN()  # type: ignore[index]


# -- ESMTPParams -----------------------------------------------------------------------------


def test_params_on_the_wire() -> None:
    params = ESMTPParams(
        mail={"mt-priority": "3", "X-FLAG": None},
        rcpt={"X-TAG": "all"},
        per_recipient={"c@EXAMPLE.test": {"x-tag": "c", "X-MORE": "1"}},
    )
    assert params.mail_params() == ["MT-PRIORITY=3", "X-FLAG"]
    assert params.rcpt_params(["b@example.test", "c@example.test"]) == [
        ["X-TAG=all"],
        ["X-TAG=c", "X-MORE=1"],  # the recipient's own value replaces the common one
    ]
    # What the protocol core would send: it accepts these parameters as they are.
    command = Command.mail("a@example.test", params.mail_params())
    assert command.line == "MAIL FROM:<a@example.test> MT-PRIORITY=3 X-FLAG"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"mail": {"SIZE": "10"}}, "smtpkit sets SIZE itself"),
        ({"mail": {"body": "8BITMIME"}}, "smtpkit sets BODY itself"),
        ({"mail": {"SmtpUtf8": None}}, "smtpkit sets SMTPUTF8 itself"),
        ({"mail": {"RET": "FULL"}}, "smtpkit sets RET itself"),
        ({"mail": {"ENVID": "x"}}, "smtpkit sets ENVID itself"),
        ({"rcpt": {"notify": "NEVER"}}, "smtpkit sets NOTIFY itself"),
        ({"per_recipient": {"b@x.test": {"ORCPT": "rfc822;b@x.test"}}}, "ORCPT itself"),
        ({"mail": {"X-A": "1", "x-a": "2"}}, "names X-A twice"),
        ({"mail": {"-X": "1"}}, "not an ESMTP keyword"),
        ({"mail": {"X_Y": "1"}}, "not an ESMTP keyword"),
        ({"mail": {"X\r\nRSET": "1"}}, "not an ESMTP keyword"),
        ({"mail": {"": "1"}}, "not an ESMTP keyword"),
        ({"mail": {"X": "a b"}}, "esmtp-value"),
        ({"mail": {"X": "a=b"}}, "esmtp-value"),
        ({"mail": {"X": "a\r\nRCPT TO:<evil@example.test>"}}, "esmtp-value"),
        ({"mail": {"X": "\x00"}}, "esmtp-value"),
        ({"mail": {"X": "caf\u00e9"}}, "esmtp-value"),
        ({"mail": {"X": ""}}, "esmtp-value"),
        ({"mail": {"X": 3}}, "esmtp-value"),
        ({"mail": ["X=1"]}, "must map ESMTP keywords"),
        ({"per_recipient": ["b@x.test"]}, "per_recipient must map"),
    ],
)
def test_bad_params_are_refused(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        ESMTPParams(**options)  # type: ignore[arg-type]


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,10}", fullmatch=True).filter(
            lambda k: k.upper() not in {"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID"}
        ),
        st.one_of(st.none(), st.text(max_size=8)),
        max_size=4,
    )
)
def test_whatever_is_accepted_is_a_valid_command(mail: dict[str, str | None]) -> None:
    try:
        params = ESMTPParams(mail=mail)
    except ConfigurationError:
        return
    line = Command.mail("a@example.test", params.mail_params()).line
    assert "\r" not in line
    assert "\n" not in line
    for param in params.mail_params():
        key, _, value = param.partition("=")
        assert re.fullmatch(r"[A-Z0-9][A-Z0-9-]*", key)
        assert not value or ESMTP_VALUE.fullmatch(value)

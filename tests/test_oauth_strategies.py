"""XOAUTH2 and OAUTHBEARER flows driven by canned replies: exact bytes, no sockets."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from smtpkit.auth import (
    AccessToken,
    AuthContext,
    AuthFlow,
    AuthStrategy,
    NoCommonMechanism,
    OAuthBearerAuth,
    PasswordAuth,
    TokenAuthStrategy,
    TokenProvider,
    XOAuth2Auth,
    decode_error_challenge,
)
from smtpkit.errors import (
    ConfigurationError,
    CredentialKind,
    LocalProtocolError,
    TokenRejected,
    error_for_reply,
)
from smtpkit.oauth import StaticToken
from smtpkit.protocol import MAX_COMMAND_LINE, Command
from smtpkit.replies import Phase, Reply

#: The committed copy of captured server replies.
REPLIES = Path(__file__).resolve().parent / "data" / "replies.jsonl"
USER = "alice@gmail.com"
TOKEN = "ya29.a0AfB_byC-CANARY-token-4242"
# S: 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH   (smtp.gmail.com)
GMAIL = AuthContext(
    mechanisms=frozenset({"LOGIN", "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN", "OAUTHBEARER"}),
    host="smtp.gmail.com",
    port=587,
    encrypted=True,
)
# S: 250-AUTH LOGIN XOAUTH2   (smtp.office365.com)
MICROSOFT = AuthContext(
    mechanisms=frozenset({"LOGIN", "XOAUTH2"}), host="smtp.office365.com", port=587, encrypted=True
)
# Gmail's error challenge, as captured (replies.jsonl id 44).
JSON_CHALLENGE = Reply(
    334,
    (
        "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xl"
        "LmNvbS8ifQ==",
    ),
)
GMAIL_535 = Reply(
    535,
    (
        "5.7.8 Username and Password not accepted. Learn more at",
        "5.7.8  https://support.google.com/mail/?p=BadCredentials o8sm3958210pjs.6 - gsmtp",
    ),
)
MICROSOFT_535 = Reply(535, ("5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod]",))
ACCEPTED = Reply(235, ("2.7.0 Accepted",))
BARE_334 = Reply(334, ("",))
DECODED = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def first(flow: AuthFlow) -> Command:
    """The flow's first command (the AUTH line), then close the flow."""
    command = next(flow)
    flow.close()
    return command


def drive(flow: AuthFlow, replies: Sequence[Reply]) -> tuple[list[Command], object]:
    """Run a flow against canned replies; return the commands and the flow's return value."""
    commands = [next(flow)]
    for reply in replies:
        try:
            commands.append(flow.send(reply))
        except StopIteration as stop:
            return commands, stop.value
    raise AssertionError("the flow wanted more replies than the script had")


def token(text: str = TOKEN) -> AccessToken:
    return AccessToken(text, datetime(2030, 1, 1, tzinfo=UTC))


def xoauth2(user: str = USER) -> XOAuth2Auth:
    return XOAuth2Auth(user, StaticToken(TOKEN))


def bearer(user: str = USER) -> OAuthBearerAuth:
    return OAuthBearerAuth(user, StaticToken(TOKEN))


XOAUTH2_BLOB = b64(f"user={USER}\x01auth=Bearer {TOKEN}\x01\x01")
BEARER_BLOB = b64(f"n,a={USER},\x01host=smtp.gmail.com\x01port=587\x01auth=Bearer {TOKEN}\x01\x01")


# -- XOAUTH2 -----------------------------------------------------------------------------


def test_xoauth2_inline_initial_response_exact_bytes() -> None:
    commands, result = drive(xoauth2().token_flow(GMAIL, token()), [ACCEPTED])
    assert [c.to_bytes() for c in commands] == [f"AUTH XOAUTH2 {XOAUTH2_BLOB}\r\n".encode()]
    assert result is None


def test_xoauth2_long_token_goes_after_a_bare_334() -> None:
    # Microsoft's access tokens are JWTs of 1,500+ characters: the line would pass 512 octets.
    long_token = "eyJ0eXAiOiJKV1QiLCJub25jZSI6Ik" + "A" * 1600
    blob = b64(f"user=bob@contoso.com\x01auth=Bearer {long_token}\x01\x01")
    flow = XOAuth2Auth("bob@contoso.com", StaticToken(long_token)).token_flow(
        MICROSOFT, token(long_token)
    )
    commands, result = drive(flow, [BARE_334, ACCEPTED])
    assert [c.to_bytes() for c in commands] == [b"AUTH XOAUTH2\r\n", f"{blob}\r\n".encode()]
    assert result is None


def test_xoauth2_failure_answers_the_json_challenge_with_an_empty_line() -> None:
    commands, result = drive(xoauth2().token_flow(GMAIL, token()), [JSON_CHALLENGE, GMAIL_535])
    assert [c.to_bytes() for c in commands] == [
        f"AUTH XOAUTH2 {XOAUTH2_BLOB}\r\n".encode(),
        b"\r\n",
    ]
    assert result == DECODED


def test_xoauth2_long_token_failure_decodes_the_challenge_after_the_bare_334() -> None:
    long_token = "x" * 1000
    flow = XOAuth2Auth(USER, StaticToken(long_token)).token_flow(GMAIL, token(long_token))
    commands, result = drive(flow, [BARE_334, JSON_CHALLENGE, GMAIL_535])
    assert commands[0].to_bytes() == b"AUTH XOAUTH2\r\n"
    assert commands[2].to_bytes() == b"\r\n"
    assert result == DECODED


def test_microsoft_failure_without_a_challenge_returns_none() -> None:
    flow = XOAuth2Auth("bob@contoso.com", StaticToken(TOKEN)).token_flow(MICROSOFT, token())
    commands, result = drive(flow, [MICROSOFT_535])
    assert len(commands) == 1
    assert result is None


def test_a_second_challenge_ends_the_flow_so_the_driver_cancels() -> None:
    commands, result = drive(xoauth2().token_flow(GMAIL, token()), [JSON_CHALLENGE, JSON_CHALLENGE])
    assert len(commands) == 2  # the AUTH line and one empty answer, nothing more
    assert result == DECODED


@pytest.mark.parametrize("extra", [0, 1])
def test_the_512_octet_boundary(extra: int) -> None:
    # Find the longest token whose AUTH line (with CRLF) fits in 512 octets.
    fits = 0
    for length in range(300, 400):
        blob = b64(f"user={USER}\x01auth=Bearer " + "t" * length + "\x01\x01")
        if len(f"AUTH XOAUTH2 {blob}\r\n") > MAX_COMMAND_LINE:
            break
        fits = length
    text = "t" * (fits + extra * 3)  # base64 grows in steps of 4 per 3 bytes
    command = first(XOAuth2Auth(USER, StaticToken(text)).token_flow(GMAIL, token(text)))
    inline = len(command.to_bytes()) > len(b"AUTH XOAUTH2\r\n")
    assert inline is (extra == 0)
    size = len(command.to_bytes())
    # Inline up to the limit (base64 grows 4 octets at a time), bare AUTH beyond it.
    assert MAX_COMMAND_LINE - 4 < size <= MAX_COMMAND_LINE if extra == 0 else size == 14


# -- OAUTHBEARER -------------------------------------------------------------------------


def test_oauthbearer_inline_exact_bytes() -> None:
    commands, result = drive(bearer().token_flow(GMAIL, token()), [ACCEPTED])
    assert [c.to_bytes() for c in commands] == [f"AUTH OAUTHBEARER {BEARER_BLOB}\r\n".encode()]
    assert result is None


def test_oauthbearer_failure_answers_with_a_single_0x01() -> None:
    commands, result = drive(bearer().token_flow(GMAIL, token()), [JSON_CHALLENGE, GMAIL_535])
    assert [c.to_bytes() for c in commands] == [
        f"AUTH OAUTHBEARER {BEARER_BLOB}\r\n".encode(),
        b"AQ==\r\n",  # RFC 7628 §3.2.3
    ]
    assert result == DECODED


def test_oauthbearer_long_token_after_bare_334() -> None:
    long_token = "y" * 1000
    flow = OAuthBearerAuth(USER, StaticToken(long_token)).token_flow(GMAIL, token(long_token))
    commands, result = drive(flow, [BARE_334, JSON_CHALLENGE, GMAIL_535])
    assert [c.to_bytes() for c in commands][::2] == [b"AUTH OAUTHBEARER\r\n", b"AQ==\r\n"]
    assert base64.b64decode(commands[1].to_bytes()).endswith(f"{long_token}\x01\x01".encode())
    assert result == DECODED


def test_oauthbearer_escapes_the_authzid_and_strips_ipv6_brackets() -> None:
    context = AuthContext(frozenset({"OAUTHBEARER"}), "[::1]", 2525, True)
    flow = OAuthBearerAuth("a,b=c@x.test", StaticToken(TOKEN)).token_flow(context, token())
    command = first(flow)
    text = base64.b64decode(command.to_bytes()[len(b"AUTH OAUTHBEARER ") :]).decode()
    assert text.startswith("n,a=a=2Cb=3Dc@x.test,\x01host=::1\x01port=2525\x01")


# -- contract, choice, errors -----------------------------------------------------------


def test_strategies_are_token_strategies() -> None:
    for strategy in (xoauth2(), bearer()):
        assert isinstance(strategy, AuthStrategy)
        assert isinstance(strategy, TokenAuthStrategy)
        assert isinstance(strategy.token_provider, TokenProvider)
        assert strategy.credential_kind is CredentialKind.OAUTH2
    assert not isinstance(PasswordAuth("a", "b"), TokenAuthStrategy)


def test_plain_flow_explains_that_a_token_is_needed() -> None:
    with pytest.raises(LocalProtocolError, match="token_flow"):
        next(xoauth2().flow(GMAIL))


def test_no_common_mechanism_names_the_strategy() -> None:
    with pytest.raises(NoCommonMechanism) as caught:
        next(bearer().token_flow(MICROSOFT, token()))
    assert caught.value.strategy == "OAuthBearerAuth"
    assert "XOAUTH2" in caught.value.offered


@pytest.mark.parametrize("bad", ["Bearer abc", "abc\x01def", "abc\r\nQUIT", "tökén"])
def test_malformed_tokens_are_refused_without_being_echoed(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        next(xoauth2().token_flow(GMAIL, token(bad)))
    assert bad not in str(caught.value)


def test_provider_must_be_a_token_provider() -> None:
    with pytest.raises(ConfigurationError, match="TokenProvider"):
        XOAuth2Auth(USER, "a token")  # type: ignore[arg-type]


def test_every_yielded_command_is_redacted() -> None:
    long_token = "z" * 1000
    scripts = [
        (xoauth2().token_flow(GMAIL, token()), [JSON_CHALLENGE, GMAIL_535]),
        (bearer().token_flow(GMAIL, token()), [JSON_CHALLENGE, GMAIL_535]),
        (
            XOAuth2Auth(USER, StaticToken(long_token)).token_flow(GMAIL, token(long_token)),
            [BARE_334, JSON_CHALLENGE, GMAIL_535],
        ),
    ]
    for flow, replies in scripts:
        commands, _ = drive(flow, replies)
        for command in commands:
            shown = f"{command.redacted} {command!r}"
            assert "CANARY" not in shown
            assert long_token not in shown
            assert XOAUTH2_BLOB not in shown
            assert BEARER_BLOB not in shown
            assert command.redacted in {
                "AUTH XOAUTH2 ****",
                "AUTH OAUTHBEARER ****",
                "AUTH XOAUTH2",
                "****",
                "",
            }


def test_the_challenge_becomes_token_rejected_with_its_fields() -> None:
    _, details = drive(xoauth2().token_flow(GMAIL, token()), [JSON_CHALLENGE, GMAIL_535])
    assert isinstance(details, dict)
    error = error_for_reply(
        GMAIL_535, Phase.AUTH, credential_kind=CredentialKind.OAUTH2, challenge=details
    )
    assert isinstance(error, TokenRejected)
    assert (error.status, error.schemes, error.scope) == (
        "400",
        "Bearer",
        "https://mail.google.com/",
    )


def test_decode_error_challenge_from_the_captured_reply() -> None:
    lines = REPLIES.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    [row] = [r for r in rows if r["id"] == 44]
    code, text = row["wire"].split(" ", 1)
    assert decode_error_challenge([Reply(int(code), (text,))]) == DECODED
    assert decode_error_challenge([BARE_334]) is None
    assert decode_error_challenge([Reply(334, ("not base64!",))]) is None
    assert decode_error_challenge([Reply(334, (b64("[1, 2]"),))]) is None


# -- AccessToken and secrets -------------------------------------------------------------


def test_access_token_value() -> None:
    later = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    value = AccessToken(TOKEN, later)
    assert value.expires_at == datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert value == AccessToken(TOKEN, later)
    assert value != AccessToken("other", later)
    assert hash(value) == hash(AccessToken(TOKEN, later))
    now = datetime(2030, 1, 1, 9, 56, tzinfo=UTC)
    assert value.expires_within(300, now)
    assert not value.expires_within(200, now)
    assert not AccessToken(TOKEN).expires_within(10**9, now)
    with pytest.raises(ConfigurationError, match="aware"):
        AccessToken(TOKEN, datetime(2030, 1, 1))
    with pytest.raises(ConfigurationError):
        AccessToken("")


def test_no_secret_in_repr_pickle_or_copy() -> None:
    for value in (token(), xoauth2(), bearer(), StaticToken(TOKEN)):
        assert "CANARY" not in repr(value)
        assert "CANARY" not in str(value)
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(value)
    strategy = xoauth2()
    assert copy.deepcopy(strategy) is strategy

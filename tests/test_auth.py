"""Auth strategies driven with canned replies: no sockets, exact bytes on the wire."""

from __future__ import annotations

import ast
import base64
import copy
import doctest
import hmac
import pickle
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import smtpkit.auth
from smtpkit.auth import (
    AppPasswordAuth,
    AuthContext,
    AuthFlow,
    AuthStrategy,
    NoCommonMechanism,
    PasswordAuth,
    SaslExchange,
    SaslMechanismStrategy,
    Secret,
    _base,
    b64decode_challenge,
    b64encode_text,
)
from smtpkit.errors import (
    ConfigurationError,
    CredentialKind,
    LocalProtocolError,
    MessageError,
    RemoteProtocolError,
)
from smtpkit.protocol import MAX_COMMAND_LINE, Command
from smtpkit.replies import Phase, Reply

ROOT = Path(__file__).resolve().parent.parent
CANARY = "CANARY-s3cr3t-9431"

# S: 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH   (smtp.gmail.com)
GMAIL = frozenset({"LOGIN", "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN", "OAUTHBEARER", "XOAUTH"})
# S: 250-AUTH LOGIN XOAUTH2   (smtp.office365.com)
MICROSOFT = frozenset({"LOGIN", "XOAUTH2"})

ACCEPTED = Reply(235, ("2.7.0 Accepted",))
BAD_CREDENTIALS = Reply(
    535,
    (
        "5.7.8 Username and Password not accepted. For more information, go to",
        "5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp",
    ),
)
USERNAME_PROMPT = Reply(334, ("VXNlcm5hbWU6",))
PASSWORD_PROMPT = Reply(334, ("UGFzc3dvcmQ6",))


def ctx(mechanisms: frozenset[str] = GMAIL, *, encrypted: bool = True) -> AuthContext:
    return AuthContext(
        mechanisms=mechanisms, host="smtp.example.com", port=587, encrypted=encrypted
    )


class Run:
    """Drive a flow like the Submitter does, recording every command it produced."""

    def __init__(self, strategy: AuthStrategy, context: AuthContext) -> None:
        self.flow: AuthFlow = strategy.flow(context)
        self.sent: list[Command] = [next(self.flow)]
        self.finished = False
        self.details: Mapping[str, str] | None = None

    @property
    def wire(self) -> list[bytes]:
        return [command.to_bytes() for command in self.sent]

    def reply(self, reply: Reply) -> bytes | None:
        """Feed one reply; return the next command's bytes, or None when the flow ended."""
        assert not self.finished, "the flow already ended"
        try:
            command = self.flow.send(reply)
        except StopIteration as stop:
            self.finished = True
            self.details = stop.value
            return None
        self.sent.append(command)
        return command.to_bytes()


# --- PLAIN -----------------------------------------------------------------------------


def test_plain_is_chosen_at_gmail_and_sent_inline() -> None:
    run = Run(PasswordAuth("alice", "secret"), ctx(GMAIL))
    # C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
    assert run.wire == [b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"]
    assert run.sent[0].phase is Phase.AUTH
    # S: 235 2.7.0 Accepted
    assert run.reply(ACCEPTED) is None
    assert run.details is None


def test_plain_failure_ends_the_flow_without_another_command() -> None:
    run = Run(PasswordAuth("alice", "secret"), ctx(GMAIL))
    # C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
    # S: 535-5.7.8 Username and Password not accepted ...
    assert run.reply(BAD_CREDENTIALS) is None
    assert run.details is None
    assert len(run.sent) == 1


def test_plain_long_credentials_wait_for_the_334() -> None:
    password = "p" * 400
    expected = base64.b64encode(f"\0alice@example.com\0{password}".encode()).decode()
    assert len(f"AUTH PLAIN {expected}") + 2 > MAX_COMMAND_LINE
    run = Run(PasswordAuth("alice@example.com", password), ctx(GMAIL))
    # C: AUTH PLAIN
    assert run.wire == [b"AUTH PLAIN\r\n"]
    # S: 334
    # C: AGFsaWNlQGV4YW1wbGUuY29tAHBwcHBw...
    assert run.reply(Reply(334, ("",))) == expected.encode() + b"\r\n"
    # S: 235 2.7.0 Accepted
    assert run.reply(ACCEPTED) is None


def test_plain_inline_up_to_512_octets_then_deferred() -> None:
    # RFC 4954 §4 / RFC 5321 §4.5.3.1.4: "AUTH PLAIN " (11) + base64 + CRLF (2) <= 512.
    # Base64 grows in steps of 4, so find the largest password whose line still fits.
    fits = max(
        n
        for n in range(300, 400)
        if len("AUTH PLAIN " + b64encode_text(f"\0u\0{'x' * n}")) + 2 <= MAX_COMMAND_LINE
    )
    inline = Run(PasswordAuth("u", "x" * fits), ctx(GMAIL)).wire[0]
    assert MAX_COMMAND_LINE - 4 < len(inline) <= MAX_COMMAND_LINE
    assert inline.startswith(b"AUTH PLAIN A")
    deferred = Run(PasswordAuth("u", "x" * (fits + 3)), ctx(GMAIL)).wire[0]
    assert deferred == b"AUTH PLAIN\r\n"


def test_plain_unexpected_334_after_inline_response_ends_the_flow() -> None:
    # The server asks for more after a complete PLAIN response: the flow has nothing more
    # to say and returns; the driver then cancels with "*".
    run = Run(PasswordAuth("alice", "secret"), ctx(GMAIL))
    assert run.reply(Reply(334, ("",))) is None
    assert len(run.sent) == 1


def test_utf8_credentials() -> None:
    run = Run(PasswordAuth("jürgen@bücher.example", "pässwörd-密码"), ctx(GMAIL))
    payload = base64.b64decode(run.sent[0].line.split()[2])
    assert payload == "\0jürgen@bücher.example\0pässwörd-密码".encode()


# --- LOGIN -----------------------------------------------------------------------------


def test_login_when_only_login_is_offered_microsoft() -> None:
    run = Run(PasswordAuth("alice@example.com", "secret"), ctx(MICROSOFT))
    # C: AUTH LOGIN
    assert run.wire == [b"AUTH LOGIN\r\n"]
    # S: 334 VXNlcm5hbWU6
    # C: YWxpY2VAZXhhbXBsZS5jb20=
    assert run.reply(USERNAME_PROMPT) == b"YWxpY2VAZXhhbXBsZS5jb20=\r\n"
    # S: 334 UGFzc3dvcmQ6
    # C: c2VjcmV0
    assert run.reply(PASSWORD_PROMPT) == b"c2VjcmV0\r\n"
    # S: 235 2.7.0 Authentication successful
    assert run.reply(Reply(235, ("2.7.0 Authentication successful",))) is None
    assert [c.phase for c in run.sent] == [Phase.AUTH] * 3


def test_login_failure_after_username_sends_no_password() -> None:
    run = Run(PasswordAuth("alice@example.com", "secret"), ctx(MICROSOFT))
    # C: AUTH LOGIN
    # S: 334 VXNlcm5hbWU6
    run.reply(USERNAME_PROMPT)
    # C: YWxpY2VAZXhhbXBsZS5jb20=
    # S: 535 5.7.139 Authentication unsuccessful, basic authentication is disabled.
    assert run.reply(Reply(535, ("5.7.139 Authentication unsuccessful",))) is None
    assert run.wire == [b"AUTH LOGIN\r\n", b"YWxpY2VAZXhhbXBsZS5jb20=\r\n"]


def test_login_failure_at_the_auth_line() -> None:
    run = Run(PasswordAuth("alice", "secret"), ctx(MICROSOFT))
    # C: AUTH LOGIN
    # S: 504 5.7.4 Unrecognized authentication type
    assert run.reply(Reply(504, ("5.7.4 Unrecognized authentication type",))) is None
    assert run.wire == [b"AUTH LOGIN\r\n"]


def test_login_ignores_prompt_wording_even_when_not_base64() -> None:
    run = Run(PasswordAuth("alice", "secret"), ctx(MICROSOFT))
    # S: 334 Username please!   (not base64: tolerated, prompts are not interpreted)
    assert run.reply(Reply(334, ("Username please!",))) == b"YWxpY2U=\r\n"
    # S: 334 %%%
    assert run.reply(Reply(334, ("%%%",))) == b"c2VjcmV0\r\n"
    assert run.reply(ACCEPTED) is None


def test_login_third_334_ends_the_flow() -> None:
    run = Run(PasswordAuth("alice", "secret"), ctx(MICROSOFT))
    run.reply(USERNAME_PROMPT)
    run.reply(PASSWORD_PROMPT)
    assert run.reply(Reply(334, ("",))) is None
    assert len(run.sent) == 3


# --- choosing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preference", "offered", "chosen"),
    [
        (("PLAIN", "LOGIN"), GMAIL, "PLAIN"),
        (("LOGIN", "PLAIN"), GMAIL, "LOGIN"),
        (("PLAIN", "LOGIN"), MICROSOFT, "LOGIN"),
        (("PLAIN", "LOGIN"), frozenset({"PLAIN"}), "PLAIN"),
        (("login",), GMAIL, "LOGIN"),
    ],
)
def test_preference_order(
    preference: tuple[str, ...], offered: frozenset[str], chosen: str
) -> None:
    strategy = PasswordAuth("alice", "secret", mechanisms=preference)
    assert strategy.choose_mechanism(ctx(offered)) == chosen
    assert Run(strategy, ctx(offered)).sent[0].line.split()[1] == chosen


def test_context_upper_cases_offered_mechanisms() -> None:
    context = ctx(frozenset({"login", "Plain"}))
    assert context.mechanisms == {"LOGIN", "PLAIN"}
    assert PasswordAuth("a", "b").choose_mechanism(context) == "PLAIN"


def test_no_auth_offered_before_tls() -> None:
    strategy = PasswordAuth("alice", "secret")
    with pytest.raises(NoCommonMechanism) as info:
        strategy.choose_mechanism(ctx(frozenset(), encrypted=False))
    error = info.value
    assert isinstance(error, ConfigurationError)
    assert error.offered == ()
    assert error.supported == ("PLAIN", "LOGIN")
    assert "no AUTH" in error.message
    assert "PasswordAuth supports PLAIN, LOGIN" in error.message
    assert error.hint is not None
    assert "after TLS" in error.hint
    assert "Security.STARTTLS" in error.hint


def test_no_auth_offered_over_tls_points_at_the_port() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        PasswordAuth("alice", "secret").choose_mechanism(ctx(frozenset(), encrypted=True))
    assert info.value.hint is not None
    assert "587" in info.value.hint


def test_no_overlap_lists_the_offers() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        PasswordAuth("alice", "secret").choose_mechanism(ctx(frozenset({"CRAM-MD5", "NTLM"})))
    error = info.value
    assert error.offered == ("CRAM-MD5", "NTLM")
    assert "the server offers CRAM-MD5 NTLM" in str(error)
    assert "PasswordAuth supports PLAIN, LOGIN" in str(error)


def test_oauth_only_server_hints_at_oauth() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        PasswordAuth("alice", "secret").choose_mechanism(ctx(frozenset({"XOAUTH2"})))
    assert info.value.hint is not None
    assert "OAuth2" in info.value.hint


def test_narrowed_mechanisms_hint_at_the_excluded_one() -> None:
    strategy = PasswordAuth("alice", "secret", mechanisms=("PLAIN",))
    with pytest.raises(NoCommonMechanism) as info:
        strategy.choose_mechanism(ctx(MICROSOFT))
    assert "the server offers LOGIN XOAUTH2" in info.value.message
    assert info.value.hint is not None
    assert "LOGIN" in info.value.hint


def test_no_common_mechanism_is_raised_before_any_command() -> None:
    flow = PasswordAuth("alice", "secret").flow(ctx(frozenset({"XOAUTH2"})))
    with pytest.raises(NoCommonMechanism):
        next(flow)


def test_no_common_mechanism_pickles() -> None:
    with pytest.raises(NoCommonMechanism) as info:
        PasswordAuth("alice", "secret").choose_mechanism(ctx(MICROSOFT - {"LOGIN"}))
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is NoCommonMechanism
    assert clone.offered == ("XOAUTH2",)
    assert str(clone) == str(info.value)


def test_strategies_satisfy_the_protocol() -> None:
    assert isinstance(PasswordAuth("a", "b"), AuthStrategy)
    assert isinstance(AppPasswordAuth("a", "b"), AuthStrategy)
    assert PasswordAuth("a", "b").credential_kind is CredentialKind.PASSWORD
    assert AppPasswordAuth("a", "b").credential_kind is CredentialKind.APP_PASSWORD


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "what"),
    [
        ("", "secret", "username"),
        ("alice", "", "password"),
        ("al\0ice", "secret", "username"),
        ("alice", f"{CANARY}\0x", "password"),
    ],
)
def test_refuses_empty_and_nul(username: str, password: str, what: str) -> None:
    with pytest.raises(ConfigurationError, match=what) as info:
        PasswordAuth(username, password)
    assert CANARY not in str(info.value)


def test_refuses_non_str_password() -> None:
    with pytest.raises(ConfigurationError, match="must be a str, got bytes"):
        PasswordAuth("alice", b"secret")  # type: ignore[arg-type]


@pytest.mark.parametrize("mechanisms", [(), ("CRAM-MD5",), ("PLAIN", "XOAUTH2")])
def test_refuses_unknown_mechanisms(mechanisms: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match="supports PLAIN, LOGIN"):
        PasswordAuth("alice", "secret", mechanisms=mechanisms)


def test_refuses_mechanisms_given_as_a_string() -> None:
    with pytest.raises(ConfigurationError, match="not a str"):
        PasswordAuth("alice", "secret", mechanisms="PLAIN")


def test_accepts_a_secret_as_password() -> None:
    run = Run(PasswordAuth("alice", Secret("secret")), ctx(GMAIL))
    assert run.wire == [b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"]


# --- app passwords ---------------------------------------------------------------------


def test_app_password_spaces_are_stripped() -> None:
    run = Run(AppPasswordAuth("alice@gmail.com", "abcd efgh ijkl mnop"), ctx(GMAIL))
    # C: AUTH PLAIN AGFsaWNlQGdtYWlsLmNvbQBhYmNkZWZnaGlqa2xtbm9w
    assert run.wire == [b"AUTH PLAIN AGFsaWNlQGdtYWlsLmNvbQBhYmNkZWZnaGlqa2xtbm9w\r\n"]
    assert base64.b64decode(run.sent[0].line.split()[2]).endswith(b"\0abcdefghijklmnop")


def test_app_password_strips_all_whitespace_and_nothing_else() -> None:
    run = Run(AppPasswordAuth("a", " Ab1-\u00a0xY_z\t9 \n"), ctx(GMAIL))
    assert base64.b64decode(run.sent[0].line.split()[2]) == b"\0a\0Ab1-xY_z9"


def test_app_password_over_login() -> None:
    run = Run(AppPasswordAuth("alice@outlook.com", "abcd efgh ijkl mnop"), ctx(MICROSOFT))
    assert run.wire == [b"AUTH LOGIN\r\n"]
    run.reply(USERNAME_PROMPT)
    assert run.reply(PASSWORD_PROMPT) == b64encode_text("abcdefghijklmnop").encode() + b"\r\n"


@pytest.mark.parametrize("app_password", ["", "    ", "\u00a0\t"])
def test_app_password_blank_is_refused(app_password: str) -> None:
    with pytest.raises(ConfigurationError, match="password is empty"):
        AppPasswordAuth("alice", app_password)


# --- secrets never leak ----------------------------------------------------------------


@pytest.mark.parametrize("cls", [PasswordAuth, AppPasswordAuth])
def test_repr_and_str_hide_the_password(cls: type[PasswordAuth]) -> None:
    strategy = cls("alice@example.com", CANARY)
    expected = f"{cls.__name__}(username='alice@example.com', password='***')"
    assert repr(strategy) == expected
    assert str(strategy) == expected
    assert CANARY not in repr(vars(strategy))
    assert CANARY not in f"{strategy!s} {strategy!r} {vars(strategy)}"


def test_repr_shows_non_default_mechanisms() -> None:
    assert repr(PasswordAuth("a", CANARY, mechanisms=("LOGIN",))) == (
        "PasswordAuth(username='a', password='***', mechanisms=('LOGIN',))"
    )


@pytest.mark.parametrize("cls", [PasswordAuth, AppPasswordAuth])
def test_strategies_refuse_to_pickle(cls: type[PasswordAuth]) -> None:
    strategy = cls("alice", CANARY)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="credentials are not picklable"):
            pickle.dumps(strategy, protocol=protocol)


def test_copies_are_the_same_object() -> None:
    strategy = PasswordAuth("alice", CANARY)
    assert copy.copy(strategy) is strategy
    assert copy.deepcopy({"auth": strategy})["auth"] is strategy


def test_secret_masks_itself_and_refuses_to_pickle() -> None:
    secret = Secret(CANARY)
    assert repr(secret) == "Secret('***')"
    assert str(secret) == f"{secret}" == "***"
    assert secret.reveal() == CANARY
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)
    assert copy.deepcopy(secret) is secret
    with pytest.raises(TypeError):
        Secret(b"x")  # type: ignore[arg-type]


def _secret_forms(secret: str) -> list[str]:
    return [
        secret,
        b64encode_text(secret),
        b64encode_text(f"\0alice\0{secret}"),
        b64encode_text(f"\0alice@example.com\0{secret}"),
    ]


def test_redacted_commands_never_show_the_secret() -> None:
    commands: list[Command] = []
    plain = Run(PasswordAuth("alice", CANARY), ctx(GMAIL))
    plain.reply(ACCEPTED)
    login = Run(PasswordAuth("alice", CANARY), ctx(MICROSOFT))
    login.reply(USERNAME_PROMPT)
    login.reply(PASSWORD_PROMPT)
    long = Run(PasswordAuth("alice", CANARY * 30), ctx(GMAIL))
    long.reply(Reply(334, ("",)))
    commands = plain.sent + login.sent + long.sent
    shown = "\n".join(c.redacted + repr(c) for c in commands)
    assert [c.redacted for c in commands] == [
        "AUTH PLAIN ****",
        "AUTH LOGIN",
        "****",
        "****",
        "AUTH PLAIN",
        "****",
    ]
    for form in _secret_forms(CANARY) + _secret_forms(CANARY * 30):
        assert form not in shown
    # ... while the wire does carry the secret.
    assert b64encode_text(CANARY).encode() in login.wire[2]


# --- helpers ---------------------------------------------------------------------------


def test_b64_helpers() -> None:
    assert b64encode_text("\0alice\0secret") == "AGFsaWNlAHNlY3JldA=="
    assert b64decode_challenge(USERNAME_PROMPT) == b"Username:"
    assert b64decode_challenge(Reply(334, ("",))) == b""


@pytest.mark.parametrize("text", ["not base64!", "abc", "QUJD*", "QUJD\u00e9"])
def test_b64decode_challenge_refuses_garbage(text: str) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid base64"):
        b64decode_challenge(Reply(334, (text,)))


def test_b64decode_challenge_wants_a_334() -> None:
    with pytest.raises(LocalProtocolError):
        b64decode_challenge(ACCEPTED)


# --- writing your own mechanism ----------------------------------------------------------


class CramMD5Auth(SaslMechanismStrategy):
    """CRAM-MD5 (RFC 2195), written with the extension API as a user would."""

    mechanisms = ("CRAM-MD5",)

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username)
        self._password = Secret(password)

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        reply = yield None
        key = self._password.reveal().encode()
        yield f"{self.username} {hmac.new(key, b64decode_challenge(reply), 'md5').hexdigest()}"


def _docs_example() -> type[SaslMechanismStrategy]:
    """Execute the CRAM-MD5 block of docs/auth.md and return its class."""
    text = (ROOT / "docs" / "auth.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "CramMD5Auth" in b]
    assert len(blocks) == 1
    namespace: dict[str, object] = {"__name__": "docs_auth_example"}
    exec(compile(blocks[0], "docs/auth.md", "exec"), namespace)
    cls = namespace["CramMD5Auth"]
    assert isinstance(cls, type)
    assert issubclass(cls, SaslMechanismStrategy)
    return cls


@pytest.fixture(params=["test", "docs"])
def cram_md5(request: pytest.FixtureRequest) -> type[SaslMechanismStrategy]:
    return CramMD5Auth if request.param == "test" else _docs_example()


def test_user_defined_cram_md5_matches_rfc_2195(cram_md5: type[CramMD5Auth]) -> None:
    strategy = cram_md5("tim", "tanstaaftanstaaf")
    run = Run(strategy, ctx(frozenset({"CRAM-MD5", "PLAIN"})))
    # C: AUTH CRAM-MD5
    assert run.wire == [b"AUTH CRAM-MD5\r\n"]
    # S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
    # C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
    answer = run.reply(Reply(334, ("PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+",)))
    assert answer == b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
    assert base64.b64decode(answer) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    # S: 235 2.7.0 Authentication successful
    assert run.reply(Reply(235, ("2.7.0 Authentication successful",))) is None
    assert repr(strategy) == f"{cram_md5.__name__}(username='tim', password='***')"
    assert isinstance(strategy, AuthStrategy)
    assert strategy.credential_kind is CredentialKind.PASSWORD


def test_user_defined_cram_md5_bad_challenge_raises_remote_protocol_error() -> None:
    run = Run(CramMD5Auth("tim", "tanstaaftanstaaf"), ctx(frozenset({"CRAM-MD5"})))
    with pytest.raises(RemoteProtocolError):
        run.reply(Reply(334, ("@@not-base64@@",)))


def test_user_defined_mechanism_not_offered() -> None:
    with pytest.raises(NoCommonMechanism, match="CramMD5Auth supports CRAM-MD5"):
        CramMD5Auth("tim", "x").choose_mechanism(ctx(GMAIL))


class EchoAuth(SaslMechanismStrategy):
    """A test mechanism that records what it was sent and reports failure details."""

    mechanisms = ("X-ECHO",)

    def __init__(self, initial: str | None, answers: tuple[str | None, ...] = ()) -> None:
        super().__init__("echo")
        self.initial = initial
        self.answers = answers
        self.seen: list[Reply] = []
        self.closed = False

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        try:
            reply = yield self.initial
            for answer in self.answers:
                self.seen.append(reply)
                reply = yield answer
            self.seen.append(reply)
        finally:
            self.closed = True

    def failure_details(
        self, reply: Reply, challenges: tuple[Reply, ...]
    ) -> Mapping[str, str] | None:
        return {"final": str(reply.code), "challenges": str(len(challenges))}


def test_empty_initial_response_is_sent_as_equals_sign() -> None:
    # RFC 4954 §4: an empty initial response is "=".
    run = Run(EchoAuth(""), ctx(frozenset({"X-ECHO"})))
    assert run.wire == [b"AUTH X-ECHO =\r\n"]


def test_empty_continuation_is_an_empty_line() -> None:
    run = Run(EchoAuth(None, ("",)), ctx(frozenset({"X-ECHO"})))
    assert run.reply(Reply(334, ("",))) == b"\r\n"


def test_failure_details_are_returned_and_the_exchange_closed() -> None:
    strategy = EchoAuth("hi", ("more",))
    run = Run(strategy, ctx(frozenset({"X-ECHO"})))
    assert run.reply(Reply(334, ("e30=",))) == b"bW9yZQ==\r\n"
    assert run.reply(Reply(535, ("5.7.8 no",))) is None
    assert run.details == {"final": "535", "challenges": "1"}
    assert strategy.closed
    # The exchange never saw the 535: only 334 replies reach it.
    assert [r.code for r in strategy.seen] == [334]


def test_success_returns_no_details() -> None:
    strategy = EchoAuth("hi")
    run = Run(strategy, ctx(frozenset({"X-ECHO"})))
    assert run.reply(ACCEPTED) is None
    assert run.details is None
    assert strategy.closed


def test_exchange_ending_on_a_334_returns_details() -> None:
    run = Run(EchoAuth("hi"), ctx(frozenset({"X-ECHO"})))
    assert run.reply(Reply(334, ("",))) is None
    assert run.details == {"final": "334", "challenges": "1"}


def test_none_after_the_first_yield_is_a_local_error() -> None:
    run = Run(EchoAuth("hi", (None,)), ctx(frozenset({"X-ECHO"})))
    with pytest.raises(LocalProtocolError, match="only as its first value"):
        run.reply(Reply(334, ("",)))


def test_abandoned_flow_closes_the_exchange() -> None:
    strategy = EchoAuth(None, ("a", "b"))
    run = Run(strategy, ctx(frozenset({"X-ECHO"})))
    run.reply(Reply(334, ("",)))
    run.flow.close()
    assert strategy.closed


def test_oversized_continuation_is_refused() -> None:
    run = Run(EchoAuth(None, ("x" * 10_000,)), ctx(frozenset({"X-ECHO"})))
    with pytest.raises(MessageError, match="12288"):
        run.reply(Reply(334, ("",)))


def test_subclass_without_mechanisms_is_refused() -> None:
    class Nameless(SaslMechanismStrategy):
        def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
            yield None

    with pytest.raises(ConfigurationError, match="must name at least one"):
        Nameless("alice")


def test_flow_rule_holds_for_every_non_334_reply() -> None:
    """Property: after any non-334 reply, at any step, the flow ends and sends nothing."""
    finals = [
        ACCEPTED,
        BAD_CREDENTIALS,
        Reply(454, ("4.7.0 Too many login attempts, please try again later.",)),
        Reply(534, ("5.7.9 Application-specific password required.",)),
        Reply(501, ("5.5.2 Cannot Base64-decode Client responses",)),
    ]
    for offered in (GMAIL, MICROSOFT):
        for step in range(3 if offered is MICROSOFT else 1):
            for final in finals:
                run = Run(PasswordAuth("alice", "secret"), ctx(offered))
                for _ in range(step):
                    assert run.reply(Reply(334, ("",))) is not None
                assert run.reply(final) is None
                assert len(run.sent) == step + 1


# --- the package surface -----------------------------------------------------------------


def test_all_is_exactly_the_public_names() -> None:
    # isidentifier: pytest's assertion rewriting (smtpkit ships a pytest plugin) adds
    # "@py_builtins"-style names to rewritten modules; they are not Python names.
    public = {
        name for name in vars(smtpkit.auth) if not name.startswith("_") and name.isidentifier()
    }
    assert set(smtpkit.auth.__all__) == public
    assert len(smtpkit.auth.__all__) == len(set(smtpkit.auth.__all__))


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_auth_imports_only_lower_layers() -> None:
    forbidden = {"socket", "ssl", "time", "threading", "logging", "asyncio", "selectors"}
    allowed_internal = ("smtpkit.auth", "smtpkit.replies", "smtpkit.errors", "smtpkit.protocol")
    files = sorted((ROOT / "smtpkit" / "auth").glob("*.py"))
    assert files
    for path in files:
        for module in _imports(path):
            assert module.split(".")[0] not in forbidden, (path.name, module)
            if module.startswith("smtpkit"):
                assert module.startswith(allowed_internal), (path.name, module)


def test_docstring_examples() -> None:
    result = doctest.testmod(_base)
    assert result.failed == 0
    assert result.attempted >= 5

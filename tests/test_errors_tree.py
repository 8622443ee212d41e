"""The exception tree: structure, pickling, transience, messages and the public names."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

import smtpkit.errors as errors_module
from smtpkit.errors import (
    AppPasswordRequired,
    AuthenticationError,
    AuthenticationRequired,
    BasicAuthDisabled,
    CommandRejected,
    ConfigurationError,
    ConnectError,
    ConnectionRejected,
    ConnectionStale,
    DeliveryUnknown,
    DSNNotOffered,
    EncryptionRequired,
    ExtensionNotOffered,
    InsecureAuthRefused,
    InvalidCredentials,
    LocalProtocolError,
    MechanismUnsupported,
    MessageError,
    MessageRejected,
    MessageTooLarge,
    NoCommonMechanism,
    OperationTimeout,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    ProxyError,
    QuotaExceeded,
    QuotaStoreUnavailable,
    RateLimited,
    RecipientRejected,
    RemoteProtocolError,
    ReplyError,
    SenderRejected,
    ServerDisconnected,
    ServiceUnavailable,
    SMTPError,
    StartTLSNotOffered,
    StoreLockTimeout,
    TLSError,
    TLSModeMismatch,
    TLSUnavailable,
    TokenRefreshError,
    TokenRejected,
    TransportError,
    WebLoginRequired,
)
from smtpkit.errors._tree import TRANSCRIPT_TAIL
from smtpkit.replies import Phase, Reply

REPLY_5XX = Reply(550, ("5.7.1 Relaying denied", "see the policy page"))
REPLY_4XX = Reply(451, ("4.3.0 Temporary failure",))
TRANSCRIPT = ("C: MAIL FROM:<a@example.com>", "S: 250 2.1.0 OK", "C: RCPT TO:<b@example.com>")

REPLY_ERROR_CLASSES: list[type[ReplyError]] = [
    ReplyError,
    ServiceUnavailable,
    ConnectionRejected,
    TLSUnavailable,
    AuthenticationError,
    InvalidCredentials,
    AppPasswordRequired,
    WebLoginRequired,
    BasicAuthDisabled,
    MechanismUnsupported,
    EncryptionRequired,
    TokenRejected,
    AuthenticationRequired,
    SenderRejected,
    RecipientRejected,
    MessageRejected,
    MessageTooLarge,
    RateLimited,
    CommandRejected,
]

SIMPLE_CLASSES: list[type[SMTPError]] = [
    SMTPError,
    ConfigurationError,
    InsecureAuthRefused,
    MessageError,
    DSNNotOffered,
    LocalProtocolError,
    TransportError,
    ConnectError,
    ProxyError,
    ProxyAuthenticationError,
    ProxyConnectionRefused,
    TLSError,
    TLSModeMismatch,
    StartTLSNotOffered,
    ServerDisconnected,
    ConnectionStale,
    OperationTimeout,
    RemoteProtocolError,
]


def build_instances() -> list[SMTPError]:
    """One instance of every public error class, with every attribute set."""
    out: list[SMTPError] = [
        cls("something failed", hint="do this", transcript=TRANSCRIPT) for cls in SIMPLE_CLASSES
    ]
    out.append(
        TokenRefreshError(
            "refresh failed", transient=True, error_code="invalid_grant", hint="re-consent"
        )
    )
    out.append(StoreLockTimeout("token store /x.json stayed locked", hint="retry later"))
    out.append(
        QuotaExceeded(
            "over quota", limit="messages_per_day", used=500, allowed=500, retry_after=60.0
        )
    )
    out.append(QuotaStoreUnavailable("store down", store="sqlite /x.db", hint="check it"))
    out.append(ExtensionNotOffered("needs SMTPUTF8", extension="SMTPUTF8", hint="use another"))
    out.append(
        NoCommonMechanism(
            offered=["XOAUTH2", "OAUTHBEARER"],
            supported=["PLAIN", "LOGIN"],
            strategy="PasswordAuth",
            encrypted=True,
        )
    )
    out.append(
        DeliveryUnknown(
            "lost after the final dot",
            message_id="<id@example.com>",
            recipients=["a@example.com", "b@example.com"],
            hint="check the Sent folder before resending",
            transcript=TRANSCRIPT,
        )
    )
    for cls in REPLY_ERROR_CLASSES:
        common: dict[str, Any] = {
            "command": "RCPT TO:<b@example.com>",
            "recipient": "b@example.com",
            "provider": "gmail",
            "hint": "a hint",
            "transcript": TRANSCRIPT,
        }
        if cls is TokenRejected:
            out.append(
                TokenRejected(
                    REPLY_5XX,
                    Phase.AUTH,
                    challenge={"status": "400", "schemes": "Bearer", "scope": "s"},
                    **common,
                )
            )
        elif cls is RecipientRejected:
            out.append(
                RecipientRejected(
                    REPLY_5XX, Phase.RCPT, rejected={"c@example.com": REPLY_4XX}, **common
                )
            )
        else:
            out.append(cls(REPLY_5XX, Phase.RCPT, **common))
    return out


INSTANCES = build_instances()


def test_instances_cover_every_public_exception_class() -> None:
    public = {
        obj
        for name in errors_module.__all__
        if inspect.isclass(obj := getattr(errors_module, name)) and issubclass(obj, BaseException)
    }
    assert {type(error) for error in INSTANCES} == public


@pytest.mark.parametrize("error", INSTANCES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_to_an_equal_state(error: SMTPError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert clone.__dict__ == error.__dict__
    assert clone.args == error.args
    assert str(clone) == str(error)
    assert clone.is_transient == error.is_transient
    assert clone.hint == error.hint
    assert clone.transcript == error.transcript


def test_pickled_reply_errors_keep_their_structure() -> None:
    by_type = {type(error): error for error in INSTANCES}
    token = pickle.loads(pickle.dumps(by_type[TokenRejected]))
    assert isinstance(token, TokenRejected)
    assert (token.status, token.schemes, token.scope) == ("400", "Bearer", "s")
    assert token.reply == REPLY_5XX
    assert token.phase is Phase.AUTH
    assert token.code == 550
    assert token.enhanced_code == "5.7.1"

    recipients = pickle.loads(pickle.dumps(by_type[RecipientRejected]))
    assert isinstance(recipients, RecipientRejected)
    assert recipients.rejected == {"c@example.com": REPLY_4XX, "b@example.com": REPLY_5XX}
    assert recipients.recipient == "b@example.com"

    unknown = pickle.loads(pickle.dumps(by_type[DeliveryUnknown]))
    assert isinstance(unknown, DeliveryUnknown)
    assert unknown.recipients == ("a@example.com", "b@example.com")
    assert unknown.message_id == "<id@example.com>"

    refresh = pickle.loads(pickle.dumps(by_type[TokenRefreshError]))
    assert isinstance(refresh, TokenRefreshError)
    assert refresh.error_code == "invalid_grant"
    assert refresh.is_transient is True


# --- transience ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", REPLY_ERROR_CLASSES, ids=lambda c: c.__name__)
def test_reply_errors_are_transient_exactly_for_4xx(cls: type[ReplyError]) -> None:
    for code in (400, 421, 451, 454, 499):
        assert cls(Reply(code, ("x",)), Phase.MAIL).is_transient is True
    for code in (500, 530, 550, 554, 599):
        assert cls(Reply(code, ("x",)), Phase.MAIL).is_transient is False


def test_transport_transience() -> None:
    assert ConnectError("refused").is_transient is True
    assert ServerDisconnected("closed").is_transient is True
    assert OperationTimeout("slow").is_transient is True
    assert TLSError("bad certificate").is_transient is False
    assert RemoteProtocolError("garbage").is_transient is False
    # The server may have the message: resending could deliver it twice.
    assert DeliveryUnknown("lost").is_transient is False
    assert SMTPError("x").is_transient is False
    assert ConfigurationError("x").is_transient is False
    assert TokenRefreshError("x").is_transient is False
    assert TokenRefreshError("x", transient=True).is_transient is True


# --- messages -----------------------------------------------------------------------------------


def test_str_shows_code_enhanced_code_text_and_hint() -> None:
    reply = Reply(535, ("5.7.8 Username and Password not accepted.",))
    error = InvalidCredentials(reply, Phase.AUTH, hint="Use an app password.")
    shown = str(error)
    for part in ("535", "5.7.8", "Username and Password not accepted.", "Use an app password."):
        assert part in shown
    assert "AUTH" in shown


def test_str_names_the_command_when_known() -> None:
    error = RecipientRejected(REPLY_5XX, Phase.RCPT, command="RCPT TO:<b@example.com>")
    assert "to RCPT TO:<b@example.com>" in str(error)


def test_str_marks_locally_produced_replies() -> None:
    reply = Reply(552, ("5.3.4 Message size exceeds the advertised SIZE",))
    error = MessageTooLarge(reply, Phase.MAIL, from_server=False)
    assert "checked locally" in str(error)
    assert error.from_server is False


def test_str_without_message_shows_the_hint() -> None:
    assert str(SMTPError(hint="only a hint")) == "only a hint"
    assert str(SMTPError("only a message")) == "only a message"


def test_transcript_keeps_only_the_tail() -> None:
    lines = [f"line {n}" for n in range(TRANSCRIPT_TAIL + 15)]
    error = SMTPError("x", transcript=lines)
    assert error.transcript == tuple(lines[-TRANSCRIPT_TAIL:])


def test_recipient_rejected_records_the_recipient() -> None:
    error = RecipientRejected(REPLY_5XX, Phase.RCPT, recipient="a@example.com")
    assert error.rejected == {"a@example.com": REPLY_5XX}
    other = Reply(550, ("5.1.1 unknown",))
    error = RecipientRejected(
        REPLY_5XX, Phase.RCPT, recipient="a@example.com", rejected={"a@example.com": other}
    )
    assert error.rejected == {"a@example.com": other}


def test_token_rejected_without_challenge() -> None:
    error = TokenRejected(REPLY_5XX, Phase.AUTH)
    assert error.challenge == {}
    assert error.status is None
    assert error.scope is None
    assert error.schemes is None


# --- shape of the tree --------------------------------------------------------------------------


def test_builtin_bases() -> None:
    assert issubclass(ConnectError, ConnectionError)
    assert issubclass(ServerDisconnected, ConnectionError)
    assert issubclass(OperationTimeout, TimeoutError)
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(InsecureAuthRefused, ValueError)
    assert issubclass(MessageError, ValueError)
    assert issubclass(TLSUnavailable, ReplyError)
    assert issubclass(TLSUnavailable, TLSError)
    assert issubclass(TLSUnavailable, TransportError)
    assert issubclass(StoreLockTimeout, TimeoutError)
    assert issubclass(NoCommonMechanism, ValueError)
    # Nothing else borrows a builtin base by accident.
    assert not issubclass(ReplyError, (ConnectionError, TimeoutError, ValueError))
    assert not issubclass(TLSError, ConnectionError)


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (InvalidCredentials, AuthenticationError),
        (AppPasswordRequired, AuthenticationError),
        (WebLoginRequired, AuthenticationError),
        (BasicAuthDisabled, AuthenticationError),
        (MechanismUnsupported, AuthenticationError),
        (EncryptionRequired, AuthenticationError),
        (TokenRejected, AuthenticationError),
        (AuthenticationError, ReplyError),
        (AuthenticationRequired, ReplyError),
        (MessageTooLarge, MessageRejected),
        (RateLimited, ReplyError),
        (TLSModeMismatch, TLSError),
        (StartTLSNotOffered, TLSError),
        (DeliveryUnknown, TransportError),
        (ReplyError, SMTPError),
        (TransportError, SMTPError),
        (NoCommonMechanism, ConfigurationError),
        (StoreLockTimeout, TokenRefreshError),
    ],
)
def test_parentage(cls: type[SMTPError], parent: type[SMTPError]) -> None:
    assert issubclass(cls, parent)


def test_store_lock_timeout_is_transient() -> None:
    assert StoreLockTimeout("locked").is_transient is True


def test_moved_errors_stay_importable_where_they_were() -> None:
    import smtpkit.auth  # noqa: PLC0415
    import smtpkit.oauth  # noqa: PLC0415

    assert smtpkit.auth.NoCommonMechanism is NoCommonMechanism
    assert smtpkit.oauth.StoreLockTimeout is StoreLockTimeout


def test_authentication_required_is_not_an_authentication_failure() -> None:
    # The client never tried to log in: catching login failures must not catch it.
    assert not issubclass(AuthenticationRequired, AuthenticationError)


def test_every_exception_is_an_smtp_error() -> None:
    for name in errors_module.__all__:
        obj = getattr(errors_module, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert issubclass(obj, SMTPError), name


def test_all_is_exactly_the_public_names() -> None:
    exported = errors_module.__all__
    assert len(exported) == len(set(exported))
    defined = {
        name
        for name, obj in vars(errors_module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("smtpkit.errors")
    }
    assert set(exported) == defined
    for name in exported:
        assert hasattr(errors_module, name)
    assert {"classify", "detect_provider", "error_for_reply", "CredentialKind"} <= set(exported)

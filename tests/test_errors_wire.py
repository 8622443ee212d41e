"""Every SMTPError crosses a process boundary as the same class with the same facts.

Celery's JSON result format stores an exception as ``exc_type``, ``exc_module`` and
``exc_message`` (its ``args``) and rebuilds it with ``cls(*args)``; pickle (Celery's pickle
serializer, multiprocessing, concurrent.futures) uses ``__reduce__``. Both are checked for every
subclass of SMTPError that exists once all of smtpkit is imported, so a class added later is
covered (or fails here until it is).
"""

from __future__ import annotations

import importlib
import json
import pickle
import pkgutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import smtpkit
from smtpkit.errors import (
    DeliveryUnknown,
    NoCommonMechanism,
    RecipientRejected,
    ReplyError,
    SMTPError,
    StoreLockTimeout,
    TokenRefreshError,
    TokenRejected,
)
from smtpkit.replies import Phase, Reply

celery = pytest.importorskip("celery")

REPLY_5XX = Reply(550, ("5.1.1 <b@example.com>: User unknown", "see the policy page"))
REPLY_4XX = Reply(451, ("4.3.0 Temporary failure",))
TRANSCRIPT = (
    "C: AUTH PLAIN ********",
    "S: 235 2.7.0 Authentication successful",
    "C: RCPT TO:<b@example.com>",
)


def _all_subclasses(cls: type[SMTPError]) -> Iterator[type[SMTPError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def every_error_class() -> list[type[SMTPError]]:
    """SMTPError and every subclass defined anywhere in smtpkit."""
    for info in pkgutil.walk_packages(smtpkit.__path__, "smtpkit."):
        if not info.name.endswith("__main__"):  # running those starts the CLI
            importlib.import_module(info.name)
    found = {SMTPError, *_all_subclasses(SMTPError)}
    return sorted(found, key=lambda cls: (cls.__module__, cls.__qualname__))


def make_error(cls: type[SMTPError]) -> SMTPError:
    """An instance of ``cls`` with every fact it can carry set to a non-default value."""
    if issubclass(cls, ReplyError):
        common: dict[str, Any] = {
            "command": "RCPT TO:<b@example.com>",
            "recipient": "b@example.com",
            "provider": "gmail",
            "hint": "check the address",
            "transcript": TRANSCRIPT,
        }
        if issubclass(cls, TokenRejected):
            challenge = {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
            return cls(REPLY_5XX, Phase.AUTH, challenge=challenge, **common)
        if issubclass(cls, RecipientRejected):
            rejected = {"c@example.com": REPLY_4XX}
            return cls(REPLY_5XX, Phase.RCPT, rejected=rejected, **common)
        return cls(REPLY_5XX, Phase.RCPT, **common)
    if issubclass(cls, NoCommonMechanism):
        return cls(
            offered=["XOAUTH2", "OAUTHBEARER"],
            supported=["PLAIN", "LOGIN"],
            strategy="PasswordAuth",
            encrypted=True,
        )
    if issubclass(cls, DeliveryUnknown):
        return cls(
            "lost after the final dot",
            message_id="<id@example.com>",
            recipients=["a@example.com", "b@example.com"],
            hint="check the Sent folder before resending",
            transcript=TRANSCRIPT,
        )
    if issubclass(cls, StoreLockTimeout):
        return cls("token store stayed locked", hint="retry later", transcript=TRANSCRIPT)
    if issubclass(cls, TokenRefreshError):
        return cls(
            "refresh failed",
            transient=True,
            error_code="invalid_grant",
            hint="sign in again",
            transcript=TRANSCRIPT,
        )
    return cls("something failed", hint="do this", transcript=TRANSCRIPT)


CLASSES = every_error_class()


def test_the_enumeration_finds_the_whole_tree() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert len(CLASSES) >= 37
    assert {"SMTPError", "RecipientRejected", "DeliveryUnknown", "TokenRejected"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_the_factory_builds_each_class_exactly(cls: type[SMTPError]) -> None:
    # A new error class whose constructor the factory cannot call fails here: teach
    # make_error() about it, and the round trips below then cover it.
    assert type(make_error(cls)) is cls


def assert_same_error(clone: BaseException, error: SMTPError) -> None:
    """``clone`` is ``error``'s class and carries every fact ``error`` carries."""
    assert type(clone) is type(error)
    assert isinstance(clone, SMTPError)
    assert clone.__dict__ == error.__dict__
    assert str(clone) == str(error)
    assert repr(clone) == repr(error)
    assert clone.args == error.args
    assert clone.message == error.message
    assert clone.hint == error.hint
    assert clone.transcript == error.transcript
    assert clone.is_transient == error.is_transient
    if isinstance(error, ReplyError):
        assert isinstance(clone, ReplyError)
        assert clone.reply == error.reply
        assert isinstance(clone.reply, Reply)
        assert clone.code == error.code == 550
        assert clone.enhanced_code == error.enhanced_code == "5.1.1"
        assert clone.phase is error.phase
        assert (clone.command, clone.recipient, clone.provider) == (
            error.command,
            error.recipient,
            error.provider,
        )
        assert clone.from_server is error.from_server
    if isinstance(error, RecipientRejected):
        assert isinstance(clone, RecipientRejected)
        assert clone.rejected == {"c@example.com": REPLY_4XX, "b@example.com": REPLY_5XX}
        assert all(isinstance(reply, Reply) for reply in clone.rejected.values())
    if isinstance(error, DeliveryUnknown):
        assert isinstance(clone, DeliveryUnknown)
        assert clone.message_id == "<id@example.com>"
        assert clone.recipients == ("a@example.com", "b@example.com")
    if isinstance(error, TokenRejected):
        assert isinstance(clone, TokenRejected)
        assert (clone.status, clone.schemes) == ("400", "Bearer")
    if isinstance(error, NoCommonMechanism):
        assert isinstance(clone, NoCommonMechanism)
        assert clone.offered == ("OAUTHBEARER", "XOAUTH2")
        assert clone.supported == ("PLAIN", "LOGIN")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_pickle_round_trip(cls: type[SMTPError]) -> None:
    error = make_error(cls)
    assert_same_error(pickle.loads(pickle.dumps(error)), error)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_rebuilt_from_its_args_alone(cls: type[SMTPError]) -> None:
    # What Celery (and any "type + module + args" store) does: cls(*args), after JSON.
    error = make_error(cls)
    args = json.loads(json.dumps(error.args))
    assert_same_error(cls(*args), error)


@pytest.fixture(scope="module")
def json_backend() -> Any:
    app = celery.Celery("smtpkit_wire", backend="cache+memory://")
    app.conf.update(result_serializer="json", accept_content=["json"])
    return app.backend


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_celery_json_exception_round_trip(cls: type[SMTPError], json_backend: Any) -> None:
    # Celery's own helpers: what a worker stores for a failed task, and what
    # AsyncResult.get() rebuilds from it on the caller's side.
    error = make_error(cls)
    stored = json_backend.prepare_exception(error)
    assert stored["exc_module"] == cls.__module__
    decoded = json_backend.decode(json_backend.encode(stored))
    assert_same_error(json_backend.exception_to_python(decoded), error)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__qualname__)
def test_celery_result_get_raises_the_same_class(cls: type[SMTPError], json_backend: Any) -> None:
    error = make_error(cls)
    task_id = str(uuid.uuid4())
    json_backend.mark_as_failure(task_id, error)
    result = celery.result.AsyncResult(task_id, backend=json_backend)
    with pytest.raises(cls) as caught:
        result.get(timeout=5, disable_sync_subtasks=False)
    assert_same_error(caught.value, error)


def test_celery_pickle_exception_round_trip() -> None:
    app = celery.Celery("smtpkit_wire_pickle", backend="cache+memory://")
    app.conf.update(result_serializer="pickle", accept_content=["pickle", "json"])
    error = make_error(RecipientRejected)
    stored = app.backend.prepare_exception(error)
    decoded = app.backend.decode(app.backend.encode(stored))
    assert_same_error(app.backend.exception_to_python(decoded), error)


def test_ordinary_construction_is_unchanged() -> None:
    # The rebuild form is recognised only by its marker: normal calls keep their meaning.
    error = SMTPError("plain message")
    assert error.message == "plain message"
    assert str(error) == "plain message"
    assert repr(error) == "SMTPError('plain message')"
    with pytest.raises(TypeError):
        SMTPError("message", {"not": "facts"})  # type: ignore[call-arg]


def test_facts_are_plain_json() -> None:
    error = make_error(RecipientRejected)
    message, facts = error.args
    assert message == error.message
    # Only JSON types: dumps would raise on a Reply, an enum or a tuple kept as such.
    assert json.loads(json.dumps(facts)) == facts


def test_a_tampered_payload_cannot_name_other_types() -> None:
    # The facts rebuild only the value types smtpkit knows; nothing is imported by name.
    error = make_error(RecipientRejected)
    message, facts = json.loads(json.dumps(error.args))
    facts["attrs"]["phase"] = {"$enum": "os.system", "value": "echo"}
    with pytest.raises(ValueError, match="unknown"):
        RecipientRejected(message, facts)

"""The exception tree keeps its module name while its families live in modules of their own.

A pickle names a class by module and name, and Celery's JSON results store ``exc_module``:
both said ``smtpkit.errors._tree`` before the families moved out of it. These tests hold
that name, and load pickles made by the code as it was before the move.
"""

from __future__ import annotations

import inspect
import pickle

import pytest

import smtpkit.errors as errors_module
from smtpkit.errors import (
    DeliveryUnknown,
    RecipientRejected,
    SMTPError,
    StoreLockTimeout,
    TokenRefreshError,
    _tree,
)
from smtpkit.replies import Phase, Reply

PUBLIC_CLASSES = [
    obj for name in errors_module.__all__ if inspect.isclass(obj := getattr(errors_module, name))
]

# Made with pickle.dumps(error, protocol=4) before the tree was split into family modules.
OLD_RECIPIENT_REJECTED = (
    b"\x80\x04\x95\x83\x01\x00\x00\x00\x00\x00\x00\x8c\x14smtpkit.errors._tree\x94\x8c\x08"
    b"_restore\x94\x93\x94h\x00\x8c\x11RecipientRejected\x94\x93\x94\x8c,550 5.1.1 unknown to"
    b" RCPT TO:<b@example.com>\x94\x85\x94}\x94(\x8c\x07message\x94h\x05\x8c\x04hint\x94N\x8c"
    b"\ntranscript\x94\x8c\x1aC: RCPT TO:<b@example.com>\x94\x85\x94\x8c\x05reply\x94\x8c\x0f"
    b"smtpkit.replies\x94\x8c\x05Reply\x94\x93\x94)\x81\x94]\x94(M&\x02\x8c\r5.1.1 unknown\x94"
    b"\x85\x94eb\x8c\x05phase\x94h\x0e\x8c\x05Phase\x94\x93\x94\x8c\x04rcpt\x94\x85\x94R\x94\x8c"
    b"\x07command\x94\x8c\x17RCPT TO:<b@example.com>\x94\x8c\trecipient\x94\x8c\rb@example.com"
    b"\x94\x8c\x08provider\x94N\x8c\x0bfrom_server\x94\x88\x8c\x08rejected\x94}\x94h\x1eh\x11su"
    b"\x87\x94R\x94."
)
OLD_DELIVERY_UNKNOWN = (
    b"\x80\x04\x95\xa2\x00\x00\x00\x00\x00\x00\x00\x8c\x14smtpkit.errors._tree\x94\x8c\x08"
    b"_restore\x94\x93\x94h\x00\x8c\x0fDeliveryUnknown\x94\x93\x94\x8c\x04lost\x94\x85\x94}\x94"
    b"(\x8c\x07message\x94h\x05\x8c\x04hint\x94N\x8c\ntranscript\x94)\x8c\nmessage_id\x94\x8c"
    b"\x05<m@x>\x94\x8c\nrecipients\x94\x8c\ra@example.com\x94\x85\x94u\x87\x94R\x94."
)
OLD_STORE_LOCK_TIMEOUT = (
    b"\x80\x04\x95\xa0\x00\x00\x00\x00\x00\x00\x00\x8c\x14smtpkit.errors._tree\x94\x8c\x08"
    b"_restore\x94\x93\x94h\x00\x8c\x10StoreLockTimeout\x94\x93\x94\x8c\x06locked\x94\x85\x94}"
    b"\x94(\x8c\x07message\x94h\x05\x8c\x04hint\x94\x8c\x04wait\x94\x8c\ntranscript\x94)\x8c\t"
    b"transient\x94\x88\x8c\nerror_code\x94N\x8c\tchallenge\x94}\x94u\x87\x94R\x94."
)


@pytest.mark.parametrize("cls", PUBLIC_CLASSES, ids=lambda cls: cls.__qualname__)
def test_every_public_class_keeps_the_tree_module_name(cls: type) -> None:
    assert cls.__module__ == "smtpkit.errors._tree"
    # pickle and Celery look the class up by that name: it must find this very class.
    assert getattr(_tree, cls.__qualname__) is cls


def test_the_tree_module_exports_every_public_class() -> None:
    assert set(_tree.__all__) == {cls.__qualname__ for cls in PUBLIC_CLASSES}


def test_a_new_pickle_names_only_the_tree_module() -> None:
    error = RecipientRejected(Reply(550, ("5.1.1 unknown",)), Phase.RCPT, recipient="b@x.org")
    data = pickle.dumps(error, protocol=4)
    assert b"smtpkit.errors._tree" in data
    for family in (b"_base", b"_local", b"_transport", b"_reply", b"_auth"):
        assert b"smtpkit.errors." + family not in data


def test_a_recipient_rejected_pickled_before_the_split_loads_whole() -> None:
    error = pickle.loads(OLD_RECIPIENT_REJECTED)
    assert type(error) is RecipientRejected
    assert error.reply == Reply(550, ("5.1.1 unknown",))
    assert error.phase is Phase.RCPT
    assert error.recipient == "b@example.com"
    assert error.command == "RCPT TO:<b@example.com>"
    assert error.rejected == {"b@example.com": Reply(550, ("5.1.1 unknown",))}
    assert error.transcript == ("C: RCPT TO:<b@example.com>",)
    assert error.code == 550
    assert error.enhanced_code == "5.1.1"
    assert str(error) == "550 5.1.1 unknown to RCPT TO:<b@example.com>"


def test_a_delivery_unknown_pickled_before_the_split_loads_whole() -> None:
    error = pickle.loads(OLD_DELIVERY_UNKNOWN)
    assert type(error) is DeliveryUnknown
    assert error.message_id == "<m@x>"
    assert error.recipients == ("a@example.com",)
    assert error.is_transient is False


def test_a_store_lock_timeout_pickled_before_the_split_loads_whole() -> None:
    error = pickle.loads(OLD_STORE_LOCK_TIMEOUT)
    assert type(error) is StoreLockTimeout
    assert isinstance(error, TokenRefreshError)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, SMTPError)
    assert error.hint == "wait"
    assert error.is_transient is True

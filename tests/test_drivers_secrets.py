"""Both drivers: secrets a hostile server echoes back never leave the client.

The hostile loopback server of ``tests/test_hardening_redaction.py`` answers AUTH by quoting
every form of what it was sent (raw base64, decoded, cut short, inside a JSON challenge).
Under each driver the canaries must not appear in ``str()``/``repr()`` of the error, its
reply, transcript or challenge, its pickle, the DEBUG wire log, or ``repr()`` of the
submitter.
"""

from __future__ import annotations

import logging
import pickle

import pytest
from drivers_kit import DriverFactory, driver, mail

from smtpkit import ReplyError, Security, SMTPError
from tests.hostile_server import HostileServer
from tests.test_hardening_redaction import CASES, REFUSALS, forms_of, hostile, sent_payloads

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_secret_the_server_echoes_leaves_the_client(
    driver: DriverFactory, caplog: pytest.LogCaptureFixture, name: str, refusal: str
) -> None:
    case = CASES[name]
    caplog.set_level(logging.DEBUG, logger="smtpkit")
    with HostileServer(hostile(refusal)) as server:
        client = driver.client(
            server.host,
            server.port,
            security=Security.NONE,  # 127.0.0.1: plaintext AUTH is allowed to loopback
            auth=case.build(),
        )
        with pytest.raises(SMTPError) as caught:
            client.send(mail())
        shown = repr(client.submitter)
        client.close()
    assert server.errors == []
    [peer] = server.peers
    sent = sent_payloads(peer)
    assert sent, "the client sent no AUTH payload: the test proves nothing"
    error = caught.value
    assert isinstance(error, ReplyError)
    # The refusal itself survives, masked: the echo arrived and was redacted, not dropped.
    assert error.reply.code == int(REFUSALS[refusal][0])
    assert "****" in str(error.reply)

    log = "\n".join(record.getMessage() for record in caplog.records)
    assert "S: " in log  # the wire log was on ...
    assert "****" in log  # ... and masked
    blob = pickle.dumps(error)
    places = {
        "str": str(error),
        "repr": repr(error),
        "reply": str(error.reply) + repr(error.reply.lines),
        "transcript": "\n".join(error.transcript),
        "challenge": repr(getattr(error, "challenge", None)),
        "log": log,
        "submitter": shown,
    }
    for form in forms_of(case.secret, sent):
        for place, text in places.items():
            assert form not in text, f"{form[:20]!r}... leaked through {place}"
        assert form.encode() not in blob, f"{form[:20]!r}... leaked through the pickle"

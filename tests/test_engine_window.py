"""The BDAT window, byte for byte with no sockets: several whole transactions in flight on
one connection, replies matched to their message, and every outcome exact when a message
fails or the connection ends at any position.

The scripted server (``tests/engine_script.py``) hands out one reply per ``Receive`` here,
so the order of effects shows exactly when the client writes and when it waits.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from engine_script import (
    EHLO_CHUNKING,
    EHLO_PIPELINING,
    Job,
    Script,
    lines,
    message,
    raw_content,
)
from test_engine_transactions import link_for

from smtpkit import (
    ConnectionStale,
    DeliveryUnknown,
    MessageRejected,
    RecipientRejected,
    SenderRejected,
    SendResult,
    ServerDisconnected,
    ServiceUnavailable,
)
from smtpkit.engine import Link, Transactions, Write
from smtpkit.engine import _window as window_module

OK = b"250 2.0.0 OK\r\n"
MAIL_OK = b"250 2.1.0 Ok\r\n"
RCPT_OK = b"250 2.1.5 Ok\r\n"
RSET_OK = b"250 2.0.0 Ok\r\n"
CLOSING = b"421 4.3.2 Service shutting down\r\n"
EOF = b""


def queued(number: int) -> bytes:
    return f"250 2.0.0 Ok: queued as Q{number}\r\n".encode()


def envelope(to: Sequence[str] = ("bob@example.test",)) -> bytes:
    return lines("MAIL FROM:<alice@example.test>", *(f"RCPT TO:<{a}>" for a in to))


def bdat(job: Job) -> bytes:
    content = raw_content(job)
    return f"BDAT {len(content)} LAST\r\n".encode() + content


def jobs(count: int) -> list[Job]:
    return [message(number) for number in range(1, count + 1)]


def replies_of(number: int, *, first: bool = False, rcpts: int = 1) -> list[bytes]:
    """What a server that accepts everything answers message ``number``, reply by reply."""
    head = [] if first else [RSET_OK]
    return [*head, MAIL_OK, *[RCPT_OK] * rcpts, queued(number)]


def start(size: int, script: Script, ehlo: bytes = EHLO_CHUNKING) -> Link:
    return link_for(ehlo, script, window=size)


def send(script: Script, link: Link, batch: list[Job]) -> Transactions[Job]:
    script.jobs.extend(batch[1:])
    run = Transactions(link, batch[0])
    script.run(run.steps())
    return run


def trace(script: Script) -> str:
    """The effects as letters: W write, r receive, t take, p report."""
    letters = {"Write": "W", "Receive": "r", "TakeNext": "t", "Report": "p"}
    return "".join(letters.get(kind, "?") for kind in script.kinds())


def names(script: Script, kind: type) -> list[str]:
    return [name for name, outcome in script.outcomes().items() if isinstance(outcome, kind)]


# -- the window ------------------------------------------------------------------------------


def test_three_messages_go_out_before_the_first_is_answered() -> None:
    script = Script()
    link = start(3, script)
    batch = jobs(4)
    script.serve(MAIL_OK, RCPT_OK, queued(1))
    for number in (2, 3, 4):
        script.serve(*replies_of(number))
    send(script, link, batch)
    first, second, third, fourth = batch
    assert script.writes == [
        envelope(),
        # Message 1's content and two whole transactions in one write: the server reads
        # them as one group and answers in one flush.
        bdat(first)
        + lines("RSET")
        + envelope()
        + bdat(second)
        + lines("RSET")
        + envelope()
        + bdat(third),
        lines("RSET") + envelope() + bdat(fourth),
    ]
    # The first envelope alone (W rr), then three messages before any reply; each reply
    # read frees a place for the next message.
    assert trace(script) == "Wrr" + "ttW" + "rpt" + "W" + "rrrrpt" * 3
    outcomes = script.outcomes()
    assert [outcomes[f"m{n}"].reply.text for n in (1, 2, 3, 4)] == [  # type: ignore[union-attr]
        f"Ok: queued as Q{n}" for n in (1, 2, 3, 4)
    ]
    assert link.messages_sent == 4
    assert link.alive


def test_window_one_and_servers_without_chunking_keep_the_old_exchange() -> None:
    for ehlo, size in ((EHLO_CHUNKING, 1), (EHLO_PIPELINING, 8)):
        script = Script()
        link = start(size, script, ehlo)
        run = Transactions(link, message(1))
        assert run.window == 1
    script = Script()
    link = link_for(EHLO_CHUNKING, script, window=8, chunking=False)
    assert Transactions(link, message(1)).window == 1


def test_a_job_not_ready_now_is_not_waited_for_inside_the_window() -> None:
    script = Script()
    link = start(4, script)
    first, second = jobs(2)
    # TakeNext answers None (nothing ready now): the run reads what is due instead.
    script.jobs.extend([None, second])
    script.serve(MAIL_OK, RCPT_OK, queued(1), MAIL_OK, RCPT_OK, queued(2))
    script.run(Transactions(link, first).steps())
    assert script.writes == [envelope(), bdat(first), envelope() + bdat(second)]
    # Message 2 starts with nothing in flight: no RSET in front of its MAIL.
    assert isinstance(script.outcomes()["m2"], SendResult)


def test_the_window_is_bounded_in_octets() -> None:
    script = Script()
    link = start(8, script)
    body = "x" * 70 + "\n"
    batch = [message(n, body=body * 8_000) for n in (1, 2, 3)]  # ~570 KB each
    # Messages 2 and 3 are written with nothing in flight: no RSET in front of them.
    script.serve(MAIL_OK, RCPT_OK, queued(1), *replies_of(2)[1:], *replies_of(3)[1:])
    send(script, link, batch)
    assert script.writes[1:] == [
        bdat(batch[0]),
        envelope() + bdat(batch[1]),
        envelope() + bdat(batch[2]),
    ]
    # Two do not fit in WINDOW_BYTES together: each is held (taken, not written) until the
    # one before is answered.
    assert trace(script) == "WrrtW" + "rptW" + "rrrptW" + "rrrpt"
    assert all(isinstance(o, SendResult) for o in script.outcomes().values())


def test_a_message_of_several_chunks_is_sent_alone() -> None:
    script = Script()
    link = start(8, script)
    small, after = message(1), message(3)
    large = message(2, body=("y" * 76 + "\n") * 20_000)  # ~1.5 MB: two chunks
    content = raw_content(large)
    chunk = window_module.CHUNK
    script.serve(MAIL_OK, RCPT_OK, queued(1))
    script.serve(MAIL_OK, RCPT_OK, OK, queued(2), *replies_of(3)[1:])
    send(script, link, [small, large, after])
    # The large message does not fit behind message 1: held until it is answered, then
    # written alone, chunk by chunk; message 3 waits for its final reply.
    assert script.writes[2] == envelope() + b"BDAT %d\r\n" % chunk + content[:chunk]
    assert script.writes[3] == b"BDAT %d LAST\r\n" % (len(content) - chunk) + content[chunk:]
    assert trace(script) == "WrrtW" + "rp" + "WW" + "rrrrp" + "ttW" + "rrrpt"
    assert all(isinstance(o, SendResult) for o in script.outcomes().values())


def test_the_window_is_bounded_in_replies_due(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(window_module, "MAX_REPLIES", 9)
    script = Script()
    link = start(8, script)
    to = "a@example.test, b@example.test, c@example.test"
    batch = [message(n, to=to) for n in (1, 2, 3)]
    rcpts = ["a@example.test", "b@example.test", "c@example.test"]
    script.serve(MAIL_OK, *[RCPT_OK] * 3, queued(1))
    script.serve(*replies_of(2, rcpts=3), *replies_of(3, rcpts=3)[1:])
    send(script, link, batch)
    assert script.writes[1] == bdat(batch[0]) + lines("RSET") + envelope(rcpts) + bdat(batch[1])
    assert script.writes[2] == envelope(rcpts) + bdat(batch[2])
    # 1 reply due for message 1 + 6 for message 2 fit in 9; message 3 (6 more) is held
    # until message 2 is answered too.
    assert trace(script) == "WrrrrttW" + "rp" + "rrrrrrptW" + "rrrrrpt"


# -- one message fails; the others are untouched ---------------------------------------------

REFUSED_MAIL = b"553 5.7.1 Sender address rejected\r\n"
NEED_MAIL = b"503 5.5.1 Error: need MAIL command\r\n"
NO_RCPT = b"554 5.5.1 Error: no valid recipients\r\n"
UNKNOWN_USER = b"550 5.1.1 User unknown\r\n"
CONTENT_REFUSED = b"554 5.7.1 Message content rejected\r\n"
RATE = b"452 4.5.3 Too many recipients\r\n"


def failing(kind: str, number: int, *, first: bool) -> list[bytes]:
    """The replies to message ``number`` when it fails as ``kind``."""
    head = [] if first else [RSET_OK]
    if kind == "mail":  # RFC 3030 §3: BDAT without a transaction gets 503, octets read
        return [*head, REFUSED_MAIL, NEED_MAIL, NEED_MAIL]
    if kind == "every rcpt":
        return [*head, MAIL_OK, UNKNOWN_USER, NO_RCPT]
    if kind == "452 rcpt":
        return [*head, MAIL_OK, RATE, NO_RCPT]
    if kind == "content":
        return [*head, MAIL_OK, RCPT_OK, CONTENT_REFUSED]
    raise AssertionError(kind)


CODES = {"mail": 553, "every rcpt": 550, "452 rcpt": 452, "content": 554}
EXPECTED = {
    "mail": SenderRejected,
    "every rcpt": RecipientRejected,
    "452 rcpt": RecipientRejected,
    "content": MessageRejected,
}


@pytest.mark.parametrize("kind", list(EXPECTED))
@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_a_refused_message_at_any_position_leaves_the_others_accepted(
    kind: str, position: int
) -> None:
    script = Script()
    link = start(3, script)
    batch = jobs(4)
    for number in range(1, 5):
        first = number == 1
        if number != position:
            script.serve(*replies_of(number, first=first))
        elif first and kind in ("mail", "every rcpt", "452 rcpt"):
            script.serve(*failing(kind, number, first=True)[:2])  # no content follows
        else:
            script.serve(*failing(kind, number, first=first))
    if position == 4:
        script.serve(RSET_OK)  # the run ends with the server's state cleared
    send(script, link, batch)
    outcomes = script.outcomes()
    failed = outcomes[f"m{position}"]
    assert isinstance(failed, EXPECTED[kind]), failed
    assert failed.reply.code == CODES[kind]
    others = [n for n in range(1, 5) if n != position]
    for n in others:
        assert isinstance(outcomes[f"m{n}"], SendResult), (n, outcomes[f"m{n}"])
        assert outcomes[f"m{n}"].reply.text.endswith(f"Q{n}")  # type: ignore[union-attr]
    assert link.alive
    assert link.messages_sent == 3
    # Every MAIL after the first has an RSET in front of it (written while an earlier BDAT
    # was unanswered, or after a refusal): a failed message never disturbs the next.
    wire = script.wire
    assert wire.count(b"MAIL FROM") == 4
    assert wire.count(b"RSET\r\nMAIL FROM") == 3
    assert wire.endswith(b"RSET\r\n") == (position == 4)
    if kind == "mail" and position == 1:
        assert bdat(batch[0]) not in wire  # a refused first envelope sends no content


@pytest.mark.parametrize("position", [1, 2, 3, 4])
def test_some_recipients_refused_at_any_position_are_listed_and_the_message_sent(
    position: int,
) -> None:
    script = Script()
    link = start(3, script)
    two = "bob@example.test, nobody@example.test"
    batch = [message(n, to=two if n == position else "bob@example.test") for n in (1, 2, 3, 4)]
    for number in (1, 2, 3, 4):
        head = [] if number == 1 else [RSET_OK]
        if number == position:
            script.serve(*head, MAIL_OK, RCPT_OK, UNKNOWN_USER, queued(number))
        else:
            script.serve(*replies_of(number, first=number == 1))
    send(script, link, batch)
    outcomes = script.outcomes()
    assert all(isinstance(o, SendResult) for o in outcomes.values()), outcomes
    partial = outcomes[f"m{position}"]
    assert isinstance(partial, SendResult)
    assert partial.accepted == ("bob@example.test",)
    assert partial.rejected["nobody@example.test"].code == 550
    assert partial.reply.text.endswith(f"Q{position}")
    assert link.messages_sent == 4
    assert not script.wire.endswith(b"RSET\r\n")  # nothing refused: no RSET at the end


def test_some_recipients_refused_are_listed_on_the_result() -> None:
    script = Script()
    link = start(3, script)
    batch = [message(1), message(2, to="bob@example.test, nobody@example.test"), message(3)]
    script.serve(*replies_of(1, first=True))
    script.serve(RSET_OK, MAIL_OK, RCPT_OK, UNKNOWN_USER, queued(2), *replies_of(3))
    send(script, link, batch)
    result = script.outcomes()["m2"]
    assert isinstance(result, SendResult)
    assert result.accepted == ("bob@example.test",)
    assert result.rejected["nobody@example.test"].code == 550
    assert isinstance(script.outcomes()["m3"], SendResult)


def test_after_a_refusal_with_nothing_in_flight_rset_goes_first_and_last() -> None:
    script = Script()
    link = start(3, script)
    first, second = jobs(2)
    script.jobs.extend([None, second])
    script.serve(MAIL_OK, RCPT_OK, CONTENT_REFUSED, RSET_OK, MAIL_OK, RCPT_OK, CONTENT_REFUSED)
    script.serve(RSET_OK)
    script.run(Transactions(link, first).steps())
    assert script.writes == [
        envelope(),
        bdat(first),
        lines("RSET") + envelope() + bdat(second),
        lines("RSET"),  # the run ends with the server's state cleared (RFC 3030 §2)
    ]
    assert names(script, MessageRejected) == ["m1", "m2"]


# -- the connection ends at any position -----------------------------------------------------

#: Three messages in a window of three: the first envelope alone (2 replies), its content
#: (1), then two whole transactions (4 each).
STREAM = [MAIL_OK, RCPT_OK, queued(1), *replies_of(2), *replies_of(3)]
#: The index of each message's last reply in STREAM.
LAST_REPLY = {1: 2, 2: 6, 3: 10}


@pytest.mark.parametrize("cut", range(len(STREAM)))
def test_a_connection_lost_at_any_reply_leaves_at_most_window_messages_unknown(cut: int) -> None:
    script = Script()
    link = start(3, script)
    batch = jobs(3)
    script.serve(*STREAM[:cut], EOF)
    send(script, link, batch)
    outcomes = script.outcomes()
    if cut < 2:
        # The first envelope was not answered: nothing was committed; the other jobs were
        # never taken (a fresh link: the error itself, retried under the Retry policy).
        assert isinstance(outcomes["m1"], ServerDisconnected)
        assert not isinstance(outcomes["m1"], DeliveryUnknown)
        assert list(outcomes) == ["m1"]
        assert script.jobs  # still queued, never taken
        return
    for number, last in LAST_REPLY.items():
        outcome = outcomes[f"m{number}"]
        if last < cut:
            assert isinstance(outcome, SendResult), (number, outcome)
        else:
            # Its BDAT LAST was written and its final reply never came.
            assert isinstance(outcome, DeliveryUnknown), (number, outcome)
            assert outcome.message_id == f"<{number}@example.test>"
    assert len(names(script, DeliveryUnknown)) <= 3
    assert not link.alive


@pytest.mark.parametrize("at", range(len(STREAM)))
def test_a_421_at_any_reply_ends_the_window_and_the_rest_is_stale(at: int) -> None:
    script = Script()
    link = start(3, script)
    batch = jobs(3)
    script.serve(*STREAM[:at], CLOSING)
    send(script, link, batch)
    outcomes = script.outcomes()
    assert not link.alive
    if at < 2:  # the first envelope (a fresh link: the 421 itself)
        assert isinstance(outcomes["m1"], ServiceUnavailable)
        assert list(outcomes) == ["m1"]
        return
    hit = next(n for n, last in LAST_REPLY.items() if at <= last)
    for number in (1, 2, 3):
        outcome = outcomes[f"m{number}"]
        if number < hit:
            assert isinstance(outcome, SendResult)
        elif number > hit:
            # RFC 5321 §3.8: nothing after the 421 was read: not accepted, sent again freely.
            assert isinstance(outcome, ConnectionStale), (number, outcome)
        else:
            replies_before = at - (LAST_REPLY[hit - 1] + 1 if hit > 1 else 0)
            answered = "RSET" if hit > 1 and replies_before == 0 else None
            if answered == "RSET" or (hit > 1 and replies_before == 1):
                # 421 to RSET, or to MAIL on a link already used: stale.
                assert isinstance(outcome, ConnectionStale), outcome
            else:
                assert isinstance(outcome, ServiceUnavailable), outcome
                assert outcome.reply.code == 421
    assert len(outcomes) == 3


def test_everything_after_a_message_refused_by_a_421_is_stale_not_unknown() -> None:
    script = Script()
    link = start(4, script)
    script.serve(*replies_of(1, first=True), RSET_OK, MAIL_OK, RCPT_OK, CLOSING)
    send(script, link, jobs(4))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SendResult)
    assert isinstance(outcomes["m2"], ServiceUnavailable)
    assert isinstance(outcomes["m3"], ConnectionStale)
    assert isinstance(outcomes["m4"], ConnectionStale)
    assert names(script, DeliveryUnknown) == []


def test_a_refusal_read_before_the_connection_is_lost_stays_the_outcome() -> None:
    script = Script()
    link = start(3, script)
    # Message 2: every recipient refused, then the connection drops before its BDAT reply:
    # the server cannot have accepted its content; message 3 may have been.
    script.serve(*replies_of(1, first=True), RSET_OK, MAIL_OK, UNKNOWN_USER, EOF)
    send(script, link, jobs(3))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m2"], RecipientRejected)
    assert isinstance(outcomes["m3"], DeliveryUnknown)


def test_a_timeout_on_a_reply_is_a_lost_connection() -> None:
    script = Script()
    link = start(3, script)
    script.serve(*replies_of(1, first=True))  # then nothing: the script times out
    send(script, link, jobs(3))
    assert names(script, DeliveryUnknown) == ["m2", "m3"]


class FailingWrites(Script):
    """A scripted server whose connection breaks on the ``fail_at``-th write."""

    fail_at = -1

    def perform(self, effect: object) -> object:
        if isinstance(effect, Write) and len(self.writes) == self.fail_at:
            self.effects.append(effect)
            raise ServerDisconnected("connection reset by peer during send")
        return super().perform(effect)  # type: ignore[arg-type]


def test_a_421_waiting_behind_a_failed_write_is_still_read() -> None:
    script = FailingWrites()
    link = start(3, script)
    script.fail_at = 2  # the envelope, messages 1-3: the write of message 4 fails
    script.serve(*replies_of(1, first=True), CLOSING)
    send(script, link, jobs(5))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SendResult)
    # The 421 answered message 2's RSET: nothing from there on was read by the server.
    assert isinstance(outcomes["m2"], ConnectionStale)
    assert isinstance(outcomes["m3"], ConnectionStale)
    assert isinstance(outcomes["m4"], ConnectionStale)
    assert "m5" not in outcomes  # never taken: nothing is written after a failed write
    assert not link.alive


def test_after_a_failed_write_the_replies_due_decide_then_the_link_is_dead() -> None:
    script = FailingWrites()
    link = start(3, script)
    script.fail_at = 2
    script.serve(*replies_of(1, first=True), *replies_of(2), EOF)
    send(script, link, jobs(5))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SendResult)
    assert isinstance(outcomes["m2"], SendResult)
    assert isinstance(outcomes["m3"], DeliveryUnknown)  # written, never answered
    assert isinstance(outcomes["m4"], DeliveryUnknown)  # part of it may have left
    assert "m5" not in outcomes
    assert len(script.writes) == 2
    assert not link.alive


# -- servers that break the rules ------------------------------------------------------------


def test_content_accepted_for_a_refused_envelope_ends_the_connection_as_unknown() -> None:
    script = Script()
    link = start(3, script)
    script.serve(*replies_of(1, first=True), RSET_OK, REFUSED_MAIL, NEED_MAIL, queued(2))
    send(script, link, jobs(3))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m2"], DeliveryUnknown)
    assert isinstance(outcomes["m3"], DeliveryUnknown)  # written; the server is not trusted
    assert not link.alive


def test_a_refused_rset_ends_the_connection() -> None:
    script = Script()
    link = start(3, script)
    script.serve(*replies_of(1, first=True), b"500 5.5.2 Error: bad syntax\r\n")
    send(script, link, jobs(3))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SendResult)
    assert isinstance(outcomes["m2"], DeliveryUnknown)
    assert isinstance(outcomes["m3"], DeliveryUnknown)
    assert not link.alive
    assert "RSET" in str(outcomes["m2"])


# -- stopped by the driver -------------------------------------------------------------------


def test_a_run_stopped_mid_window_reports_written_messages_unknown_and_held_ones_stale() -> None:
    script = Script()
    link = start(2, script)
    batch = jobs(4)
    script.jobs.extend(batch[1:])
    run = Transactions(link, batch[0])
    steps = run.steps()
    script.serve(MAIL_OK, RCPT_OK)
    effect = steps.send(None)
    receives = 0
    for _ in range(100):  # until the third Receive: the window is full and waiting
        if type(effect).__name__ == "Receive":
            receives += 1
            if receives == 3:
                break
        effect = steps.send(script.perform(effect))
    steps.close()
    left = {job.name: outcome for job, outcome in run.abandoned(KeyboardInterrupt())}
    assert set(left) == {"m1", "m2"}
    assert all(isinstance(outcome, DeliveryUnknown) for outcome in left.values())
    assert [job.name for job in script.jobs if job is not None] == ["m3", "m4"]  # not taken


def test_a_reused_link_the_server_dropped_makes_the_first_message_stale() -> None:
    script = Script()
    link = start(4, script)
    link.reused = True
    script.serve(EOF)
    send(script, link, jobs(3))
    assert isinstance(script.outcomes()["m1"], ConnectionStale)
    assert not isinstance(script.outcomes()["m1"], DeliveryUnknown)

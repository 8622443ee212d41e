"""The engine's transaction runner, byte for byte, with no sockets: pipelining across
messages, RSET after refusals, DATA and BDAT, 421 anywhere, stale versus unknown, and the
lookahead that never waits."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from engine_script import (
    EHLO_BARE,
    EHLO_CHUNKING,
    EHLO_CHUNKING_ONLY,
    EHLO_PIPELINING,
    GREETING,
    Job,
    Later,
    Script,
    content_of,
    lines,
    message,
    raw_content,
)

from smtpkit import (
    ConnectionStale,
    DeliveryUnknown,
    MessageError,
    MessageRejected,
    MessageTooLarge,
    Phase,
    RecipientRejected,
    ReplyError,
    Security,
    SenderRejected,
    SendResult,
    ServerDisconnected,
    ServiceUnavailable,
    Timeouts,
)
from smtpkit.engine import TAKE_NEXT, Link, LinkSettings, Transactions, open_link

OK = b"250 2.0.0 OK\r\n"
GO = b"354 Go ahead\r\n"
QUEUED = b"250 2.0.0 queued as ABC\r\n"


def link_for(ehlo: bytes, script: Script, **changes: object) -> Link:
    values: dict[str, object] = {
        "host": "mx.example.test",
        "port": 587,
        "security": Security.NONE,
        "timeouts": Timeouts(connect=10, command=5, final_reply=30),
        "local_hostname": "client.example.test",
    }
    values.update(changes)
    script.serve(GREETING, ehlo)
    link = script.run(open_link(LinkSettings(**values), clock=script.clock))  # type: ignore[arg-type]
    script.writes.clear()
    script.effects.clear()
    return link


def envelope(to: str = "bob@example.test", *, data: bool = True) -> bytes:
    commands = ["MAIL FROM:<alice@example.test>", f"RCPT TO:<{to}>"]
    return lines(*commands, *(["DATA"] if data else []))


def run(script: Script, link: Link, first: Job) -> Transactions[Job]:
    transactions = Transactions(link, first)
    script.run(transactions.steps())
    return transactions


# -- pipelining across messages -------------------------------------------------------------


def test_two_messages_cost_three_writes_the_end_of_one_rides_with_the_next_envelope() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    first, second = message(1), message(2, to="carol@example.test")
    script.jobs.append(second)
    script.serve(OK + OK + GO, QUEUED + OK + OK + GO, QUEUED)
    run(script, link, first)
    assert script.writes == [
        envelope(),
        content_of(first) + envelope("carol@example.test"),
        content_of(second),
    ]
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SendResult)
    assert outcomes["m1"].accepted == ("bob@example.test",)
    assert outcomes["m1"].reply.text == "queued as ABC"
    assert isinstance(outcomes["m2"], SendResult)
    assert link.messages_sent == 2
    # The lookahead asked once per message, then once more when nothing was in flight.
    assert script.kinds().count("TakeNext") == 3


def test_a_job_not_ready_now_is_taken_after_the_final_reply_not_waited_for() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    first, second = message(1), message(2)
    # TakeNext is answered at once: None while the first transaction is open (the driver
    # must not wait there), then the second job once it is over.
    script.jobs.extend([None, second])
    script.serve(OK + OK + GO, QUEUED, OK + OK + GO, QUEUED)
    run(script, link, first)
    assert script.writes == [envelope(), content_of(first), envelope(), content_of(second)]
    kinds = script.kinds()
    # The second TakeNext comes after the first message's Report: between transactions.
    assert kinds.index("Report") < len(kinds) - 1 - kinds[::-1].index("TakeNext")


def test_partially_refused_recipients_are_listed_on_the_result() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    job = message(1, to="bob@example.test, nobody@example.test")
    script.serve(OK + OK + b"550 5.1.1 User unknown\r\n" + GO, QUEUED)
    run(script, link, job)
    result = script.outcomes()["m1"]
    assert isinstance(result, SendResult)
    assert result.accepted == ("bob@example.test",)
    assert list(result.rejected) == ["nobody@example.test"]
    assert result.rejected["nobody@example.test"].code == 550


# -- refusals and RSET ---------------------------------------------------------------------


def test_refused_envelope_is_reset_together_with_the_next_envelope() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    first, second = message(1, to="nobody@example.test"), message(2)
    script.jobs.append(second)
    script.serve(
        OK + b"550 5.1.1 User unknown\r\n" + b"554 5.5.1 No valid recipients\r\n",
        OK + OK + OK + GO,  # RSET, then the second envelope
        QUEUED,
    )
    run(script, link, first)
    assert script.writes == [
        envelope("nobody@example.test"),
        lines("RSET") + envelope(),
        content_of(second),
    ]
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], RecipientRejected)
    assert outcomes["m1"].recipient == "nobody@example.test"
    assert isinstance(outcomes["m2"], SendResult)


def test_a_stray_354_is_ended_with_an_empty_message_before_rset() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.serve(
        OK + b"550 5.1.1 User unknown\r\n" + GO,  # DATA accepted although no RCPT was
        b"554 5.5.1 No valid recipients\r\n" + OK,  # to the lone ".", then to RSET
    )
    run(script, link, message(1, to="nobody@example.test"))
    assert script.writes == [envelope("nobody@example.test"), b".\r\n" + lines("RSET")]
    assert isinstance(script.outcomes()["m1"], RecipientRejected)
    assert link.alive


def test_refused_sender_without_pipelining_is_exchanged_step_by_step_then_reset() -> None:
    script = Script()
    link = link_for(EHLO_BARE, script)
    script.jobs.append(message(2))
    script.serve(b"553 5.7.1 Sender not owned\r\n", OK, OK, OK, GO, QUEUED)
    run(script, link, message(1))
    assert script.writes == [
        lines("MAIL FROM:<alice@example.test>"),
        lines("RSET"),
        lines("MAIL FROM:<alice@example.test>"),
        lines("RCPT TO:<bob@example.test>"),
        lines("DATA"),
        content_of(message(2)),
    ]
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], SenderRejected)
    assert isinstance(outcomes["m2"], SendResult)


def test_421_to_rset_without_pipelining_ends_the_run_and_leaves_the_next_job_untaken() -> None:
    script = Script()
    link = link_for(EHLO_BARE, script)
    script.jobs.append(message(2))
    script.serve(OK, b"550 5.1.1 User unknown\r\n", b"421 4.4.2 Timeout exceeded\r\n")
    run(script, link, message(1, to="nobody@example.test"))
    assert isinstance(script.outcomes()["m1"], RecipientRejected)
    assert not link.alive
    # The next message was never taken: it goes out on another connection, not lost.
    assert [job.name for job in script.jobs if job] == ["m2"]
    assert TAKE_NEXT not in script.effects


def test_421_to_rset_with_pipelining_makes_the_envelope_behind_it_stale() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.jobs.append(message(2))
    script.serve(OK + b"550 5.1.1 User unknown\r\n" + b"554 5.5.1 No valid recipients\r\n")
    script.serve(b"421 4.4.2 Timeout exceeded\r\n", b"")
    run(script, link, message(1, to="nobody@example.test"))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], RecipientRejected)
    assert isinstance(outcomes["m2"], ConnectionStale)


def test_content_refused_after_the_final_dot() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.serve(OK + OK + GO, b"554 5.6.0 Message content rejected\r\n")
    run(script, link, message(1))
    outcome = script.outcomes()["m1"]
    assert isinstance(outcome, MessageRejected)
    assert link.alive  # the transaction is over; the link can take the next message


# -- local refusals ----------------------------------------------------------------------


def test_too_large_for_the_advertised_size_is_refused_before_anything_is_sent() -> None:
    script = Script()
    link = link_for(b"250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", script)
    big, small = message(1, body="x" * 2000), message(2, body="")
    small_size = len(raw_content(small))
    assert small_size < 1000
    script.jobs.append(small)
    script.serve(b"250 OK\r\n" * 2 + GO, QUEUED)
    run(script, link, big)
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], MessageTooLarge)
    assert outcomes["m1"].from_server is False
    assert script.writes[0].startswith(
        f"MAIL FROM:<alice@example.test> SIZE={small_size}\r\n".encode()
    )
    assert isinstance(outcomes["m2"], SendResult)


def test_eight_bit_bytes_need_8bitmime() -> None:
    script = Script()
    link = link_for(b"250-mx\r\n250 PIPELINING\r\n", script)
    raw = Job(b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n", "a@example.test", ["b@example.test"], "raw")
    run(script, link, raw)
    assert isinstance(script.outcomes()["raw"], MessageError)
    assert script.writes == []


# -- stale versus unknown -----------------------------------------------------------------


def test_connection_lost_after_the_final_dot_is_unknown_and_the_next_message_is_stale() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.jobs.append(message(2))
    script.serve(OK + OK + GO, b"")  # the server hangs up after the content
    run(script, link, message(1))
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], DeliveryUnknown)
    assert outcomes["m1"].message_id == "<1@example.test>"
    assert outcomes["m1"].recipients == ("bob@example.test",)
    assert isinstance(outcomes["m2"], ConnectionStale)
    assert not link.alive


def test_a_final_reply_dripping_past_its_deadline_is_unknown() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.serve(OK + OK + GO, Later(20, b"250-2.0.0 Ok\r\n"), Later(20, b"250 queued\r\n"))
    run(script, link, message(1))
    outcome = script.outcomes()["m1"]
    assert isinstance(outcome, DeliveryUnknown)
    assert "within 30 s" in str(outcome)  # final_reply, not the 5 s command timeout


def test_a_fresh_link_that_hangs_up_at_the_envelope_is_a_plain_disconnect() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.serve(b"")
    run(script, link, message(1))
    outcome = script.outcomes()["m1"]
    assert isinstance(outcome, ServerDisconnected)
    assert not isinstance(outcome, ConnectionStale)


@pytest.mark.parametrize("answer", [b"", b"421 4.4.2 Idle timeout\r\n"])
def test_a_reused_link_that_died_while_idle_is_stale(answer: bytes) -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    link.reused = True
    script.serve(answer)
    run(script, link, message(1))
    assert isinstance(script.outcomes()["m1"], ConnectionStale)


def test_421_at_mail_on_a_fresh_link_is_the_server_refusing_service() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.serve(b"421 4.3.2 Too busy\r\n")
    run(script, link, message(1))
    outcome = script.outcomes()["m1"]
    assert isinstance(outcome, ServiceUnavailable)
    assert outcome.is_transient


def test_abandoned_after_a_cancel_reports_unknown_after_the_dot_and_stale_before() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    script.jobs.append(message(2))
    script.serve(OK + OK + GO)
    transactions = Transactions(link, message(1))
    steps = transactions.steps()
    effect = steps.send(None)
    for _ in range(50):  # drive until the content (with the next envelope) is written
        answer = script.perform(effect)
        if len(script.writes) == 2:
            break
        effect = steps.send(answer)
    steps.close()  # what a driver does when its task is cancelled
    outcomes = {job.name: error for job, error in transactions.abandoned()}  # type: ignore[attr-defined]
    assert isinstance(outcomes["m1"], DeliveryUnknown)
    assert isinstance(outcomes["m2"], ConnectionStale)
    assert transactions.open == []


# -- BDAT (RFC 3030) ---------------------------------------------------------------------


def test_bdat_replaces_data_and_needs_no_dot_stuffing() -> None:
    script = Script()
    link = link_for(EHLO_CHUNKING, script)
    job = message(1, body=".starts with a dot\n")
    raw = raw_content(job)
    script.serve(OK + OK, QUEUED)
    run(script, link, job)
    assert script.writes == [
        envelope(data=False),
        f"BDAT {len(raw)} LAST\r\n".encode() + raw,
    ]
    assert b"\r\n.starts" in raw  # sent as is: no "..", no terminator
    assert isinstance(script.outcomes()["m1"], SendResult)


def test_use_chunking_false_keeps_data() -> None:
    script = Script()
    link = link_for(EHLO_CHUNKING, script, chunking=False)
    script.serve(OK + OK + GO, QUEUED)
    run(script, link, message(1))
    assert script.writes == [envelope(), content_of(message(1))]


def test_refused_bdat_with_the_next_envelope_behind_it_is_reset_and_sent_again() -> None:
    script = Script()
    link = link_for(EHLO_CHUNKING, script)
    first, second = message(1), message(2)
    script.jobs.append(second)
    raw1, raw2 = raw_content(first), raw_content(second)
    script.serve(
        OK + OK,
        b"554 5.6.0 Content refused\r\n" + b"503 5.5.1 Nested MAIL\r\n" + b"503 5.5.1 No MAIL\r\n",
        OK + OK + OK,  # RSET, then the envelope again
        QUEUED,
    )
    run(script, link, first)
    assert script.writes == [
        envelope(data=False),
        f"BDAT {len(raw1)} LAST\r\n".encode() + raw1 + envelope(data=False),
        lines("RSET") + envelope(data=False),
        f"BDAT {len(raw2)} LAST\r\n".encode() + raw2,
    ]
    outcomes = script.outcomes()
    assert isinstance(outcomes["m1"], MessageRejected)
    assert isinstance(outcomes["m2"], SendResult)


def test_refused_bdat_last_with_nothing_behind_it_is_reset_at_once() -> None:
    script = Script()
    link = link_for(EHLO_CHUNKING, script)
    raw = raw_content(message(1))
    script.serve(OK + OK, b"552 5.3.4 Too big\r\n", OK)
    run(script, link, message(1))
    assert script.writes[-1] == lines("RSET")
    assert isinstance(script.outcomes()["m1"], MessageRejected)
    assert script.writes[1] == f"BDAT {len(raw)} LAST\r\n".encode() + raw


def test_refused_first_chunk_without_pipelining_stops_the_chunks_and_resets() -> None:
    script = Script()
    link = link_for(EHLO_CHUNKING_ONLY, script)
    job = message(1, body="x" * (1 << 20))  # more than one 1 MiB chunk
    raw = raw_content(job)
    assert len(raw) > 1 << 20
    script.serve(OK, OK, b"452 4.3.1 Insufficient storage\r\n", OK)
    run(script, link, job)
    first_chunk = b"BDAT 1048576\r\n" + raw[: 1 << 20]
    assert script.writes == [
        lines("MAIL FROM:<alice@example.test>"),
        lines("RCPT TO:<bob@example.test>"),
        first_chunk,
        lines("RSET"),
    ]
    outcome = script.outcomes()["m1"]
    assert isinstance(outcome, ReplyError)
    assert outcome.phase is Phase.DATA
    assert outcome.is_transient


def test_a_message_with_a_leading_dot_line_is_dot_stuffed_with_data() -> None:
    script = Script()
    link = link_for(EHLO_PIPELINING, script)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.test", "bob@example.test", "dots"
    msg["Message-ID"], msg["Date"] = "<d@example.test>", "Thu, 01 Jan 2026 00:00:00 +0000"
    msg.set_content(".\n..\n")
    script.serve(OK + OK + GO, QUEUED)
    run(script, link, Job(msg, name="dots"))
    assert b"\r\n..\r\n...\r\n" in script.writes[1]
    assert script.writes[1].endswith(b"\r\n.\r\n")

"""smtpkit.Failover without sockets: what moves a message, the cool-down board, bad input,
and outcomes that name their server and still pickle."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

import smtpkit
from smtpkit import Failover, FailoverResult, FailoverStrategy, Phase, Reply, Submitter
from smtpkit.errors import (
    AuthenticationRequired,
    CommandRejected,
    ConfigurationError,
    ConnectError,
    ConnectionRejected,
    ConnectionStale,
    DeliveryUnknown,
    InvalidCredentials,
    LocalProtocolError,
    MessageError,
    MessageRejected,
    MessageTooLarge,
    NoCommonMechanism,
    OperationTimeout,
    RateLimited,
    RecipientRejected,
    RemoteProtocolError,
    SenderRejected,
    ServerDisconnected,
    ServiceUnavailable,
    StartTLSNotOffered,
    TLSError,
    TLSUnavailable,
    TokenRefreshError,
)
from smtpkit.failover import handled_by, is_server_failure, server_labels
from smtpkit.failover._board import Board
from smtpkit.failover._core import annotate


def reply(text: str) -> Reply:
    code, _, rest = text.partition(" ")
    return Reply(int(code), (rest,))


MOVES = [
    ConnectError("connection refused"),
    TLSError("certificate verify failed"),
    StartTLSNotOffered("no STARTTLS"),
    ServerDisconnected("closed"),
    ConnectionStale("closed before the envelope was answered"),
    OperationTimeout("no reply in 5s"),
    RemoteProtocolError("garbage"),
    TokenRefreshError("token endpoint down", transient=True),
    NoCommonMechanism(offered=("CRAM-MD5",), supported=("PLAIN",), strategy="x", encrypted=True),
    ConnectionRejected(reply("554 5.7.1 Blocked"), Phase.GREETING),
    ServiceUnavailable(reply("421 4.3.2 Service not available"), Phase.GREETING),
    TLSUnavailable(reply("454 4.7.0 TLS not available"), Phase.STARTTLS),
    InvalidCredentials(reply("535 5.7.8 Bad credentials"), Phase.AUTH),
    RateLimited(reply("454 4.7.0 Too many login attempts"), Phase.AUTH),
    CommandRejected(reply("502 5.5.1 AUTH not implemented"), Phase.AUTH),
    ServiceUnavailable(reply("421 4.7.0 Try again later"), Phase.MAIL),
    ServiceUnavailable(reply("451 4.3.0 Local error"), Phase.MAIL),
    AuthenticationRequired(reply("530 5.7.0 Authentication required"), Phase.MAIL),
    RecipientRejected(
        reply("450 4.2.1 Try later"),
        Phase.RCPT,
        recipient="a@example.test",
        rejected={
            "a@example.test": reply("450 4.2.1 Try later"),
            "b@example.test": reply("451 4.3.0 Try later"),
        },
    ),
    ServiceUnavailable(reply("451 4.3.0 Try later"), Phase.DATA),
    # A quota is about the account, and a failure reply to the final dot is a definite no.
    RateLimited(reply("554 5.2.0 SubmissionQuotaExceededException"), Phase.MESSAGE),
    RateLimited(reply("550 5.4.5 Daily user sending quota exceeded"), Phase.MAIL),
]

STAYS = [
    DeliveryUnknown("lost after the final dot"),
    SenderRejected(reply("550 5.7.60 SendAsDenied"), Phase.MAIL),
    RecipientRejected(reply("550 5.1.1 User unknown"), Phase.RCPT, recipient="a@example.test"),
    RecipientRejected(  # one permanent refusal among transient ones: it would stay refused
        reply("450 4.2.1 Try later"),
        Phase.RCPT,
        recipient="a@example.test",
        rejected={
            "a@example.test": reply("450 4.2.1 Try later"),
            "b@example.test": reply("550 5.1.1 User unknown"),
        },
    ),
    MessageRejected(reply("554 5.7.1 Spam"), Phase.DATA),
    MessageRejected(reply("554 5.7.1 Spam"), Phase.MESSAGE),
    MessageTooLarge(reply("552 5.3.4 Too big"), Phase.MAIL),
    ServiceUnavailable(reply("421 4.7.0 Closing"), Phase.MESSAGE),  # after the content
    ServiceUnavailable(reply("451 4.3.0 Try later"), Phase.MESSAGE),
    MessageError("bare CR in a header"),
    ConfigurationError("bad option"),
    LocalProtocolError("driver bug"),
]


@pytest.mark.parametrize("error", MOVES, ids=lambda e: f"{type(e).__name__}-{e}"[:60])
def test_server_failures_before_acceptance_move(error: Exception) -> None:
    assert is_server_failure(error)


@pytest.mark.parametrize("error", STAYS, ids=lambda e: f"{type(e).__name__}-{e}"[:60])
def test_the_message_s_own_outcome_and_unknown_delivery_stay(error: Exception) -> None:
    assert not is_server_failure(error)


def test_anything_but_an_smtp_error_stays() -> None:
    assert not is_server_failure(ValueError("x"))
    assert not is_server_failure(KeyboardInterrupt())


# -- the board: strategy order and cool-downs --------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failover_order_is_the_list_order_and_skips_a_cooling_server() -> None:
    clock = Clock()
    board = Board(3, FailoverStrategy.FAILOVER, cooldown=30.0, clock=clock)
    [order] = board.orders(1)
    assert order == (0, 1, 2)
    assert board.pick(order, []) == 0
    assert board.failed(0) is True
    assert board.failed(0) is False  # already cooling: no second "cool-down started"
    assert board.pick(order, []) == 1
    assert board.pick(order, [1]) == 2
    assert board.pick(order, [1, 2]) is None  # 0 is cooling and this message was tried
    assert board.cooling() == {0: 30.0}
    clock.now += 30.0
    assert board.cooling() == {}
    assert board.pick(order, []) == 0  # recovered


def test_round_robin_orders_rotate_one_server_per_message() -> None:
    board = Board(3, FailoverStrategy.ROUND_ROBIN, cooldown=30.0, clock=Clock())
    assert board.orders(4) == [(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 1, 2)]
    assert board.orders(1) == [(1, 2, 0)]  # the turn carries over between calls


def test_when_every_server_cools_down_the_first_try_goes_to_the_earliest_end() -> None:
    clock = Clock()
    board = Board(3, FailoverStrategy.FAILOVER, cooldown=30.0, clock=clock)
    board.failed(1)
    clock.now += 5
    board.failed(2)
    clock.now += 5
    board.failed(0)
    assert board.pick((0, 1, 2), []) == 1  # its cool-down ends first
    assert board.pick((0, 1, 2), [1]) is None  # a message is never sent to a cooling one twice


def test_a_zero_cooldown_never_skips() -> None:
    board = Board(2, FailoverStrategy.FAILOVER, cooldown=0.0, clock=Clock())
    board.failed(0)
    assert board.pick((0, 1), []) == 0


# -- configuration -------------------------------------------------------------------------------


def submitter(host: str = "smtp.example.test", port: int = 587) -> Submitter:
    return Submitter(host, port)


def test_strategy_accepts_the_enum_and_its_names() -> None:
    a, b = submitter("a.example.test"), submitter("b.example.test")
    assert Failover([a, b]).strategy is FailoverStrategy.FAILOVER
    assert Failover([a, b], strategy="round_robin").strategy is FailoverStrategy.ROUND_ROBIN
    assert Failover([a, b], strategy="Round-Robin").strategy is FailoverStrategy.ROUND_ROBIN
    assert Failover([a], strategy=FailoverStrategy.ROUND_ROBIN).servers == ("a.example.test:587",)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"submitters": []}, "at least one"),
        ({"submitters": "smtp.example.test"}, "list of Submitter"),
        ({"submitters": ["smtp.example.test"]}, "takes Submitter objects"),
        ({"strategy": "random"}, "'failover', 'round_robin'"),
        ({"strategy": 1}, "strategy must be"),
        ({"cooldown": -1}, "cooldown"),
        ({"cooldown": float("nan")}, "cooldown"),
        ({"cooldown": True}, "cooldown"),
        ({"clock": 3}, "clock"),
    ],
)
def test_bad_input_is_a_configuration_error(arguments: dict[str, object], words: str) -> None:
    options: dict[str, object] = {"submitters": [submitter()], **arguments}
    with pytest.raises(ConfigurationError) as caught:
        Failover(**options)  # type: ignore[arg-type]
    assert words in str(caught.value)


def test_the_same_submitter_twice_is_refused_but_two_for_one_server_are_told_apart() -> None:
    a = submitter()
    with pytest.raises(ConfigurationError, match="twice"):
        Failover([a, a])
    assert Failover([a, submitter()]).servers == (
        "smtp.example.test:587",
        "smtp.example.test:587#2",
    )
    assert server_labels([submitter("::1", 2525)]) == ("[::1]:2525",)


def test_an_async_submitter_is_pointed_to_the_async_twin() -> None:
    with pytest.raises(ConfigurationError, match="AsyncFailover"):
        Failover([smtpkit.AsyncSubmitter("smtp.example.test")])  # type: ignore[list-item]


def test_repr_names_servers_and_strategy_only() -> None:
    failover = Failover([submitter()], strategy="round_robin")
    assert repr(failover) == "Failover(['smtp.example.test:587'], strategy=round_robin)"


# -- outcomes name their server and still pickle ---------------------------------------------------


def test_an_annotated_error_is_a_copy_that_pickles_and_rebuilds_from_its_args() -> None:
    original = RecipientRejected(
        reply("550 5.1.1 User unknown"), Phase.RCPT, recipient="a@example.test"
    )
    original.__cause__ = OSError("root cause")
    routed = annotate(original, "b.example.test:587", ["a.example.test:587", "b.example.test:587"])
    assert routed is not original
    assert not hasattr(original, "server")  # a batch may share the original
    assert type(routed) is RecipientRejected
    assert routed.rejected == original.rejected
    assert isinstance(routed.__cause__, OSError)
    assert handled_by(routed) == "b.example.test:587"
    for copy in (pickle.loads(pickle.dumps(routed)), type(routed)(*routed.args)):
        assert type(copy) is RecipientRejected
        assert handled_by(copy) == "b.example.test:587"
        assert copy.servers_tried == ("a.example.test:587", "b.example.test:587")  # type: ignore[attr-defined]
        assert copy.rejected == original.rejected


def test_a_failover_result_is_a_send_result_that_pickles() -> None:
    result = FailoverResult(
        "<1@example.test>",
        "me@example.test",
        ("a@example.test",),
        rejected={"b@example.test": reply("550 5.1.1 User unknown")},
        reply=reply("250 2.0.0 OK queued"),
        server="a.example.test:587",
        servers_tried=("down.example.test:587", "a.example.test:587"),
    )
    assert isinstance(result, smtpkit.SendResult)
    assert isinstance(result.rejected, MappingProxyType)
    back = pickle.loads(pickle.dumps(result))
    assert back == result
    assert type(back) is FailoverResult
    assert handled_by(back) == "a.example.test:587"
    assert handled_by(smtpkit.SendResult(None, "me@example.test", ())) is None


def test_an_empty_batch_sends_nothing_and_bad_options_fail_before_any_send() -> None:
    failover = Failover([submitter("a.example.test"), submitter("b.example.test")])
    assert failover.send_many([]) == []
    with pytest.raises(ConfigurationError, match="max_per_second"):
        failover.send_many([object()], max_per_second=0)  # type: ignore[list-item]

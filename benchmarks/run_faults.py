"""Fault run: many messages through ``send_many`` against a server that fails at random.

The server is :class:`smtpkit.testing.LocalServer` (aiosmtpd, plain loopback) with a
``faults=`` hook driven by a seeded RNG: at every MAIL, RCPT, DATA and end-of-content step
it may answer ``421`` or ``451`` instead of accepting, or close the connection without a
reply. After the content there is a fourth choice: a drop that keeps the message on the
server (the client never hears back - the case where a blind resend would deliver twice)
or one that discards it (``drop-discard``: ``LocalServer.DISCONNECT``, kept in ``.dropped``).

The client is ``Submitter(retry=Retry(attempts=5, backoff=0.01), max_connections=4)`` and
``send_many(..., concurrency=4)`` of distinct messages (a unique Message-ID each). The run
then reconciles the outcomes with what the server kept, by Message-ID:

* one outcome per message;
* every ``SendResult`` was received exactly once (else: silent loss or duplicate);
* every failure other than ``DeliveryUnknown`` was received zero times;
* every ``DeliveryUnknown`` was received at most once (smtpkit never resends those);
* the server holds nothing else.

    python -m benchmarks.run_faults                      # 2000 messages, seed 1
    python -m benchmarks.run_faults --count 500 --seed 7 --fault-rate 0.05

Prints a Markdown table, writes ``benchmarks/results/faults.json`` and exits 1 when an
invariant fails (2 when the run exceeds ``--max-seconds``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import smtpkit
from benchmarks.common import REPO, SENDER
from smtpkit.testing import LocalServer

FAULT_PHASES = ("mail", "rcpt", "data", "message")
#: What a fault looks like, chosen with equal odds once a step is picked to fail.
FAULT_KINDS = {
    "421": "421 4.3.2 Service shutting down, try again later",
    "451": "451 4.3.0 Temporary local problem, try again later",
    "drop": LocalServer.DROP,
}


class FaultInjector:
    """The server's ``faults`` hook: a seeded RNG deciding each step's fate.

    Called on the server's single event-loop thread, so the counters need no lock. The
    draw order depends on how the client's four connections interleave, so two runs with
    one seed inject about, not exactly, the same faults.
    """

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.steps: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.server: LocalServer | None = None

    def __call__(self, phase: str) -> str | None:
        self.steps[phase] += 1
        if self.rng.random() >= self.rate:
            return None
        kinds = sorted(FAULT_KINDS) + (["drop-discard"] if phase == "message" else [])
        kind = self.rng.choice(kinds)
        self.injected[f"{phase}:{kind}"] += 1
        if kind == "drop-discard":
            # Closed without a reply; the server keeps the content in .dropped, not .messages.
            return LocalServer.DISCONNECT
        return FAULT_KINDS[kind]


def build_messages(count: int, seed: int) -> list[smtpkit.Outgoing]:
    messages = []
    for index in range(count):
        message_id = f"<fault-{seed}-{index:06d}@bench.example.test>"
        raw = (
            f"From: {SENDER}\r\n"
            f"To: rcpt{index % 7}@example.test\r\n"
            f"Subject: fault run {index}\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n"
            f"Message {index} of the fault run.\r\n"
        ).encode("ascii")
        messages.append(
            smtpkit.Outgoing(raw, sender=SENDER, recipients=[f"rcpt{index % 7}@example.test"])
        )
    return messages


def message_id_of(item: smtpkit.Outgoing) -> str:
    raw = item.message
    assert isinstance(raw, bytes)
    for line in raw.split(b"\r\n"):
        if line.startswith(b"Message-ID: "):
            return line[len(b"Message-ID: ") :].decode("ascii")
    raise AssertionError("every benchmark message has a Message-ID")


def reconcile(
    ids: list[str], outcomes: list[smtpkit.SendResult | smtpkit.SMTPError], received: Counter[str]
) -> dict[str, object]:
    """Compare outcomes with the server's Message-ID counts; the report and violations."""
    failed: Counter[str] = Counter()
    violations: list[str] = []
    delivered = unknown = unknown_on_server = silent_losses = 0
    for message_id, outcome in zip(ids, outcomes, strict=True):
        times = received[message_id]
        if isinstance(outcome, smtpkit.SendResult):
            delivered += 1
            if outcome.message_id != message_id:
                violations.append(f"{message_id}: result names {outcome.message_id}")
            if times == 0:
                silent_losses += 1
                violations.append(f"{message_id}: reported delivered, server has none")
        elif isinstance(outcome, smtpkit.DeliveryUnknown):
            unknown += 1
            unknown_on_server += times
        else:
            failed[type(outcome).__name__] += 1
            if times:
                violations.append(
                    f"{message_id}: reported failed ({type(outcome).__name__}: {outcome}), "
                    f"server has {times}"
                )
        if times > 1:
            violations.append(f"{message_id}: received {times} times")
    duplicates = sum(times - 1 for times in received.values() if times > 1)
    strangers = sorted(set(received) - set(ids))
    if strangers:
        violations.append(f"server holds unknown Message-IDs: {strangers[:5]}")
    if len(outcomes) != len(ids):
        violations.append(f"{len(outcomes)} outcomes for {len(ids)} messages")
    return {
        "messages": len(ids),
        "outcomes": len(outcomes),
        "delivered": delivered,
        "failed": dict(sorted(failed.items())),
        "failed_total": sum(failed.values()),
        "unknown": unknown,
        "unknown_received_by_server": unknown_on_server,
        "server_received": sum(received.values()),
        "duplicates": duplicates,
        "silent_losses": silent_losses,
        "violations": violations,
    }


def run(args: argparse.Namespace) -> tuple[dict[str, object], FaultInjector, float, bool]:
    injector = FaultInjector(args.fault_rate, args.seed)
    messages = build_messages(args.count, args.seed)
    ids = [message_id_of(item) for item in messages]
    outcomes: list[smtpkit.SendResult | smtpkit.SMTPError] = []
    errors: list[BaseException] = []
    with LocalServer(security=smtpkit.Security.NONE, faults=injector) as server:
        injector.server = server
        client = smtpkit.Submitter(
            server.host,
            server.port,
            security=smtpkit.Security.NONE,
            timeout=10.0,
            retry=smtpkit.Retry(attempts=5, backoff=0.01),
            max_connections=4,
        )

        def send_all() -> None:
            try:
                with client:
                    outcomes.extend(client.send_many(messages, concurrency=4))
            except BaseException as error:  # reported below, never swallowed
                errors.append(error)

        started = time.perf_counter()
        worker = threading.Thread(target=send_all, name="fault-run", daemon=True)
        worker.start()
        worker.join(args.max_seconds)
        elapsed = time.perf_counter() - started
        finished = not worker.is_alive()
        # Leaving the with-block stops the server, which also ends a client still waiting.
        received = Counter(str(m.message["Message-ID"]) for m in server.messages)
        server_errors = server.server_errors
    worker.join(30)
    if errors:
        raise errors[0]
    report = reconcile(ids, outcomes, received) if finished else {"violations": ["timed out"]}
    if server_errors:
        report["violations"] = [
            *report["violations"],  # type: ignore[misc]
            *(f"server error: {e!r}" for e in server_errors),
        ]
    return report, injector, elapsed, finished


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="messages to send")
    parser.add_argument("--seed", type=int, default=1, help="seed for the fault RNG")
    parser.add_argument(
        "--fault-rate", type=float, default=0.03, help="chance that any one step fails"
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="wall-clock cap")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/faults.json")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's per-session log

    report, injector, elapsed, finished = run(args)
    if not finished:
        print(f"fault run did not finish within {args.max_seconds:g} s", file=sys.stderr)
        sys.exit(2)

    failed = report["failed"]
    assert isinstance(failed, dict)
    print(
        f"# {args.count} messages, seed {args.seed}, fault rate {args.fault_rate:g} per step, "
        f"{elapsed:.1f} s ({args.count / elapsed:.0f} msg/s)"
    )
    print("| outcome | messages | server received |")
    print("|---|---:|---:|")
    print(f"| delivered (SendResult) | {report['delivered']} | {report['delivered']} |")
    for name, count in failed.items():
        print(f"| failed: {name} | {count} | 0 |")
    print(
        f"| unknown (DeliveryUnknown) | {report['unknown']} | "
        f"{report['unknown_received_by_server']} |"
    )
    print(f"| **total** | {report['outcomes']} | {report['server_received']} |")
    print()
    print(
        f"duplicates: {report['duplicates']} · silent losses: {report['silent_losses']} · "
        f"steps: {dict(sorted(injector.steps.items()))} · "
        f"faults injected: {sum(injector.injected.values())} "
        f"{dict(sorted(injector.injected.items()))}"
    )
    violations = report["violations"]
    assert isinstance(violations, list)
    for violation in violations[:20]:
        print(f"VIOLATION: {violation}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "faults",
                "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks.run_faults", *sys.argv[1:]]),
                "smtpkit": smtpkit.__version__,
                "count": args.count,
                "seed": args.seed,
                "fault_rate": args.fault_rate,
                "retry": {"attempts": 5, "backoff": 0.01},
                "concurrency": 4,
                "elapsed_seconds": elapsed,
                "steps": dict(sorted(injector.steps.items())),
                "faults_injected": dict(sorted(injector.injected.items())),
                **report,
            },
            indent=2,
        )
        + "\n"
    )
    if violations:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""The BDAT window: msg/s against window size, and against smtplib, on one connection.

The server is a private Postfix ``smtpd`` on 127.0.0.1 (``tests/postfix_server.py``; the
only server here that offers CHUNKING), delivering to its ``discard`` transport and with
``in_flow_delay = 0`` (Postfix would otherwise slow a client that outruns its queue
manager). A simulated round trip comes from ``benchmarks/delay_proxy.py`` in a child
process. Every message is a 1 KB ``EmailMessage`` built as users build one (From, To,
Subject, ``set_content``; smtpkit adds Message-ID and Date, smtplib sends without).

Scenarios, all in one invocation so that the ratios compare like with like:

* ``sweep``: 20 ms round trip, 1 recipient: smtplib, then smtpkit with window 1, 2, 4, 8,
  16 and 32 (the table and plot in docs/performance.md);
* ``rcpt5``: 20 ms, 5 recipients: smtplib and smtpkit (default window, and window=1);
* ``far``: 100 ms, 1 recipient: smtplib and smtpkit with window 1, 8, the default and 32;
* ``loopback``: no delay: smtpkit with window=1 and the default, interleaved, repeated.

Each run stops after ``--seconds`` or ``--count`` messages, whichever comes first.
Needs root (Postfix's master binds and drops privileges)::

    .venv/bin/python -m benchmarks.run_window                 # about 3 minutes
    .venv/bin/python -m benchmarks.run_window --quick         # about 1 minute
    .venv/bin/python -m benchmarks.run_window --plot          # also docs/img/window.png

Prints a Markdown table and writes ``benchmarks/results/window.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import smtpkit
from benchmarks.clients import smtplib_client
from benchmarks.common import REPO, Result, build_email_message, recipient_list
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from smtpkit.drivers._client import DEFAULT_WINDOW

sys.path.insert(0, str(REPO / "tests"))
from postfix_server import PostfixServer, unavailable_reason

RESULTS = REPO / "benchmarks" / "results"
SWEEP = (1, 2, 4, 8, 16, 32)
MESSAGE_BYTES = 1024
#: main.cf for throughput: nothing delivered anywhere, no slowing down of a fast client.
SETTINGS = {
    "default_transport": "discard",
    "relay_transport": "discard",
    "local_transport": "discard",
    "virtual_transport": "discard",
    "in_flow_delay": "0",
}


@dataclass
class Row:
    scenario: str
    delay_ms: float
    recipients: int
    client: str  # "smtplib" or "smtpkit"
    window: int | None = None
    samples: list[Result] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.client if self.window is None else f"smtpkit window={self.window}"

    @property
    def best(self) -> Result:
        ordered = sorted(self.samples, key=lambda r: r.rate)
        return ordered[(len(ordered) - 1) // 2]  # the median run (lower middle)


def run_smtpkit(
    host: str, port: int, *, window: int, recipients: int, count: int, seconds: float
) -> Result:
    """One connection, one ``send_many`` of the same EmailMessage (prepared anew each time)."""
    item = smtpkit.Outgoing(build_email_message(MESSAGE_BYTES, recipient_list(recipients)))
    submitter = smtpkit.Submitter(
        host,
        port,
        security=smtpkit.Security.NONE,
        timeout=30,
        max_connections=1,
        max_messages_per_connection=None,
        window=window,
    )
    handed = 0

    def items() -> Iterator[smtpkit.Outgoing]:
        # One send_many for the whole run (one run of transactions on the connection), read
        # lazily: it stops at the count or when the time is up.
        nonlocal handed
        while handed < count and time.perf_counter() < deadline:
            handed += 1
            yield item

    # Timed from just before connecting to the last final reply, as the smtplib client is
    # (benchmarks/README.md); QUIT is not timed.
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + seconds
    with submitter:
        outcomes = submitter.send_many(items(), concurrency=1)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    failures = [o for o in outcomes if not isinstance(o, smtpkit.SendResult)]
    if failures:
        raise RuntimeError(f"{len(failures)} messages failed: {failures[0]!r}")
    sent = len(outcomes)
    return Result(sent, elapsed, cpu)


def run_row(row: Row, host: str, port: int, args: argparse.Namespace) -> None:
    count = args.count if row.delay_ms else args.count_loopback
    if row.client == "smtplib":
        result = smtplib_client.run(
            host,
            port,
            count=count,
            recipients=row.recipients,
            message_bytes=MESSAGE_BYTES,
            duration_cap=args.seconds,
            kind="email",
        )
    else:
        assert row.window is not None
        result = run_smtpkit(
            host,
            port,
            window=row.window,
            recipients=row.recipients,
            count=count,
            seconds=args.seconds,
        )
    row.samples.append(result)
    print(
        f"  {row.scenario:9} {row.label:22} {result.messages:5d} msgs "
        f"{result.rate:8.1f} msg/s  cpu {result.cpu_us_per_message:6.0f} us/msg",
        flush=True,
    )


def build_rows(args: argparse.Namespace) -> list[Row]:
    default = DEFAULT_WINDOW
    rows = [Row("sweep", 10, 1, "smtplib")]
    rows += [Row("sweep", 10, 1, "smtpkit", w) for w in args.sweep]
    rows += [Row("rcpt5", 10, 5, "smtplib"), Row("rcpt5", 10, 5, "smtpkit", 1)]
    rows += [Row("rcpt5", 10, 5, "smtpkit", default)]
    rows += [Row("far", 50, 1, "smtplib")]
    rows += [Row("far", 50, 1, "smtpkit", w) for w in sorted({1, 8, default, 32})]
    rows += [Row("loopback", 0, 1, "smtpkit", 1), Row("loopback", 0, 1, "smtpkit", default)]
    return rows


def ratio(rows: list[Row], scenario: str, label: str, against: str) -> float:
    found = {r.label: r.best.rate for r in rows if r.scenario == scenario}
    return found[label] / found[against]


def table(rows: list[Row], rtts: dict[str, float]) -> str:
    out = [
        "| scenario | round trip | rcpts | client | msg/s | x smtplib | msgs/round trip | "
        "CPU us/msg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        best = row.best
        base = [r for r in rows if r.scenario == row.scenario and r.client == "smtplib"]
        versus = f"{best.rate / base[0].best.rate:.1f}x" if base else ""
        rtt = rtts.get(f"{row.delay_ms:g}")
        where = f"{rtt:.1f} ms" if rtt else "loopback"
        per_rtt = f"{best.rate * rtt / 1000:.2f}" if rtt else ""
        out.append(
            f"| {row.scenario} | {where} | {row.recipients} | {row.label} | {best.rate:.1f} "
            f"| {versus} | {per_rtt} | {best.cpu_us_per_message:.0f} |"
        )
    return "\n".join(out)


def plot(data: dict[str, Any], output: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415 - only for --plot

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sweep = [r for r in data["rows"] if r["scenario"] == "sweep"]
    points = sorted((r["window"], r["rate"]) for r in sweep if r["window"] is not None)
    smtplib_rate = next(r["rate"] for r in sweep if r["client"] == "smtplib")
    figure, axis = plt.subplots(figsize=(6.4, 4.0))
    axis.plot(
        [w for w, _ in points],
        [m for _, m in points],
        "o-",
        color="#2b6cb0",
        label="smtpkit (one connection)",
    )
    axis.axhline(smtplib_rate, color="#718096", linestyle="--", label="smtplib")
    axis.axvline(
        data["default_window"],
        color="#38a169",
        linestyle=":",
        label=f"default window={data['default_window']}",
    )
    axis.set_xscale("log", base=2)
    axis.set_xticks([w for w, _ in points], [str(w) for w, _ in points])
    axis.set_xlabel("window (whole BDAT transactions in flight)")
    axis.set_ylabel("messages per second")
    rtt = data["rtt_ms"].get("10", 20.0)
    axis.set_title(f"1 KB EmailMessage, 1 recipient, {rtt:.1f} ms round trip, Postfix smtpd")
    axis.grid(True, alpha=0.3)
    axis.legend()
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    print(f"wrote {output}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="cap per run")
    parser.add_argument("--count", type=int, default=3000, help="messages per delayed run")
    parser.add_argument("--count-loopback", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the delayed rows")
    parser.add_argument("--repeat-loopback", type=int, default=5)
    parser.add_argument(
        "--sweep", type=lambda s: [int(x) for x in s.split(",")], default=list(SWEEP)
    )
    parser.add_argument("--quick", action="store_true", help="2 s runs, one round")
    parser.add_argument("--plot", action="store_true", help="also write docs/img/window.png")
    parser.add_argument("--out", type=Path, default=RESULTS / "window.json")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat_loopback = 2.0, 3
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cannot run Postfix here: {reason}")
    rows = build_rows(args)
    rtts: dict[str, float] = {}
    with PostfixServer(settings=SETTINGS) as server:
        for delay in sorted({r.delay_ms for r in rows}):
            selected = [r for r in rows if r.delay_ms == delay]
            if delay:
                rtts[f"{delay:g}"] = measure_rtt(delay / 1000) * 1000
                print(f"# {delay:g} ms each way: measured round trip {rtts[f'{delay:g}']:.2f} ms")
                with ProxyProcess(server.port, delay / 1000) as proxy:
                    for _ in range(args.repeat):
                        for row in selected:
                            run_row(row, proxy.host, proxy.port, args)
            else:
                print("# loopback (no proxy)")
                for _ in range(args.repeat_loopback):
                    for row in selected:
                        run_row(row, server.host, server.port, args)
    default = DEFAULT_WINDOW
    data = {
        "command": " ".join(["python -m benchmarks.run_window", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "smtpkit": smtpkit.__version__,
        "server": "Postfix smtpd (tests/postfix_server.py), discard transport, in_flow_delay=0",
        "message": f"{MESSAGE_BYTES} byte EmailMessage",
        "default_window": default,
        "rtt_ms": rtts,
        "rows": [
            {
                "scenario": r.scenario,
                "delay_ms": r.delay_ms,
                "recipients": r.recipients,
                "client": r.client,
                "window": r.window,
                "label": r.label,
                "rate": r.best.rate,
                "cpu_us_per_message": r.best.cpu_us_per_message,
                "samples": [s.as_dict() for s in r.samples],
            }
            for r in rows
        ],
    }
    loop = [r for r in rows if r.scenario == "loopback"]
    one, dflt = loop
    rounds = [b.rate / a.rate for a, b in zip(one.samples, dflt.samples, strict=True)]
    data["loopback_default_over_window_1"] = statistics.median(rounds)
    summary = {
        "20 ms, 1 rcpt": ratio(rows, "sweep", f"smtpkit window={default}", "smtplib")
        if default in args.sweep
        else None,
        "20 ms, 5 rcpts": ratio(rows, "rcpt5", f"smtpkit window={default}", "smtplib"),
        "100 ms, 1 rcpt": ratio(rows, "far", f"smtpkit window={default}", "smtplib"),
        "loopback, default over window=1 (median of rounds)": data[
            "loopback_default_over_window_1"
        ],
    }
    data["summary"] = summary
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print()
    print(table(rows, rtts))
    print()
    for name, value in summary.items():
        if value is not None:
            print(f"{name}: {value:.2f}x")
    if args.plot:
        plot(data, REPO / "docs" / "img" / "window.png")


if __name__ == "__main__":
    main()

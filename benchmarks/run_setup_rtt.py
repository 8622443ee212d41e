"""Round trips to open a STARTTLS + AUTH connection, for smtpkit, smtplib and aiosmtplib.

The server is aiosmtpd with a throw-away CA (:mod:`benchmarks.tls_server`; STARTTLS required,
AUTH PLAIN/LOGIN) behind the delay proxy; ``--server localserver`` uses
:class:`smtpkit.testing.LocalServer` instead. Each client connects, upgrades with
STARTTLS, logs in ("ready"), then sends one 1 KB message to one recipient ("+1 message").
Round trips = elapsed time / the round trip measured through the same proxy in the same
run, so timer overshoot in the proxy does not inflate the count. QUIT is not timed.

The proxy does not delay the TCP handshake, so the greeting costs half a round trip. The
floor for a client that waits for every reply is therefore 0.5 (greeting) + 1 (EHLO) + 1
(STARTTLS) + 1 (TLS 1.3 handshake) + 1 (EHLO) + 1 (AUTH PLAIN with initial response) = 5.5.

    python -m benchmarks.run_setup_rtt              # 7 rounds, median kept
    python -m benchmarks.run_setup_rtt --rounds 3
    python -m benchmarks.run_setup_rtt --server localserver

Writes ``benchmarks/results/setup_rtt.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import smtplib
import ssl
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiosmtplib

import smtpkit
from benchmarks.common import REPO, SENDER, build_message, recipient_list
from benchmarks.delay_proxy import ProxyProcess, measure_rtt
from benchmarks.tls_server import TLSServer
from smtpkit.auth import PasswordAuth
from smtpkit.testing import LocalServer

USER, PASSWORD = "bench@example.test", "bench-password"
RCPTS = recipient_list(1)
MESSAGE = build_message(1024, RCPTS)

#: A client: (host, port, tls context) -> (seconds to ready, seconds to first message sent).
Client = Callable[[str, int, ssl.SSLContext], tuple[float, float]]


def smtplib_setup(host: str, port: int, context: ssl.SSLContext) -> tuple[float, float]:
    started = time.perf_counter()
    client = smtplib.SMTP(host, port, timeout=10)
    try:
        client.starttls(context=context)
        client.login(USER, PASSWORD)
        ready = time.perf_counter() - started
        client.sendmail(SENDER, RCPTS, MESSAGE)
        sent = time.perf_counter() - started
        client.quit()
    finally:
        client.close()
    return ready, sent


def aiosmtplib_setup(host: str, port: int, context: ssl.SSLContext) -> tuple[float, float]:
    async def run() -> tuple[float, float]:
        started = time.perf_counter()
        client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            start_tls=True,
            tls_context=context,
            username=USER,
            password=PASSWORD,
            timeout=10,
        )
        await client.connect()
        try:
            ready = time.perf_counter() - started
            await client.sendmail(SENDER, RCPTS, MESSAGE)
            sent = time.perf_counter() - started
        finally:
            await client.quit()
        return ready, sent

    return asyncio.run(run())


def smtpkit_setup(host: str, port: int, context: ssl.SSLContext) -> tuple[float, float]:
    started = time.perf_counter()
    submitter = smtpkit.Submitter(
        host,
        port,
        security=smtpkit.Security.STARTTLS,
        auth=PasswordAuth(USER, PASSWORD),
        tls_context=context,
        timeout=10,
    )
    try:
        submitter.open()
        ready = time.perf_counter() - started
        submitter.send(MESSAGE, sender=SENDER, recipients=RCPTS)
        sent = time.perf_counter() - started
    finally:
        submitter.close()
    return ready, sent


CLIENTS: dict[str, Client] = {
    "smtplib": smtplib_setup,
    "aiosmtplib": aiosmtplib_setup,
    "smtpkit": smtpkit_setup,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay-ms", type=float, default=10.0, help="delay each way")
    parser.add_argument("--rounds", type=int, default=7, help="runs per client (median kept)")
    parser.add_argument("--server", choices=("aiosmtpd", "localserver"), default="aiosmtpd")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/setup_rtt.json")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)  # aiosmtpd's per-session log

    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
    server: TLSServer | LocalServer = (
        TLSServer(USER, PASSWORD)
        if args.server == "aiosmtpd"
        else LocalServer(security=smtpkit.Security.STARTTLS, credentials={USER: PASSWORD})
    )
    with server:
        rtt = measure_rtt(args.delay_ms / 1000)
        context = server.client_tls_context()
        with ProxyProcess(server.port, args.delay_ms / 1000) as proxy:
            for _ in range(args.rounds):  # interleaved, so drift hits every client alike
                for name, client in CLIENTS.items():
                    samples[name].append(client(proxy.host, proxy.port, context))

    print(f"# server: {args.server}; round trip measured through the proxy: {rtt * 1000:.2f} ms")
    print("| client | ready ms | ready round trips | +1 message ms | +1 message round trips |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for name, values in samples.items():
        ready = statistics.median(v[0] for v in values)
        sent = statistics.median(v[1] for v in values)
        rows.append(
            {
                "client": name,
                "ready_seconds": ready,
                "ready_round_trips": ready / rtt,
                "first_message_seconds": sent,
                "first_message_round_trips": sent / rtt,
                "samples": values,
            }
        )
        print(
            f"| {name} | {ready * 1000:.1f} | {ready / rtt:.2f} | {sent * 1000:.1f} | "
            f"{sent / rtt:.2f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "setup_rtt",
                "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m benchmarks.run_setup_rtt", *sys.argv[1:]]),
                "server": args.server,
                "delay_ms": args.delay_ms,
                "measured_rtt_ms": rtt * 1000,
                "rounds": args.rounds,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

"""A fast BDAT sink in a process of its own, for memory and flow-control tests.

It offers PIPELINING and CHUNKING, answers every command with a 2xx, reads each chunk and
throws it away; ``--stall-after N --stall-seconds S`` stops reading for ``S`` seconds
after the ``N``-th ``BDAT ... LAST``, as a server that reads slowly. It runs in another
process so that a test's ``tracemalloc`` sees the client's memory only. It exits after
``--lifetime`` seconds whatever happens (bounded), and listens on 127.0.0.1 only::

    python tests/bdat_sink.py --stall-after 3000 --stall-seconds 0.5
    # prints "listening <port>", then serves until killed or --lifetime passes
"""

from __future__ import annotations

import argparse
import asyncio
import sys

EHLO = (
    b"250-sink.example.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n"
    b"250 SIZE 100000000\r\n"
)


async def serve(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    args: argparse.Namespace,
    count: list[int],
) -> None:
    writer.write(b"220 sink.example.test ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(EHLO)
            elif verb == b"BDAT":
                parts = line.split()
                await reader.readexactly(int(parts[1]))
                if len(parts) > 2:
                    count[0] += 1
                    writer.write(b"250 2.0.0 Ok: queued as S%d\r\n" % count[0])
                    if count[0] == args.stall_after:
                        await asyncio.sleep(args.stall_seconds)  # reads nothing meanwhile
                else:
                    writer.write(b"250 2.0.0 chunk received\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 2.0.0 Ok\r\n")
            if not reader._buffer:  # type: ignore[attr-defined]  # flush once a group is read
                await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> None:
    count = [0]
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args, count), "127.0.0.1", 0, limit=1 << 20
    )
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await asyncio.sleep(args.lifetime)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--stall-seconds", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=120.0)
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)

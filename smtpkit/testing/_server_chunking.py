"""CHUNKING for LocalServer: the ``BDAT`` command (RFC 3030), which aiosmtpd lacks.

Job: :func:`receive_chunk` runs one ``BDAT <size> [LAST]`` on a LocalServer connection:
read exactly ``size`` octets (no dot-stuffing, no line structure), then send one reply for
the chunk - ``250`` for a chunk taken, the final reply (scriptable as ``"message"``) after
``LAST``, an error otherwise. Non-final chunks are scriptable as ``"data"``, as on the fake.

Exchange, pipelined (RFC 3030 §4.2 allows BDAT chunks back to back)::

    C: BDAT 1000
    C: <1000 octets>
    C: BDAT 234 LAST
    C: <234 octets>
    S: 250 2.0.0 1000 octets received
    S: 250 OK: queued as LOCAL0001

Invariants:
    * The chunk's octets are always read, even for a chunk that will be refused, so the
      connection stays in step with the client (RFC 3030 §2); only a size that is not
      1 to 10 digits is refused at once (``501``), since then nothing can be read safely.
    * Octets past the SIZE limit are discarded as they arrive, never buffered; the
      message is refused with ``552`` at the chunk that went over.
    * With CHUNKING switched off the command is refused (``502``) after its octets are
      read, and the client's mistake is recorded in ``protocol_errors``.
    * Once BDAT was used, DATA is refused in the same transaction (RFC 3030 §3).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from smtpkit.replies import Phase
from smtpkit.testing._envelope import parse_bdat

if TYPE_CHECKING:
    from smtpkit.testing._server_protocol import LocalSMTP

__all__ = ["READ_PIECE", "receive_chunk"]

#: Octets read from the socket at a time while a chunk arrives.
READ_PIECE = 65536


async def receive_chunk(server: LocalSMTP, arg: str) -> None:
    """Run one ``BDAT`` command: read its octets, send its one reply."""
    parsed = parse_bdat(arg)
    if parsed is None:
        server.mistake(f"malformed BDAT arguments {arg[:40]!r} (RFC 3030 §2)")
        await server.push("501 5.5.4 Syntax: BDAT count [LAST]")
        return
    size, last = parsed
    env = server.env()
    error = None
    if not server.extensions.chunking:
        server.mistake("BDAT sent but CHUNKING was not advertised (RFC 3030 §2)")
        error = "502 5.5.1 Error: command not implemented"
    elif not server.local_session().host_name:
        error = "503 5.5.1 Error: send HELO first"
    elif env.mail_from is None:
        error = "503 5.5.1 Error: need MAIL command"
    elif not env.rcpt_tos:
        error = "554 5.5.1 Error: no valid recipients"
    if not await _read(server, size, keep=error is None):
        return  # the client hung up in the middle of the chunk
    if error is not None:
        await server.push(error)
        return
    env.chunked = True
    if env.overflow:
        server.reset_transaction()
        await server.push("552 5.3.4 Message size exceeds fixed maximum message size")
        return
    if last:
        status = await server.finish_message(bytes(env.chunks), chunked=True)
        server.reset_transaction()
        await server.push(status)
        return
    status = await server.decide(Phase.DATA) or f"250 2.0.0 {size} octets received"
    if not status.startswith("2"):
        server.reset_transaction()  # a refused chunk ends the transaction
    await server.push(status)


async def _read(server: LocalSMTP, size: int, *, keep: bool) -> bool:
    """Read ``size`` octets into the envelope (or discard them); False if the client left."""
    env = server.env()
    limit = server.data_size_limit
    left = size
    while left:
        try:
            piece = await server._reader.readexactly(min(left, READ_PIECE))
        except asyncio.IncompleteReadError:
            return False
        left -= len(piece)
        if not keep or env.overflow:
            continue
        if limit and len(env.chunks) + len(piece) > limit:
            env.overflow = True
            env.chunks.clear()
        else:
            env.chunks += piece
    return True

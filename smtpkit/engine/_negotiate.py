"""Opening, checking and closing a link: greeting, EHLO, STARTTLS, AUTH, NOOP, QUIT.

:func:`open_link` is the whole life of a connection before its first message::

    Connect                                 (TCP; implicit TLS: its handshake)
    S: 220 smtp.example.com ESMTP
    C: EHLO client.example.com
    S: 250-smtp.example.com
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
    StartTLS                                (plaintext buffered so far is dropped, RFC 3207 §4.2)
    C: EHLO client.example.com
    S: 250-smtp.example.com
    S: 250 AUTH PLAIN LOGIN
    C: AUTH PLAIN ****
    S: 235 2.7.0 Accepted

Invariants:
    * With ``Security.STARTTLS`` nothing but EHLO (or HELO) and STARTTLS goes out before
      TLS is up; a server that does not offer STARTTLS gets no further command, not even
      QUIT (RFC 3207 §4; no silent downgrade).
    * ``Timeouts.connect`` bounds the connect (with the implicit-TLS handshake) and the
      STARTTLS handshake; every reply, the greeting included, is bounded as a whole by
      ``Timeouts.command`` (servers such as Postfix postscreen greet late on purpose).
    * A link that failed to open is dead when the exception leaves (the driver closes its
      stream); at most one reconnect happens, for OAuth2's retry-once rule.
"""

from __future__ import annotations

from collections.abc import Callable

from smtpkit.auth import AccessToken
from smtpkit.config import Security
from smtpkit.engine._auth import Reconnect, authenticate
from smtpkit.engine._effects import CLOSE, Connect, Connected, StartTLS, Steps
from smtpkit.engine._link import Link, LinkSettings
from smtpkit.errors import (
    LocalProtocolError,
    OperationTimeout,
    ReplyError,
    SMTPError,
    StartTLSNotOffered,
    TLSModeMismatch,
    TransportError,
    detect_provider,
)
from smtpkit.protocol import Command
from smtpkit.replies import Phase, Reply

__all__ = ["close_link", "open_link", "probe_link"]

#: The implicit-TLS submission port (RFC 8314 §7.3).
IMPLICIT_TLS_PORT = 465


def open_link(
    settings: LinkSettings, *, clock: Callable[[], float], trace: bool = False
) -> Steps[Link]:
    """Connect and negotiate (greeting, EHLO, STARTTLS when asked, AUTH when configured).

    Args:
        settings: what to negotiate.
        clock: the driver's monotonic clock; every deadline is a value of it.
        trace: yield ``Log(WIRE, ...)`` effects for every line.

    Returns:
        A live, negotiated (and, with auth, authenticated) :class:`Link`.

    Raises:
        SMTPError: typed, for every failure; the link is dead.
    """
    link = yield from _connect(settings, clock, trace)
    try:
        yield from _negotiate(link, token=None, token_retry=True)
    except Reconnect as again:
        # The server hung up after refusing the OAuth2 token; the provider now holds a fresh
        # one. One new connection, and no further refresh on it.
        yield CLOSE
        link = yield from _connect(settings, clock, trace)
        yield from _negotiate(link, token=again.token, token_retry=False)
    return link


def _connect(settings: LinkSettings, clock: Callable[[], float], trace: bool) -> Steps[Link]:
    connected = yield Connect(clock() + settings.timeouts.connect)
    if not isinstance(connected, Connected):
        raise LocalProtocolError(f"Connect was answered with {type(connected).__name__}")
    return Link(settings, clock, peer=connected.peer, encrypted=connected.encrypted, trace=trace)


def _negotiate(link: Link, *, token: AccessToken | None, token_retry: bool) -> Steps[None]:
    settings = link.settings
    greeting = yield from _greeting(link)
    link.provider = link.provider or detect_provider(greeting)
    if not greeting.is_positive:
        yield from link.quit()
        raise link.error(greeting, Phase.GREETING)
    yield from _ehlo(link)
    if settings.security is Security.STARTTLS and not link.encrypted:
        yield from _starttls(link)
    if settings.auth is not None:
        yield from authenticate(link, settings.auth, token=token, token_retry=token_retry)


def _greeting(link: Link) -> Steps[Reply]:
    settings = link.settings
    try:
        return (yield from link.read_reply())
    except OperationTimeout as error:
        if link.partial:
            raise  # a greeting started: this is a slow server, not a TLS port
        if settings.security is not Security.TLS and settings.port == IMPLICIT_TLS_PORT:
            raise TLSModeMismatch(
                f"no greeting from {settings.host}:{IMPLICIT_TLS_PORT} in plaintext",
                hint=(
                    "port 465 expects TLS from the first byte: use Security.TLS, or "
                    "Security.STARTTLS with port 587"
                ),
                transcript=link.transcript,
            ) from None
        if settings.security is not Security.TLS and error.hint is None:
            # An implicit-TLS server waits for the client's handshake and says nothing,
            # so on another port the client cannot tell it from a slow server.
            error.hint = (
                "the server sent no greeting: if this port expects TLS from the first "
                "byte (implicit TLS, usually port 465), use Security.TLS"
            )
        raise


def _ehlo(link: Link) -> Steps[None]:
    name = link.settings.local_hostname
    reply = yield from link.exchange(Command.ehlo(name))
    if reply.is_positive:
        return
    if reply.code in (500, 502, 504) and link.alive:
        # RFC 5321 §3.2: a server that does not know EHLO is answered with HELO.
        reply = yield from link.exchange(Command.helo(name))
        if reply.is_positive:
            return
    yield from link.quit()
    raise link.error(reply, Phase.EHLO)


def _starttls(link: Link) -> Steps[None]:
    settings = link.settings
    if not link.extensions.starttls:
        # Required STARTTLS: send nothing else, not even QUIT (RFC 3207 §4, DESIGN rule 7).
        link.mark_dead()
        raise StartTLSNotOffered(
            f"{settings.host}:{settings.port} does not offer STARTTLS; "
            "refusing to continue in plaintext",
            hint=(
                "check the port (587 offers STARTTLS; 465 needs Security.TLS); only for a "
                "trusted local relay use Security.NONE"
            ),
            transcript=link.transcript,
        )
    reply = yield from link.exchange(Command.starttls())
    if reply.code != 220:
        error = link.error(reply, Phase.STARTTLS)
        yield from link.quit()
        raise error
    try:
        yield StartTLS(settings.server_hostname, link.clock() + settings.timeouts.connect)
    except SMTPError as error:
        link.mark_dead()
        error.attach_transcript(link.transcript)
        raise
    link.conn.tls_established()
    link.encrypted = True
    yield from _ehlo(link)


def probe_link(link: Link) -> Steps[bool]:
    """A health check before reusing an idle link: True when NOOP gets ``250``.

    A link that fails the check is dead (the driver closes it).
    """
    try:
        reply = yield from link.exchange(Command.noop())
    except (TransportError, ReplyError):
        link.mark_dead()
        return False
    if reply.code != 250:
        yield from link.quit()
        return False
    return True


def close_link(link: Link) -> Steps[None]:
    """QUIT (when the link is still usable) and close the stream. Never raises an SMTPError."""
    try:
        yield from link.quit()
    except SMTPError:  # pragma: no cover - quit() swallows them; belt and braces
        link.mark_dead()
    yield CLOSE

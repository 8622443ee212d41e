"""A real SMTP submission server on the loopback interface, for tests and local delivery.

:class:`LocalServer` runs aiosmtpd in a background thread with a throw-away certificate
authority (trustme), so clients can exercise the real wire protocol - implicit TLS, STARTTLS,
AUTH PLAIN/LOGIN/XOAUTH2/OAUTHBEARER, SIZE, SMTPUTF8, CHUNKING (BDAT), DSN - without leaving
the machine. It is scripted and inspected with the same words as FakeTransport
(:mod:`smtpkit.testing._kit`)::

    with LocalServer(credentials={"alice@example.test": "s3cret"}) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.starttls(context=server.client_tls_context())
            client.login("alice@example.test", "s3cret")
            client.sendmail("alice@example.test", ["bob@example.test"], message_bytes)
        [received] = server.wait_for(1)

Invariants:
    * The server listens only on a loopback address; any other host is a
      :class:`~smtpkit.errors.ConfigurationError`. It never connects anywhere.
    * ``stop()`` is idempotent and leaves nothing behind: the listener and every session are
      closed, the thread joined, the event loop closed, and the temporary CA file removed.
    * ``repr()`` and ``url`` never show a password or token.
    * Each server has its own CA: a client trusts it only through ``client_tls_context()``,
      ``ca_pem`` or ``ca_path``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from smtpkit.config import Security
from smtpkit.testing._arguments import (
    check_callable,
    check_credentials,
    check_flag,
    check_host_name,
    check_instance,
    check_mechanisms,
    check_optional_flag,
    check_path,
    check_positive_int,
    check_token_check,
)
from smtpkit.testing._record import ReceivedMessage
from smtpkit.testing._server_aiosmtpd import (
    ThreadedServer,
    bind_listener,
    local_controller,
    loopback_address,
    quiet_aiosmtpd_logger,
)
from smtpkit.testing._server_handler import Handler, TokenCheck
from smtpkit.testing._server_legacy import LegacyServerNames
from smtpkit.testing._server_protocol import Extensions
from smtpkit.testing._server_state import (
    DISCONNECT,
    DROP,
    FaultHook,
    ServerState,
    normalize_reply,
)
from smtpkit.testing._server_tls import DEFAULT_CERTIFICATE_NAMES, ServerCertificates

__all__ = ["AUTH_MECHANISMS", "LocalServer"]

#: Every SASL mechanism the server implements, in the order a client would prefer them.
AUTH_MECHANISMS = ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER")

#: An ``auth_failure_reply`` as a hint shows it.
_EXAMPLE_REPLY = "'535 5.7.8 Username and Password not accepted.'"

_URL_SCHEMES = {Security.TLS: "smtps", Security.STARTTLS: "smtp+starttls", Security.NONE: "smtp"}


class LocalServer(LegacyServerNames):
    """An SMTP server on 127.0.0.1 (or ::1) in a background thread.

    Scripting (``reply``, ``disconnect``, ``timeout``, ``delay``, at every phase from the
    greeting to QUIT) and what arrived (``messages``, ``dropped``, ``auth_attempts``,
    ``protocol_errors``, ``assert_sent``, ``wait_for``) are shared with
    :class:`~smtpkit.testing.FakeTransport`. A scripted ``delay`` really waits here.

    Args:
        security: ``Security.STARTTLS`` (plaintext greeting, STARTTLS advertised and required
            before any other command but EHLO/NOOP/QUIT), ``Security.TLS`` (TLS from the first
            byte, like port 465) or ``Security.NONE`` (plaintext; AUTH is still offered since
            the link is loopback).
        credentials: user name to password for PLAIN and LOGIN. ``None`` accepts any user
            name and password (AUTH is still offered and recorded).
        host: the loopback address to listen on (``"localhost"`` means ``127.0.0.1``).
        port: the port; ``None`` picks a free ephemeral port.
        hostname: the name in the greeting and EHLO reply; also added to the certificate
            when ``certificate_names`` is the default.
        require_auth: answer ``MAIL`` before a successful AUTH with
            ``530 5.7.0 Authentication required``. ``None`` (the default) requires AUTH
            exactly when ``credentials`` or ``oauth_tokens`` are given: a server told which
            logins are valid does not take mail from anyone. Pass ``False`` for a server
            that checks logins but also takes unauthenticated mail.
        auth_mechanisms: the SASL mechanisms to offer, a subset of :data:`AUTH_MECHANISMS`.
            ``None`` offers PLAIN and LOGIN, plus XOAUTH2 and OAUTHBEARER when
            ``oauth_tokens`` is given. An empty tuple offers no AUTH at all.
        size_limit: advertise ``SIZE n`` (RFC 1870) and answer larger messages with 552.
            ``None`` advertises no SIZE and accepts any size.
        smtputf8: advertise and accept SMTPUTF8 (RFC 6531).
        pipelining: advertise PIPELINING (RFC 2920).
        chunking: advertise CHUNKING and accept ``BDAT`` (RFC 3030); off, BDAT is refused
            with ``502`` and recorded in :attr:`protocol_errors`.
        eight_bit_mime: advertise 8BITMIME and accept ``BODY=8BITMIME`` (RFC 6152); off, the
            parameter is refused with ``555``.
        dsn: advertise DSN and accept ``RET``/``ENVID`` on MAIL and ``NOTIFY``/``ORCPT`` on
            RCPT (RFC 3461), recorded in ``mail_options`` and ``rcpt_options``; off (the
            default, as aiosmtpd), those parameters are refused with ``555``.
        save_dir: also write each accepted message there as ``<UTC time>-<counter>.eml``.
        on_message: called on the server thread with each accepted message. Its exceptions
            do not change the reply; they are logged and kept in :attr:`server_errors`.
        oauth_tokens: for XOAUTH2 and OAUTHBEARER, a mapping of user to the currently valid
            token or a validator ``(user, token) -> bool``. ``None`` accepts any token.
        ca_path: where to write the CA certificate (kept after ``stop()``); by default it
            goes to a temporary directory removed by ``stop()``.
        faults: a fault injector ``faults(phase) -> str | None``, called on the server thread
            at every ``"mail"``, ``"rcpt"``, ``"data"`` and ``"message"`` (after the content)
            step that no scripted step answers: ``None`` proceeds, a 4xx/5xx reply is sent
            instead, and :attr:`DROP` closes the connection without a reply (at
            ``"message"`` the message is kept in :attr:`messages` first, as a server whose
            reply got lost would deliver it); :attr:`DISCONNECT` closes it as
            :meth:`disconnect` does (the message kept in :attr:`dropped`). For example
            random transient failures::

                rng = random.Random(1)
                LocalServer(faults=lambda phase: "451 4.3.0 Try again" if rng.random() < 0.05
                            else None)

        auth_failure_reply: the reply to refused PLAIN/LOGIN credentials, to reproduce a
            provider's wording (lines joined with ``"\n"``, as for :meth:`reply`), e.g.
            Gmail's ``"535-5.7.8 Username and Password not accepted. Learn more at\n535
            5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp"``. Default:
            aiosmtpd's ``535 5.7.8 Authentication credentials invalid``.
        certificate_names: the identities (DNS names, IP addresses) on the server's
            certificate, exactly; e.g. ``("mail.example.test",)`` for a certificate that does
            not match the loopback address a client connects to.
        certificate_expired: issue the server's certificate with a validity period long past
            (2000-01-01 to 2001-01-01), so that every verifying client refuses it as expired.

    Raises:
        ConfigurationError: a non-loopback host or an invalid option.
    """

    #: What a ``faults`` hook returns to close the connection without a reply; after the
    #: content the message is kept in :attr:`messages` (delivered, its reply lost).
    DROP = DROP
    #: What a ``faults`` hook returns to play a scripted :meth:`disconnect`; after the
    #: content the message is kept in :attr:`dropped`.
    DISCONNECT = DISCONNECT

    def __init__(
        self,
        *,
        security: Security = Security.STARTTLS,
        credentials: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        hostname: str = "localhost",
        require_auth: bool | None = None,
        auth_mechanisms: Collection[str] | None = None,
        size_limit: int | None = None,
        smtputf8: bool = True,
        pipelining: bool = True,
        chunking: bool = False,
        eight_bit_mime: bool = True,
        dsn: bool = False,
        save_dir: str | os.PathLike[str] | None = None,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        oauth_tokens: TokenCheck | None = None,
        ca_path: str | os.PathLike[str] | None = None,
        auth_failure_reply: str | None = None,
        faults: FaultHook | None = None,
        certificate_names: Sequence[str] = DEFAULT_CERTIFICATE_NAMES,
        certificate_expired: bool = False,
    ) -> None:
        # Every argument is checked before a certificate, thread or socket is made
        # (smtpkit.testing._arguments): a wrong one is a ConfigurationError with a hint.
        security = check_instance("security", security, Security, example="Security.TLS")
        self._host = loopback_address(host)
        port = check_positive_int("port", port, maximum=65535)
        size_limit = check_positive_int("size_limit", size_limit)
        hostname = check_host_name("hostname", hostname)
        credentials = check_credentials(credentials)
        oauth_tokens = check_token_check(oauth_tokens)
        require_auth = check_optional_flag("require_auth", require_auth)
        for name, flag in (
            ("smtputf8", smtputf8),
            ("pipelining", pipelining),
            ("chunking", chunking),
            ("eight_bit_mime", eight_bit_mime),
            ("dsn", dsn),
            ("certificate_expired", certificate_expired),
        ):
            check_flag(name, flag)
        mechanisms = (
            (AUTH_MECHANISMS if oauth_tokens is not None else AUTH_MECHANISMS[:2])
            if auth_mechanisms is None
            else check_mechanisms(auth_mechanisms, AUTH_MECHANISMS)
        )
        save_dir, ca_path = check_path("save_dir", save_dir), check_path("ca_path", ca_path)
        on_message = check_callable("on_message", on_message, example="print")
        faults = check_callable("faults", faults, example="lambda phase: None")
        if auth_failure_reply is not None:
            check_instance("auth_failure_reply", auth_failure_reply, str, example=_EXAMPLE_REPLY)
        self._security = security
        self._requested_port = port
        self._port: int | None = None
        self._hostname = hostname
        self._size_limit = size_limit
        self._smtputf8 = smtputf8
        self._save_dir = save_dir
        self._users = tuple(sorted(credentials)) if credentials is not None else None
        self._state = ServerState(save_dir=save_dir, on_message=on_message, faults=faults)
        self._script = self._state.script
        self._records = self._state.records
        self._extensions = Extensions(
            size=size_limit,
            eight_bit_mime=eight_bit_mime,
            smtputf8=smtputf8,
            dsn=dsn,
            auth=mechanisms,
            pipelining=pipelining,
            chunking=chunking,
            require_auth=(
                require_auth
                if require_auth is not None
                else credentials is not None or oauth_tokens is not None
            ),
            implicit_tls=security is Security.TLS,
        )
        self._handler = Handler(
            self._state,
            credentials=credentials,
            oauth_tokens=oauth_tokens,
            mechanisms=mechanisms,
            advertise=tuple(
                keyword
                for keyword, on in (
                    ("PIPELINING", pipelining),
                    ("CHUNKING", chunking),
                    ("DSN", dsn),
                )
                if on
            ),
            hide=() if eight_bit_mime else ("8BITMIME",),
            auth_failure_reply=(
                normalize_reply(auth_failure_reply) if auth_failure_reply is not None else None
            ),
        )
        self._mechanisms = mechanisms
        self._certificates = ServerCertificates(
            certificate_names, hostname, expired=certificate_expired, ca_path=ca_path
        )
        self._controller: ThreadedServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind, start the server thread and wait until it answers. Returns ``self``.

        Raises:
            RuntimeError: the server is already running.
            OSError: the requested port is taken (an ephemeral port is retried instead).
        """
        if self._controller is not None:
            raise RuntimeError(f"{self!r} is already running")
        quiet_aiosmtpd_logger()
        if self._save_dir is not None:
            self._save_dir.mkdir(parents=True, exist_ok=True)
        self._certificates.write_file()
        sock = bind_listener(self._host, self._requested_port)
        controller = local_controller(
            self._handler,
            self._extensions,
            sock,
            security=self._security,
            server_context=self._certificates.server_context,
            hostname=self._hostname,
            excluded_mechanisms=[m for m in AUTH_MECHANISMS if m not in self._mechanisms],
            size_limit=self._size_limit,
            smtputf8=self._smtputf8,
        )
        self._port = sock.getsockname()[1]
        self._state.ready = False
        try:
            controller.start()
            self._state.ready = True
        except BaseException:
            controller.shutdown()
            self._port = None
            self._certificates.remove_file()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        """Close every session and the listener, join the thread. Safe to call repeatedly."""
        controller, self._controller = self._controller, None
        try:
            if controller is not None:
                controller.shutdown()
        finally:
            if controller is not None and self._requested_port is None:
                self._port = None
            self._certificates.remove_file()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where and how -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._controller is not None

    @property
    def host(self) -> str:
        """The loopback address the server listens on (``127.0.0.1`` or ``::1``)."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: no port was given and the server is not running.
        """
        port = self._port or self._requested_port
        if port is None:
            raise RuntimeError("LocalServer has no port until start() is called")
        return port

    @property
    def security(self) -> Security:
        """How the listener is protected."""
        return self._security

    @property
    def hostname(self) -> str:
        """The name in the greeting and EHLO reply."""
        return self._hostname

    @property
    def url(self) -> str:
        """``smtps://``, ``smtp+starttls://`` or ``smtp://`` host and port; never credentials."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{_URL_SCHEMES[self._security]}://{host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        """The PEM of this server's own CA certificate."""
        return self._certificates.ca_pem

    @property
    def ca_path(self) -> Path:
        """A PEM file holding :attr:`ca_pem` (written by ``start()``).

        Raises:
            RuntimeError: the server is not running and no ``ca_path`` was given.
        """
        certificates = self._certificates
        if certificates.path is not None:
            return certificates.path
        if certificates.given_path is not None:
            return certificates.write_file()
        raise RuntimeError("LocalServer writes its CA file on start()")

    def client_tls_context(self) -> ssl.SSLContext:
        """A verifying client context (``ssl.create_default_context()``) trusting only this CA."""
        return self._certificates.client_tls_context()

    # -- what arrived: messages, dropped, auth_attempts, ... (ScriptableServer) ---------------

    @property
    def server_errors(self) -> list[BaseException]:
        """Exceptions raised inside the server: bugs (answered 451), a failing ``faults``
        hook or ``on_message`` callback. The fake has none: its errors reach the test."""
        with self._records.lock:
            return list(self._records.server_errors)

    def __repr__(self) -> str:
        where = self.url if self._port or self._requested_port else f"{self._host}:<unbound>"
        users = "any" if self._users is None else list(self._users)
        return (
            f"LocalServer({where}, running={self.running}, users={users}, "
            f"messages={len(self._records.messages)})"
        )

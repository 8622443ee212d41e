"""The doctor's steps: DNS, TCP, TLS and certificate, greeting, EHLO, STARTTLS, AUTH, SIZE.

Each step observes one thing and adds a :class:`~smtpkit.doctor.Finding`; a failing step
stops the walk (later steps are reported as skipped). When a step fails in a way that has
a known cause, the doctor probes once more to name it:

* TLS spoken to a plaintext port (``WRONG_VERSION_NUMBER``): it reads the plaintext
  greeting on a fresh connection and advises STARTTLS;
* no greeting in plaintext: it tries a TLS handshake on a fresh connection and, if the port
  speaks TLS, advises implicit TLS (``smtps://``);
* a certificate that does not verify: it reads the certificate over a fresh connection
  without verification, only to name its subject and issuer.

Invariants:
    * Nothing but EHLO, STARTTLS, AUTH (with ``login=True``) and QUIT is ever sent: the
      doctor never sends MAIL, so it cannot send a message.
    * Credentials are sent only over TLS or to loopback (or with the same explicit opt-out
      the Submitter needs), and only when ``login=True``.
    * Every network wait is bounded by the configured timeouts.
"""

from __future__ import annotations

import ipaddress
import socket
import time

from smtpkit.config import Security
from smtpkit.doctor._auth_steps import AuthSteps
from smtpkit.doctor._base import Resolver, short, steps_for, url_for
from smtpkit.doctor._probe import Wire, connect
from smtpkit.doctor._report import Finding, Status
from smtpkit.doctor._tls_steps import TLSSteps
from smtpkit.errors import (
    ConfigurationError,
    ConnectError,
    OperationTimeout,
    TLSModeMismatch,
    TransportError,
    error_for_reply,
)
from smtpkit.protocol import Command, Extensions
from smtpkit.replies import Phase
from smtpkit.transports import Stream

__all__ = ["Doctor", "Resolver", "steps_for"]


class Doctor(TLSSteps, AuthSteps):
    """Walk the steps for one target and collect findings (arguments: see :class:`Walk`)."""

    def run(self) -> list[Finding]:
        """Run every step that can run; return the findings (skipped steps included)."""
        if self.proxy is not None or self._dns():
            stream = self._tunnel() if self.proxy is not None else self._tcp()
            if stream is not None:
                wire = Wire(stream, self.host)
                try:
                    self._session(wire)
                finally:
                    self.transcript = wire.transcript
                    wire.close(self.timeouts.command)
        ran = {f.step for f in self.findings}
        order = steps_for(self.security, proxy=self.proxy is not None)
        for step in order:
            if step not in ran:
                self.findings.append(Finding(step, Status.SKIP, "not run: an earlier step failed"))
        self.findings.sort(key=lambda f: order.index(f.step) if f.step in order else 0)
        return self.findings

    def _session(self, wire: Wire) -> None:
        if self.security is Security.TLS and not self._implicit_tls(wire.stream):
            return
        if not self._greeting(wire):
            return
        extensions = self._ehlo(wire, "ehlo")
        if extensions is None:
            return
        if self.security is Security.STARTTLS:
            extensions = self._starttls(wire, extensions)
            if extensions is None:
                return
        if self._auth_mechanisms(wire, extensions):
            self._login(wire, extensions)
        self._size(extensions)

    def _dns(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            return self._add("dns", Status.OK, f"{self.host} is an IP address: no lookup needed")
        try:
            addresses = self.resolver(self.host, self.port, self.timeouts.connect)
        except TimeoutError:
            return self._add(
                "dns",
                Status.FAIL,
                f"no DNS answer for {self.host} within {self.timeouts.connect:g} s",
                "check the network's DNS resolver (and any VPN or proxy) and try again",
            )
        except OSError as error:
            reason = error.strerror if isinstance(error, socket.gaierror) else str(error)
            return self._add(
                "dns",
                Status.FAIL,
                f"{self.host} does not resolve: {reason}",
                "check the host name for typos"
                + (
                    f" ({self.preset.display_name} uses {self.preset.host})"
                    if self.preset and self.preset.host != self.host
                    else ""
                )
                + " and that this machine can resolve names (DNS, VPN, proxy)",
            )
        return self._add(
            "dns", Status.OK, f"{self.host} -> {', '.join(addresses[:4])}", addresses=addresses
        )

    def _tcp(self) -> Stream | None:
        started = time.monotonic()
        try:
            stream = connect(self.host, self.port, self.timeouts.connect)
        except OperationTimeout:
            self._add(
                "tcp",
                Status.FAIL,
                f"no answer from {self.host}:{self.port} within {self.timeouts.connect:g} s",
                "a firewall probably drops the connection: many networks and cloud hosts block "
                "outgoing SMTP ports; try the other submission port (587 or 465) or another "
                "network",
            )
            return None
        except ConnectError as error:
            self._add(
                "tcp",
                Status.FAIL,
                error.message,
                f"nothing accepts connections on port {self.port}: check the port (587 for "
                "STARTTLS, 465 for implicit TLS) and that the server is running",
            )
            return None
        elapsed = (time.monotonic() - started) * 1000
        self._add("tcp", Status.OK, f"connected to {self.host}:{self.port} in {elapsed:.0f} ms")
        return stream

    def _tunnel(self) -> Stream | None:
        """The ``proxy`` step: reach the proxy and have it open a tunnel to the server."""
        proxy = self.proxy
        assert proxy is not None
        where = f"{self.host}:{self.port}"
        started = time.monotonic()
        try:
            stream = connect(self.host, self.port, self.timeouts.connect, proxy=proxy)
        except (TransportError, ConfigurationError) as error:
            # ProxyError and its kinds name the proxy (password masked) and say what to do;
            # ConfigurationError: python-socks is missing.
            self._add("proxy", Status.FAIL, error.message, error.hint, proxy=proxy.url)
            return None
        elapsed = (time.monotonic() - started) * 1000
        self._add(
            "proxy",
            Status.OK,
            f"{proxy.kind.protocol} proxy {proxy.url} opened a tunnel to {where} in "
            f"{elapsed:.0f} ms",
            proxy=proxy.url,
            protocol=proxy.kind.protocol,
        )
        return stream

    def _greeting(self, wire: Wire) -> bool:
        wait = self._greeting_wait
        try:
            reply = wire.read(wait)
        except OperationTimeout:
            return self._no_greeting(wait)
        except TransportError as error:
            return self._add("greeting", Status.FAIL, error.message, error.hint)
        if not reply.is_positive:
            refused = error_for_reply(reply, Phase.GREETING, provider=self._family)
            return self._add("greeting", Status.FAIL, short(reply), refused.hint)
        return self._add("greeting", Status.OK, short(reply))

    def _no_greeting(self, wait: float) -> bool:
        observed = f"no greeting within {wait:g} s"
        if self.security is Security.TLS:
            return self._add("greeting", Status.FAIL, observed, "check the host and port")
        speaks_tls = self._speaks_tls()
        if speaks_tls:
            return self._add(
                "greeting",
                Status.FAIL,
                f"{observed}, but the port answers a TLS handshake",
                f"port {self.port} expects TLS from the first byte (implicit TLS): use "
                f"{url_for(Security.TLS, self.host, self.port)} (Security.TLS), or STARTTLS on "
                "port 587",
                implicit_tls=True,
            )
        return self._add(
            "greeting",
            Status.FAIL,
            f"{observed}; a TLS handshake got no answer either",
            "the server accepted the connection but says nothing. If this port expects "
            f"implicit TLS (usually 465), use {url_for(Security.TLS, self.host, self.port)}; "
            "otherwise check the host and port, or a proxy or firewall on the path",
            implicit_tls=False,
        )

    def _ehlo(self, wire: Wire, step: str) -> Extensions | None:
        try:
            reply = wire.exchange(Command.ehlo(self.local_hostname), self.timeouts.command)
        except TransportError as error:
            self._add(step, Status.FAIL, error.message, error.hint)
            return None
        if not reply.is_positive:
            refused = error_for_reply(reply, Phase.EHLO, provider=self._family)
            self._add(step, Status.FAIL, short(reply), refused.hint)
            return None
        extensions = wire.conn.extensions or Extensions.from_reply(reply)
        shown = [
            f"{keyword} {params}".strip() if keyword in ("AUTH", "SIZE") else keyword
            for keyword, params in extensions.keywords.items()
        ]
        if "AUTH" not in extensions.keywords:
            shown.append("(no AUTH)")
        self._add(
            step,
            Status.OK,
            f"{extensions.server_name.split(' ')[0]}: {', '.join(shown) or 'no extensions'}",
            keywords=dict(extensions.keywords),
        )
        return extensions

    def _starttls(self, wire: Wire, extensions: Extensions) -> Extensions | None:
        if not extensions.starttls:
            self._add(
                "starttls",
                Status.FAIL,
                f"{self.host}:{self.port} does not offer STARTTLS",
                "smtpkit sends nothing more over a link that cannot be encrypted (no silent "
                "downgrade). Check the port: 587 offers STARTTLS, 465 needs smtps://; only for "
                "a trusted local relay use smtp:// (Security.NONE)",
            )
            return None
        try:
            reply = wire.exchange(Command.starttls(), self.timeouts.command)
        except TransportError as error:
            self._add("starttls", Status.FAIL, error.message, error.hint)
            return None
        if reply.code != 220:
            refused = error_for_reply(reply, Phase.STARTTLS, provider=self._family)
            self._add("starttls", Status.FAIL, short(reply), refused.hint)
            return None
        self._add("starttls", Status.OK, short(reply))
        try:
            if not self._handshake(wire.stream):
                return None
        except TLSModeMismatch as error:
            self._add("tls", Status.FAIL, error.message, error.hint)
            return None
        wire.conn.tls_established()
        return self._ehlo(wire, "ehlo-tls")

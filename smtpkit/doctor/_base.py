"""The doctor's shared state and helpers: target settings, findings, the step list.

:class:`Walk` holds what every step needs (target, timeouts, findings) and is the base of
the step groups in :mod:`smtpkit.doctor._tls_steps` and :mod:`smtpkit.doctor._auth_steps`,
which :class:`smtpkit.doctor._steps.Doctor` combines.
"""

from __future__ import annotations

from collections.abc import Callable

from smtpkit import providers
from smtpkit.auth import AuthStrategy
from smtpkit.config import Security, Timeouts
from smtpkit.config._proxy import Proxy
from smtpkit.doctor._probe import resolve
from smtpkit.doctor._report import Finding, Status
from smtpkit.replies import Reply

__all__ = ["GREETING_WAIT", "Resolver", "Walk", "short", "steps_for", "url_for"]

#: ``resolver(host, port, timeout) -> addresses``; raises ``OSError``/``TimeoutError``.
Resolver = Callable[[str, int, float], list[str]]

#: The longest the doctor waits for a greeting before suspecting implicit TLS (seconds).
GREETING_WAIT = 10.0


def steps_for(security: Security, *, proxy: bool = False) -> tuple[str, ...]:
    """The steps the doctor walks for ``security``, in order.

    Through a proxy, ``proxy`` (reaching the proxy and its tunnel to the server) takes the
    place of ``dns`` and ``tcp``: the proxy resolves and connects, not this machine.
    """
    middle: tuple[str, ...]
    if security is Security.TLS:
        middle = ("tls", "certificate", "greeting", "ehlo")
    elif security is Security.STARTTLS:
        middle = ("greeting", "ehlo", "starttls", "tls", "certificate", "ehlo-tls")
    else:
        middle = ("greeting", "ehlo")
    start = ("proxy",) if proxy else ("dns", "tcp")
    return (*start, *middle, "auth-mechanisms", "login", "size")


def short(reply: Reply, limit: int = 90) -> str:
    """The reply on one line, cut to ``limit`` characters for the report."""
    text = str(reply).replace("\r\n", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def url_for(security: Security, host: str, port: int) -> str:
    """The server URL for a mode, as advice shows it (``smtps://host:465``)."""
    scheme = {Security.TLS: "smtps", Security.STARTTLS: "smtp+starttls"}.get(security, "smtp")
    return f"{scheme}://{host}:{port}"


class Walk:
    """The state every step shares: the target, the settings and the findings so far.

    Args:
        host, port, security: the server and mode to check.
        auth: the strategy a Submitter would use, or ``None``.
        preset: the provider preset, for precise advice.
        timeouts: connect and command timeouts.
        local_hostname: the EHLO name.
        cafile: trust this CA bundle instead of the system's.
        login: attempt AUTH (then QUIT; never MAIL).
        allow_unencrypted_auth: the Submitter's opt-out for AUTH over plaintext.
        resolver: the DNS lookup (injectable for tests).
        proxy: reach the server through this proxy (:class:`smtpkit.Proxy`).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security,
        auth: AuthStrategy | None = None,
        preset: providers.Preset | None = None,
        timeouts: Timeouts | None = None,
        local_hostname: str = "localhost",
        cafile: str | None = None,
        login: bool = False,
        allow_unencrypted_auth: bool = False,
        resolver: Resolver = resolve,
        proxy: Proxy | None = None,
    ) -> None:
        self.host = host.strip("[]")
        self.port = port
        self.security = security
        self.auth = auth
        self.preset = preset
        self.timeouts = timeouts or Timeouts()
        self.local_hostname = local_hostname
        self.cafile = cafile
        self.login = login
        self.allow_unencrypted_auth = allow_unencrypted_auth
        self.resolver = resolver
        self.proxy = proxy
        self.findings: list[Finding] = []
        self.transcript: tuple[str, ...] = ()

    @property
    def _greeting_wait(self) -> float:
        return min(self.timeouts.command, GREETING_WAIT)

    def _add(
        self,
        step: str,
        status: Status,
        observed: str,
        advice: str | None = None,
        **details: object,
    ) -> bool:
        self.findings.append(Finding(step, status, observed, advice, dict(details)))
        return status is not Status.FAIL

    @property
    def _family(self) -> str | None:
        return self.preset.family if self.preset else None

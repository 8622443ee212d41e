"""``smtpkit check``: the doctor that says why sending does not work, and what to do.

Give it what a Submitter would get - a URL, a preset or just a mailbox address - and it
walks each step of a submission session, reporting what it saw and what to do::

    from smtpkit.doctor import check

    report = check("smtp+starttls://me%40gmail.com:app-password@smtp.gmail.com:587", login=True)
    print(report.render())          # a table; report.to_json() for machines
    raise SystemExit(report.exit_code)

Steps: ``dns``, ``tcp`` (or, through a proxy, ``proxy``: the proxy reached and its tunnel
to the server open), ``tls`` and ``certificate`` (implicit TLS), ``greeting``, ``ehlo``,
``starttls``, ``tls``, ``certificate`` and ``ehlo-tls`` (STARTTLS), ``auth-mechanisms``,
``login`` (only with ``login=True``: AUTH then QUIT, never MAIL), ``size`` and, with a
quota store (``quota_store=``), ``quota``: the account's sending quota, used and left. Known
mistakes get an exact fix: TLS spoken to a STARTTLS port (``WRONG_VERSION_NUMBER``),
plaintext to an implicit-TLS port (no greeting), an untrusted certificate (named by subject
and issuer), a certificate for other names (listing them) or expired (with the date), no
STARTTLS, no AUTH mechanism in common, refused credentials (classified by
:mod:`smtpkit.errors` with the preset's advice).

Invariants:
    * :attr:`Report.exit_code` is 0 exactly when no step failed.
    * The doctor never sends MAIL, RCPT or DATA; credentials leave only with ``login=True``,
      and only over TLS or to loopback (or with the Submitter's explicit opt-out).
    * Reports never contain a password or token: targets are shown redacted and
      transcripts come redacted from the protocol core.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping

from smtpkit import providers
from smtpkit.auth import AppPasswordAuth, AuthStrategy, PasswordAuth
from smtpkit.config import Security, Timeouts
from smtpkit.config._configure import (
    SubmitterOptions,
    options_for_provider,
    options_from_url,
)
from smtpkit.config._proxy import proxy_option
from smtpkit.config._url import redact_url
from smtpkit.doctor._probe import resolve
from smtpkit.doctor._quota import ENV_QUOTA_STORE, account_quota, choose_store, quota_finding
from smtpkit.doctor._report import JSON_SCHEMA_VERSION, Finding, Report, Status
from smtpkit.doctor._steps import Doctor, Resolver, steps_for
from smtpkit.errors import ConfigurationError
from smtpkit.quotas import QuotaStore

__all__ = [
    "ENV_QUOTA_STORE",
    "JSON_SCHEMA_VERSION",
    "Finding",
    "Report",
    "Status",
    "check",
    "diagnose",
    "options_for_target",
    "steps_for",
]

#: Seconds for each step unless told otherwise: long enough for a slow server, short enough
#: for a person waiting at a terminal.
DEFAULT_TIMEOUT = 10.0


def _shown(options: SubmitterOptions) -> str:
    security = options.get("security", Security.STARTTLS)
    scheme = {Security.TLS: "smtps", Security.STARTTLS: "smtp+starttls"}.get(security, "smtp")
    auth = options.get("auth")
    user = f"{urllib.parse.quote(auth.username, safe='')}:***@" if auth is not None else ""
    port = options.get("port", security.default_port)
    return f"{scheme}://{user}{options.get('host', '?')}:{port}"


#: The password a check without login gives a URL that names a user: it is never sent.
_NOT_SENT = "unused: the check does not log in"


def diagnose(
    options: SubmitterOptions,
    *,
    cafile: str | None = None,
    login: bool = False,
    target: str | None = None,
    resolver: Resolver = resolve,
) -> Report:
    """Check the server ``options`` describe (the same keywords a Submitter takes).

    Args:
        options: Submitter keyword arguments, e.g. from ``options_from_url``.
            ``tls_context`` is not used: pass ``cafile`` to trust a private CA.
        cafile: a PEM CA bundle to trust instead of the system's.
        login: also try AUTH with the configured strategy (then QUIT; no message is sent).
        target: how to show the target in the report (default: built from ``options``,
            without the password).
        resolver: the DNS lookup ``(host, port, timeout) -> addresses``.
    """
    security = options.get("security", Security.STARTTLS)
    port = options.get("port") or security.default_port
    provider = options.get("provider")
    preset = providers.find(provider)
    timeout = options.get("timeout")
    auth = options.get("auth")
    proxy = proxy_option(options.get("proxy"), host=options["host"])
    doctor = Doctor(
        host=options["host"],
        port=port,
        security=security,
        auth=auth,
        preset=preset,
        timeouts=Timeouts.coerce(timeout if timeout is not None else DEFAULT_TIMEOUT),
        local_hostname=options.get("local_hostname") or "localhost",
        cafile=cafile,
        login=login,
        allow_unencrypted_auth=options.get("allow_unencrypted_auth", False),
        resolver=resolver,
        proxy=proxy,
    )
    findings = doctor.run()
    settings: dict[str, object] = {
        "host": options["host"],
        "port": port,
        "security": security.value,
        "provider": preset.key if preset else None,
        "auth": type(auth).__name__ if auth is not None else None,
        "username": auth.username if auth is not None else None,
    }
    if proxy is not None:
        settings["proxy"] = proxy.url  # its password masked
    return Report(
        target=target or _shown(options),
        findings=tuple(findings),
        settings=settings,
        transcript=doctor.transcript,
    )


def options_for_target(
    target: str,
    *,
    provider: str | None = None,
    password: str | None = None,
    auth: str | None = None,
    timeout: float | None = None,
) -> SubmitterOptions:
    """Submitter options for a URL, a preset name or a mailbox address.

    * ``smtp+starttls://...``, ``smtps://...``, ``smtp://...``: as ``Submitter.from_url``.
    * ``you@gmail.com``: the preset for the address's domain (or ``provider``); with a
      ``password``, the address logs in (an app password when the preset wants one, or as
      ``auth`` says: ``password`` or ``app_password``).
    * ``gmail``, ``ses:eu-west-1``: the preset, without credentials.

    Raises:
        ConfigurationError: an invalid URL, an unknown preset, or an address whose domain
            no preset knows (name one with ``provider``, or give a URL).
    """
    overrides: SubmitterOptions = {}
    if timeout is not None:
        overrides["timeout"] = timeout
    if auth is not None and auth not in ("password", "app_password"):
        raise ConfigurationError(f"auth must be password or app_password, got {auth!r}")
    if "://" in target:
        options = options_from_url(target, password=password, **overrides)
        if provider:
            options["provider"] = providers.get(provider).key
        return options
    if "@" in target:
        preset = providers.get(provider) if provider else providers.lookup(target)
        if preset is None:
            raise ConfigurationError(
                f"no provider preset knows the domain of {target!r}",
                hint="name one with --provider (e.g. microsoft365, google-workspace) or give "
                "a URL such as smtp+starttls://host:587",
            )
        strategy: AuthStrategy | None = None
        if password:
            wants_app = auth == "app_password" or (
                auth is None and preset.credentials[:1] == ("app_password",)
            )
            cls = AppPasswordAuth if wants_app else PasswordAuth
            strategy = cls(target.strip(), password)
        if strategy is not None:
            overrides["auth"] = strategy
        return options_for_provider(preset.key, **overrides)
    return options_for_provider(provider or target, **overrides)


def check(
    target: str,
    *,
    provider: str | None = None,
    login: bool = False,
    cafile: str | None = None,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
    resolver: Resolver = resolve,
    quota_store: str | QuotaStore | None = None,
) -> Report:
    """Check a URL, preset name or mailbox address (see :func:`options_for_target`).

    The password for an address (or a URL without one) comes from ``SMTPKIT_PASSWORD``
    in ``environ`` (default ``os.environ``); without ``login`` a URL naming a user needs
    none (no credential is sent).

    With a quota store the report ends with a ``quota`` step: what the account's quota has
    used and has left (:mod:`smtpkit.doctor._quota`). The store is ``quota_store`` (a store,
    or its URL: ``redis://...``, ``sqlite:///path``), else the one the target URL's
    ``quota=`` option names, else ``SMTPKIT_QUOTA_STORE`` in ``environ``.

    Raises:
        ConfigurationError: the target cannot be understood (nothing was contacted).
    """
    env = os.environ if environ is None else environ
    password = env.get("SMTPKIT_PASSWORD") or None
    if password is None and not login and "://" in target:
        # Without login AUTH is never tried, so a URL naming a user needs no password; a
        # stand-in (never sent) builds the strategy whose mechanisms the check compares.
        password = _NOT_SENT
    options = options_for_target(target, provider=provider, password=password, timeout=timeout)
    shown = redact_url(target) if "://" in target else None
    opened = choose_store(quota_store, options, env)  # before any I/O
    try:
        report = diagnose(options, cafile=cafile, login=login, target=shown, resolver=resolver)
        if opened is None:
            return report
        finding = quota_finding(account_quota(options, opened))
    finally:
        if opened is not None and opened is not quota_store:
            opened.close()
    return dataclasses.replace(report, findings=(*report.findings, finding))

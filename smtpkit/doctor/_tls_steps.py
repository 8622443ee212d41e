"""The doctor's TLS steps: the handshake, the certificate, and telling TLS from plaintext.

Invariants:
    * Verification uses the same defaults as the Submitter (``ssl.create_default_context``);
      a non-verifying handshake only ever reads a certificate to name it, or checks whether a
      port speaks TLS at all, and is closed right after.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime

from smtpkit.config import Security
from smtpkit.doctor._base import Walk, short, url_for
from smtpkit.doctor._cert import CertificateInfo, parse_certificate
from smtpkit.doctor._probe import RecordingContext, Wire, connect, read_greeting, recording_context
from smtpkit.doctor._report import Finding, Status
from smtpkit.errors import OperationTimeout, SMTPError, TLSError, TLSModeMismatch, TransportError
from smtpkit.protocol import Command
from smtpkit.transports import Stream

__all__ = ["TLSSteps"]

#: A certificate expiring sooner than this many days is a warning.
EXPIRY_WARNING_DAYS = 14
# OpenSSL X509_V_ERR codes (x509_vfy.h) that the advice distinguishes.
_NOT_YET_VALID = 9
_EXPIRED = 10
_NAME_MISMATCH = frozenset({62, 64})  # host name, IP address


class TLSSteps(Walk):
    """The ``tls`` and ``certificate`` steps, and the probes that name a TLS-mode mistake."""

    def _implicit_tls(self, stream: Stream) -> bool:
        try:
            return self._handshake(stream)
        except TLSModeMismatch as error:
            greeting = read_greeting(self.host, self.port, self._greeting_wait, proxy=self.proxy)
            if greeting is not None:
                seen = f"; in plaintext it greets '{short(greeting, 60)}'"
                advice = (
                    f"port {self.port} speaks plaintext SMTP and upgrades with STARTTLS: use "
                    f"{url_for(Security.STARTTLS, self.host, self.port)} (Security.STARTTLS), or "
                    "implicit TLS on port 465 if the server offers it"
                )
            else:
                seen = ""
                advice = error.hint or "check the port and the security mode"
            return self._add("tls", Status.FAIL, f"{error.message}{seen}", advice)

    def _handshake(self, stream: Stream) -> bool:
        """Run the TLS handshake; add the ``tls`` and ``certificate`` findings.

        Raises:
            TLSModeMismatch: the peer did not answer in TLS (the caller probes why).
        """
        context = recording_context(self.cafile)
        stream.set_timeout(self.timeouts.connect)
        try:
            stream.start_tls(context, self.host)
        except TLSModeMismatch:
            raise
        except TLSError as error:
            if isinstance(context.last_error, ssl.SSLCertVerificationError):
                self._add("tls", Status.OK, "the server speaks TLS")
                return self._certificate_failed(context.last_error)
            return self._add("tls", Status.FAIL, error.message, error.hint)
        except OperationTimeout:
            return self._add(
                "tls",
                Status.FAIL,
                f"no TLS handshake answer within {self.timeouts.connect:g} s",
                "the port may expect plaintext first: try "
                f"{url_for(Security.STARTTLS, self.host, self.port)}",
            )
        except TransportError as error:
            return self._add("tls", Status.FAIL, error.message, error.hint)
        return self._tls_ok(context)

    def _tls_ok(self, context: RecordingContext) -> bool:
        sock = context.last_socket
        version = sock.version() if sock else None
        cipher = sock.cipher() if sock else None
        self._add(
            "tls",
            Status.OK,
            f"{version or 'TLS'} with {cipher[0] if cipher else 'an agreed cipher'}",
            version=version,
        )
        der = sock.getpeercert(binary_form=True) if sock else None
        info = parse_certificate(der) if der else None
        if info is None:
            return self._add("certificate", Status.OK, "verified")
        names = ", ".join(info.names[:4]) or info.subject
        observed = f"verified: {names}, issued by {info.issuer or 'an unnamed CA'}"
        if info.not_after is not None:
            observed += f", valid until {info.not_after:%Y-%m-%d}"
            days = (info.not_after - datetime.now(UTC)).days
            if days < EXPIRY_WARNING_DAYS:
                return self._add(
                    "certificate",
                    Status.WARN,
                    observed,
                    f"the certificate expires in {days} day(s): the server's operator must "
                    "renew it soon",
                )
        self.findings.append(Finding("certificate", Status.OK, observed, None, _cert_details(info)))
        return True

    def _certificate_failed(self, error: ssl.SSLCertVerificationError) -> bool:
        info = self._fetch_certificate()
        reason = str(error.verify_message or error.reason).rstrip(".")
        code = error.verify_code
        observed = f"did not verify: {reason}"
        if info is not None:
            observed += f"; subject {info.subject or '(empty)'}, issuer {info.issuer or '(empty)'}"
            if info.names:
                observed += f", names {', '.join(info.names[:4])}"
            if code == _EXPIRED and info.not_after is not None:
                observed += f", expired {info.not_after:%Y-%m-%d %H:%M} UTC"
            elif code == _NOT_YET_VALID and info.not_before is not None:
                observed += f", valid from {info.not_before:%Y-%m-%d %H:%M} UTC"
        if code in _NAME_MISMATCH:
            names = ", ".join(info.names) if info and info.names else "other names"
            advice = (
                f"the certificate is for {names}, not {self.host}: connect with a name the "
                "certificate lists (the provider's documented host)"
            )
        elif code == _EXPIRED:
            when = f" on {info.not_after:%Y-%m-%d}" if info and info.not_after else ""
            advice = (
                f"the certificate expired{when}: the server's operator must renew it. If that "
                "date is still to come, this machine's clock is wrong: set it right"
            )
        elif code == _NOT_YET_VALID:
            when = f" from {info.not_before:%Y-%m-%d}" if info and info.not_before else " later"
            advice = (
                f"the certificate is valid only{when}: this machine's clock is probably behind, "
                "set it right; otherwise the server's operator installed it too early"
            )
        else:
            who = "a self-signed certificate" if info and info.self_signed else "a certificate"
            issuer = f" from '{info.issuer}'" if info and info.issuer else ""
            advice = (
                f"the server presents {who}{issuer} that this system does not trust. For your "
                "own or a local server (a test server, Proton Mail Bridge) trust its CA: "
                "smtpkit check --cafile CA.pem, and in code "
                "tls_context=ssl.create_default_context(cafile='CA.pem'). Never turn "
                "verification off. For a public provider, something on the path (antivirus, "
                "corporate proxy) may be intercepting TLS"
            )
        details = _cert_details(info) if info else {}
        details["verify_code"] = error.verify_code
        self.findings.append(Finding("certificate", Status.FAIL, observed, advice, details))
        return False

    def _fetch_certificate(self) -> CertificateInfo | None:
        """Read the peer certificate without verifying it, only to name it in the report."""
        wait = self._greeting_wait
        try:
            stream = connect(self.host, self.port, self.timeouts.connect, proxy=self.proxy)
        except TransportError:
            return None
        context = recording_context(verify=False)
        try:
            if self.security is Security.STARTTLS:
                wire = Wire(stream, self.host)
                wire.read(wait)
                wire.run([Command.ehlo(self.local_hostname)], wait)
                if wire.exchange(Command.starttls(), wait).code != 220:
                    return None
            stream.set_timeout(self.timeouts.connect)
            stream.start_tls(context, self.host)
            sock = context.last_socket
            der = sock.getpeercert(binary_form=True) if sock else None
        except (SMTPError, OSError):
            return None
        finally:
            stream.close()
        return parse_certificate(der) if der else None

    def _speaks_tls(self) -> bool:
        """Whether a fresh connection to the port completes a TLS handshake."""
        try:
            stream = connect(self.host, self.port, self.timeouts.connect, proxy=self.proxy)
        except TransportError:
            return False
        try:
            stream.set_timeout(self._greeting_wait)
            stream.start_tls(recording_context(verify=False), self.host)
        except SMTPError:
            return False
        finally:
            stream.close()
        return True


def _cert_details(info: CertificateInfo) -> dict[str, object]:
    return {
        "subject": info.subject,
        "issuer": info.issuer,
        "names": list(info.names),
        "not_after": info.not_after.isoformat() if info.not_after else None,
    }

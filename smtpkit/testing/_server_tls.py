"""The local server's certificate authority and certificates (trustme), and its CA file.

Invariants:
    * Each :class:`ServerCertificates` has its own CA: a client trusts the server only through
      :meth:`ServerCertificates.client_tls_context`, the CA PEM or the CA file.
    * The CA file lives in a private temporary directory removed by :meth:`remove_file`,
      unless the caller chose the path.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import trustme

from smtpkit.errors import ConfigurationError

__all__ = ["DEFAULT_CERTIFICATE_NAMES", "EXPIRED_VALIDITY", "ServerCertificates"]

#: The identities on the server's certificate unless ``certificate_names`` says otherwise.
DEFAULT_CERTIFICATE_NAMES = ("localhost", "127.0.0.1", "::1")

#: The validity period of a ``certificate_expired=True`` certificate: fixed, long past.
EXPIRED_VALIDITY = (datetime(2000, 1, 1), datetime(2001, 1, 1))


class ServerCertificates:
    """A throw-away CA and the server certificate it issued, as contexts and files."""

    def __init__(
        self,
        names: Sequence[str],
        hostname: str,
        *,
        expired: bool,
        ca_path: Path | None,
    ) -> None:
        self._ca = trustme.CA()
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._issue(names, hostname, expired=expired)
        self._given_path = ca_path
        self._path: Path | None = None
        self._temp_dir: Path | None = None

    def _issue(self, names: Sequence[str], hostname: str, *, expired: bool) -> None:
        if (
            isinstance(names, str | bytes)
            or not isinstance(names, Sequence)
            or not names
            or not all(isinstance(name, str) and name for name in names)
        ):
            raise ConfigurationError(
                f"certificate_names must be a sequence of names or addresses, got {names!r}",
                hint="pass e.g. certificate_names=('mail.example.test',), a tuple even for one",
            )
        identities = list(names)
        if tuple(names) == DEFAULT_CERTIFICATE_NAMES:
            identities.append(hostname)
        not_before, not_after = EXPIRED_VALIDITY if expired else (None, None)
        try:
            leaf = self._ca.issue_cert(
                *dict.fromkeys(identities), not_before=not_before, not_after=not_after
            )
        except ValueError as error:  # trustme: a name it cannot encode
            raise ConfigurationError(
                f"certificate_names: {error}",
                hint="pass DNS names or IP addresses, e.g. ('mail.example.test', '127.0.0.1')",
            ) from error
        leaf.configure_cert(self.server_context)

    @property
    def ca_pem(self) -> bytes:
        """The PEM of the CA certificate."""
        pem: bytes = self._ca.cert_pem.bytes()
        return pem

    def write_file(self) -> Path:
        """Write the CA PEM to its file (the given path or a private temporary one)."""
        if self._given_path is not None:
            path = self._given_path
        else:
            if self._temp_dir is None:
                self._temp_dir = Path(tempfile.mkdtemp(prefix="smtpkit-ca-"))
            path = self._temp_dir / "ca.pem"
        path.write_bytes(self.ca_pem)
        self._path = path
        return path

    @property
    def path(self) -> Path | None:
        """Where the CA file was written, if it was."""
        return self._path

    @property
    def given_path(self) -> Path | None:
        """The CA file path the caller chose, if any."""
        return self._given_path

    def remove_file(self) -> None:
        """Remove the temporary CA file (a caller-chosen file is kept)."""
        temp_dir, self._temp_dir = self._temp_dir, None
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
            self._path = None

    def client_tls_context(self) -> ssl.SSLContext:
        """A verifying client context (``ssl.create_default_context()``) trusting only this CA."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

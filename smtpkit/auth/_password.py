"""Password strategies: PLAIN (RFC 4616) and LOGIN, with account or app passwords.

Invariants:
    * PLAIN is preferred when the server offers it (one round trip, a standard); LOGIN is
      used otherwise (Microsoft 365 offers only ``LOGIN XOAUTH2``).
    * LOGIN is sent in its classic form, ``AUTH LOGIN`` without an initial response, and the
      server's prompts are not interpreted (they are conventionally ``Username:`` and
      ``Password:`` but servers vary); answers go in order: username, then password.
    * Credentials are UTF-8 text (RFC 4616 §2), never empty and never containing NUL; the
      password is held in a :class:`~smtpkit.auth.Secret` and never reaches a ``repr``, an
      error message or a pickle.
"""

from __future__ import annotations

from collections.abc import Sequence

from smtpkit.auth._base import AuthContext, SaslExchange, Secret, check_credential
from smtpkit.auth._sasl import SaslMechanismStrategy
from smtpkit.errors import CredentialKind, LocalProtocolError

__all__ = ["AppPasswordAuth", "PasswordAuth"]


class PasswordAuth(SaslMechanismStrategy):
    """Log in with a username and password using PLAIN, else LOGIN.

    PLAIN, with the credentials on the AUTH line (RFC 4616 §2, RFC 4954 §4)::

        C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==
        S: 235 2.7.0 Accepted

    When that line would exceed 512 octets (very long credentials), the response follows
    the server's empty challenge instead (RFC 4954 §4)::

        C: AUTH PLAIN
        S: 334
        C: AGFsaWNl...
        S: 235 2.7.0 Accepted

    LOGIN, when PLAIN is not offered::

        C: AUTH LOGIN
        S: 334 VXNlcm5hbWU6
        C: YWxpY2VAZXhhbXBsZS5jb20=
        S: 334 UGFzc3dvcmQ6
        C: c2VjcmV0
        S: 235 2.7.0 Authentication successful

    Args:
        username: the account name, usually the full address.
        password: the password (a ``str`` or a :class:`~smtpkit.auth.Secret`).
        mechanisms: the preference order; any of ``"PLAIN"`` and ``"LOGIN"``.

    Raises:
        ConfigurationError: an empty username or password, one containing NUL, or an
            unknown mechanism.
    """

    mechanisms = ("PLAIN", "LOGIN")
    credential_kind = CredentialKind.PASSWORD

    def __init__(
        self,
        username: str,
        password: str | Secret,
        *,
        mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
    ) -> None:
        super().__init__(username, mechanisms=mechanisms)
        self._password = Secret(check_credential("password", password))

    def exchange(self, mechanism: str, context: AuthContext) -> SaslExchange:
        """PLAIN or LOGIN as SASL text; the base class does base64 and the AUTH lines."""
        if mechanism == "PLAIN":
            # RFC 4616 §2: message = [authzid] NUL authcid NUL passwd. An empty authzid
            # means "act as the authenticated user", which is what submission wants.
            yield f"\0{self.username}\0{self._password.reveal()}"
        elif mechanism == "LOGIN":
            # draft-murchison-sasl-login §2: no initial response in the classic form; the
            # prompts are not parsed because their wording varies between servers.
            yield None
            yield self.username
            yield self._password.reveal()
        else:
            raise LocalProtocolError(f"{type(self).__name__} cannot speak {mechanism}")


class AppPasswordAuth(PasswordAuth):
    """Log in with an app password: a provider-generated password for one application.

    Gmail (which needs 2-Step Verification for them), Yandex and Mail.ru require app
    passwords for SMTP. The wire exchange is the same as :class:`PasswordAuth`; what
    differs is the advice attached to authentication errors. Whitespace is removed, since
    Google shows its 16-letter app passwords in four groups of four
    (``"abcd efgh ijkl mnop"`` becomes ``"abcdefghijklmnop"``). Nothing else is checked:
    other providers' app passwords look different.

    ::

        C: AUTH PLAIN AGFsaWNlQGdtYWlsLmNvbQBhYmNkZWZnaGlqa2xtbm9w
        S: 235 2.7.0 Accepted

    Raises:
        ConfigurationError: an empty username or app password, or one containing NUL.
    """

    credential_kind = CredentialKind.APP_PASSWORD

    def __init__(
        self,
        username: str,
        app_password: str | Secret,
        *,
        mechanisms: Sequence[str] = ("PLAIN", "LOGIN"),
    ) -> None:
        text = check_credential("app password", app_password)
        # str.split() also splits on non-breaking spaces, which copying from a web page
        # can produce.
        super().__init__(username, Secret("".join(text.split())), mechanisms=mechanisms)

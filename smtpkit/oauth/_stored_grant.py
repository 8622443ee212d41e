"""What a token store holds: one mailbox's grant, and its JSON form.

The file is one JSON object (``docs/oauth.md`` documents it)::

    {
      "smtpkit_store": 1,
      "provider": "microsoft",                  # "google", "microsoft" or "oauth2"
      "username": "alice@contoso.com",          # the mailbox, for XOAUTH2's user=
      "client_id": "00000000-0000-0000-0000-000000000000",
      "tenant": "contoso.onmicrosoft.com",      # Microsoft only
      "token_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
      "scopes": ["https://outlook.office.com/SMTP.Send", "offline_access"],
      "client_secret": "...",                   # optional
      "refresh_token": "..."
    }

A Google store also holds ``"type": "authorized_user"``, so google-auth's
``Credentials.from_authorized_user_file`` reads it as well.

Invariants:
    * A grant names one of :data:`PROVIDERS`; the refresh token and the client secret are
      :class:`~smtpkit.auth.Secret` values, left out of ``repr``.
    * Reading names a missing or mistyped field, never its value; unknown fields are
      ignored (a newer writer may add some).
    * ``to_json`` writes the fields in a fixed order, ``smtpkit_store`` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError

__all__ = ["PROVIDERS", "STORE_VERSION", "StoredGrant"]

#: The ``smtpkit_store`` format version written by this code.
STORE_VERSION = 1
#: The providers a store may name.
PROVIDERS = ("google", "microsoft", "oauth2")


@dataclass(frozen=True)
class StoredGrant:
    """Everything needed to refresh tokens for one mailbox.

    Attributes:
        provider: ``"google"``, ``"microsoft"`` or ``"oauth2"`` (any other RFC 6749 server).
        client_id: the OAuth2 client ID.
        token_url: the token endpoint.
        refresh_token: the refresh token.
        username: the mailbox address.
        client_secret: the client secret, if the client has one.
        tenant: the Microsoft tenant (ID or domain).
        scopes: the scopes to request.
    """

    provider: str
    client_id: str
    token_url: str
    refresh_token: Secret = field(repr=False)
    username: str | None = None
    client_secret: Secret | None = field(default=None, repr=False)
    tenant: str | None = None
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigurationError(
                f"provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}"
            )

    def to_json(self) -> dict[str, object]:
        """The JSON object written to the file."""
        data: dict[str, object] = {"smtpkit_store": STORE_VERSION, "provider": self.provider}
        if self.provider == "google":
            data["type"] = "authorized_user"  # google-auth's authorized-user file format
        if self.username:
            data["username"] = self.username
        data["client_id"] = self.client_id
        if self.tenant:
            data["tenant"] = self.tenant
        data["token_url"] = self.token_url
        if self.scopes:
            data["scopes"] = list(self.scopes)
        if self.client_secret is not None:
            data["client_secret"] = self.client_secret.reveal()
        data["refresh_token"] = self.refresh_token.reveal()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str) -> StoredGrant:
        """Parse a store object; ``where`` names the file in errors.

        Raises:
            ConfigurationError: a missing or mistyped field (named, never its value).
        """

        def text(key: str, required: bool = True) -> str | None:
            value = data.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not value:
                raise ConfigurationError(
                    f"{where}: field {key!r} is missing or not a string",
                    hint="create the store with 'smtpkit oauth google|microsoft ...'",
                )
            return value

        scopes = data.get("scopes", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ConfigurationError(f"{where}: field 'scopes' must be a list of strings")
        secret = text("client_secret", required=False)
        provider = text("provider", required=False) or "oauth2"
        return cls(
            provider=provider,
            client_id=text("client_id") or "",
            token_url=text("token_url") or "",
            refresh_token=Secret(text("refresh_token") or ""),
            username=text("username", required=False),
            client_secret=Secret(secret) if secret else None,
            tenant=text("tenant", required=False),
            scopes=tuple(scopes),
        )

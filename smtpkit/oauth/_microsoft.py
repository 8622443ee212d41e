"""Microsoft 365 / Outlook.com: token endpoints and scopes for SMTP AUTH XOAUTH2.

* :func:`microsoft_delegated`: a user's mailbox, from a refresh token (scope
  ``https://outlook.office.com/SMTP.Send offline_access``). Microsoft rotates the refresh
  token on every use; pass ``store=`` to persist each new one and share it between
  processes.
* :func:`microsoft_app_only`: the application itself with a client secret (scope
  ``https://outlook.office365.com/.default``); needs ``SMTP.SendAsApp`` and an Exchange
  service principal with permission on the mailbox (see ``docs/oauth.md``).

Invariants:
    * Token endpoints are tenant-specific: ``{authority}/{tenant}/oauth2/v2.0/token``.
    * ``authority`` is injectable (tests point it at a loopback endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import requests

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError
from smtpkit.oauth._cache import utcnow
from smtpkit.oauth._client_credentials import ClientCredentialsProvider
from smtpkit.oauth._http import DEFAULT_TIMEOUT, HttpTimeout
from smtpkit.oauth._refresh import RefreshTokenProvider
from smtpkit.oauth._store import FileTokenStore

__all__ = [
    "MICROSOFT_APP_ONLY_SCOPES",
    "MICROSOFT_AUTHORITY",
    "MICROSOFT_DELEGATED_SCOPES",
    "MICROSOFT_SMTP_HOST",
    "microsoft_app_only",
    "microsoft_delegated",
    "microsoft_token_url",
]

#: The Microsoft identity platform (Entra ID) for the global cloud.
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
#: Delegated SMTP AUTH; ``offline_access`` asks for a refresh token.
MICROSOFT_DELEGATED_SCOPES = ("https://outlook.office.com/SMTP.Send", "offline_access")
#: App-only (client credentials): the permissions granted to the app (SMTP.SendAsApp).
MICROSOFT_APP_ONLY_SCOPES = ("https://outlook.office365.com/.default",)
#: The submission host for Microsoft 365 and Outlook.com (port 587, STARTTLS).
MICROSOFT_SMTP_HOST = "smtp.office365.com"

# A tenant is a GUID, a domain, or one of Microsoft's aliases; never a path.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
# Aliases that are not a tenant: client credentials need the real one.
_MULTI_TENANT = frozenset({"common", "organizations", "consumers"})


def microsoft_token_url(tenant: str, authority: str = MICROSOFT_AUTHORITY) -> str:
    """``{authority}/{tenant}/oauth2/v2.0/token``.

    Raises:
        ConfigurationError: a tenant that is not a GUID, domain or alias.
    """
    return f"{_authority(authority)}/{_check_tenant(tenant)}/oauth2/v2.0/token"


def _authority(authority: str) -> str:
    return authority.rstrip("/")


def _check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
        raise ConfigurationError(
            f"tenant must be a tenant ID (GUID) or domain such as contoso.onmicrosoft.com, "
            f"got {tenant!r}",
            hint="find it in the Entra admin center under Overview > Tenant ID",
        )
    return tenant


def microsoft_delegated(
    client_id: str,
    tenant: str,
    refresh_token: str | Secret | None = None,
    *,
    client_secret: str | Secret | None = None,
    store: FileTokenStore | None = None,
    authority: str = MICROSOFT_AUTHORITY,
    timeout: HttpTimeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> RefreshTokenProvider:
    """A provider for a user's mailbox from a delegated refresh token.

    ::

        store = FileTokenStore("alice.json")
        provider = microsoft_delegated(CLIENT_ID, "contoso.onmicrosoft.com", store=store)
        auth = XOAuth2Auth("alice@contoso.com", provider)

    Args:
        client_id: the app registration's application (client) ID.
        tenant: the tenant ID or domain (``consumers`` for Outlook.com accounts).
        refresh_token: the refresh token; when ``None``, read from ``store``.
        client_secret: for a confidential (web) app registration; public clients have none.
        store: where the refresh token is read from and rotated ones are saved; processes
            sharing it refresh one at a time with the newest token (see
            :class:`~smtpkit.oauth.RefreshTokenProvider`).
        authority: the identity platform's base URL.
        timeout, session, clock: as for :class:`~smtpkit.oauth.RefreshTokenProvider`.

    Raises:
        ConfigurationError: no refresh token given or stored, or an invalid tenant.
    """
    if refresh_token is None and (store is None or store.load() is None):
        raise ConfigurationError(
            "no refresh token: pass refresh_token= or a store that holds one",
            hint="create one with: smtpkit oauth microsoft --client-id ... --tenant ...",
        )
    return RefreshTokenProvider(
        microsoft_token_url(tenant, authority),
        client_id,
        refresh_token,
        client_secret=client_secret,
        scopes=MICROSOFT_DELEGATED_SCOPES,
        store=store,
        timeout=timeout,
        session=session,
        clock=clock,
    )


def microsoft_app_only(
    client_id: str,
    tenant: str,
    client_secret: str | Secret,
    *,
    authority: str = MICROSOFT_AUTHORITY,
    timeout: HttpTimeout = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> ClientCredentialsProvider:
    """A provider for the application itself (client credentials, no user sign-in).

    The XOAUTH2 ``user=`` is then the mailbox the app may send as::

        provider = microsoft_app_only(CLIENT_ID, TENANT_ID, CLIENT_SECRET)
        auth = XOAuth2Auth("reports@contoso.com", provider)

    Raises:
        ConfigurationError: ``tenant`` is ``common``/``organizations``/``consumers``
            (client credentials need a specific tenant) or invalid.
    """
    if isinstance(tenant, str) and tenant.lower() in _MULTI_TENANT:
        raise ConfigurationError(
            f"app-only tokens need a specific tenant, not {tenant!r}",
            hint="use the tenant ID (GUID) or its domain, e.g. contoso.onmicrosoft.com",
        )
    return ClientCredentialsProvider(
        microsoft_token_url(tenant, authority),
        client_id,
        client_secret,
        scopes=MICROSOFT_APP_ONLY_SCOPES,
        timeout=timeout,
        session=session,
        clock=clock,
    )

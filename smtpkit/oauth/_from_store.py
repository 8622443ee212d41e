"""Build a refreshing token provider from a token store file.

One function serves every caller (``Submitter.from_url(...?token_store=PATH)``,
``smtpkit send`` with ``SMTPKIT_URL``): the RFC 6749 §6 refresh grant works the same at
Google's, Microsoft's and any other token endpoint. The provider shares the refresh token
through the store: each refresh holds the store's cross-process lock, adopts a token another
process saved, and writes a rotated one back atomically before releasing it.
"""

from __future__ import annotations

import os

import requests

from smtpkit.errors import ConfigurationError
from smtpkit.oauth._refresh import RefreshTokenProvider
from smtpkit.oauth._store import FileTokenStore

__all__ = ["provider_from_store"]


def provider_from_store(
    path: str | os.PathLike[str], *, session: requests.Session | None = None
) -> tuple[RefreshTokenProvider, str | None]:
    """A provider refreshing the grant stored at ``path``, and the mailbox it names.

    Several processes may build providers from the same file (Celery workers): refreshes
    are serialised through ``<path>.lock`` and each uses the newest stored refresh token, so
    a server that rotates refresh tokens (Microsoft) never sees a stale one.

    Raises:
        ConfigurationError: no store at ``path``, or it lacks a field.
    """
    store = FileTokenStore(path)
    grant = store.read()
    if grant is None:
        raise ConfigurationError(
            f"no token store at {store.path}: the file does not exist",
            hint="create it with: smtpkit oauth google|microsoft ... --store PATH",
        )
    provider = RefreshTokenProvider(
        grant.token_url,
        grant.client_id,
        grant.refresh_token,
        client_secret=grant.client_secret,
        scopes=grant.scopes,
        store=store,
        session=session,
    )
    return provider, grant.username

"""Google's installed-app sign-in (google-auth-oauthlib's loopback flow), for ``smtpkit oauth``.

Part of the Google adapter: import the public names from :mod:`smtpkit.integrations.google`.
google-auth-oauthlib is imported only when a real sign-in runs.

Invariants:
    * The flow listens on ``localhost`` only, asks for consent and offline access (so Google
      issues a refresh token) and waits at most :data:`SIGN_IN_TIMEOUT` seconds.
    * Errors name files and fields, never a token or client secret.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError
from smtpkit.oauth import StoredGrant

__all__ = [
    "GMAIL_SCOPE",
    "GOOGLE_TOKEN_URL",
    "SIGN_IN_TIMEOUT",
    "FlowFactory",
    "run_installed_app_flow",
]

#: Full mail access: the only Gmail scope that allows SMTP (and IMAP/POP).
GMAIL_SCOPE = "https://mail.google.com/"
#: Google's OAuth2 token endpoint.
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
#: How long the loopback sign-in waits for the browser to come back.
SIGN_IN_TIMEOUT = 600


class _InstalledAppFlow(Protocol):
    """The part of ``google_auth_oauthlib.flow.InstalledAppFlow`` we use."""

    def run_local_server(self, **kwargs: Any) -> Any:
        """Run the loopback redirect flow and return the credentials."""


FlowFactory = Callable[[str, list[str]], _InstalledAppFlow]


def _default_flow(client_secrets: str, scopes: list[str]) -> _InstalledAppFlow:
    import google_auth_oauthlib.flow  # noqa: PLC0415 - only the sign-in command needs it

    flow: _InstalledAppFlow = google_auth_oauthlib.flow.InstalledAppFlow.from_client_secrets_file(
        client_secrets, scopes=scopes
    )
    return flow


def run_installed_app_flow(
    client_secrets: str | os.PathLike[str],
    username: str,
    *,
    open_browser: bool = True,
    flow_factory: FlowFactory = _default_flow,
) -> StoredGrant:
    """Sign in through the browser (loopback redirect, PKCE) and return the grant to store.

    google-auth-oauthlib listens on ``localhost`` on a free port, opens the consent page
    (``prompt=consent`` and offline access, so Google issues a refresh token) and waits for
    the redirect, at most :data:`SIGN_IN_TIMEOUT` seconds.

    Args:
        client_secrets: the OAuth client JSON downloaded from the Cloud console
            (application type "Desktop app").
        username: the Gmail address that will sign in.
        open_browser: open the page automatically (else the URL is printed).
        flow_factory: builds the flow (tests inject a stub).

    Raises:
        ConfigurationError: unreadable client secrets, or no refresh token was issued.
    """
    path = Path(client_secrets).expanduser()
    try:
        secrets_info = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(
            f"cannot read the client secrets file {path}: {type(error).__name__}",
            hint="download it from Google Cloud console > APIs & Services > Credentials",
        ) from None
    if not isinstance(secrets_info, dict) or not (
        "installed" in secrets_info or "web" in secrets_info
    ):
        raise ConfigurationError(f"{path} is not an OAuth client secrets file")
    flow = flow_factory(str(path), [GMAIL_SCOPE])
    credentials = flow.run_local_server(
        host="localhost",
        port=0,
        prompt="consent",
        open_browser=open_browser,
        timeout_seconds=SIGN_IN_TIMEOUT,
    )
    refresh_token = getattr(credentials, "refresh_token", None)
    client_id = getattr(credentials, "client_id", None)
    client_secret = getattr(credentials, "client_secret", None)
    token_uri = getattr(credentials, "token_uri", None) or GOOGLE_TOKEN_URL
    if not isinstance(refresh_token, str) or not refresh_token:
        raise ConfigurationError(
            "Google issued no refresh token",
            hint="revoke the app's access at myaccount.google.com/permissions and sign in again",
        )
    if not isinstance(client_id, str) or not client_id:
        raise ConfigurationError("the sign-in returned no client ID")
    return StoredGrant(
        provider="google",
        client_id=client_id,
        token_url=str(token_uri),
        refresh_token=Secret(refresh_token),
        username=username,
        client_secret=Secret(client_secret) if isinstance(client_secret, str) else None,
        scopes=(GMAIL_SCOPE,),
    )

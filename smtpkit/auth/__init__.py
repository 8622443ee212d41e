"""Authentication strategies: I/O-free generators that speak SMTP AUTH (RFC 4954).

* :class:`PasswordAuth` and :class:`AppPasswordAuth`: PLAIN (RFC 4616), else LOGIN.
* :class:`XOAuth2Auth` and :class:`OAuthBearerAuth`: OAuth2 bearer tokens (``docs/oauth.md``),
  with :class:`AccessToken` and the :class:`TokenProvider` protocol.
* :class:`SaslMechanismStrategy`: the base class for adding a mechanism in a few lines.
* :class:`AuthStrategy`, :class:`AuthContext`, :data:`AuthFlow`: the contract the
  Submitter drives, and :func:`drive_flow`, the one loop that drives it. See
  ``docs/auth.md``.
"""

from smtpkit.auth._base import (
    AuthContext,
    AuthFlow,
    AuthStrategy,
    NoCommonMechanism,
    SaslExchange,
    Secret,
    b64decode_challenge,
    b64encode_text,
    drive_flow,
    flow_exchanges,
)
from smtpkit.auth._oauth import (
    OAuthBearerAuth,
    TokenAuthStrategy,
    XOAuth2Auth,
    decode_error_challenge,
)
from smtpkit.auth._password import AppPasswordAuth, PasswordAuth
from smtpkit.auth._sasl import SaslMechanismStrategy
from smtpkit.auth._token import AccessToken, TokenProvider

__all__ = [
    "AccessToken",
    "AppPasswordAuth",
    "AuthContext",
    "AuthFlow",
    "AuthStrategy",
    "NoCommonMechanism",
    "OAuthBearerAuth",
    "PasswordAuth",
    "SaslExchange",
    "SaslMechanismStrategy",
    "Secret",
    "TokenAuthStrategy",
    "TokenProvider",
    "XOAuth2Auth",
    "b64decode_challenge",
    "b64encode_text",
    "decode_error_challenge",
    "drive_flow",
    "flow_exchanges",
]

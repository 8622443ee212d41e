"""Authentication strategies: I/O-free generators that speak SMTP AUTH (RFC 4954).

* :class:`PasswordAuth` and :class:`AppPasswordAuth`: PLAIN (RFC 4616), else LOGIN.
* :class:`SaslMechanismStrategy`: the base class for adding a mechanism in a few lines.
* :class:`AuthStrategy`, :class:`AuthContext`, :data:`AuthFlow`: the contract the
  Submitter drives. See ``docs/auth.md``.
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
)
from smtpkit.auth._password import AppPasswordAuth, PasswordAuth
from smtpkit.auth._sasl import SaslMechanismStrategy

__all__ = [
    "AppPasswordAuth",
    "AuthContext",
    "AuthFlow",
    "AuthStrategy",
    "NoCommonMechanism",
    "PasswordAuth",
    "SaslExchange",
    "SaslMechanismStrategy",
    "Secret",
    "b64decode_challenge",
    "b64encode_text",
]

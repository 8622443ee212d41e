"""Server-side parsing of the OAuth2 SASL responses the local server accepts.

Pure functions over bytes: no sockets, no clock. :mod:`smtpkit.testing._server_handler` drives
the exchange; this module only knows the grammar of the two client responses and the error
challenge a server sends back.

Grammar (after base64 decoding):

* XOAUTH2 (Google's and Microsoft's documented format)::

      user=<addr>\\x01auth=Bearer <token>\\x01\\x01

* OAUTHBEARER (RFC 7628 §3.1)::

      n,a=<addr>,\\x01host=<host>\\x01port=<port>\\x01auth=Bearer <token>\\x01\\x01

Invariants:
    * A parse either returns a complete :class:`OAuthResponse` or raises ``ValueError``;
      nothing half-parsed escapes.
    * Tokens never appear in exception messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "OAUTH_ERROR_CHALLENGE",
    "OAUTH_FAILURE_REPLY",
    "OAuthResponse",
    "parse_oauthbearer",
    "parse_xoauth2",
]

#: The JSON error challenge Gmail sends (base64-encoded, after ``334``) when a token is not
#: accepted. The client must answer it (an empty line for XOAUTH2, ``AQ==`` - a single 0x01 -
#: for OAUTHBEARER, RFC 7628 §3.2.3) before the server sends its final reply.
OAUTH_ERROR_CHALLENGE = b'{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'

#: Gmail's final reply after the error challenge; the text speaks of a password but means the
#: token.
OAUTH_FAILURE_REPLY = "535 5.7.8 Username and Password not accepted."

_SEP = "\x01"


@dataclass(frozen=True, slots=True)
class OAuthResponse:
    """A parsed OAuth2 client response.

    Attributes:
        user: the mailbox the client authenticates as (empty when OAUTHBEARER omits ``a=``).
        token: the bearer token (never shown by ``repr``).
        host: the ``host`` key of an OAUTHBEARER response, if sent.
        port: the ``port`` key of an OAUTHBEARER response, if sent.
    """

    user: str
    token: str = field(repr=False)
    host: str | None = None
    port: int | None = None


def _key_values(text: str, mechanism: str) -> dict[str, str]:
    """Split ``k=v\\x01k=v\\x01\\x01`` (the trailing separator pair included) into a dict."""
    if not text.endswith(_SEP + _SEP):
        raise ValueError(f"{mechanism} response does not end with two 0x01 separators")
    pairs: dict[str, str] = {}
    for item in text[:-2].split(_SEP):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"{mechanism} response holds a field without '=': {key!r}")
        pairs[key] = value
    return pairs


def _bearer(pairs: dict[str, str], mechanism: str) -> str:
    scheme, _, token = pairs.get("auth", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ValueError(f"{mechanism} response has no 'auth=Bearer <token>' field")
    return token


def _decode(blob: bytes, mechanism: str) -> str:
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{mechanism} response is not UTF-8") from None


def parse_xoauth2(blob: bytes) -> OAuthResponse:
    """Parse a decoded XOAUTH2 client response.

    Args:
        blob: the base64-decoded response, ``user=ADDR\\x01auth=Bearer TOKEN\\x01\\x01``.

    Returns:
        The user and token.

    Raises:
        ValueError: the response does not follow the grammar.
    """
    pairs = _key_values(_decode(blob, "XOAUTH2"), "XOAUTH2")
    user = pairs.get("user", "")
    if not user:
        raise ValueError("XOAUTH2 response has no 'user=' field")
    return OAuthResponse(user=user, token=_bearer(pairs, "XOAUTH2"))


def _saslname(value: str) -> str:
    """Undo RFC 5801 saslname escaping (``=2C`` is ``,``, ``=3D`` is ``=``)."""
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise ValueError("OAUTHBEARER authzid holds a bare '='")
    return value.replace("=2C", ",").replace("=3D", "=")


def parse_oauthbearer(blob: bytes) -> OAuthResponse:
    """Parse a decoded OAUTHBEARER client response (RFC 7628 §3.1).

    Args:
        blob: the base64-decoded response,
            ``n,a=ADDR,\\x01host=H\\x01port=P\\x01auth=Bearer TOKEN\\x01\\x01``.

    Returns:
        The user (from the GS2 ``a=`` authzid, possibly empty), token, host and port.

    Raises:
        ValueError: the response does not follow the grammar.
    """
    text = _decode(blob, "OAUTHBEARER")
    header, sep, rest = text.partition(_SEP)
    if not sep:
        raise ValueError("OAUTHBEARER response has no 0x01 after the GS2 header")
    # gs2-header = gs2-cbind-flag "," [ authzid ] "," (RFC 5801 §4); channel binding is not
    # supported by this mechanism, so the flag is "n" or "y".
    parts = header.split(",")
    if len(parts) != 3 or parts[0] not in ("n", "y") or parts[2]:
        raise ValueError("OAUTHBEARER response has a malformed GS2 header")
    authzid = parts[1]
    user = ""
    if authzid:
        if not authzid.startswith("a="):
            raise ValueError("OAUTHBEARER authzid does not start with 'a='")
        user = _saslname(authzid[2:])
    pairs = _key_values(rest, "OAUTHBEARER")
    port_text = pairs.get("port")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit():
            raise ValueError("OAUTHBEARER port is not a number")
        port = int(port_text)
    return OAuthResponse(
        user=user, token=_bearer(pairs, "OAUTHBEARER"), host=pairs.get("host"), port=port
    )

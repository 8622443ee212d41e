"""The query values of a server URL, read and checked: flags, ``timeout``, ``window``,
``proxy``, ``quota``.

Helpers of :func:`smtpkit.config._configure.options_from_url`; each refusal is a
``ConfigurationError`` that quotes the URL redacted (``shown``), never its password.

Invariant: plaintext through a proxy is relaxed for loopback only when the URL names a
loopback IP literal (through a proxy the socket's peer is the proxy, not the server).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping

from smtpkit.config._checks import MAX_WINDOW, check_window
from smtpkit.config._options import SubmitterOptions
from smtpkit.config._proxy import Proxy, proxy_option
from smtpkit.config._url import ServerURL
from smtpkit.errors import ConfigurationError
from smtpkit.quotas import Quota
from smtpkit.quotas._url import store_from_url

__all__ = ["flag", "loopback_proxy", "timeout_option", "url_proxy", "url_quota", "url_window"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def flag(name: str, value: str, shown: str) -> bool:
    """A yes/no option (``allow_plaintext=true``): ``1``/``true``/``yes``/``on`` or the opposite."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{name}={value!r} in {shown} must be true or false")


def timeout_option(value: str, shown: str) -> float:
    """The ``timeout=`` option: finite seconds greater than 0 (DESIGN rule 7)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"timeout={value!r} in {shown} must be a number of seconds greater than 0"
        )
    return seconds


def url_window(query: Mapping[str, str], shown: str) -> SubmitterOptions:
    """``{"window": N}`` for the URL's ``window=`` option."""
    if "window" not in query:
        return {}
    value = query["window"]
    try:
        window = int(value.strip())
    except ValueError:
        window = 0
    try:
        check_window(window)
    except ConfigurationError as error:
        raise ConfigurationError(
            f"window={value!r} in {shown} must be an integer from 1 to {MAX_WINDOW}",
            hint=error.hint,
        ) from None
    return {"window": window}


def url_proxy(query: Mapping[str, str], server: ServerURL, shown: str) -> SubmitterOptions:
    """``{"proxy": Proxy}`` for the URL's ``proxy=`` option (a proxy URL, or ``env``)."""
    if "proxy" not in query:
        return {}
    try:
        proxy = proxy_option(query["proxy"], host=server.host)
    except ConfigurationError as error:
        raise ConfigurationError(f"{error.message} (proxy in {shown})", hint=error.hint) from None
    return {"proxy": proxy} if proxy is not None else {}


def url_quota(query: Mapping[str, str], shown: str) -> SubmitterOptions:
    """``{"quota": Quota(store)}`` for the URL's ``quota=`` option (a quota store URL).

    The store counts the preset's limits for the URL's account, as ``quota=Quota(store)``
    does; the store URL is not repeated in errors (it may hold a password).
    """
    if "quota" not in query:
        return {}
    try:
        store = store_from_url(query["quota"])
    except ConfigurationError as error:
        raise ConfigurationError(f"{error.message} (quota in {shown})", hint=error.hint) from None
    return {"quota": Quota(store)}


def loopback_proxy(options: SubmitterOptions, shown: str) -> Proxy | None:
    """The proxy for plaintext to a loopback host; its target must be a loopback IP literal.

    Through a proxy the socket's peer is the proxy, so the rule that relaxes plaintext for
    loopback can only trust a loopback *address* named in the URL (and a proxy that is on
    this machine too; see ``smtpkit.transports._proxy_route.tunnel_peer``).
    """
    proxy = proxy_option(options.get("proxy"), host=options["host"])
    if proxy is None:
        return None
    options["proxy"] = proxy  # resolved once, so the Submitter keeps this very transport
    host = options["host"].strip("[]")
    try:
        literal = ipaddress.ip_address(host).is_loopback
    except ValueError:
        literal = False
    if not literal:
        raise ConfigurationError(
            f"{shown} asks for plaintext SMTP through a proxy to {options['host']}: through a "
            "proxy only a loopback IP address (127.0.0.1, [::1]) shows that nothing crosses a "
            "network unencrypted",
            hint="write the host as 127.0.0.1 or [::1], use smtp+starttls:// or smtps://, or "
            "for a trusted network add ?allow_plaintext=true",
        )
    return proxy

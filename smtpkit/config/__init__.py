"""Configuration: the connection values, and how a Submitter's options are built and checked.

The public face is the values of :mod:`smtpkit.config._values` (``Security``, ``Timeouts``,
``Endpoint`` and the host-name checks), re-exported here; importing ``smtpkit.config``
loads nothing else, because transports, the engine and the providers import these values.
Above them, and loaded only by what needs them (the drivers, the doctor, the command line):

* :mod:`smtpkit.config._url`: server URLs (``smtps://user:pass@host:465``) parsed and redacted.
* :mod:`smtpkit.config._proxy`: ``smtpkit.Proxy``, the SOCKS/HTTP CONNECT proxy option.
* :mod:`smtpkit.config._checks`: checks of every Submitter option before any I/O.
* :mod:`smtpkit.config._configure`: a URL, ``SMTPKIT_URL`` or a provider preset turned into
  Submitter keyword arguments.

Invariants:
    * This ``__init__`` imports only ``_values``: the modules above it import transports,
      OAuth and the providers, which import this package (an import-linter layers
      contract keeps the order).
    * The public classes name ``smtpkit.config`` as their module, so pickles and
      documentation use the public path, not the private module.
"""

from smtpkit.config._values import (
    Endpoint,
    Security,
    Timeouts,
    check_ehlo_name,
    check_host,
    is_loopback,
    is_loopback_peer,
)

__all__ = [
    "Endpoint",
    "Security",
    "Timeouts",
    "check_ehlo_name",
    "check_host",
    "is_loopback",
    "is_loopback_peer",
]

# Pickles and the API reference name the public path (the private module may move again).
Endpoint.__module__ = Security.__module__ = Timeouts.__module__ = __name__
check_ehlo_name.__module__ = check_host.__module__ = __name__
is_loopback.__module__ = is_loopback_peer.__module__ = __name__

"""``SubmitterOptions``: the keyword arguments of a Submitter, as one typed dictionary.

What :mod:`smtpkit.config._configure` builds from a URL, a preset or the environment, and
what the doctor, the command line and the Django backend pass on.

Invariant: :data:`OPTION_NAMES` is every keyword of ``Submitter.__init__``
(``tests/test_submitter_options.py`` keeps the two in step); an unknown override is a
``ConfigurationError`` naming the known ones.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Literal, TypedDict

from smtpkit.auth import AuthStrategy
from smtpkit.config import Security, Timeouts
from smtpkit.config._proxy import Proxy
from smtpkit.dkim import DKIMSigner
from smtpkit.errors import ConfigurationError
from smtpkit.quotas import Quota
from smtpkit.retry import Retry
from smtpkit.transports import Transport

__all__ = ["OPTION_NAMES", "SubmitterOptions", "check_overrides"]


class SubmitterOptions(TypedDict, total=False):
    """Keyword arguments for :class:`smtpkit.Submitter` (``Submitter(**options)``).

    Every keyword of ``Submitter.__init__`` is here; a test keeps the two in step.
    """

    host: str
    port: int
    security: Security
    auth: AuthStrategy | None
    timeout: float | Timeouts | None
    tls_context: ssl.SSLContext | None
    local_hostname: str | None
    transport: Transport | None
    proxy: Proxy | str | None
    dkim: DKIMSigner | None
    allow_unencrypted_auth: bool
    provider: str | None
    retry: Retry | None
    max_connections: int
    max_messages_per_connection: int | None
    idle_timeout: float
    rate_limit: float | None
    use_chunking: bool
    window: int
    clock: Callable[[], float]
    wall_clock: Callable[[], datetime] | None
    quota: Quota | Literal[False] | None


#: Every key :class:`SubmitterOptions` allows, for checking overrides at run time.
OPTION_NAMES = frozenset(SubmitterOptions.__annotations__)


def check_overrides(overrides: Mapping[str, object]) -> None:
    """Refuse keyword overrides that are not Submitter options."""
    unknown = sorted(set(overrides) - OPTION_NAMES)
    if unknown:
        raise ConfigurationError(
            f"unknown Submitter option(s): {', '.join(unknown)}",
            hint=f"options are: {', '.join(sorted(OPTION_NAMES))}",
        )

"""One connection's fake SMTP server, assembled from its parts.

Job: :class:`ServerSession` is what a :class:`~smtpkit.testing.FakeStream` talks to. It is
the sum of four layers, each in its own module:

========================================  =============================================
:mod:`~smtpkit.testing._fake_wire`        bytes in and out, pipelining check, flights
:mod:`~smtpkit.testing._fake_core`        state, reply choice (script first), greeting,
                                          EHLO, STARTTLS, RSET, NOOP, QUIT
:mod:`~smtpkit.testing._fake_auth`        AUTH and the SASL exchanges
:mod:`~smtpkit.testing._fake_mail`        MAIL, RCPT, DATA, BDAT, the end of the content
========================================  =============================================

A typical session, as the fake answers it::

    S: 220 fake.smtpkit.test ESMTP
    C: EHLO client.example.com
    S: 250-fake.smtpkit.test at your service, [client.example.com]
    S: 250-STARTTLS ... (see FakeCapabilities)
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
    * TLS established; the session starts over (RFC 3207 §4.2)
    C: EHLO client.example.com
    S: 250-... AUTH PLAIN LOGIN ...
    C: AUTH PLAIN ****
    S: 235 2.7.0 Authentication successful
    C: MAIL FROM:<a@example.com>
    C: RCPT TO:<b@example.com>
    C: DATA
    S: 250 2.1.0 OK
    S: 250 2.1.5 OK
    S: 354 End data with <CR><LF>.<CR><LF>
    C: <1234 octets>
    C: .
    S: 250 2.0.0 OK: queued as FAKE0001
"""

from __future__ import annotations

from smtpkit.testing._fake_auth import AuthCommands
from smtpkit.testing._fake_mail import MailCommands

__all__ = ["ServerSession"]


class ServerSession(AuthCommands, MailCommands):
    """One connection's complete fake SMTP server (see the module docstring)."""

"""Hints for the command line: the library's advice said in the command line's words.

The library's hints speak Python (``use Security.STARTTLS``, ``tls_context=...``,
``Timeouts``), which is right for code and wrong for someone typing ``smtpkit send``: there
the same advice is a URL scheme (``smtp+starttls://``), an option (``--cafile``,
``--timeout``) or a URL option (``?local_hostname=``). :func:`cli_hint` picks the advice for
an error as the command line shows it.

Invariants:
    * Every Python spelling the library uses in a hint has a command-line rewrite in
      :data:`_REWRITES` (``tests/test_cli_hardening.py`` checks them against the library's
      own hint texts), so a hint printed by the command line names no Python API.
    * A certificate that did not verify gets advice for its reason: an unknown issuer
      (private CA, self-signed) is not a wrong host name, and the reverse.
    * Text only: nothing here reads or prints a secret (hints never hold one).
"""

from __future__ import annotations

import re

from smtpkit.errors import OperationTimeout, SMTPError, TLSError

__all__ = ["cli_hint", "cli_text"]

# (pattern, replacement), applied in order: the longer, more specific phrases first.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # "use smtp+starttls://host:587 (Security.STARTTLS)": the URL already says it.
        (r" \((?:Security\.\w+)\)", ""),
        (r",? and in code tls_context=ssl\.create_default_context\(cafile=[^)]*\)", ""),
        (
            r"(?:for a private CA )?pass tls_context=ssl\.create_default_context\(cafile=[^)]*\)",
            "for a private CA pass --cafile CA.pem (or ?cafile=CA.pem in the URL)",
        ),
        (r"tls_context=ssl\.create_default_context\(cafile=[^)]*\)", "--cafile CA.pem"),
        (
            r"use Security\.STARTTLS or Security\.TLS",
            "use smtp+starttls:// (port 587) or smtps:// (port 465)",
        ),
        (r"Security\.STARTTLS", "smtp+starttls://"),
        (r"Security\.TLS", "smtps://"),
        (r"Security\.NONE", "smtp://"),
        (
            r"pass allow_unencrypted_auth=True",
            "add ?allow_plaintext=true to an smtp:// URL",
        ),
        (r"allow more time with Timeouts \([^)]*\)", "allow more time with --timeout SECONDS"),
        (r"Timeouts\.\w+|Timeouts(?:\([^)]*\))?", "--timeout SECONDS"),
        (r"\(Submitter\(local_hostname=[^)]*\)\)", "(?local_hostname=NAME in the URL)"),
        (r"local_hostname='([^']*)'", r"?local_hostname=\1 in the URL"),
        (r"Submitter\.from_url\(url\)", "a URL"),
        (r"e\.g\. Submitter\('([^']*)'\)", r"e.g. smtp+starttls://\1"),
        (r"\btimeout=(\d+)", r"--timeout \1"),
        (
            r"an OAuth2 strategy \(docs/oauth\.md\)",
            "an OAuth2 login (?auth=xoauth2 in the URL; see docs/oauth.md)",
        ),
        (r"an OAuth2 strategy", "an OAuth2 login (?auth=xoauth2 in the URL)"),
    )
)

# OpenSSL's verify messages, by what they mean for the user.
_UNKNOWN_ISSUER = re.compile(
    r"unable to get (local )?issuer|self[- ]signed|unable to verify the first certificate"
    r"|certificate chain"
)
_WRONG_NAME = re.compile(r"hostname mismatch|ip address mismatch|not valid for")
_EXPIRED = re.compile(r"expired")
_NOT_YET = re.compile(r"not yet valid")


def cli_text(hint: str) -> str:
    """``hint`` with its Python spellings replaced by the command line's."""
    for pattern, replacement in _REWRITES:
        hint = pattern.sub(replacement, hint)
    return hint


def cli_hint(error: SMTPError) -> str | None:
    """The advice to print for ``error`` on the command line, or ``None``."""
    if isinstance(error, TLSError) and "did not verify" in error.message:
        return _certificate_hint(error.message.lower())
    if isinstance(error, OperationTimeout):
        advice = cli_text(error.hint) if error.hint else "the server did not answer in time"
        if "--timeout" not in advice:
            advice += (
                "; check the host and port, or allow more time with --timeout SECONDS "
                "(for every step)"
            )
        return advice
    return cli_text(error.hint) if error.hint else None


def _certificate_hint(message: str) -> str:
    never = "never turn certificate verification off"
    if _WRONG_NAME.search(message):
        return (
            "the certificate is for another name: connect with a name it was issued for "
            "(check the host name in the URL for typos); " + never
        )
    if _EXPIRED.search(message) or _NOT_YET.search(message):
        return (
            "the certificate is outside its validity dates: if this machine's clock is right, "
            "the server's operator must renew it; " + never
        )
    if _UNKNOWN_ISSUER.search(message):
        return (
            "the server's certificate comes from a CA this machine does not trust. For a "
            "private CA (smtpkit serve prints its CA file) pass --cafile CA.pem, or "
            "?cafile=CA.pem in the URL; for a public provider, something on the path "
            "(antivirus, corporate proxy) may be intercepting TLS; " + never
        )
    return "for a private CA pass --cafile CA.pem (or ?cafile=CA.pem in the URL); " + never

"""DKIM signing (RFC 6376) of the message as smtpkit sends it, with dkimpy.

:class:`DKIMSigner` signs each message after smtpkit prepared it, so the ``Message-ID``
and ``Date`` smtpkit adds are covered, and without holding a large message twice: the
body hash is computed while the content streams through
:class:`~smtpkit.dkim._body.ContentHasher` (one chunk in memory at a time), and dkimpy
(the ``[dkim]`` extra: ``pip install 'smtpkit[dkim]'``) signs only the header block::

    signer = DKIMSigner("s2026", "example.com", Path("/etc/dkim/s2026.pem"))
    submitter = smtpkit.Submitter("mail.example.com", auth=..., dkim=signer)

    DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; q=dns/txt;
     s=s2026; t=1767225600; h=from : to : subject : date : message-id : from;
     bh=...; b=...

Invariants:
    * The private key lives in a :class:`~smtpkit.auth.Secret`: it is never in ``repr``,
      logs or an error message, and the signer refuses to pickle.
    * A bad key (unreadable, not PEM, not RSA, encrypted, under 1024 bits, RFC 8301 §3.2)
      is refused when the signer is built (``ConfigurationError``), before anything is sent.
    * The signature covers the content octets exactly as sent (after Bcc removal and with
      CRLF line endings); a content whose last line has no CRLF is sent with one, the
      octets a DATA transaction delivers anyway (RFC 5321 §4.1.1.4).
    * dkimpy is imported when a signer is built, not when smtpkit is imported.
"""

from __future__ import annotations

import base64
import enum
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from smtpkit.auth import Secret
from smtpkit.dkim._body import ContentHasher
from smtpkit.dkim._key import dkimpy, dns_record, parse_key, read_key
from smtpkit.errors import ConfigurationError, MessageError

if TYPE_CHECKING:
    from smtpkit.message import PreparedMessage

__all__ = ["Canonicalization", "DKIMSigner"]

#: Content is hashed this many octets at a time: the only part of the body held at once.
SIGN_CHUNK = 256 * 1024
# RFC 6376 §5.4.1 / dkimpy's SHOULD_NOT list: signing these breaks on normal transit.
_NEVER_SIGN = frozenset(
    {"return-path", "received", "comments", "keywords", "bcc", "resent-bcc", "dkim-signature"}
)


class Canonicalization(enum.Enum):
    """How a signer canonicalizes headers or body before hashing (RFC 6376 §3.4)."""

    #: Octets as they are (the body: trailing empty lines aside). Breaks on any re-folding.
    SIMPLE = "simple"
    #: White space and header-name case normalised: survives common transit changes.
    RELAXED = "relaxed"


def _canonicalization(value: object) -> tuple[Canonicalization, Canonicalization]:
    """``"relaxed/simple"`` (the ``c=`` tag's syntax) or a pair of members."""
    parts: Sequence[object]
    if isinstance(value, str):
        parts = value.split("/")
        if len(parts) == 1:
            parts = [parts[0], "simple"]  # RFC 6376 §3.5: the body defaults to simple
    elif isinstance(value, tuple):
        parts = value
    else:
        parts = ()
    try:
        if len(parts) != 2:
            raise ValueError(value)
        header, body = (
            part if isinstance(part, Canonicalization) else Canonicalization(str(part).lower())
            for part in parts
        )
    except ValueError:
        raise ConfigurationError(
            f"canonicalization must be 'header/body' with simple or relaxed each, or a pair "
            f"of Canonicalization members; got {value!r}",
            hint='e.g. canonicalization="relaxed/relaxed" (the default)',
        ) from None
    return header, body


class DKIMSigner:
    """Signs outgoing messages with ``rsa-sha256`` DKIM signatures (RFC 6376, RFC 8301).

    Give it to a submitter (``Submitter(..., dkim=signer)``: every message is signed) or to
    one message (``send(msg, dkim=signer)``, ``Outgoing(msg, dkim=signer)``). Publish
    :meth:`dns_record` as a TXT record at ``<selector>._domainkey.<domain>``.

    Args:
        selector: the ``s=`` selector naming the key in DNS.
        domain: the signing domain (``d=``); DMARC wants it to match the From domain.
        private_key: an RSA private key in PEM form: ``bytes``, PEM text, a
            :class:`~smtpkit.auth.Secret` holding it, or a path (``str`` or ``Path``) to a
            file. Held in a ``Secret``; never shown.
        canonicalization: ``"relaxed/relaxed"`` (default), ``"relaxed/simple"``,
            ``"simple/simple"``, ``"simple/relaxed"``, or a pair of
            :class:`Canonicalization` members (header, body).
        headers: the header fields to sign, lower-case; default: those of RFC 6376 §5.4.1
            the message has (From, To, Cc, Subject, Date, Message-ID, MIME fields, ...),
            with From signed once more so none can be added. Must include ``from``.
        identity: the ``i=`` agent or user identity (an address at ``domain`` or a
            subdomain); default: none (verifiers then use ``@domain``).
        clock: seconds since the epoch for the ``t=`` tag; default ``time.time``.

    Raises:
        ConfigurationError: dkimpy is missing, or a bad key, selector, domain, header list
            or canonicalization. Nothing is sent.
    """

    __slots__ = (
        "_body",
        "_clock",
        "_domain",
        "_header",
        "_headers",
        "_identity",
        "_key",
        "_selector",
    )

    def __init__(
        self,
        selector: str,
        domain: str,
        private_key: bytes | str | os.PathLike[str] | Secret,
        *,
        canonicalization: str
        | tuple[Canonicalization | str, Canonicalization | str] = "relaxed/relaxed",
        headers: Sequence[str] | None = None,
        identity: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for name, value in (("selector", selector), ("domain", domain)):
            if not isinstance(value, str) or not value or not _is_dns_name(value):
                raise ConfigurationError(
                    f"DKIM {name} must be a DNS name (letters, digits, '-', '.', '_'), "
                    f"got {value!r}",
                    hint='e.g. DKIMSigner("s2026", "example.com", key)',
                )
        self._selector = selector
        self._domain = domain
        self._header, self._body = _canonicalization(canonicalization)
        self._headers = _header_list(headers)
        if identity is not None and (
            not isinstance(identity, str)
            or "@" not in identity
            or not (
                identity.rpartition("@")[2].lower() == domain.lower()
                or identity.rpartition("@")[2].lower().endswith("." + domain.lower())
            )
        ):
            raise ConfigurationError(
                f"DKIM identity must be an address at {domain} or a subdomain of it "
                f"(RFC 6376 §3.5 i=), got {identity!r}"
            )
        self._identity = identity
        if not callable(clock):
            raise ConfigurationError(f"clock must be a function, got {clock!r}")
        self._clock = clock
        pem = read_key(private_key)
        parse_key(dkimpy(), pem)  # refuse a bad key now, not at the first send
        self._key = Secret(pem)

    @property
    def selector(self) -> str:
        """The ``s=`` selector."""
        return self._selector

    @property
    def domain(self) -> str:
        """The ``d=`` signing domain."""
        return self._domain

    @property
    def canonicalization(self) -> str:
        """The ``c=`` value, e.g. ``"relaxed/relaxed"``."""
        return f"{self._header.value}/{self._body.value}"

    def __repr__(self) -> str:
        return (
            f"DKIMSigner(selector={self.selector!r}, domain={self.domain!r}, "
            f"canonicalization={self.canonicalization!r})"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a DKIMSigner holds a private key and is not picklable; build it from "
            "configuration in each process"
        )

    def __copy__(self) -> DKIMSigner:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> DKIMSigner:
        return self

    # -- public key ------------------------------------------------------------------

    def dns_record(self) -> str:
        """The TXT record to publish at ``<selector>._domainkey.<domain>`` (RFC 6376 §3.6.1).

        ``v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>``. Long records are split into
        strings of at most 255 octets in the zone file; DNS joins them again.
        """
        return dns_record(parse_key(dkimpy(), self._key.reveal()))

    # -- signing ---------------------------------------------------------------------

    def sign(self, prepared: PreparedMessage) -> PreparedMessage:
        """``prepared`` with a ``DKIM-Signature`` field first; the content is not copied.

        Reads the content once, a chunk at a time, for the body hash; the message is then
        sent from the same parts as before, behind the new field.

        Raises:
            MessageError: the message has no From field (RFC 6376 §5.4 requires signing
                it) or its header block cannot be parsed.
        """
        hasher = ContentHasher(relaxed=self._body is Canonicalization.RELAXED)
        for chunk in prepared.iter_content(SIGN_CHUNK):
            hasher.feed(chunk)
        final_crlf = not hasher.ends_with_crlf()
        head, body_hash = hasher.finish()
        field = self.signature_field(head, body_hash)
        return prepared.with_field(field, final_crlf=final_crlf)

    def signature_field(self, head: bytes, body_hash: bytes) -> bytes:
        """The ``DKIM-Signature`` field (CRLF-terminated) for a header block and a body hash.

        Args:
            head: the header block, CRLF line endings, ending with the empty line.
            body_hash: the sha256 of the canonical body (RFC 6376 §3.7).
        """
        dkim = dkimpy()
        signer = dkim.DKIM(head, signature_algorithm=b"rsa-sha256")
        if self._headers is not None:
            include = list(self._headers)
        else:
            include = [name.lower() for name in signer.default_sign_headers()]
        if b"from" not in include or not any(n.lower() == b"from" for n, _ in signer.headers):
            raise MessageError(
                "the message has no From field, which a DKIM signature must cover (RFC 6376 §5.4)",
                hint="add a From header to the message",
            )
        policy = dkim.CanonicalizationPolicy.from_c_value(self.canonicalization.encode("ascii"))
        tags = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", policy.to_c_value()),
            (b"d", self._domain.encode("ascii")),
            *([(b"i", self._identity.encode("utf-8"))] if self._identity else []),
            (b"q", b"dns/txt"),
            (b"s", self._selector.encode("ascii")),
            (b"t", str(int(self._clock())).encode("ascii")),
            (b"h", b" : ".join(include)),
            (b"bh", base64.b64encode(body_hash)),
            # A placeholder as long as a signature, so that b= folds onto lines of its own
            # and the fields before it keep their folding once it is filled in (dkimpy).
            (b"b", b"0" * 60),
        ]
        signer.hasher = dkim.HASH_ALGORITHMS[b"rsa-sha256"]
        key = parse_key(dkim, self._key.reveal())
        value: bytes = signer.gen_header(tags, include, policy, b"DKIM-Signature", key)
        return b"DKIM-Signature: " + value


def _is_dns_name(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return name.isascii() and all(
        label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )


def _header_list(headers: object) -> tuple[bytes, ...] | None:
    if headers is None:
        return None
    if isinstance(headers, str) or not isinstance(headers, Sequence):
        raise ConfigurationError(
            f"headers must be a sequence of header names, got {headers!r}",
            hint='e.g. headers=("from", "to", "subject", "date", "message-id")',
        )
    names = []
    for name in headers:
        if not isinstance(name, str) or not name.isascii() or not name or ":" in name:
            raise ConfigurationError(f"headers: {name!r} is not a header field name")
        lower = name.strip().lower()
        if lower in _NEVER_SIGN:
            raise ConfigurationError(
                f"headers: {name} must not be signed (RFC 6376 §5.4.1: it changes in transit)"
            )
        names.append(lower.encode("ascii"))
    if b"from" not in names:
        raise ConfigurationError(
            "headers must include 'from' (RFC 6376 §5.4: From is always signed)"
        )
    return tuple(names)

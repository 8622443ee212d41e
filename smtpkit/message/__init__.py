"""Envelope extraction and wire serialisation of messages (no I/O).

:func:`prepare_message` turns an :class:`email.message.EmailMessage` (or raw bytes) into a
:class:`PreparedMessage`: the SMTP envelope (``MAIL FROM`` / ``RCPT TO`` addresses), the
content octets for ``DATA`` or ``BDAT``, and the facts the driver needs to pick ESMTP
parameters: ``BODY=`` (RFC 6152), ``SMTPUTF8`` (RFC 6531) and ``SIZE=`` (RFC 1870).

Invariants:
    * The caller's message object is never modified, not even for a moment (another thread
      may be preparing it too): Bcc removal, ``Message-ID`` and ``Date`` go into a shallow
      copy of the top-level message with a header list of its own, and the generator
      writes multipart parts from copies. Nothing is deep-copied and no header is parsed
      again (see :mod:`smtpkit.message._object`).
    * ``Bcc`` and ``Resent-Bcc`` never appear in ``content`` (RFC 5322 §3.6.3: their
      recipients must not be disclosed to the others).
    * The content uses CRLF line endings only (RFC 5321 §2.3.8), is not dot-stuffed and has
      no end-of-data terminator: the protocol layer adds both.
    * The content is generated once, in :func:`prepare_message` (Message-ID, Date and MIME
      boundaries are fixed there, and every serialisation error is raised there), but large
      payloads are not copied: :meth:`PreparedMessage.iter_content` produces them slice by
      slice from the strings the message already holds, so sending a big attachment adds
      only a few slices of memory. ``size`` is exact before anything is sent.
    * No header can be injected: a CR or LF in a header value that is not folding white space,
      and any other character the ``email`` folder may turn into a line break (VT, FF, FS,
      GS, RS, NEL, U+2028, U+2029: what ``str.splitlines()`` breaks at), in any header of any
      part, raw bytes included, is refused with :class:`~smtpkit.errors.MessageError`, as are
      control characters in envelope addresses. No exception of the ``email`` package
      escapes: each becomes a ``MessageError``.
    * ``body_type`` is decided from the bytes produced, not from declared encodings.
    * No line of the content exceeds 998 octets (RFC 5322 §2.1.1): a part of a message
      object with a longer line is sent re-encoded (quoted-printable for text, else
      base64); a header the policy cannot fold that short is refused.
    * Raw ``bytes`` input is sent as given, except for line endings: no header is added or
      removed. It needs SMTPUTF8 when the envelope or the header block holds non-ASCII
      (which must be UTF-8, RFC 6532), and no line may exceed 998 octets (RFC 5322
      §2.1.1): raw bytes cannot be re-encoded, so both are refused, never sent broken.

The public names are defined in private modules, each with one job: ``_prepare``
(``prepare_message``), ``_prepared`` (the values it returns), ``_msgid`` (Message-ID values);
below them ``_scan``, ``_object``, ``_headers`` (the header list), ``_wire``, ``_generate``,
``_fold`` (the octets) and ``_stream``, ``_lines`` (streamed bodies, line limits).
"""

from smtpkit.message._headers import extract_addresses
from smtpkit.message._msgid import DEFAULT_MSGID_DOMAIN as DEFAULT_MSGID_DOMAIN
from smtpkit.message._msgid import make_message_id
from smtpkit.message._prepare import prepare_message
from smtpkit.message._prepared import BodyType, Envelope, PreparedMessage
from smtpkit.protocol import normalize_line_endings

__all__ = [
    "BodyType",
    "Envelope",
    "PreparedMessage",
    "extract_addresses",
    "make_message_id",
    "normalize_line_endings",
    "prepare_message",
]

# Pickles and the API reference name the public path, not the private module.
BodyType.__module__ = Envelope.__module__ = PreparedMessage.__module__ = __name__

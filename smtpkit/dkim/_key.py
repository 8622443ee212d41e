"""The DKIM private key: read from where the caller keeps it, checked, and its DNS record.

Job: turn what :class:`~smtpkit.dkim.DKIMSigner` is given (PEM bytes or text, a
:class:`~smtpkit.auth.Secret`, a file path) into checked PEM text, parse it with dkimpy
for each signature, and build the public key's TXT record (RFC 6376 §3.6.1).

Invariants:
    * No error message quotes the key: dkimpy's parser messages are not passed on.
    * A key that is not an unencrypted RSA key of at least 1024 bits (RFC 8301 §3.2) is a
      ``ConfigurationError``.
    * dkimpy is imported on first use (:func:`dkimpy`), not with smtpkit.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import os
from types import ModuleType

from smtpkit.auth import Secret
from smtpkit.errors import ConfigurationError

__all__ = ["MIN_KEY_BITS", "dkimpy", "dns_record", "parse_key", "read_key"]

#: RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits (2048 recommended).
MIN_KEY_BITS = 1024
_INSTALL_HINT = "install the extra: pip install 'smtpkit[dkim]' (it brings dkimpy)"
_KEY_HINT = (
    "pass an unencrypted RSA private key in PEM form (PKCS#1 or PKCS#8), as bytes or a "
    "file path; make one with: openssl genrsa -out dkim.pem 2048"
)


def dkimpy() -> ModuleType:
    """dkimpy (the [dkim] extra), imported when first needed: it imports dnspython."""
    try:
        return importlib.import_module("dkim")
    except ImportError:
        raise ConfigurationError("DKIM signing needs dkimpy", hint=_INSTALL_HINT) from None


def read_key(private_key: object) -> str:
    """The PEM text of ``private_key`` (bytes, PEM text, a Secret, or a file path)."""
    if isinstance(private_key, Secret):
        pem: object = private_key.reveal()
    elif isinstance(private_key, bytes | bytearray):
        pem = bytes(private_key)
    elif isinstance(private_key, str) and "-----BEGIN" in private_key:
        pem = private_key
    elif isinstance(private_key, str | os.PathLike):
        try:
            with open(private_key, "rb") as file:  # any PathLike
                pem = file.read()
        except OSError as error:
            # The path is configuration, not a secret; the file's content never shows.
            raise ConfigurationError(
                f"cannot read the DKIM private key file {os.fspath(private_key)!r}: "
                f"{error.strerror or error}",
                hint=_KEY_HINT,
            ) from None
    else:
        raise ConfigurationError(
            f"private_key must be PEM bytes, PEM text, a Secret or a file path, got "
            f"{type(private_key).__name__}",
            hint=_KEY_HINT,
        )
    if isinstance(pem, bytes):
        try:
            pem = pem.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigurationError(
                "the DKIM private key is not PEM text (it holds non-ASCII octets: DER?)",
                hint=_KEY_HINT,
            ) from None
    assert isinstance(pem, str)
    # dkimpy finds the base64 between "--\n" and "\n--": CRLF files would not match.
    return pem.replace("\r\n", "\n").strip() + "\n"


def parse_key(dkim: ModuleType, pem: str) -> dict[str, int]:
    """The RSA key's numbers, or ``ConfigurationError`` (never showing the key)."""
    if "ENCRYPTED" in pem.split("\n", 1)[0]:
        raise ConfigurationError(
            "the DKIM private key is encrypted",
            hint="decrypt it for the signer: openssl pkey -in key.pem -out dkim.pem",
        )
    crypto = dkim.crypto
    try:
        key: dict[str, int] = crypto.parse_pem_private_key(pem.encode("ascii"))
    except (crypto.UnparsableKeyError, binascii.Error, ValueError, IndexError, TypeError):
        # The parser's message may quote key octets: it is not passed on.
        raise ConfigurationError(
            "the DKIM private key is not an RSA private key in PEM form", hint=_KEY_HINT
        ) from None
    bits = key["modulus"].bit_length()
    if bits < MIN_KEY_BITS:
        raise ConfigurationError(
            f"the DKIM key has {bits} bits; RFC 8301 §3.2 requires at least {MIN_KEY_BITS} "
            "(receivers ignore shorter ones)",
            hint="make a 2048-bit key: openssl genrsa -out dkim.pem 2048",
        )
    return key


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


# rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters, for a SubjectPublicKeyInfo.
_RSA_ALGORITHM = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")


def dns_record(key: dict[str, int]) -> str:
    """``v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>`` for a parsed key."""
    public = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    info = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + public))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(info).decode("ascii")

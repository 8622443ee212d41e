"""DKIM signing: dkimpy's verifier accepts what arrives at a LocalServer, for both drivers.

The public key is served to ``dkim.verify`` by a ``dnsfunc`` stub (no DNS). Messages carry
what breaks naive signers: a non-ASCII subject (RFC 2047-encoded by smtpkit), an
attachment large enough to be streamed, a Bcc (removed before signing), and no Message-ID
or Date (added by smtpkit, and covered by the signature).
"""

from __future__ import annotations

import base64
import copy
import pickle
import tracemalloc
import types
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from drivers_kit import Client, DriverFactory, driver

from smtpkit import ConfigurationError, DKIMSigner, MessageError, Outgoing, SendResult
from smtpkit.auth import Secret
from smtpkit.dkim import Canonicalization
from smtpkit.message import prepare_message
from smtpkit.testing import LocalServer

dkim = pytest.importorskip("dkim")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")

__all__ = ["driver"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(60)

ServerFactory = Callable[..., LocalServer]
DOMAIN = "example.test"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def pem_of(key: Any, fmt: Any = None) -> bytes:
    return key.private_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM,
        fmt or serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(rsa_key: Any) -> bytes:
    return pem_of(rsa_key)


def dns_for(*signers: DKIMSigner) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc``: the signers' TXT records by name, nothing else."""
    records = {
        f"{s.selector}._domainkey.{s.domain}.".encode(): s.dns_record().encode() for s in signers
    }

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name)

    return lookup


def verify(raw: bytes, *signers: DKIMSigner) -> bool:
    return bool(dkim.verify(raw, dnsfunc=dns_for(*signers)))


def tags(raw: bytes) -> dict[bytes, bytes]:
    """The tags of the first DKIM-Signature field of ``raw``."""
    parsed = dkim.DKIM(raw)
    [value] = [v for n, v in parsed.headers if n.lower() == b"dkim-signature"][:1]
    return dict(dkim.util.parse_tag_value(value))


def rich_message(size: int = 300_000) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ålice Example <alice@example.test>"
    msg["To"] = "bob@example.test"
    msg["Bcc"] = "secret@example.test"
    msg["Subject"] = "Grüße aus Köln — ünïcödé"  # non-ASCII: an RFC 2047 encoded-word
    msg.set_content("Hello,  \tthis line has  odd   spacing  \n\n\nand blank lines at the end\n\n")
    msg.add_attachment(
        bytes(range(256)) * (size // 256),
        maintype="application",
        subtype="octet-stream",
        filename="data.bin",
    )
    return msg


def send(client: Client, message: EmailMessage | bytes, **options: Any) -> SendResult:
    submitter = client.submitter
    if client.name == "async":
        return client.run(submitter.send(message, **options))  # type: ignore[attr-defined]
    return submitter.send(message, **options)  # type: ignore[return-value]


# -- on the wire, both drivers -------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple"])
def test_dkimpy_verifies_what_the_server_received(
    driver: DriverFactory,
    local_server: ServerFactory,
    pem: bytes,
    canonicalization: str,
    chunking: bool,
) -> None:
    signer = DKIMSigner("s2026", DOMAIN, pem, canonicalization=canonicalization)
    server = local_server(chunking=chunking)
    client = driver.for_server(server, dkim=signer)

    result = send(client, rich_message())

    [received] = server.wait_for(1)
    assert received.chunked is chunking
    assert verify(received.raw, signer)
    signed = tags(received.raw)
    assert signed[b"c"] == canonicalization.encode()
    assert (signed[b"d"], signed[b"s"]) == (DOMAIN.encode(), b"s2026")
    covered = [name.strip() for name in signed[b"h"].split(b":")]
    # The Message-ID and Date smtpkit added are signed; From twice, so none can be added.
    assert {b"message-id", b"date", b"subject", b"to"} <= set(covered)
    assert covered.count(b"from") == 2
    assert b"bcc" not in covered
    assert b"secret@example.test" not in received.raw
    assert received.message["Message-ID"] == result.message_id
    assert received.raw.startswith(b"DKIM-Signature: ")


def test_a_tampered_message_fails_verification(
    driver: DriverFactory, local_server: ServerFactory, pem: bytes
) -> None:
    signer = DKIMSigner("s1", DOMAIN, pem)
    server = local_server()
    client = driver.for_server(server, dkim=signer)

    send(client, rich_message(size=1024))

    [received] = server.wait_for(1)
    raw = received.raw
    assert verify(raw, signer)
    body_changed = raw.replace(b"and blank lines", b"and blank lanes")
    subject_changed = raw.replace(b"Subject: ", b"Subject: Re: ")
    date_changed = raw.replace(
        b"\r\nDate: ", b"\r\nDate: Sun, 01 Jan 2023 00:00:00 +0000\r\nX-Old: "
    )
    for tampered in (body_changed, subject_changed, date_changed):
        assert tampered != raw
        assert not verify(tampered, signer)
    # Another key under the same selector does not verify it either.
    other = DKIMSigner("s1", DOMAIN, pem_of(rsa.generate_private_key(65537, 2048)))
    assert not verify(raw, other)


def test_a_message_signer_replaces_the_submitters(
    driver: DriverFactory, local_server: ServerFactory, pem: bytes
) -> None:
    default = DKIMSigner("default", DOMAIN, pem)
    campaign = DKIMSigner("campaign", "news.example.test", pem, canonicalization="relaxed/simple")
    server = local_server()
    client = driver.for_server(server, dkim=default)

    send(client, rich_message(size=1024), dkim=campaign)
    outcomes = client.send_many(
        [Outgoing(rich_message(size=1024), dkim=campaign), rich_message(size=1024)],
        concurrency=1,
    )

    assert all(isinstance(o, SendResult) for o in outcomes)
    selectors = [tags(m.raw)[b"s"] for m in server.wait_for(3)]
    assert sorted(selectors) == [b"campaign", b"campaign", b"default"]
    assert all(verify(m.raw, default, campaign) for m in server.messages)


def test_raw_bytes_without_a_final_line_break_verify_over_bdat(
    driver: DriverFactory, local_server: ServerFactory, pem: bytes
) -> None:
    # BDAT sends the octets as they are: smtpkit adds the CRLF the signature covered.
    signer = DKIMSigner("s1", DOMAIN, pem, canonicalization="simple/simple")
    server = local_server(chunking=True)
    client = driver.for_server(server)
    raw = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: raw\r\n\r\nno newline"

    send(client, raw, sender="alice@example.test", recipients=["bob@example.test"], dkim=signer)

    [received] = server.wait_for(1)
    assert received.raw.endswith(b"no newline\r\n")
    assert verify(received.raw, signer)


def test_a_message_without_from_is_refused_before_mail(
    driver: DriverFactory, local_server: ServerFactory, pem: bytes
) -> None:
    server = local_server()
    client = driver.for_server(server, dkim=DKIMSigner("s1", DOMAIN, pem))
    raw = b"To: bob@example.test\r\nSubject: no from\r\n\r\nbody\r\n"

    with pytest.raises(MessageError, match="From"):
        send(client, raw, sender="alice@example.test", recipients=["bob@example.test"])
    assert server.messages == []


# -- the signature itself (no sockets) -----------------------------------------------------


def test_the_same_signature_as_dkimpys_own_sign(
    pem: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dkimpy signs the whole message at once; smtpkit hashes the body as it streams. The
    # fields must be identical octet for octet (dkimpy always writes i=@domain).
    monkeypatch.setattr(dkim, "time", types.SimpleNamespace(time=lambda: NOW))
    prepared = prepare_message(rich_message())
    for canon in ("relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"):
        signer = DKIMSigner(
            "s1", DOMAIN, pem, canonicalization=canon, identity="@" + DOMAIN, clock=lambda: NOW
        )
        header, body = canon.encode().split(b"/")
        expected = dkim.sign(
            prepared.content,
            b"s1",
            DOMAIN.encode(),
            pem,
            identity=b"@" + DOMAIN.encode(),
            canonicalize=(header, body),
        )
        signed = signer.sign(prepared)
        assert signed.content == expected + prepared.content
        assert signed.size == prepared.size + len(expected)
        assert signed.envelope == prepared.envelope
        assert signed.message_id == prepared.message_id


def test_the_body_is_hashed_chunk_by_chunk_not_copied_whole(pem: bytes) -> None:
    # An 8 MB attachment: signing holds a few chunks, not the 11 MB of base64 content.
    signer = DKIMSigner("s1", DOMAIN, pem)
    prepared = prepare_message(rich_message(size=8_000_000))
    assert prepared.size > 10_000_000
    tracemalloc.start()
    try:
        signed = signer.sign(prepared)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"signing held {peak} octets at once"
    assert signed.size > prepared.size


def test_headers_to_sign_can_be_chosen(pem: bytes) -> None:
    signer = DKIMSigner("s1", DOMAIN, pem, headers=["From", "Subject", "Date"])
    signed = signer.sign(prepare_message(rich_message(size=10)))
    assert tags(signed.content)[b"h"] == b"from : subject : date"
    assert verify(signed.content, signer)


def test_canonicalization_forms() -> None:
    pem = pem_of(rsa.generate_private_key(65537, 1024))
    assert DKIMSigner("s", DOMAIN, pem).canonicalization == "relaxed/relaxed"
    pair = (Canonicalization.SIMPLE, "relaxed")
    assert DKIMSigner("s", DOMAIN, pem, canonicalization=pair).canonicalization == (
        "simple/relaxed"
    )
    # RFC 6376 §3.5: a c= with only the header algorithm means simple for the body.
    assert DKIMSigner("s", DOMAIN, pem, canonicalization="relaxed").canonicalization == (
        "relaxed/simple"
    )
    for bad in ("relaxed/loose", "a/b/c", ("relaxed",), 3):
        with pytest.raises(ConfigurationError, match="canonicalization"):
            DKIMSigner("s", DOMAIN, pem, canonicalization=bad)  # type: ignore[arg-type]


def test_the_dns_record_is_the_public_key(rsa_key: Any, pem: bytes) -> None:
    der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = DKIMSigner("s1", DOMAIN, pem).dns_record()
    assert record == "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


# -- keys: accepted forms, refusals, secrecy -----------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path, pem: bytes) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem.replace(b"\n", b"\r\n"))  # a file saved on Windows reads too
    return path


def test_every_key_form_signs_the_same(pem: bytes, rsa_key: Any, key_file: Path) -> None:
    pkcs8 = pem_of(rsa_key, serialization.PrivateFormat.PKCS8)
    forms: list[Any] = [pem, pem.decode(), Secret(pem.decode()), key_file, str(key_file), pkcs8]
    prepared = prepare_message(rich_message(size=10))
    fields = {
        DKIMSigner("s1", DOMAIN, form, clock=lambda: NOW).sign(prepared).content for form in forms
    }
    assert len(fields) == 1


def test_bad_keys_are_refused_when_the_signer_is_built(tmp_path: Path, pem: bytes) -> None:
    encrypted = pem_of(rsa.generate_private_key(65537, 1024)).replace(
        b"-----BEGIN RSA", b"-----BEGIN ENCRYPTED"
    )
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der = serialization.load_pem_private_key(pem, None).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cases: list[tuple[object, str]] = [
        (
            b"-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5\n-----END RSA PRIVATE KEY-----\n",
            "not an RSA",
        ),
        (ec_key, "not an RSA"),
        (der, "not PEM"),
        (encrypted, "encrypted"),
        (tmp_path / "missing.pem", "cannot read"),
        (str(tmp_path), "cannot read"),
        (12345, "PEM bytes"),
        (short_key_pem(), "512 bits"),
    ]
    for key, words in cases:
        with pytest.raises(ConfigurationError, match=words):
            DKIMSigner("s1", DOMAIN, key)  # type: ignore[arg-type]


def short_key_pem() -> bytes:
    """A PKCS#1 key whose modulus has 512 bits (numbers only: nothing here signs with it)."""

    def der(tag: int, body: bytes) -> bytes:
        size = len(body)
        head = bytes((tag, size)) if size < 0x80 else bytes((tag, 0x81, size))
        return head + body

    def integer(value: int) -> bytes:
        return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))

    numbers = [0, (1 << 511) | 1, 65537, *([3] * 6)]
    body = base64.encodebytes(der(0x30, b"".join(map(integer, numbers))))
    return b"-----BEGIN RSA PRIVATE KEY-----\n" + body + b"-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("args", "options", "words"),
    [
        (("", DOMAIN), {}, "selector"),
        (("s 1", DOMAIN), {}, "selector"),
        (("s1", "exa mple.test"), {}, "domain"),
        (("s1", "example.test\r\n"), {}, "domain"),
        (("s1", DOMAIN), {"headers": ["subject"]}, "include 'from'"),
        (("s1", DOMAIN), {"headers": ["from", "bcc"]}, "must not be signed"),
        (("s1", DOMAIN), {"headers": "from"}, "sequence"),
        (("s1", DOMAIN), {"identity": "alice@elsewhere.test"}, "identity"),
        (("s1", DOMAIN), {"clock": 5}, "clock"),
    ],
)
def test_bad_signer_options_are_refused(
    pem: bytes, args: tuple[str, str], options: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        DKIMSigner(*args, pem, **options)


def test_the_key_never_shows(pem: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    signer = DKIMSigner("s1", DOMAIN, pem)
    body = b"".join(pem.splitlines()[1:-1])
    signer.sign(prepare_message(rich_message(size=10)))
    for shown in (repr(signer), str(signer), caplog.text):
        assert body[:40].decode() not in shown
    assert repr(signer) == (
        "DKIMSigner(selector='s1', domain='example.test', canonicalization='relaxed/relaxed')"
    )
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(signer)
    assert copy.deepcopy(signer) is signer
    # An unparsable key's error says so without quoting it.
    broken = pem[:200] + b"!!" + pem[202:]
    with pytest.raises(ConfigurationError) as caught:
        DKIMSigner("s1", DOMAIN, broken)
    assert body[:40].decode() not in str(caught.value)


def test_without_dkimpy_the_signer_says_which_extra_to_install(
    pem: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "dkim", None)  # import dkim -> ImportError
    with pytest.raises(ConfigurationError, match="dkimpy") as caught:
        DKIMSigner("s1", DOMAIN, pem)
    assert "smtpkit[dkim]" in (caught.value.hint or "")


def test_a_wrong_submitter_option_is_a_configuration_error(driver: DriverFactory) -> None:
    with pytest.raises(ConfigurationError, match="DKIMSigner"):
        driver.client("smtp.example.test", 587, dkim="s1")

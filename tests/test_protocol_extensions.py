"""EHLO capabilities (RFC 5321 §4.1.1.1), parsed from real servers' replies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smtpkit.protocol import Extensions, ReplyParser
from smtpkit.replies import Reply

CORPUS = Path(__file__).parent / "data" / "ehlo" / "replies.jsonl"


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def parse_wire(wire: bytes) -> Reply:
    parser = ReplyParser()
    parser.feed(wire)
    reply = parser.next_reply()
    assert reply is not None
    assert parser.next_reply() is None
    assert parser.buffered == 0
    return reply


def extensions(wire: bytes) -> Extensions:
    return Extensions.from_reply(parse_wire(wire))


ROWS = load_corpus()


def test_corpus_is_present() -> None:
    assert len(ROWS) >= 18
    assert all(row["wire"] for row in ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['id']}-{r['provider']}" for r in ROWS])
def test_every_real_ehlo_reply_parses(row: dict[str, Any]) -> None:
    # The corpus stores the reply without its final CRLF.
    wire = row["wire"].encode("utf-8") + b"\r\n"
    reply = parse_wire(wire)
    assert reply.code == row["code"]
    assert reply.to_bytes() == wire
    ext = Extensions.from_reply(reply)
    assert ext.server_name == reply.lines[0].strip()
    for keyword in ext.keywords:
        assert keyword == keyword.upper()
        assert ext.supports(keyword.lower())
    if ext.max_size is not None:
        assert ext.max_size > 0


def corpus_wire(row_id: int) -> bytes:
    (row,) = [r for r in ROWS if r["id"] == row_id]
    return str(row["wire"]).encode() + b"\r\n"


def test_gmail_before_tls() -> None:
    # S: 250-smtp.gmail.com at your service, [45.124.48.90]
    # S: 250-SIZE 35882577
    # S: 250-8BITMIME
    # S: 250-STARTTLS
    # S: 250-ENHANCEDSTATUSCODES
    # S: 250-PIPELINING
    # S: 250-CHUNKING
    # S: 250 SMTPUTF8
    ext = extensions(corpus_wire(21))
    assert ext.server_name == "smtp.gmail.com at your service, [45.124.48.90]"
    assert ext.starttls
    assert ext.max_size == 35882577
    assert ext.size_declared
    assert ext.pipelining
    assert ext.chunking
    assert ext.smtputf8
    assert ext.eight_bit_mime
    assert ext.enhanced_status_codes
    assert not ext.dsn
    assert not ext.binarymime
    # Gmail offers AUTH only after STARTTLS.
    assert ext.auth_mechanisms == frozenset()
    assert not ext.supports("AUTH")
    assert dict(ext.keywords) == {
        "SIZE": "35882577",
        "8BITMIME": "",
        "STARTTLS": "",
        "ENHANCEDSTATUSCODES": "",
        "PIPELINING": "",
        "CHUNKING": "",
        "SMTPUTF8": "",
    }


def test_gmail_after_tls() -> None:
    # S: 250-smtp.gmail.com at your service, [45.124.48.90]
    # S: 250-SIZE 35882577
    # S: 250-8BITMIME
    # S: 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH
    # S: 250-ENHANCEDSTATUSCODES
    # S: 250-PIPELINING
    # S: 250-CHUNKING
    # S: 250 SMTPUTF8
    ext = extensions(corpus_wire(23))
    assert not ext.starttls
    assert ext.auth_mechanisms == {
        "LOGIN",
        "PLAIN",
        "XOAUTH2",
        "PLAIN-CLIENTTOKEN",
        "OAUTHBEARER",
        "XOAUTH",
    }
    assert ext.max_size == 35882577
    assert ext.pipelining
    assert ext.chunking
    assert ext.smtputf8


def test_gmail_size_is_read_not_assumed() -> None:
    # S: 250-SIZE 157286400     (2016: 150 MiB)
    assert extensions(corpus_wire(261)).max_size == 157286400


def test_microsoft_365() -> None:
    # S: 250-MWHPR01CA0029.outlook.office365.com Hello [52.25.75.54]
    # S: 250-SIZE 157286400
    # S: 250-PIPELINING
    # S: 250-DSN
    # S: 250-ENHANCEDSTATUSCODES
    # S: 250-AUTH LOGIN XOAUTH2
    # S: 250-8BITMIME
    # S: 250-BINARYMIME
    # S: 250-CHUNKING
    # S: 250 SMTPUTF8
    ext = extensions(corpus_wire(72))
    assert ext.auth_mechanisms == {"LOGIN", "XOAUTH2"}
    assert "PLAIN" not in ext.auth_mechanisms
    assert ext.max_size == 157286400
    assert ext.dsn
    assert ext.binarymime
    assert ext.chunking
    assert ext.pipelining


def test_old_auth_equals_form() -> None:
    # S: 250-smtp.example.com
    # S: 250 AUTH=LOGIN
    ext = extensions(b"250-smtp.example.com\r\n250 AUTH=LOGIN\r\n")
    assert ext.auth_mechanisms == {"LOGIN"}
    assert ext.supports("AUTH")


def test_auth_and_auth_equals_are_merged() -> None:
    # SendGrid sends both forms:
    # S: 250-AUTH PLAIN LOGIN
    # S: 250 AUTH=PLAIN LOGIN
    ext = extensions(corpus_wire(117))
    assert ext.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert ext.keywords["AUTH"] == "LOGIN PLAIN"


def test_auth_equals_with_several_mechanisms() -> None:
    ext = extensions(b"250-mx\r\n250-AUTH=LOGIN PLAIN CRAM-MD5\r\n250 AUTH NTLM\r\n")
    assert ext.auth_mechanisms == {"LOGIN", "PLAIN", "CRAM-MD5", "NTLM"}


@pytest.mark.parametrize(
    ("line", "max_size", "declared"),
    [
        (b"250 SIZE\r\n", None, True),  # Sendmail: no number, no fixed limit
        (b"250 SIZE 0\r\n", None, True),  # RFC 1870 §4: 0 means no fixed maximum
        (b"250 SIZE 1000\r\n", 1000, True),
        (b"250 SIZE   1000  \r\n", 1000, True),
        (b"250 SIZE abc\r\n", None, True),
        (b"250 SIZE -5\r\n", None, True),
        (b"250 SIZE 1e6\r\n", None, True),
        ("250 SIZE ²\r\n".encode(), None, True),  # str.isdigit() is True, int() refuses
        ("250 SIZE \u0661\u0662\r\n".encode(), None, True),  # Arabic-Indic digits
        (b"250 SIZE \xff\r\n", None, True),
        (b"250 PIPELINING\r\n", None, False),
    ],
)
def test_size(line: bytes, max_size: int | None, declared: bool) -> None:
    ext = extensions(b"250-mx.example.com\r\n" + line)
    assert ext.max_size == max_size
    assert ext.size_declared is declared


def test_sendmail_size_without_number() -> None:
    ext = extensions(corpus_wire(184))
    assert ext.size_declared
    assert ext.max_size is None
    assert ext.auth_mechanisms == {"DIGEST-MD5", "CRAM-MD5", "LOGIN", "PLAIN"}
    assert ext.starttls
    assert ext.dsn


def test_dsn() -> None:
    # S: 250-mx.example.com
    # S: 250 DSN
    assert extensions(b"250-mx.example.com\r\n250 DSN\r\n").dsn


def test_lowercase_keywords() -> None:
    # S: 250-mx.example.com
    # S: 250-starttls
    # S: 250-size 2048
    # S: 250-auth login plain
    # S: 250 Pipelining
    ext = extensions(
        b"250-mx.example.com\r\n250-starttls\r\n250-size 2048\r\n"
        b"250-auth login plain\r\n250 Pipelining\r\n"
    )
    assert ext.starttls
    assert ext.pipelining
    assert ext.max_size == 2048
    assert ext.auth_mechanisms == {"LOGIN", "PLAIN"}
    assert set(ext.keywords) == {"STARTTLS", "SIZE", "AUTH", "PIPELINING"}
    assert ext.supports("starttls")
    assert ext.supports("StartTLS")


def test_private_and_odd_keywords_do_not_break_parsing() -> None:
    # S: 250-TS-EXHC-P1.CXG.CO.UK Hello [172.16.10.102]
    # S: 250-X-ANONYMOUSTLS
    # S: 250-X-EXPS GSSAPI NTLM
    # S: 250-XEXCH50
    ext = extensions(corpus_wire(235))
    assert ext.supports("X-ANONYMOUSTLS")
    assert ext.keywords["X-EXPS"] == "GSSAPI NTLM"
    assert ext.auth_mechanisms == {"NTLM"}
    assert ext.max_size is None


def test_blank_and_space_only_lines_are_skipped() -> None:
    ext = extensions(b"250-mx.example.com\r\n250-\r\n250-   \r\n250 PIPELINING\r\n")
    assert set(ext.keywords) == {"PIPELINING"}


def test_single_line_ehlo_has_no_extensions() -> None:
    ext = extensions(b"250 mx.example.com greets you\r\n")
    assert ext.server_name == "mx.example.com greets you"
    assert dict(ext.keywords) == {}
    assert ext.auth_mechanisms == frozenset()
    assert ext.max_size is None
    assert not ext.pipelining


def test_first_line_is_the_name_even_if_it_looks_like_a_keyword() -> None:
    # Postal: "250-My capabilities are" then "250 AUTH ..."
    ext = extensions(corpus_wire(201))
    assert ext.server_name == "My capabilities are"
    assert ext.auth_mechanisms == {"CRAM-MD5", "PLAIN", "LOGIN"}


def test_keywords_are_read_only() -> None:
    ext = extensions(corpus_wire(21))
    with pytest.raises(TypeError):
        ext.keywords["AUTH"] = "PLAIN"  # type: ignore[index]


def test_default_extensions_are_empty() -> None:
    ext = Extensions()
    assert ext.server_name == ""
    assert dict(ext.keywords) == {}
    assert not ext.starttls
    assert ext.max_size is None

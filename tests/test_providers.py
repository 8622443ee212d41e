"""Provider presets: documented settings, lookup by address, sources, docs, data checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from smtpkit import ConfigurationError, Security, Submitter
from smtpkit.auth import AppPasswordAuth
from smtpkit.config._configure import SubmitterOptions, options_for_provider
from smtpkit.providers import (
    Preset,
    all_presets,
    find,
    for_host,
    get,
    lookup,
    parse_presets,
    render_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "smtpkit" / "providers" / "presets.toml"
DOCS = ROOT / "docs" / "providers.md"
STARTTLS, TLS = Security.STARTTLS, Security.TLS

#: The documented submission settings, written out independently of presets.toml: a change
#: to the data file must be made here too, on purpose.
DOCUMENTED = {
    "gmail": ("smtp.gmail.com", 587, STARTTLS),
    "google-workspace": ("smtp.gmail.com", 587, STARTTLS),
    "google-workspace-relay": ("smtp-relay.gmail.com", 587, STARTTLS),
    "outlook": ("smtp-mail.outlook.com", 587, STARTTLS),
    "microsoft365": ("smtp.office365.com", 587, STARTTLS),
    "yahoo": ("smtp.mail.yahoo.com", 465, TLS),
    "aol": ("smtp.aol.com", 465, TLS),
    "icloud": ("smtp.mail.me.com", 587, STARTTLS),
    "yandex": ("smtp.yandex.ru", 465, TLS),
    "mailru": ("smtp.mail.ru", 465, TLS),
    "zoho": ("smtp.zoho.com", 465, TLS),
    "zoho:eu": ("smtp.zoho.eu", 465, TLS),
    "zoho:in": ("smtp.zoho.in", 465, TLS),
    "zoho:au": ("smtp.zoho.com.au", 465, TLS),
    "fastmail": ("smtp.fastmail.com", 465, TLS),
    "gmx": ("mail.gmx.net", 587, STARTTLS),
    "gmx-com": ("mail.gmx.com", 587, STARTTLS),
    "proton-bridge": ("127.0.0.1", 1025, STARTTLS),
    "ses": ("email-smtp.us-east-1.amazonaws.com", 587, STARTTLS),
    "ses:eu-west-1": ("email-smtp.eu-west-1.amazonaws.com", 587, STARTTLS),
    "ses:ap-southeast-2": ("email-smtp.ap-southeast-2.amazonaws.com", 587, STARTTLS),
    "sendgrid": ("smtp.sendgrid.net", 587, STARTTLS),
    "mailgun": ("smtp.mailgun.org", 587, STARTTLS),
    "mailgun:eu": ("smtp.eu.mailgun.org", 587, STARTTLS),
    "postmark": ("smtp.postmarkapp.com", 587, STARTTLS),
    "brevo": ("smtp-relay.brevo.com", 587, STARTTLS),
    "mailjet": ("in-v3.mailjet.com", 587, STARTTLS),
}


def build(options: SubmitterOptions) -> Submitter:
    """A Submitter from preset options, as ``Submitter.for_provider`` builds it."""
    return Submitter(**options)


@pytest.mark.parametrize(("name", "expected"), sorted(DOCUMENTED.items()))
def test_a_submitter_built_from_each_preset_has_the_documented_settings(
    name: str, expected: tuple[str, int, Security]
) -> None:
    options = options_for_provider(name)
    submitter = build(options)
    assert (submitter.host, submitter.port, submitter.security) == expected
    assert options["provider"] == get(name).key
    assert submitter.provider == get(name).key
    same = Submitter.for_provider(name)
    assert (same.host, same.port, same.security, same.provider) == (*expected, get(name).key)


def test_every_preset_is_covered_by_the_documented_table() -> None:
    assert {p.name for p in all_presets()} == {n.split(":")[0] for n in DOCUMENTED}


def test_the_issue_asks_for_these_providers() -> None:
    names = {p.name for p in all_presets()}
    assert {
        "gmail", "google-workspace", "google-workspace-relay", "outlook", "microsoft365",
        "yahoo", "aol", "icloud", "yandex", "mailru", "zoho", "fastmail", "gmx",
        "proton-bridge", "ses", "sendgrid", "mailgun", "postmark", "brevo", "mailjet",
    } <= names  # fmt: skip


def test_auth_and_overrides_pass_through() -> None:
    auth = AppPasswordAuth("me@gmail.com", "abcd efgh ijkl mnop")
    options = options_for_provider("gmail", auth=auth, timeout=12.0, local_hostname="me.test")
    submitter = build(options)
    assert submitter.auth is auth
    assert submitter.timeouts.command == 12.0


@pytest.mark.parametrize(
    ("name", "security", "port"),
    [("gmail", TLS, 465), ("yahoo", STARTTLS, 587), ("microsoft365", TLS, 465)],
)
def test_overriding_security_picks_the_presets_port_for_it(
    name: str, security: Security, port: int
) -> None:
    submitter = build(options_for_provider(name, security=security))
    assert (submitter.security, submitter.port) == (security, port)


def test_an_explicit_port_wins() -> None:
    assert build(options_for_provider("gmail", security=TLS, port=2465)).port == 2465


def test_unknown_overrides_are_refused_by_name() -> None:
    with pytest.raises(ConfigurationError, match="colour"):
        options_for_provider("gmail", colour="red")  # type: ignore[call-arg]


# -- names, aliases, regions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("GMAIL", "gmail"),
        ("google", "gmail"),
        ("office365", "microsoft365"),
        ("m365", "microsoft365"),
        ("microsoft", "microsoft365"),
        ("hotmail", "outlook"),
        ("sendinblue", "brevo"),
        ("amazon-ses", "ses"),
        ("protonmail", "proton-bridge"),
        ("mail.ru", "mailru"),
        ("workspace", "google-workspace"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert get(alias).name == name


def test_unknown_names_list_the_known_ones_and_suggest_close_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        get("gmial")
    assert "did you mean gmail" in caught.value.message
    assert caught.value.hint is not None
    assert "microsoft365" in caught.value.hint


def test_unknown_regions_list_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        get("ses:eu-west-9")
    assert "eu-west-1" in str(caught.value)
    with pytest.raises(ConfigurationError, match="no regions"):
        get("gmail:eu")


def test_region_keys_round_trip() -> None:
    preset = get("ses:eu-central-1")
    assert preset.key == "ses:eu-central-1"
    assert get(preset.key) == preset
    assert get("gmail").key == "gmail"


def test_presets_are_frozen_values() -> None:
    preset = get("gmail")
    with pytest.raises(AttributeError):
        preset.host = "evil.example"  # type: ignore[misc]
    assert repr(preset) == "Preset('gmail', 'smtp.gmail.com', 587, security=Security.STARTTLS)"


# -- lookup by mailbox -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("someone@gmail.com", "gmail"),
        ("Someone@GoogleMail.com", "gmail"),
        ("a@outlook.com", "outlook"),
        ("a@outlook.fr", "outlook"),
        ("a@hotmail.com", "outlook"),
        ("a@hotmail.co.uk", "outlook"),
        ("a@hotmail.fr", "outlook"),
        ("a@live.com", "outlook"),
        ("a@live.fr", "outlook"),
        ("a@live.co.uk", "outlook"),
        ("a@msn.com", "outlook"),
        ("a@yahoo.com", "yahoo"),
        ("a@yahoo.co.uk", "yahoo"),
        ("a@yahoo.com.br", "yahoo"),
        ("a@aol.co.uk", "aol"),
        ("a@hotmail.com.br", "outlook"),
        ("a@outlook.com.au", "outlook"),
        ("a@ymail.com", "yahoo"),
        ("a@aol.com", "aol"),
        ("a@icloud.com", "icloud"),
        ("a@me.com", "icloud"),
        ("a@mac.com", "icloud"),
        ("a@yandex.ru", "yandex"),
        ("a@yandex.com", "yandex"),
        ("a@ya.ru", "yandex"),
        ("a@mail.ru", "mailru"),
        ("a@inbox.ru", "mailru"),
        ("a@list.ru", "mailru"),
        ("a@bk.ru", "mailru"),
        ("a@zoho.com", "zoho:us"),
        ("a@zohomail.eu", "zoho:eu"),
        ("a@zohomail.in", "zoho:in"),
        ("a@fastmail.com", "fastmail"),
        ("a@gmx.de", "gmx"),
        ("a@gmx.net", "gmx"),
        ("a@gmx.com", "gmx-com"),
        ("a@proton.me", "proton-bridge"),
        ("a@pm.me", "proton-bridge"),
        ("contoso.onmicrosoft.com", "microsoft365"),
        ("gmail.com", "gmail"),
        ("<bob@gmail.com>", "gmail"),
        ("bob@gmail.com.", "gmail"),
    ],
)
def test_lookup_by_address_or_domain(address: str, key: str) -> None:
    preset = lookup(address)
    assert preset is not None
    assert preset.key == key


@pytest.mark.parametrize(
    "address",
    [
        "someone@example.com",
        "a@live.example.org",
        "a@yahoo.co.jp",  # Yahoo! JAPAN: a separate service with its own servers
        "a@yahoo.jp",
        "a@live.me",  # domains that merely start with a provider's name
        "a@live.tv",
        "a@live.example.com",
        "a@hotmail.example.com",
        "a@outlook.example.net",
        "a@aol.example.org",
        "a@yahoo.example.co.uk",
        "a@yahoo.co",
        "a@outlook.xyz",
        "a@onmicrosoft.com.evil.example",
        "a@notgmail.com",
        "a@gmail.com.evil.example",
        "",
        "   ",
        "a@mail.rux",
    ],
)
def test_lookup_of_unknown_domains_is_none(address: str) -> None:
    assert lookup(address) is None


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("smtp.gmail.com", "gmail"),
        ("SMTP.Office365.com.", "microsoft365"),
        ("smtp-mail.outlook.com", "outlook"),
        ("email-smtp.eu-west-2.amazonaws.com", "ses:eu-west-2"),
        ("smtp.eu.mailgun.org", "mailgun:eu"),
        ("smtp.zoho.eu", "zoho:eu"),
    ],
)
def test_for_host(host: str, key: str) -> None:
    preset = for_host(host)
    assert preset is not None
    assert preset.key == key


def test_find_never_raises() -> None:
    assert find(None) is None
    assert find("") is None
    assert find("qq") is None
    assert find("microsoft") == get("microsoft365")
    assert find("ses:eu-west-1") == get("ses:eu-west-1")


def test_for_host_never_claims_loopback_or_unknown_hosts() -> None:
    assert for_host("127.0.0.1") is None
    assert for_host("mail.example.com") is None


# -- data quality ----------------------------------------------------------------------------


def _blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^\[presets\.([\w.-]+)\]$", line)
        if header:
            current = header.group(1)
            blocks[current] = []
        elif current:
            blocks[current].append(line)
    return blocks


def test_every_preset_lists_https_sources() -> None:
    for preset in all_presets():
        assert preset.sources, preset.name
        assert all(s.startswith("https://") for s in preset.sources), preset.name


def test_every_fact_has_a_source_comment() -> None:
    blocks = _blocks(DATA.read_text(encoding="utf-8"))
    for name, lines in blocks.items():
        if name.endswith((".regions", ".region_domains")):
            continue
        if name.endswith(".limits"):
            facts = [i for i, line in enumerate(lines) if re.match(r"^\w+ = \d", line)]
        else:
            facts = [i for i, line in enumerate(lines) if line.startswith("host = ")]
        assert facts or name.endswith(".limits"), f"{name}: no host"
        for index in facts:
            assert lines[index - 1].startswith("# source: https://"), f"{name}: {lines[index]}"
    regions = [n for n in blocks if n.endswith(".regions")]
    assert regions
    text = DATA.read_text(encoding="utf-8")
    for name in regions:
        before = text.split(f"[presets.{name}]", 1)[0].rstrip().splitlines()[-1]
        assert before.startswith("# source: https://"), name


def test_every_preset_has_login_facts() -> None:
    for preset in all_presets():
        assert preset.auth_mechanisms, preset.name
        assert preset.credentials, preset.name
        assert preset.auth_hint, preset.name
        assert preset.family is None or re.fullmatch(r"[a-z]+", preset.family)


def test_limits_the_hints_rely_on() -> None:
    assert get("gmail").limits.messages_per_day == 500
    assert get("google-workspace").limits.messages_per_day == 2000
    assert get("microsoft365").limits.messages_per_minute == 30
    assert get("microsoft365").limits.concurrent_connections == 3
    assert get("gmail").oauth2_scope == "https://mail.google.com/"
    assert get("microsoft365").auth_mechanisms == ("LOGIN", "XOAUTH2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "not valid TOML"),
        ("[other]\nx = 1\n", "no [presets"),
        ('[presets.x]\nhost = "h"\nsources = ["https://a"]\n', "display_name"),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 587\nsecurity = "tls"\n'
            'sources = ["https://a"]\ncolour = "red"\n',
            "unknown keys",
        ),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 587\nsecurity = "ssl"\n'
            'sources = ["https://a"]\n',
            "security",
        ),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 587\nsecurity = "tls"\n',
            "sources",
        ),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 587\nsecurity = "tls"\n'
            'sources = ["https://a"]\n[presets.y]\ndisplay_name = "Y"\nhost = "h"\n'
            'port = 587\nsecurity = "tls"\nsources = ["https://a"]\naliases = ["x"]\n',
            "also",
        ),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 0\nsecurity = "tls"\n'
            'sources = ["https://a"]\n',
            "port",
        ),
        (
            '[presets.x]\ndisplay_name = "X"\nhost = "h"\nport = 587\nsecurity = "tls"\n'
            'sources = ["https://a"]\n[presets.x.limits]\nper_fortnight = 3\n',
            "unknown limits",
        ),
    ],
)
def test_malformed_data_fails_loudly(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        parse_presets(text)


def test_the_data_file_ships_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"providers/*.toml"' in pyproject


# -- docs ------------------------------------------------------------------------------------

BEGIN = "<!-- BEGIN PRESETS: generated by `python -m smtpkit.providers`; do not edit by hand -->"
END = "<!-- END PRESETS -->"


def test_docs_embed_the_current_preset_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    assert embedded == render_markdown(), "docs/providers.md is stale"


def test_module_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "smtpkit.providers"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout == render_markdown()


def test_the_table_has_a_row_per_preset() -> None:
    rows = [line for line in render_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) == len(all_presets())
    assert any("500 messages a day" in row for row in rows)


def test_preset_type_is_exported() -> None:
    assert isinstance(get("gmail"), Preset)

"""Mailbox domains map to presets exactly: no wildcard can claim another service's domain."""

from __future__ import annotations

import re

import pytest

from smtpkit.errors import ConfigurationError
from smtpkit.providers import all_presets, lookup, parse_presets

_PRESET = (
    '[presets.x]\ndisplay_name = "X"\nhost = "smtp.x.example"\nport = 587\n'
    'security = "starttls"\nsources = ["https://x.example/help"]\n'
)


def test_yahoo_japan_is_not_yahoo_mail() -> None:
    # Yahoo! JAPAN runs its own mail service (smtp.mail.yahoo.co.jp): sending its users'
    # passwords to Yahoo Mail's servers would be wrong twice over.
    assert lookup("someone@yahoo.co.jp") is None
    assert lookup("yahoo.co.jp") is None
    preset = lookup("someone@yahoo.com")
    assert preset is not None
    assert preset.name == "yahoo"


@pytest.mark.parametrize(
    "domain",
    [
        "live.me",
        "live.tv",
        "live.io",
        "live.example.com",
        "hotmail.example.com",
        "outlook.example.org",
        "yahoo.example.com",
        "aol.example.net",
        "live.co",
        "outlook.net",
        "yahoo.org",
        "aol.org.uk",
        "mail.yahoo.co.jp",
        "x.live.com.evil.example",
    ],
)
def test_look_alike_domains_are_not_claimed(domain: str) -> None:
    assert lookup(f"someone@{domain}") is None


@pytest.mark.parametrize(
    "pattern", ["yahoo.*", "*", "*.com", "live.*.uk", "hotmail.co*", "UPPER CASE.com", "a..b"]
)
def test_the_loader_refuses_wildcard_and_malformed_domains(pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(repr(pattern.lower()))):
        parse_presets(_PRESET + f'domains = ["{pattern}"]\n')


def test_the_loader_accepts_exact_domains_and_subdomain_patterns() -> None:
    [preset] = parse_presets(_PRESET + 'domains = ["x.example", "*.x-mail.example"]\n')
    assert preset.domains == ("x.example", "*.x-mail.example")


def test_every_shipped_domain_is_exact_or_a_subdomain_pattern() -> None:
    for preset in all_presets():
        domains = [*preset.domains, *(d for ds in preset.region_domains.values() for d in ds)]
        for domain in domains:
            assert "*" not in domain.removeprefix("*."), (preset.name, domain)


def test_every_listed_domain_finds_its_own_preset() -> None:
    owners: dict[str, str] = {}
    for preset in all_presets():
        listed = {region: list(ds) for region, ds in preset.region_domains.items()}
        listed[""] = list(preset.domains)
        for region, domains in listed.items():
            for domain in domains:
                assert domain not in owners, f"{domain} is {owners[domain]}'s and {preset.name}'s"
                owners[domain] = preset.name
                example = "tenant" + domain[1:] if domain.startswith("*.") else domain
                found = lookup(f"someone@{example}")
                assert found is not None, example
                assert found.name == preset.name, example
                if region:
                    assert found.region == region, example

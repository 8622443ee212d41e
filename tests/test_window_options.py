"""The ``window`` option: on Submitter and AsyncSubmitter, in server URLs, checked early."""

from __future__ import annotations

import pytest

from smtpkit import AsyncSubmitter, ConfigurationError, Security, Submitter
from smtpkit.drivers._client import DEFAULT_WINDOW


def test_the_default_window_and_an_explicit_one_reach_the_engine() -> None:
    assert Submitter("mail.example.test").window == DEFAULT_WINDOW
    submitter = Submitter("mail.example.test", window=4)
    assert submitter.window == 4
    assert submitter._settings.window == 4  # what the engine's LinkSettings carry
    assert AsyncSubmitter("mail.example.test", window=1).window == 1


@pytest.mark.parametrize("bad", [0, -1, 257, 2.5, "8", True, None])
def test_a_wrong_window_is_a_configuration_error_with_a_hint(bad: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Submitter("mail.example.test", window=bad)  # type: ignore[arg-type]
    assert "window must be an integer from 1 to 256" in caught.value.message
    assert caught.value.hint is not None
    assert "window=16" in caught.value.hint


def test_a_url_sets_the_window() -> None:
    submitter = Submitter.from_url("smtp://127.0.0.1:2525?window=8")
    assert submitter.window == 8
    assert submitter.security is Security.NONE
    # A keyword override wins over the URL.
    assert Submitter.from_url("smtp://127.0.0.1:2525?window=8", window=2).window == 2


@pytest.mark.parametrize("value", ["0", "many", "300", ""])
def test_a_wrong_window_in_a_url_names_the_url_and_the_range(value: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Submitter.from_url(f"smtp://user:secret@127.0.0.1:2525?window={value}")
    message = caught.value.message
    assert f"window={value!r}" in message
    assert "from 1 to 256" in message
    assert "secret" not in message  # the URL is shown redacted

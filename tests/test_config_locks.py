"""SOVD_LOCKS_PER_USER (issue #19 item 9c) in the configuration: the documented default,
a value read, bad values named."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError

pytestmark = pytest.mark.fast


def test_the_default_is_eight_locks_per_user() -> None:
    assert Config.from_env({}).locks_per_user == 8


def test_the_value_is_read() -> None:
    assert Config.from_env({"SOVD_LOCKS_PER_USER": "3"}).locks_per_user == 3


@pytest.mark.parametrize("raw", ["0", "-1", "65", "many"])
def test_a_bad_value_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="SOVD_LOCKS_PER_USER"):
        Config.from_env({"SOVD_LOCKS_PER_USER": raw})

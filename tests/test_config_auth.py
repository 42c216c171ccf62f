"""The configuration of logins and sessions added for issue #8 (items 1, 6, 14)."""

from __future__ import annotations

import os

import pytest

from app.config import Config, ConfigError

pytestmark = pytest.mark.fast


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.login_max_concurrent == 2 * (os.cpu_count() or 1)
    assert config.login_audit_per_min == 60
    assert config.session_max_age_s == 30 * 86400
    assert config.refresh_retry_grace_s == 5.0
    assert config.password_hash_profile == "production"
    assert Config().login_max_concurrent == config.login_max_concurrent


def test_values_are_read() -> None:
    config = Config.from_env(
        {
            "SOVD_LOGIN_MAX_CONCURRENT": "3",
            "SOVD_LOGIN_AUDIT_PER_MIN": "10",
            "SOVD_SESSION_MAX_AGE_S": "3600",
            "SOVD_REFRESH_RETRY_GRACE_S": "0",
            "SOVD_PASSWORD_HASH_PROFILE": "fast",
        }
    )
    assert (config.login_max_concurrent, config.login_audit_per_min) == (3, 10)
    assert (config.session_max_age_s, config.refresh_retry_grace_s) == (3600, 0.0)
    assert config.password_hash_profile == "fast"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOVD_LOGIN_MAX_CONCURRENT", "0"),
        ("SOVD_LOGIN_AUDIT_PER_MIN", "0"),
        ("SOVD_SESSION_MAX_AGE_S", "59"),
        ("SOVD_SESSION_MAX_AGE_S", "forever"),
        ("SOVD_REFRESH_RETRY_GRACE_S", "61"),
        ("SOVD_REFRESH_RETRY_GRACE_S", "-1"),
        ("SOVD_PASSWORD_HASH_PROFILE", "md5"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})

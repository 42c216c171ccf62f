"""Password hashing cost is configuration: production is argon2id with the library's
defaults; the other tests run the ``fast`` profile (see ``make_config``).

This is the one test that pays for the production parameters.
"""

from __future__ import annotations

from pathlib import Path

import argon2
import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from app.config import Config
from tests.support.harness import auth, in_process, make_config

pytestmark = pytest.mark.fast

DEFAULTS = PasswordHasher()  # the library's defaults: RFC 9106's low-memory profile


def stored_hash(config: Config, username: str) -> str:
    with in_process(config) as srv:
        r = srv.http.post(
            "/api/v1/users",
            headers=auth(srv.admin_token()),
            json={"username": username, "password": "alice-password-1", "role": "engineer"},
        )
        assert r.status_code == 201, r.text
        [(found,)] = srv.query("SELECT password_hash FROM users WHERE username = ?", username)
        return str(found)


def test_the_production_profile_is_the_default_and_hashes_with_argon2id_defaults(
    tmp_path: Path,
) -> None:
    assert Config.password_hash_profile == "production"
    assert DEFAULTS.type is Type.ID
    assert (DEFAULTS.time_cost, DEFAULTS.memory_cost, DEFAULTS.parallelism) == (
        argon2.profiles.RFC_9106_LOW_MEMORY.time_cost,
        argon2.profiles.RFC_9106_LOW_MEMORY.memory_cost,
        argon2.profiles.RFC_9106_LOW_MEMORY.parallelism,
    )
    config = make_config(tmp_path, password_hash_profile=Config.password_hash_profile)
    stored = stored_hash(config, "alice")
    used = extract_parameters(stored)
    assert used.type is Type.ID
    assert (used.time_cost, used.memory_cost, used.parallelism) == (
        DEFAULTS.time_cost,
        DEFAULTS.memory_cost,
        DEFAULTS.parallelism,
    )
    assert (used.hash_len, used.salt_len) == (DEFAULTS.hash_len, DEFAULTS.salt_len)
    assert not DEFAULTS.check_needs_rehash(stored)


def test_tests_run_the_fast_profile_which_is_still_argon2id(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    assert config.password_hash_profile == "fast"
    used = extract_parameters(stored_hash(config, "bob"))
    assert used.type is Type.ID
    assert used.memory_cost < DEFAULTS.memory_cost and used.time_cost <= DEFAULTS.time_cost

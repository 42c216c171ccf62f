"""Issue #19 item 7: a bad value of a variable that carries a secret is named, never echoed.

Before: ``SOVD_JWT_SECRET='this-is-...' is invalid: must be at least 32 bytes long``, the
value in the message, on stderr and in whatever collects it. Each secret variable is
given a value its check refuses; neither the message nor ``python -m app``'s output may
hold the value (or its first characters).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.config import Config, ConfigError, settings
from tests.support.process import run_app, server_env

pytestmark = pytest.mark.fast

# Each value fails its check; each is unlike any word a message would use.
BAD_SECRETS = {
    "SOVD_JWT_SECRET": "Zq7vKx2PbWn9-jwt-key-31-bytes-x",  # 31 bytes: < 32
    "SOVD_ADMIN_PASSWORD": "Qm4#pZ1",  # 7 characters: < 8
    "SOVD_ENGINEER_PASSWORD": "Hv8!rT2",
    "SOVD_METRICS_TOKEN": "Xk3nL9 scrape Wq7",  # a space: cannot be sent as a bearer token
    # Not a postgresql:// URL (issue #23); a database URL may carry a password.
    "SOVD_DATABASE_URL": "mysql://rootx:Pw9zK3q@db/sovd",
    "SOVD_BUS_URL": "http://natsuser:Jd5wRf8@nats:4222",  # not nats:// or tls://
}
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|TOKEN|KEY")
# Not named like secrets, but holding one: a database URL's password.
SECRET_VALUES = {"SOVD_DATABASE_URL", "SOVD_BUS_URL"}
# Named like secrets, but settings about them: shown as any other value.
NOT_SECRETS = {
    "SOVD_ACCESS_TOKEN_TTL_S",
    "SOVD_REFRESH_TOKEN_TTL_S",
    "SOVD_PASSWORD_HASH_PROFILE",
    "SOVD_TLS_KEY",  # the key file's path (app.tls never shows its content)
}


def _revealed(value: str, text: str) -> bool:
    return value in text or value[:6] in text or repr(value)[1:-1] in text


def test_every_secret_variable_is_read_as_one() -> None:
    """The variables whose name says they carry a secret are exactly those declared
    ``secret=True`` in app/config/, and each has its case below: a new one cannot be
    forgotten."""
    declared = [setting for _, setting in settings()]
    names = {s.name for s in declared} | {s.fallback for s in declared if s.fallback}
    assert len(names) >= 60 and "SOVD_JWT_SECRET" in names
    named = ({n for n in names if SECRET_WORDS.search(n)} - NOT_SECRETS) | SECRET_VALUES
    read_as_secret = {s.name for s in declared if s.secret}
    assert named == read_as_secret == set(BAD_SECRETS)


@pytest.mark.parametrize("name", sorted(BAD_SECRETS))
def test_a_bad_secret_is_named_not_shown(name: str) -> None:
    value = BAD_SECRETS[name]
    with pytest.raises(ConfigError) as caught:
        Config.from_env({name: value})
    message = str(caught.value)
    assert name in message and "is invalid" in message
    assert not _revealed(value, message), message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite:///data/sovd.db", "expected a postgresql:// (or postgres://) URL"),
        ("postgresql://sovd:pw@db:5432/", "it names no database"),
        ("postgresql://sovd:pw@db:port/sovd", "expected a postgresql://"),
    ],
)
def test_a_database_url_must_be_postgresql_naming_a_database(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"SOVD_DATABASE_URL": url})
    message = str(caught.value)
    assert message.startswith("SOVD_DATABASE_URL (value not shown: a secret) is invalid")
    assert why in message and ":pw@" not in message
    good = "postgres://sovd:pw@db.example:5432/sovd"
    assert Config.from_env({"SOVD_DATABASE_URL": good}).database_url == good
    assert Config.from_env({}).database_url is None  # unset: SQLite, as before


def test_a_bad_ordinary_value_is_still_shown() -> None:
    with pytest.raises(ConfigError, match=r"SOVD_PORT='eighty' is invalid"):
        Config.from_env({"SOVD_PORT": "eighty"})


@pytest.mark.socket
@pytest.mark.parametrize("name", sorted(BAD_SECRETS))
def test_a_start_refused_for_a_bad_secret_does_not_print_it(tmp_path: Path, name: str) -> None:
    value = BAD_SECRETS[name]
    result = run_app(server_env(tmp_path, **{name: value}))
    assert result.returncode == 2
    assert f"configuration error: {name}" in result.stderr
    assert not _revealed(value, result.stderr), result.stderr
    assert not _revealed(value, result.stdout), result.stdout
    assert not (tmp_path / "data").exists()  # refused before anything was created

"""SOVD_BUS_URL (issue #23 item 2): unset, the in-process bus; NATS server URLs otherwise,
one or a comma-separated cluster; anything else refused at start, naming the variable and
never quoting the value (it may carry credentials)."""

from __future__ import annotations

import pytest

from app.bus import EventBus, open_bus
from app.bus.nats_bus import NatsBus, shown_servers
from app.config import Config, ConfigError

pytestmark = pytest.mark.fast


def test_unset_is_the_in_process_bus() -> None:
    config = Config.from_env({})
    assert config.bus_servers == ()
    assert isinstance(open_bus(config.bus_servers, 8), EventBus)


@pytest.mark.parametrize(
    ("raw", "servers"),
    [
        ("nats://nats:4222", ("nats://nats:4222",)),
        ("tls://user:pw@nats.example", ("tls://user:pw@nats.example",)),
        ("nats://a:4222, nats://b:4222", ("nats://a:4222", "nats://b:4222")),
    ],
)
def test_nats_urls_are_the_nats_bus(raw: str, servers: tuple[str, ...]) -> None:
    config = Config.from_env({"SOVD_BUS_URL": raw})
    assert config.bus_servers == servers
    assert isinstance(open_bus(config.bus_servers, 8), NatsBus)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("redis://s3cr3t@cache:6379", "the URL must start with nats:// or tls://"),
        ("nats://", "the URL names no host"),
        ("nats://s3cr3t@nats:port", "the URL is not a URL"),
        ("nats://nats:4222/s3cr3t", "the URL must be only scheme, credentials, host and port"),
        ("nats://a:4222,http://s3cr3t@b", "server 2 of 2 must start with nats:// or tls://"),
    ],
)
def test_a_bad_url_is_refused_naming_the_variable_not_the_value(raw: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"SOVD_BUS_URL": raw})
    message = str(caught.value)
    assert message.startswith("SOVD_BUS_URL (value not shown: a secret) is invalid: " + why)
    assert "s3cr3t" not in message


def test_logs_show_servers_without_credentials() -> None:
    shown = shown_servers(("nats://user:pw@nats:4222", "tls://tok3n@other"))
    assert shown == "nats://nats:4222, tls://other"

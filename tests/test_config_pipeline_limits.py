"""The per-user queue share and the WebSocket caps (issue #8, items 5 and 8) in the
configuration: defaults as documented, values read, bad values named."""

from __future__ import annotations

import pytest

from app.config import Config, ConfigError

pytestmark = pytest.mark.fast


def test_defaults() -> None:
    config = Config.from_env({})
    assert config.vehicle_queue_per_user == 8
    assert (config.ws_max_connections, config.ws_max_per_user) == (1024, 64)


def test_values_are_read() -> None:
    config = Config.from_env(
        {
            "SOVD_VEHICLE_QUEUE_PER_USER": "3",
            "SOVD_WS_MAX_CONNECTIONS": "50",
            "SOVD_WS_MAX_PER_USER": "5",
        }
    )
    assert (config.vehicle_queue_per_user, config.ws_max_connections, config.ws_max_per_user) == (
        3,
        50,
        5,
    )


@pytest.mark.parametrize(
    "name", ["SOVD_VEHICLE_QUEUE_PER_USER", "SOVD_WS_MAX_CONNECTIONS", "SOVD_WS_MAX_PER_USER"]
)
@pytest.mark.parametrize("raw", ["0", "-1", "many"])
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: raw})

from pathlib import Path

import pytest

from app.config import Config, ConfigError

pytestmark = pytest.mark.fast


def test_defaults_match_the_readme() -> None:
    config = Config.from_env({})
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    assert config.db_path == Path("./data/sovd.db")
    assert config.jwt_secret is None
    assert config.admin_password is None and config.engineer_password is None
    assert config.command_timeout_s == 30.0
    assert (config.sim_p_timeout, config.sim_p_unreachable, config.sim_p_malformed) == (
        0.10,
        0.05,
        0.03,
    )
    assert config.demo_data is False
    assert config.metrics_enabled is True


def test_values_are_read_and_typed() -> None:
    config = Config.from_env(
        {
            "SOVD_HOST": "0.0.0.0",
            "SOVD_PORT": "9001",
            "SOVD_DB_PATH": "/tmp/x/db.sqlite",
            "SOVD_DEMO_DATA": "1",
            "SOVD_COMMAND_TIMEOUT_S": "2.5",
            "SOVD_SIM_SEED": "42",
            "SOVD_SIM_LATENCY_MS": "0",
            "SOVD_SIM_P_TIMEOUT": "0.5",
            "SOVD_JWT_SECRET": "k" * 40,
            "SOVD_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
        }
    )
    assert config.host == "0.0.0.0" and config.port == 9001
    assert config.db_path == Path("/tmp/x/db.sqlite") and config.data_dir == Path("/tmp/x")
    assert config.demo_data is True
    assert config.command_timeout_s == 2.5
    assert config.sim_seed == 42 and config.sim_latency_ms == 0 and config.sim_p_timeout == 0.5
    assert len(config.trusted_proxies) == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOVD_PORT", "eighty"),
        ("SOVD_PORT", "70000"),
        ("SOVD_COMMAND_TIMEOUT_S", "-1"),
        ("SOVD_COMMAND_TIMEOUT_S", "nan"),
        ("SOVD_DEMO_DATA", "maybe"),
        ("SOVD_SIM_P_TIMEOUT", "1.5"),
        ("SOVD_SIM_SEED", "abc"),
        ("SOVD_JWT_SECRET", "short"),
        ("SOVD_ADMIN_PASSWORD", "short"),
        ("SOVD_LOG_LEVEL", "LOUD"),
        ("SOVD_TRUSTED_PROXIES", "not-an-address"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("SOVD_REQUEST_TIMEOUT_S", "0"),
        ("SOVD_MAX_CONNECTIONS", "0"),
        ("SOVD_MAX_CONNECTIONS_PER_CLIENT", "-1"),
        ("SOVD_HTTP2_CLEARTEXT", "maybe"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})


def test_fault_probabilities_must_not_exceed_one() -> None:
    with pytest.raises(ConfigError, match="must not exceed 1"):
        Config.from_env({"SOVD_SIM_P_TIMEOUT": "0.6", "SOVD_SIM_P_UNREACHABLE": "0.5"})


def test_config_is_frozen() -> None:
    config = Config.from_env({})
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_edge_settings_have_safe_defaults_and_are_read() -> None:
    default = Config.from_env({})
    assert default.request_timeout_s == 10.0
    assert (default.max_connections, default.max_connections_per_client) == (2048, 256)
    assert default.http2_cleartext is False
    config = Config.from_env(
        {
            "SOVD_REQUEST_TIMEOUT_S": "2.5",
            "SOVD_MAX_CONNECTIONS": "100",
            "SOVD_MAX_CONNECTIONS_PER_CLIENT": "0",
            "SOVD_HTTP2_CLEARTEXT": "true",
        }
    )
    assert config.request_timeout_s == 2.5
    assert (config.max_connections, config.max_connections_per_client) == (100, 0)
    assert config.http2_cleartext is True

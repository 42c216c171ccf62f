"""The service's configuration: every variable declared once, read once into one object.

Every knob is an environment variable with the ``SOVD_`` prefix (a few standard ``OTEL_``
ones for telemetry), declared as a field with its variable, default, parser and meaning
(``var``): the service's own in ``service``, how vehicles are reached in ``vehicles``,
telemetry in ``telemetry``. ``Config.from_env`` reads them all (``parsing``) and rejects a
bad value at start with a message that names the variable, so a typo never turns into a
surprise at run time. docs/configuration.md is generated from these declarations
(``python -m app.config_docs --write``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from app.config.declaring import SETTING, Setting
from app.config.parsing import ConfigError as ConfigError  # raised by from_env
from app.config.parsing import Reader
from app.config.service import ServiceConfig
from app.config.telemetry import TelemetryConfig
from app.config.vehicles import VehicleConfig

__all__ = ["Config", "ConfigError", "Setting", "settings"]


# The fields come in the order of the bases from the last one: the service's own, then
# the vehicles', then telemetry (the generated page's order).
@dataclass(frozen=True)
class Config(TelemetryConfig, VehicleConfig, ServiceConfig):
    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Every declared variable read from ``env``; the first bad one is a ConfigError."""
        reader = Reader(env)
        values: dict[str, Any] = {}
        for name, setting in settings():
            read = reader.secret if setting.secret else reader.optional
            value = read(setting.name, setting.parse)
            if value is None and setting.fallback is not None:
                value = read(setting.fallback, setting.parse)
            if value is not None:
                values[name] = value
        config = cls(**values)
        _check_together(config)
        return config


def settings() -> list[tuple[str, Setting]]:
    """Each Config field's name and its Setting, in the order they are declared."""
    return [(f.name, f.metadata[SETTING]) for f in fields(Config)]


def _check_together(config: Config) -> None:
    """The rules that span several variables."""
    total = config.sim_p_timeout + config.sim_p_unreachable + config.sim_p_malformed
    if total > 1:
        raise ConfigError(
            "SOVD_SIM_P_TIMEOUT + SOVD_SIM_P_UNREACHABLE + SOVD_SIM_P_MALFORMED "
            f"must not exceed 1 (is {total:g})"
        )
    if (config.tls_cert is None) != (config.tls_key is None):
        missing = "SOVD_TLS_KEY" if config.tls_key is None else "SOVD_TLS_CERT"
        raise ConfigError(f"{missing} must be set too: HTTPS needs a certificate and its key")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError(
            "SOVD_TLS_CLIENT_CA needs SOVD_TLS_CERT and SOVD_TLS_KEY (client certificates"
            " are asked for over HTTPS only)"
        )
    if config.doip_backoff_first_s > config.doip_backoff_max_s:
        raise ConfigError(
            "SOVD_DOIP_BACKOFF_FIRST_S must not exceed SOVD_DOIP_BACKOFF_MAX_S "
            f"({config.doip_backoff_first_s:g} > {config.doip_backoff_max_s:g})"
        )

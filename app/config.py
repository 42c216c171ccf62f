"""The service's configuration: read once from the environment into one frozen object.

Every knob is an environment variable with the ``SOVD_`` prefix (a few standard ``OTEL_``
ones for telemetry). ``Config.from_env`` rejects a bad value at start with a message that
names the variable, so a typo never turns into a surprise at run time.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8000
    db_path: Path = Path("./data/sovd.db")
    jwt_secret: str | None = None
    admin_password: str | None = None
    engineer_password: str | None = None
    demo_data: bool = False
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 7 * 24 * 3600
    command_timeout_s: float = 30.0
    # How long a SOVD call waits for its command's turn in the vehicle's lane before it
    # is cancelled unsent (503 overloaded).
    call_queue_wait_s: float = 30.0
    vehicle_queue_size: int = 64
    # The most chunks (DTCs, progress steps, ...) one command's answer may have.
    max_chunks_per_command: int = 4096
    # Places of one vehicle's queue a single user may hold (beyond: 429).
    vehicle_queue_per_user: int = 8
    # SOVD locks one user may hold on one vehicle (beyond: 409); a vehicle has 64 at most.
    locks_per_user: int = 8
    ws_queue_size: int = 256
    # Open response-stream WebSockets, overall and per user (beyond: closed 4503 / 4429).
    ws_max_connections: int = 1024
    ws_max_per_user: int = 64
    shutdown_grace_s: float = 10.0
    max_body_bytes: int = 64 * 1024
    # ECU descriptions (PDX files): size as uploaded, size unpacked, entries.
    pdx_max_bytes: int = 32 * 1024 * 1024
    pdx_max_unpacked_bytes: int = 256 * 1024 * 1024
    pdx_max_entries: int = 10_000
    sim_seed: int | None = None
    sim_latency_ms: float = 50.0
    sim_self_test_s: float = 3.0  # how long a simulated ECU's self-test runs
    sim_p_timeout: float = 0.10
    sim_p_unreachable: float = 0.05
    sim_p_malformed: float = 0.03
    # DoIP (vehicles with transport doip): UDS timings, connection lifecycle, backoff.
    doip_p2_ms: float = 2000.0
    doip_p2_star_ms: float = 5000.0
    doip_connect_timeout_s: float = 2.0
    doip_idle_close_s: float = 60.0
    doip_tester_present_s: float = 2.0
    doip_backoff_first_s: float = 0.5
    doip_backoff_max_s: float = 30.0
    # Start the ECU emulator on a free loopback port and add a DoIP vehicle to the demo fleet.
    demo_emulator: bool = False
    log_level: str = "INFO"
    login_max_failures: int = 5
    login_window_s: float = 60.0
    command_rate_per_min: int = 600
    login_max_concurrent: int = field(default_factory=lambda: _default_login_concurrency())
    login_audit_per_min: int = 60
    session_max_age_s: int = 30 * 86400
    refresh_retry_grace_s: float = 5.0
    password_hash_profile: str = "production"  # noqa: S105 (a profile name)
    cors_origins: tuple[str, ...] = ()
    retention_days: float | None = None
    metrics_enabled: bool = True
    metrics_token: str | None = None
    request_timeout_s: float = 10.0
    max_connections: int = 2048
    max_connections_per_client: int = 256
    http2_cleartext: bool = False
    # permessage-deflate on WebSockets: "deflate" (no context takeover), "off" or "full".
    ws_compression: str = "deflate"
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=tuple
    )
    # HTTPS (issue #26): the server's certificate (chain) and private key, PEM files; both
    # or neither (plain HTTP). The client CA: client certificates are asked for and
    # verified against it (a service account's certificate_name maps one to the account).
    # ``app.tls`` checks the files at start.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    # The base of the SOVD tree's absolute links (scheme://host[:port][/path], no trailing
    # slash); None: from a trusted proxy's X-Forwarded-*, else the server's own address.
    public_url: str | None = None
    # Telemetry settings under the standard OTEL_* names (OTEL_SERVICE_NAME,
    # OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_SEMCONV_STABILITY_OPT_IN:
    # read by the OpenTelemetry SDK itself, only checked here; see SDK_VARIABLES).
    otlp_endpoint: str | None = None
    otlp_metrics_endpoint: str | None = None
    otlp_export_interval_ms: int = 60000
    # Traces (off unless OTEL_TRACES_EXPORTER=otlp or an OTLP endpoint is set).
    traces_exporter: str | None = None  # OTEL_TRACES_EXPORTER: otlp or none; None: unset
    otlp_traces_endpoint: str | None = None  # full URL, wins over otlp_endpoint
    otlp_traces_protocol: str = "http/protobuf"  # or grpc (needs the grpc extra)
    # Where the console links to Prometheus (shown only when set).
    prometheus_url: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

    @property
    def tracing_enabled(self) -> bool:
        """Traces are exported when OTEL_TRACES_EXPORTER=otlp, or when it is unset and an
        OTLP endpoint (for traces, or the common one) is configured."""
        if self.traces_exporter is not None:
            return self.traces_exporter == "otlp"
        return bool(self.otlp_traces_endpoint or self.otlp_endpoint)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        r = _Reader(env)
        config = cls(
            host=r.get("SOVD_HOST", str, cls.host),
            port=r.get("SOVD_PORT", _int_in(0, 65535), cls.port),
            db_path=r.get("SOVD_DB_PATH", _path, cls.db_path),
            jwt_secret=r.secret("SOVD_JWT_SECRET", _secret),
            admin_password=r.secret("SOVD_ADMIN_PASSWORD", _password),
            engineer_password=r.secret("SOVD_ENGINEER_PASSWORD", _password),
            demo_data=r.get("SOVD_DEMO_DATA", _bool, cls.demo_data),
            access_token_ttl_s=r.get(
                "SOVD_ACCESS_TOKEN_TTL_S", _int_in(10, 86400), cls.access_token_ttl_s
            ),
            refresh_token_ttl_s=r.get(
                "SOVD_REFRESH_TOKEN_TTL_S", _int_in(60, 90 * 86400), cls.refresh_token_ttl_s
            ),
            call_queue_wait_s=r.get(
                "SOVD_CALL_QUEUE_WAIT_S", _float_in(0.01, 3600), cls.call_queue_wait_s
            ),
            command_timeout_s=r.get(
                "SOVD_COMMAND_TIMEOUT_S", _float_in(0.01, 3600), cls.command_timeout_s
            ),
            vehicle_queue_size=r.get(
                "SOVD_VEHICLE_QUEUE_SIZE", _int_in(1, 100_000), cls.vehicle_queue_size
            ),
            max_chunks_per_command=r.get(
                "SOVD_MAX_CHUNKS_PER_COMMAND", _int_in(2, 1_000_000), cls.max_chunks_per_command
            ),
            vehicle_queue_per_user=r.get(
                "SOVD_VEHICLE_QUEUE_PER_USER", _int_in(1, 100_000), cls.vehicle_queue_per_user
            ),
            locks_per_user=r.get("SOVD_LOCKS_PER_USER", _int_in(1, 64), cls.locks_per_user),
            ws_queue_size=r.get("SOVD_WS_QUEUE_SIZE", _int_in(1, 100_000), cls.ws_queue_size),
            ws_max_connections=r.get(
                "SOVD_WS_MAX_CONNECTIONS", _int_in(1, 1_000_000), cls.ws_max_connections
            ),
            ws_max_per_user=r.get(
                "SOVD_WS_MAX_PER_USER", _int_in(1, 1_000_000), cls.ws_max_per_user
            ),
            shutdown_grace_s=r.get(
                "SOVD_SHUTDOWN_GRACE_S", _float_in(0, 3600), cls.shutdown_grace_s
            ),
            max_body_bytes=r.get(
                "SOVD_MAX_BODY_BYTES", _int_in(1024, 16 * 1024 * 1024), cls.max_body_bytes
            ),
            pdx_max_bytes=r.get(
                "SOVD_PDX_MAX_BYTES", _int_in(1024, 1024 * 1024 * 1024), cls.pdx_max_bytes
            ),
            pdx_max_unpacked_bytes=r.get(
                "SOVD_PDX_MAX_UNPACKED_BYTES",
                _int_in(1024, 16 * 1024 * 1024 * 1024),
                cls.pdx_max_unpacked_bytes,
            ),
            # Below 0xFFFF: a zip64 count of 0xFFFF ("at least that many") always exceeds it.
            pdx_max_entries=r.get("SOVD_PDX_MAX_ENTRIES", _int_in(1, 65534), cls.pdx_max_entries),
            sim_seed=r.optional("SOVD_SIM_SEED", int),
            sim_latency_ms=r.get("SOVD_SIM_LATENCY_MS", _float_in(0, 60_000), cls.sim_latency_ms),
            sim_self_test_s=r.get(
                "SOVD_SIM_SELF_TEST_S", _float_in(0.01, 600), cls.sim_self_test_s
            ),
            sim_p_timeout=r.get("SOVD_SIM_P_TIMEOUT", _probability, cls.sim_p_timeout),
            sim_p_unreachable=r.get("SOVD_SIM_P_UNREACHABLE", _probability, cls.sim_p_unreachable),
            sim_p_malformed=r.get("SOVD_SIM_P_MALFORMED", _probability, cls.sim_p_malformed),
            doip_p2_ms=r.get("SOVD_DOIP_P2_MS", _float_in(1, 600_000), cls.doip_p2_ms),
            doip_p2_star_ms=r.get(
                "SOVD_DOIP_P2_STAR_MS", _float_in(1, 600_000), cls.doip_p2_star_ms
            ),
            doip_connect_timeout_s=r.get(
                "SOVD_DOIP_CONNECT_TIMEOUT_S", _float_in(0.01, 600), cls.doip_connect_timeout_s
            ),
            doip_idle_close_s=r.get(
                "SOVD_DOIP_IDLE_CLOSE_S", _float_in(0.01, 86400), cls.doip_idle_close_s
            ),
            doip_tester_present_s=r.get(
                "SOVD_DOIP_TESTER_PRESENT_S", _float_in(0.01, 3600), cls.doip_tester_present_s
            ),
            doip_backoff_first_s=r.get(
                "SOVD_DOIP_BACKOFF_FIRST_S", _float_in(0.001, 3600), cls.doip_backoff_first_s
            ),
            doip_backoff_max_s=r.get(
                "SOVD_DOIP_BACKOFF_MAX_S", _float_in(0.001, 86400), cls.doip_backoff_max_s
            ),
            demo_emulator=r.get("SOVD_DEMO_EMULATOR", _bool, cls.demo_emulator),
            log_level=r.get("SOVD_LOG_LEVEL", _log_level, cls.log_level),
            login_max_failures=r.get(
                "SOVD_LOGIN_MAX_FAILURES", _int_in(1, 1000), cls.login_max_failures
            ),
            login_window_s=r.get("SOVD_LOGIN_WINDOW_S", _float_in(1, 86400), cls.login_window_s),
            command_rate_per_min=r.get(
                "SOVD_COMMAND_RATE_PER_MIN", _int_in(0, 1_000_000), cls.command_rate_per_min
            ),
            login_max_concurrent=r.get(
                "SOVD_LOGIN_MAX_CONCURRENT", _int_in(1, 1024), _default_login_concurrency()
            ),
            login_audit_per_min=r.get(
                "SOVD_LOGIN_AUDIT_PER_MIN", _int_in(1, 100_000), cls.login_audit_per_min
            ),
            session_max_age_s=r.get(
                "SOVD_SESSION_MAX_AGE_S", _int_in(60, 366 * 86400), cls.session_max_age_s
            ),
            refresh_retry_grace_s=r.get(
                "SOVD_REFRESH_RETRY_GRACE_S", _float_in(0, 60), cls.refresh_retry_grace_s
            ),
            password_hash_profile=r.get(
                "SOVD_PASSWORD_HASH_PROFILE", _hash_profile, cls.password_hash_profile
            ),
            cors_origins=r.get("SOVD_CORS_ORIGINS", _origins, ()),
            retention_days=r.optional("SOVD_RETENTION_DAYS", _float_in(0.001, 36500)),
            metrics_enabled=r.get("SOVD_METRICS_ENABLED", _bool, cls.metrics_enabled),
            metrics_token=r.secret("SOVD_METRICS_TOKEN", _bearer_token),
            trusted_proxies=r.get("SOVD_TRUSTED_PROXIES", _networks, ()),
            public_url=r.optional("SOVD_PUBLIC_URL", _public_url),
            tls_cert=r.optional("SOVD_TLS_CERT", _file_path),
            tls_key=r.optional("SOVD_TLS_KEY", _file_path),
            tls_client_ca=r.optional("SOVD_TLS_CLIENT_CA", _file_path),
            request_timeout_s=r.get(
                "SOVD_REQUEST_TIMEOUT_S", _float_in(0.1, 3600), cls.request_timeout_s
            ),
            max_connections=r.get(
                "SOVD_MAX_CONNECTIONS", _int_in(1, 1_000_000), cls.max_connections
            ),
            max_connections_per_client=r.get(
                "SOVD_MAX_CONNECTIONS_PER_CLIENT",
                _int_in(0, 1_000_000),
                cls.max_connections_per_client,
            ),
            http2_cleartext=r.get("SOVD_HTTP2_CLEARTEXT", _bool, cls.http2_cleartext),
            ws_compression=r.get("SOVD_WS_COMPRESSION", _ws_compression, cls.ws_compression),
            otlp_endpoint=r.optional("OTEL_EXPORTER_OTLP_ENDPOINT", _url),
            otlp_metrics_endpoint=r.optional("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", _url),
            otlp_export_interval_ms=r.get(
                "OTEL_METRIC_EXPORT_INTERVAL", _int_in(100, 86_400_000), cls.otlp_export_interval_ms
            ),
            prometheus_url=r.optional("SOVD_PROMETHEUS_URL", _url),
            traces_exporter=r.optional("OTEL_TRACES_EXPORTER", _traces_exporter),
            otlp_traces_endpoint=r.optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", _url),
            otlp_traces_protocol=_traces_protocol(r),
        )
        for name, check in SDK_VARIABLES:
            r.optional(name, check)
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
        return config


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        value = self.optional(name, parse)
        return default if value is None else value

    def optional(self, name: str, parse: Callable[[str], T]) -> T | None:
        return self._read(name, parse, shown=True)

    def secret(self, name: str, parse: Callable[[str], T]) -> T | None:
        """A variable that carries a secret (a key, password or token): a bad value is
        named, never echoed, and ``parse``'s message must not quote it either."""
        return self._read(name, parse, shown=False)

    def _read(self, name: str, parse: Callable[[str], T], *, shown: bool) -> T | None:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return None
        try:
            return parse(raw.strip())
        except ValueError as exc:
            what = f"{name}={raw!r}" if shown else f"{name} (value not shown: a secret)"
            raise ConfigError(f"{what} is invalid: {exc}") from None


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def _float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return value

    return parse


_probability = _float_in(0.0, 1.0)


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of 1, 0, true, false, yes, no, on, off")


def _path(raw: str) -> Path:
    return Path(raw)


def _file_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must be a file path")
    return Path(raw)


def _nonempty(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def _secret(raw: str) -> str:
    # HS256 keys shorter than the hash output are weak; PyJWT warns about them too.
    if len(raw.encode()) < 32:
        raise ValueError("must be at least 32 bytes long")
    return raw


def _bearer_token(raw: str) -> str:
    # Sent as ``Authorization: Bearer <token>``: a space, a control or a non-ASCII
    # character could never arrive as configured, so no scrape would ever match.
    if not all("!" <= c <= "~" for c in raw):
        raise ValueError("expected printable ASCII without spaces (it goes in a header)")
    return raw


def _password(raw: str) -> str:
    if len(raw) < 8:
        raise ValueError("must be at least 8 characters long")
    return raw


WS_COMPRESSIONS = ("deflate", "off", "full")


def _ws_compression(raw: str) -> str:
    if raw not in WS_COMPRESSIONS:
        raise ValueError("expected deflate, off or full")
    return raw


def _default_login_concurrency() -> int:
    # Two password checks per core keep the cores busy without queueing argon2 work.
    return 2 * (os.cpu_count() or 1)


PASSWORD_HASH_PROFILES = ("production", "fast")


def _hash_profile(raw: str) -> str:
    if raw not in PASSWORD_HASH_PROFILES:
        raise ValueError("expected production or fast (fast: for tests only)")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin such as https://lab.example")
    return origins


TRACES_EXPORTERS = ("otlp", "none")
TRACES_PROTOCOLS = ("http/protobuf", "grpc")
# The samplers of the OpenTelemetry SDK's environment specification that need nothing
# but a ratio (OTEL_TRACES_SAMPLER_ARG, for the traceidratio ones).
TRACES_SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
GRPC_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.grpc"
# OTEL_SEMCONV_STABILITY_OPT_IN's values (opentelemetry-instrumentation 0.66b2).
SEMCONV_OPT_INS = (
    "http",
    "http/dup",
    "database",
    "database/dup",
    "gen_ai_latest_experimental",
)


def _traces_exporter(raw: str) -> str:
    if raw not in TRACES_EXPORTERS:
        raise ValueError("expected otlp or none (the only trace exporters built in)")
    return raw


def _sampler(raw: str) -> str:
    if raw not in TRACES_SAMPLERS:
        raise ValueError(f"expected one of {', '.join(TRACES_SAMPLERS)}")
    return raw


def _semconv_opt_in(raw: str) -> str:
    unknown = [part for part in raw.split(",") if part.strip() not in SEMCONV_OPT_INS]
    if unknown:
        raise ValueError(f"expected a comma-separated list of {', '.join(SEMCONV_OPT_INS)}")
    return raw


def _resource_attributes(raw: str) -> str:
    """``key=value`` pairs, comma-separated (values %-encoded), as the SDK parses them."""
    for pair in raw.split(","):
        key, sep, _ = pair.partition("=")
        if pair.strip() and (not sep or not key.strip()):
            raise ValueError(f"{pair.strip()!r} is not a key=value pair")
    return raw


# Variables the OpenTelemetry SDK (and its HTTP instrumentation) reads itself when the
# service builds its parts: checked once at start, so a bad value stops the start
# naming the variable instead of being ignored with a warning, and never read twice.
SDK_VARIABLES: tuple[tuple[str, Callable[[str], object]], ...] = (
    ("OTEL_SERVICE_NAME", _nonempty),
    ("OTEL_RESOURCE_ATTRIBUTES", _resource_attributes),
    ("OTEL_TRACES_SAMPLER", _sampler),
    ("OTEL_TRACES_SAMPLER_ARG", _probability),
    ("OTEL_SEMCONV_STABILITY_OPT_IN", _semconv_opt_in),
)


def _protocol(raw: str) -> str:
    if raw not in TRACES_PROTOCOLS:
        raise ValueError("expected http/protobuf or grpc")
    if raw == "grpc" and importlib.util.find_spec(GRPC_EXPORTER_MODULE) is None:
        raise ValueError(
            "grpc needs the optional exporter: pip install 'sovd-command-service[grpc]'"
            " (or use http/protobuf)"
        )
    return raw


def _traces_protocol(r: _Reader) -> str:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL (the SDK's
    order), else http/protobuf."""
    return (
        r.optional("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", _protocol)
        or r.optional("OTEL_EXPORTER_OTLP_PROTOCOL", _protocol)
        or "http/protobuf"
    )


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw


# A host as a link may name it: a DNS name or IPv4 address, or an IPv6 one in brackets.
_PUBLIC_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


def _public_url(raw: str) -> str:
    """The service's address as its clients reach it, such as https://lab.example:8443."""
    expected = (
        "expected the address clients reach the service at, such as https://lab.example:8443"
        " (http or https, a host, an optional port and path only)"
    )
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port  # ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise ValueError(expected) from None
    host = parts.netloc.rpartition("@")[2]
    if port is not None:
        host = host.rsplit(":", 1)[0]
    if (
        parts.scheme not in ("http", "https")
        or not _PUBLIC_HOST.fullmatch(host)
        or "@" in parts.netloc
        or parts.query
        or parts.fragment
        or "?" in raw
        or "#" in raw
        or not re.fullmatch(r"[A-Za-z0-9._~/\-]*", parts.path)
    ):
        raise ValueError(expected)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")

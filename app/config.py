"""The service's configuration: every variable declared once, read once into one object.

Every knob is an environment variable with the ``SOVD_`` prefix (a few standard ``OTEL_``
ones for telemetry), declared here as a field of ``Config`` with its variable, default,
parser and what it means (``var``). ``Config.from_env`` reads them all
(``app.config_parsing``) and rejects a bad value at start with a message that names the
variable, so a typo never turns into a surprise at run time. docs/configuration.md is
generated from these declarations (``python -m app.config_docs --write``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

from app import config_parsing as parse
from app.config_parsing import ConfigError as ConfigError  # raised by from_env
from app.config_parsing import Reader

T = TypeVar("T")

SETTING: Final = "setting"  # the key of a Config field's metadata that holds its Setting


@dataclass(frozen=True, slots=True)
class Setting:
    """What a Config field is read from and what it means (the generated page shows it)."""

    name: str  # the environment variable
    meaning: str
    parse: Callable[[str], Any]
    # The title of the page's section that starts with this variable.
    section: str | None = None
    secret: bool = False  # a bad value is named, never shown
    # Another variable read when this one is unset (the OpenTelemetry SDK's order).
    fallback: str | None = None
    fallback_meaning: str = ""
    default_note: str = ""  # said after the default (e.g. what `make run` sets instead)
    default_text: str | None = None  # instead of a default computed on the machine


def var(
    name: str,
    default: T,
    parse: Callable[[str], T],
    meaning: str,
    *,
    section: str | None = None,
    secret: bool = False,
    fallback: str | None = None,
    fallback_meaning: str = "",
    default_note: str = "",
    default_text: str | None = None,
) -> T:
    """A Config field read from the variable ``name`` by ``parse`` (unset: ``default``)."""
    setting = Setting(
        name,
        meaning,
        parse,
        section,
        secret,
        fallback,
        fallback_meaning,
        default_note,
        default_text,
    )
    return field(default=default, metadata={SETTING: setting})


def computed(
    name: str, default: Callable[[], T], parse: Callable[[str], T], meaning: str, **how: Any
) -> T:
    """A ``var`` whose default is computed where the service runs (``default_text`` says how)."""
    value: T = field(
        default_factory=default, metadata={SETTING: Setting(name, meaning, parse, **how)}
    )
    return value


@dataclass(frozen=True)
class Config:
    host: str = var(
        "SOVD_HOST",
        "127.0.0.1",
        str,
        "address to listen on",
        section="Server",
    )
    port: int = var(
        "SOVD_PORT",
        8000,
        parse.int_in(0, 65535),
        "port (0: any free port, logged at start)",
    )
    public_url: str | None = var(
        "SOVD_PUBLIC_URL",
        None,
        parse.public_url,
        "the service's address as clients reach it, `http(s)://host[:port][/path]`"
        " such as `https://lab.example:8443`: the start of every SOVD link"
        " (`base_uri`, `href`); unset: a trusted proxy's `X-Forwarded-*`, else the"
        " listening address, never the `Host` header",
    )
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = var(
        "SOVD_TRUSTED_PROXIES",
        (),
        parse.networks,
        "comma-separated networks whose `X-Forwarded-For` is believed (and whose"
        " `X-Forwarded-Proto` and `X-Forwarded-Host` set the scheme and host of the"
        " SOVD tree's links, unless `SOVD_PUBLIC_URL` is set)",
    )
    cors_origins: tuple[str, ...] = var(
        "SOVD_CORS_ORIGINS",
        (),
        parse.origins,
        "comma-separated origins allowed by CORS, `http(s)://...` or `*` (unset: CORS off)",
    )
    shutdown_grace_s: float = var(
        "SOVD_SHUTDOWN_GRACE_S",
        10.0,
        parse.float_in(0, 3600),
        "on SIGTERM, how long running commands may still finish",
    )
    log_level: str = var(
        "SOVD_LOG_LEVEL",
        "INFO",
        parse.log_level,
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    )
    db_path: Path = var(
        "SOVD_DB_PATH",
        Path("./data/sovd.db"),
        parse.path,
        "SQLite file, created on first start; its folder is the data directory",
        section="Storage",
    )
    retention_days: float | None = var(
        "SOVD_RETENTION_DAYS",
        None,
        parse.float_in(0.001, 36500),
        "delete finished commands (with their answers) and audit rows older than this many days",
    )
    jwt_secret: str | None = var(
        "SOVD_JWT_SECRET",
        None,
        parse.signing_key,
        "HS256 signing key, at least 32 bytes; unset: generated once into"
        " `<data dir>/jwt_secret` (mode 0600)",
        section="Accounts, sessions and logins",
        secret=True,
    )
    admin_password: str | None = var(
        "SOVD_ADMIN_PASSWORD",
        None,
        parse.password,
        "password of `admin` on a new database (min. 8 chars); unset: generated and logged once",
        secret=True,
    )
    engineer_password: str | None = var(
        "SOVD_ENGINEER_PASSWORD",
        None,
        parse.password,
        "likewise for `engineer`",
        secret=True,
    )
    access_token_ttl_s: int = var(
        "SOVD_ACCESS_TOKEN_TTL_S",
        900,
        parse.int_in(10, 86400),
        "access token lifetime",
    )
    refresh_token_ttl_s: int = var(
        "SOVD_REFRESH_TOKEN_TTL_S",
        7 * 24 * 3600,
        parse.int_in(60, 90 * 86400),
        "refresh token lifetime per refresh (capped by `SOVD_SESSION_MAX_AGE_S`)",
    )
    session_max_age_s: int = var(
        "SOVD_SESSION_MAX_AGE_S",
        30 * 86400,
        parse.int_in(60, 366 * 86400),
        "absolute session lifetime from login; refreshing never extends it",
    )
    refresh_retry_grace_s: float = var(
        "SOVD_REFRESH_RETRY_GRACE_S",
        5.0,
        parse.float_in(0, 60),
        "how long after a refresh the old refresh token still gets the same new"
        " pair (a client retry); 0: off",
    )
    login_max_failures: int = var(
        "SOVD_LOGIN_MAX_FAILURES",
        5,
        parse.int_in(1, 1000),
        "failed logins per address and per username in the window",
    )
    login_window_s: float = var(
        "SOVD_LOGIN_WINDOW_S",
        60.0,
        parse.float_in(1, 86400),
        "the login throttling window",
    )
    login_max_concurrent: int = computed(
        "SOVD_LOGIN_MAX_CONCURRENT",
        parse.default_login_concurrency,
        parse.int_in(1, 1024),
        "password checks running at once in the process; a login beyond that gets 503 `overloaded`",
        default_text="2 × CPU cores",  # noqa: RUF001 (the multiplication sign)
    )
    login_audit_per_min: int = var(
        "SOVD_LOGIN_AUDIT_PER_MIN",
        60,
        parse.int_in(1, 100_000),
        "audit rows failed and throttled logins may write per minute; beyond that,"
        " rows are left out and counted",
    )
    password_hash_profile: str = var(
        "SOVD_PASSWORD_HASH_PROFILE",
        "production",
        parse.hash_profile,
        "argon2 parameters: `production` (argon2-cffi's defaults) or `fast` (for tests only)",
    )
    command_timeout_s: float = var(
        "SOVD_COMMAND_TIMEOUT_S",
        30.0,
        parse.float_in(0.01, 3600),
        "deadline for a vehicle's whole answer, from the start of execution",
        section="Commands and their limits",
    )
    call_queue_wait_s: float = var(
        "SOVD_CALL_QUEUE_WAIT_S",
        30.0,
        parse.float_in(0.01, 3600),
        "how long a SOVD call waits for its turn in the vehicle's lane before it is"
        " cancelled unsent (503)",
    )
    vehicle_queue_size: int = var(
        "SOVD_VEHICLE_QUEUE_SIZE",
        64,
        parse.int_in(1, 100_000),
        "commands waiting or running per vehicle; more: 503 `overloaded`",
    )
    vehicle_queue_per_user: int = var(
        "SOVD_VEHICLE_QUEUE_PER_USER",
        8,
        parse.int_in(1, 100_000),
        "places of one vehicle's queue a single user may hold; more: 429"
        " `rate-limited` while others still get in",
    )
    max_chunks_per_command: int = var(
        "SOVD_MAX_CHUNKS_PER_COMMAND",
        4096,
        parse.int_in(2, 1_000_000),
        "chunks one answer may have (a DTC report is counted from its length before"
        " it is decoded); more: the command ends `failed` `invalid-response-content`"
        " naming the count, the first chunks kept",
    )
    command_rate_per_min: int = var(
        "SOVD_COMMAND_RATE_PER_MIN",
        600,
        parse.int_in(0, 1_000_000),
        "commands a user may submit per minute (0: no limit)",
    )
    locks_per_user: int = var(
        "SOVD_LOCKS_PER_USER",
        8,
        parse.int_in(1, 64),
        "SOVD locks one user may hold on one vehicle (a vehicle has 64 at most);"
        " more: 409 `conflict` naming the cap while others still lock",
    )
    max_body_bytes: int = var(
        "SOVD_MAX_BODY_BYTES",
        64 * 1024,
        parse.int_in(1024, 16 * 1024 * 1024),
        "request body cap (413 beyond)",
        section="HTTP and WebSocket limits",
    )
    request_timeout_s: float = var(
        "SOVD_REQUEST_TIMEOUT_S",
        10.0,
        parse.float_in(0.1, 3600),
        "the body must arrive within this long after the head (else 408 and close);"
        " the head within 5 s, or this if smaller",
    )
    max_connections: int = var(
        "SOVD_MAX_CONNECTIONS",
        2048,
        parse.int_in(1, 1_000_000),
        "open connections (WebSockets included); lowered to fit the open-file limit"
        " less 64; more: instant 503 and close",
    )
    max_connections_per_client: int = var(
        "SOVD_MAX_CONNECTIONS_PER_CLIENT",
        256,
        parse.int_in(0, 1_000_000),
        "open connections per client address (0: no limit); addresses in"
        " `SOVD_TRUSTED_PROXIES` are exempt",
    )
    http2_cleartext: bool = var(
        "SOVD_HTTP2_CLEARTEXT",
        False,
        parse.boolean,
        "`true` lets clients switch to HTTP/2 without TLS (`Upgrade: h2c` or prior knowledge)",
    )
    tls_cert: Path | None = var(
        "SOVD_TLS_CERT",
        None,
        parse.file_path,
        "PEM certificate (chain): with `SOVD_TLS_KEY`, the service serves HTTPS and"
        " `wss://` (TLS 1.2 or later, HTTP/2 by ALPN); checked at start (readable,"
        " valid now, matching the key):"
        " [security.md](security.md#run-it-on-the-lab-network)",
    )
    tls_key: Path | None = var(
        "SOVD_TLS_KEY",
        None,
        parse.file_path,
        "PEM private key of `SOVD_TLS_CERT`, unencrypted, readable by its owner only"
        " (refused otherwise, as ssh does)",
    )
    tls_client_ca: Path | None = var(
        "SOVD_TLS_CLIENT_CA",
        None,
        parse.file_path,
        "PEM CA certificates: client certificates are asked for and verified against"
        " them; one naming a service account's certificate name signs in as that"
        " account, without a token (needs `SOVD_TLS_CERT`)",
    )
    ws_queue_size: int = var(
        "SOVD_WS_QUEUE_SIZE",
        256,
        parse.int_in(1, 100_000),
        "events buffered per WebSocket; a client further behind is closed with 1013",
    )
    ws_max_connections: int = var(
        "SOVD_WS_MAX_CONNECTIONS",
        1024,
        parse.int_in(1, 1_000_000),
        "open response-stream WebSockets in all; more: closed 4503 before the token is looked at",
    )
    ws_max_per_user: int = var(
        "SOVD_WS_MAX_PER_USER",
        64,
        parse.int_in(1, 1_000_000),
        "open response-stream WebSockets per user; more: closed 4429",
    )
    ws_compression: str = var(
        "SOVD_WS_COMPRESSION",
        "deflate",
        parse.ws_compression,
        "answer to a WebSocket client offering permessage-deflate: `deflate` (no"
        " context takeover either way: no zlib state kept between messages), `off`"
        " (declined), `full` (Hypercorn's own: context kept, about 100 KiB more per"
        " socket)",
    )
    pdx_max_bytes: int = var(
        "SOVD_PDX_MAX_BYTES",
        32 * 1024 * 1024,
        parse.int_in(1024, 1024 * 1024 * 1024),
        "an ECU description (PDX file) as uploaded or stored: the upload's own body"
        " cap instead of `SOVD_MAX_BODY_BYTES` (413 beyond)",
        section="ECU descriptions (PDX files)",
    )
    pdx_max_unpacked_bytes: int = var(
        "SOVD_PDX_MAX_UNPACKED_BYTES",
        256 * 1024 * 1024,
        parse.int_in(1024, 16 * 1024 * 1024 * 1024),
        "a PDX file unpacked, as its zip directory declares it and as counted while"
        " unpacking (413 beyond)",
    )
    # Below 0xFFFF: a zip64 count of 0xFFFF ("at least that many") always exceeds it.
    pdx_max_entries: int = var(
        "SOVD_PDX_MAX_ENTRIES",
        10_000,
        parse.int_in(1, 65534),
        "entries in one PDX file (413 beyond)",
    )
    doip_p2_ms: float = var(
        "SOVD_DOIP_P2_MS",
        2000.0,
        parse.float_in(1, 600_000),
        "P2: wait for a UDS answer, and the DoIP acknowledgement before it (ms)",
        section="DoIP",
    )
    doip_p2_star_ms: float = var(
        "SOVD_DOIP_P2_STAR_MS",
        5000.0,
        parse.float_in(1, 600_000),
        "P2*: wait after each 0x78 response pending (ms)",
    )
    doip_connect_timeout_s: float = var(
        "SOVD_DOIP_CONNECT_TIMEOUT_S",
        2.0,
        parse.float_in(0.01, 600),
        "TCP connect timeout to a DoIP entity",
    )
    doip_idle_close_s: float = var(
        "SOVD_DOIP_IDLE_CLOSE_S",
        60.0,
        parse.float_in(0.01, 86400),
        "close a DoIP link idle this long (not for always-on vehicles)",
    )
    doip_tester_present_s: float = var(
        "SOVD_DOIP_TESTER_PRESENT_S",
        2.0,
        parse.float_in(0.01, 3600),
        "TesterPresent interval in non-default sessions; also how often links are"
        " checked and always-on vehicles reconnected",
    )
    doip_backoff_first_s: float = var(
        "SOVD_DOIP_BACKOFF_FIRST_S",
        0.5,
        parse.float_in(0.001, 3600),
        "wait after a failed connection, doubling each time",
    )
    doip_backoff_max_s: float = var(
        "SOVD_DOIP_BACKOFF_MAX_S",
        30.0,
        parse.float_in(0.001, 86400),
        "longest wait between connection attempts",
    )
    demo_data: bool = var(
        "SOVD_DEMO_DATA",
        False,
        parse.boolean,
        "seed the demo fleet on a new database",
        section="Demo and simulator",
        default_note="(`make run`: `1`)",
    )
    demo_emulator: bool = var(
        "SOVD_DEMO_EMULATOR",
        False,
        parse.boolean,
        "start the DoIP ECU emulator on a free loopback port and add a DoIP demo"
        " vehicle pointing at it",
        default_note="(`make run`: `1`)",
    )
    sim_seed: int | None = var(
        "SOVD_SIM_SEED",
        None,
        int,
        "seed of the simulator's RNG (unset: random)",
    )
    sim_latency_ms: float = var(
        "SOVD_SIM_LATENCY_MS",
        50.0,
        parse.float_in(0, 60_000),
        "base latency per answer chunk (±50%); 0 answers at once",
    )
    sim_self_test_s: float = var(
        "SOVD_SIM_SELF_TEST_S",
        3.0,
        parse.float_in(0.01, 600),
        "how long a simulated ECU's self-test (routine 0x0201) runs",
    )
    sim_p_timeout: float = var(
        "SOVD_SIM_P_TIMEOUT",
        0.10,
        parse.probability,
        "`flaky` profile: chance a command gets no answer (the three chances together at most 1)",
    )
    sim_p_unreachable: float = var(
        "SOVD_SIM_P_UNREACHABLE",
        0.05,
        parse.probability,
        "`flaky` profile: chance the vehicle is unreachable",
    )
    sim_p_malformed: float = var(
        "SOVD_SIM_P_MALFORMED",
        0.03,
        parse.probability,
        "`flaky` profile: chance of an undecodable answer",
    )
    metrics_enabled: bool = var(
        "SOVD_METRICS_ENABLED",
        True,
        parse.boolean,
        "`false` turns all instrumentation off",
        section="Metrics and traces",
    )
    metrics_token: str | None = var(
        "SOVD_METRICS_TOKEN",
        None,
        parse.bearer_token,
        "when set, `/metrics` needs `Authorization: Bearer <token>`",
        secret=True,
    )
    prometheus_url: str | None = var(
        "SOVD_PROMETHEUS_URL",
        None,
        parse.url,
        'the console\'s "Live numbers" panel links to Prometheus there',
    )
    otel_service_name: str = var(
        "OTEL_SERVICE_NAME",
        "sovd-command-service",
        parse.nonempty,
        "telemetry resource `service.name`",
    )
    otel_resource_attributes: str = var(
        "OTEL_RESOURCE_ATTRIBUTES",
        "",
        str,
        "extra resource attributes, `k=v,k2=v2`",
    )
    otlp_endpoint: str | None = var(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        parse.url,
        "also push metrics over OTLP/HTTP; also turns traces on, to `<it>/v1/traces`",
    )
    otlp_metrics_endpoint: str | None = var(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        None,
        parse.url,
        "also push metrics over OTLP/HTTP, to this URL",
    )
    otlp_export_interval_ms: int = var(
        "OTEL_METRIC_EXPORT_INTERVAL",
        60000,
        parse.int_in(100, 86_400_000),
        "OTLP push interval, ms",
    )
    traces_exporter: str | None = var(
        "OTEL_TRACES_EXPORTER",
        None,
        parse.traces_exporter,
        "`otlp` turns traces on; `none` keeps them off even with an endpoint set;"
        " anything else is refused at start",
    )
    otlp_traces_endpoint: str | None = var(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        None,
        parse.url,
        "full traces URL; wins over `OTEL_EXPORTER_OTLP_ENDPOINT`; turns traces on",
    )
    otlp_traces_protocol: str = var(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "http/protobuf",
        parse.protocol,
        "`grpc` for traces needs the `grpc` extra (the start is refused otherwise,"
        " saying what to install)",
        fallback="OTEL_EXPORTER_OTLP_PROTOCOL",
        fallback_meaning="read when `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` is unset, with the"
        " same meaning",
    )
    traces_sampler: str = var(
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        parse.sampler,
        "`always_on`, `always_off`, `traceidratio` or those with `parentbased_`",
    )
    traces_sampler_arg: float | None = var(
        "OTEL_TRACES_SAMPLER_ARG",
        None,
        parse.probability,
        "the sampler's ratio, 0..1",
        default_text="`1`",
    )

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

"""What each configuration variable means: the words docs/configuration.md shows beside
what app/config.py declares (``app.config_docs`` renders the page from both).

One ``Variable`` per variable ``Config.from_env`` reads, grouped in ``Section``s as the
page shows them; ``app.config_docs`` refuses to render while a variable read is missing
here or one here is no longer read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    meaning: str
    # The Config field it sets; None: the name without its SOVD_ prefix, lower-cased.
    field: str | None = None
    # Said after the default (e.g. what `make run` sets instead).
    default_note: str = ""
    # Instead of the field's default, when that is computed on the machine it runs on.
    default_text: str | None = None


@dataclass(frozen=True)
class Section:
    title: str
    variables: tuple[Variable, ...]


V = Variable

SECTIONS: tuple[Section, ...] = (
    Section(
        "Server",
        (
            V("SOVD_HOST", "address to listen on"),
            V("SOVD_PORT", "port (0: any free port, logged at start)"),
            V(
                "SOVD_PUBLIC_URL",
                "the service's address as clients reach it, `http(s)://host[:port][/path]`"
                " such as `https://lab.example:8443`: the start of every SOVD link"
                " (`base_uri`, `href`); unset: a trusted proxy's `X-Forwarded-*`, else the"
                " listening address, never the `Host` header",
            ),
            V(
                "SOVD_TRUSTED_PROXIES",
                "comma-separated networks whose `X-Forwarded-For` is believed (and whose"
                " `X-Forwarded-Proto` and `X-Forwarded-Host` set the scheme and host of the"
                " SOVD tree's links, unless `SOVD_PUBLIC_URL` is set)",
            ),
            V(
                "SOVD_CORS_ORIGINS",
                "comma-separated origins allowed by CORS, `http(s)://...` or `*` (unset: CORS off)",
            ),
            V("SOVD_SHUTDOWN_GRACE_S", "on SIGTERM, how long running commands may still finish"),
            V("SOVD_LOG_LEVEL", "`DEBUG`, `INFO`, `WARNING` or `ERROR`"),
        ),
    ),
    Section(
        "Storage",
        (
            V(
                "SOVD_DB_PATH",
                "SQLite file, created on first start; its folder is the data directory",
            ),
            V(
                "SOVD_RETENTION_DAYS",
                "delete finished commands (with their answers) and audit rows older than"
                " this many days",
            ),
        ),
    ),
    Section(
        "Accounts, sessions and logins",
        (
            V(
                "SOVD_JWT_SECRET",
                "HS256 signing key, at least 32 bytes; unset: generated once into"
                " `<data dir>/jwt_secret` (mode 0600)",
            ),
            V(
                "SOVD_ADMIN_PASSWORD",
                "password of `admin` on a new database (min. 8 chars); unset: generated"
                " and logged once",
            ),
            V("SOVD_ENGINEER_PASSWORD", "likewise for `engineer`"),
            V("SOVD_ACCESS_TOKEN_TTL_S", "access token lifetime"),
            V(
                "SOVD_REFRESH_TOKEN_TTL_S",
                "refresh token lifetime per refresh (capped by `SOVD_SESSION_MAX_AGE_S`)",
            ),
            V(
                "SOVD_SESSION_MAX_AGE_S",
                "absolute session lifetime from login; refreshing never extends it",
            ),
            V(
                "SOVD_REFRESH_RETRY_GRACE_S",
                "how long after a refresh the old refresh token still gets the same new"
                " pair (a client retry); 0: off",
            ),
            V(
                "SOVD_LOGIN_MAX_FAILURES",
                "failed logins per address and per username in the window",
            ),
            V("SOVD_LOGIN_WINDOW_S", "the login throttling window"),
            V(
                "SOVD_LOGIN_MAX_CONCURRENT",
                "password checks running at once in the process; a login beyond that gets"
                " 503 `overloaded`",
                default_text="2 × CPU cores",  # noqa: RUF001 (the multiplication sign)
            ),
            V(
                "SOVD_LOGIN_AUDIT_PER_MIN",
                "audit rows failed and throttled logins may write per minute; beyond that,"
                " rows are left out and counted",
            ),
            V(
                "SOVD_PASSWORD_HASH_PROFILE",
                "argon2 parameters: `production` (argon2-cffi's defaults) or `fast` (for"
                " tests only)",
            ),
        ),
    ),
    Section(
        "Commands and their limits",
        (
            V(
                "SOVD_COMMAND_TIMEOUT_S",
                "deadline for a vehicle's whole answer, from the start of execution",
            ),
            V(
                "SOVD_CALL_QUEUE_WAIT_S",
                "how long a SOVD call waits for its turn in the vehicle's lane before it is"
                " cancelled unsent (503)",
            ),
            V(
                "SOVD_VEHICLE_QUEUE_SIZE",
                "commands waiting or running per vehicle; more: 503 `overloaded`",
            ),
            V(
                "SOVD_VEHICLE_QUEUE_PER_USER",
                "places of one vehicle's queue a single user may hold; more: 429"
                " `rate-limited` while others still get in",
            ),
            V(
                "SOVD_MAX_CHUNKS_PER_COMMAND",
                "chunks one answer may have (a DTC report is counted from its length before"
                " it is decoded); more: the command ends `failed` `invalid-response-content`"
                " naming the count, the first chunks kept",
            ),
            V(
                "SOVD_COMMAND_RATE_PER_MIN",
                "commands a user may submit per minute (0: no limit)",
            ),
            V(
                "SOVD_LOCKS_PER_USER",
                "SOVD locks one user may hold on one vehicle (a vehicle has 64 at most);"
                " more: 409 `conflict` naming the cap while others still lock",
            ),
        ),
    ),
    Section(
        "HTTP and WebSocket limits",
        (
            V("SOVD_MAX_BODY_BYTES", "request body cap (413 beyond)"),
            V(
                "SOVD_REQUEST_TIMEOUT_S",
                "the body must arrive within this long after the head (else 408 and close);"
                " the head within 5 s, or this if smaller",
            ),
            V(
                "SOVD_MAX_CONNECTIONS",
                "open connections (WebSockets included); lowered to fit the open-file limit"
                " less 64; more: instant 503 and close",
            ),
            V(
                "SOVD_MAX_CONNECTIONS_PER_CLIENT",
                "open connections per client address (0: no limit); addresses in"
                " `SOVD_TRUSTED_PROXIES` are exempt",
            ),
            V(
                "SOVD_HTTP2_CLEARTEXT",
                "`true` lets clients switch to HTTP/2 without TLS (`Upgrade: h2c` or prior"
                " knowledge)",
            ),
            V(
                "SOVD_TLS_CERT",
                "PEM certificate (chain): with `SOVD_TLS_KEY`, the service serves HTTPS and"
                " `wss://` (TLS 1.2 or later, HTTP/2 by ALPN); checked at start (readable,"
                " valid now, matching the key):"
                " [security.md](security.md#run-it-on-the-lab-network)",
            ),
            V(
                "SOVD_TLS_KEY",
                "PEM private key of `SOVD_TLS_CERT`, unencrypted, readable by its owner only"
                " (refused otherwise, as ssh does)",
            ),
            V(
                "SOVD_TLS_CLIENT_CA",
                "PEM CA certificates: client certificates are asked for and verified against"
                " them; one naming a service account's certificate name signs in as that"
                " account, without a token (needs `SOVD_TLS_CERT`)",
            ),
            V(
                "SOVD_WS_QUEUE_SIZE",
                "events buffered per WebSocket; a client further behind is closed with 1013",
            ),
            V(
                "SOVD_WS_MAX_CONNECTIONS",
                "open response-stream WebSockets in all; more: closed 4503 before the token"
                " is looked at",
            ),
            V(
                "SOVD_WS_MAX_PER_USER",
                "open response-stream WebSockets per user; more: closed 4429",
            ),
            V(
                "SOVD_WS_COMPRESSION",
                "answer to a WebSocket client offering permessage-deflate: `deflate` (no"
                " context takeover either way: no zlib state kept between messages), `off`"
                " (declined), `full` (Hypercorn's own: context kept, about 100 KiB more per"
                " socket)",
            ),
        ),
    ),
    Section(
        "ECU descriptions (PDX files)",
        (
            V(
                "SOVD_PDX_MAX_BYTES",
                "an ECU description (PDX file) as uploaded or stored: the upload's own body"
                " cap instead of `SOVD_MAX_BODY_BYTES` (413 beyond)",
            ),
            V(
                "SOVD_PDX_MAX_UNPACKED_BYTES",
                "a PDX file unpacked, as its zip directory declares it and as counted while"
                " unpacking (413 beyond)",
            ),
            V("SOVD_PDX_MAX_ENTRIES", "entries in one PDX file (413 beyond)"),
        ),
    ),
    Section(
        "DoIP",
        (
            V(
                "SOVD_DOIP_P2_MS",
                "P2: wait for a UDS answer, and the DoIP acknowledgement before it (ms)",
            ),
            V("SOVD_DOIP_P2_STAR_MS", "P2*: wait after each 0x78 response pending (ms)"),
            V("SOVD_DOIP_CONNECT_TIMEOUT_S", "TCP connect timeout to a DoIP entity"),
            V(
                "SOVD_DOIP_IDLE_CLOSE_S",
                "close a DoIP link idle this long (not for always-on vehicles)",
            ),
            V(
                "SOVD_DOIP_TESTER_PRESENT_S",
                "TesterPresent interval in non-default sessions; also how often links are"
                " checked and always-on vehicles reconnected",
            ),
            V("SOVD_DOIP_BACKOFF_FIRST_S", "wait after a failed connection, doubling each time"),
            V("SOVD_DOIP_BACKOFF_MAX_S", "longest wait between connection attempts"),
        ),
    ),
    Section(
        "Demo and simulator",
        (
            V(
                "SOVD_DEMO_DATA",
                "seed the demo fleet on a new database",
                default_note="(`make run`: `1`)",
            ),
            V(
                "SOVD_DEMO_EMULATOR",
                "start the DoIP ECU emulator on a free loopback port and add a DoIP demo"
                " vehicle pointing at it",
                default_note="(`make run`: `1`)",
            ),
            V("SOVD_SIM_SEED", "seed of the simulator's RNG (unset: random)"),
            V("SOVD_SIM_LATENCY_MS", "base latency per answer chunk (±50%); 0 answers at once"),
            V(
                "SOVD_SIM_SELF_TEST_S",
                "how long a simulated ECU's self-test (routine 0x0201) runs",
            ),
            V(
                "SOVD_SIM_P_TIMEOUT",
                "`flaky` profile: chance a command gets no answer (the three chances"
                " together at most 1)",
            ),
            V("SOVD_SIM_P_UNREACHABLE", "`flaky` profile: chance the vehicle is unreachable"),
            V("SOVD_SIM_P_MALFORMED", "`flaky` profile: chance of an undecodable answer"),
        ),
    ),
    Section(
        "Metrics and traces",
        (
            V("SOVD_METRICS_ENABLED", "`false` turns all instrumentation off"),
            V(
                "SOVD_METRICS_TOKEN",
                "when set, `/metrics` needs `Authorization: Bearer <token>`",
            ),
            V(
                "SOVD_PROMETHEUS_URL",
                'the console\'s "Live numbers" panel links to Prometheus there',
            ),
            V(
                "OTEL_SERVICE_NAME",
                "telemetry resource `service.name` (read by the OpenTelemetry SDK, checked at"
                " start)",
                default_text="`sovd-command-service`",
            ),
            V(
                "OTEL_RESOURCE_ATTRIBUTES",
                "extra resource attributes, `k=v,k2=v2` (read by the SDK, checked at start)",
                default_text="unset",
            ),
            V(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "also push metrics over OTLP/HTTP; also turns traces on, to `<it>/v1/traces`",
                field="otlp_endpoint",
            ),
            V(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "also push metrics over OTLP/HTTP, to this URL",
                field="otlp_metrics_endpoint",
            ),
            V(
                "OTEL_METRIC_EXPORT_INTERVAL",
                "OTLP push interval, ms",
                field="otlp_export_interval_ms",
            ),
            V(
                "OTEL_TRACES_EXPORTER",
                "`otlp` turns traces on; `none` keeps them off even with an endpoint set;"
                " anything else is refused at start",
                field="traces_exporter",
            ),
            V(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "full traces URL; wins over `OTEL_EXPORTER_OTLP_ENDPOINT`; turns traces on",
                field="otlp_traces_endpoint",
            ),
            V(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "`grpc` for traces needs the `grpc` extra (the start is refused otherwise,"
                " saying what to install)",
                field="otlp_traces_protocol",
            ),
            V(
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "read when `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` is unset, with the same meaning",
                field="otlp_traces_protocol",
            ),
            V(
                "OTEL_TRACES_SAMPLER",
                "`always_on`, `always_off`, `traceidratio` or those with `parentbased_` (read by"
                " the SDK's tracer provider, checked at start; head sampling is decided before"
                " any span work: [telemetry.md](telemetry.md#traces))",
                default_text="`parentbased_always_on`",
            ),
            V(
                "OTEL_TRACES_SAMPLER_ARG",
                "the sampler's ratio, 0..1 (read by the SDK, checked at start)",
                default_text="`1`",
            ),
            V(
                "OTEL_SEMCONV_STABILITY_OPT_IN",
                "`http`: stable HTTP span attribute names (the Dockerfile sets it); read by"
                " opentelemetry-instrumentation-asgi, checked at start",
                default_text="unset",
            ),
        ),
    ),
)

"""The service's own variables: server, storage, accounts and logins, commands, HTTP and
WebSocket limits (each with its default, parser and meaning; ``app.config.declaring``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from app.config import parsing as parse
from app.config.declaring import computed, var


@dataclass(frozen=True)
class ServiceConfig:
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
    database_url: str | None = var(
        "SOVD_DATABASE_URL",
        None,
        parse.database_url,
        "PostgreSQL database to use instead of the SQLite file, as"
        " `postgresql://user:password@host:5432/dbname` (asyncpg; the data directory still"
        " holds the signing key, descriptions and the lock); see docs/operations.md",
        secret=True,
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
    bus_servers: tuple[str, ...] = var(
        "SOVD_BUS_URL",
        (),
        parse.nats_servers,
        "NATS server(s) shared by every node, `nats://[user:password@]host[:port]` or"
        " `tls://…`, comma-separated for a cluster: command events, revocations and lock"
        " changes travel between nodes on it (docs/operations.md, NATS); unset: the"
        " in-process bus, one node. A secret (it may carry credentials): never logged",
        section="Message bus",
        secret=True,
    )
    lane_sweep_s: float = var(
        "SOVD_LANE_SWEEP_S",
        2.0,
        parse.float_in(0.1, 60),
        "on a cluster (SOVD_DATABASE_URL and SOVD_BUS_URL both set): how often a node"
        " takes the vehicles' lanes no node runs, such as those of a node that died"
        " (docs/operations.md, Lane ownership); the Retry-After of a call that finds no"
        " node running its vehicle's lane",
        section="Message bus",
    )

    cluster_read_cache_s: float = var(
        "SOVD_CLUSTER_READ_CACHE_S",
        1.0,
        parse.float_in(0, 60),
        "on a cluster: how long a node may answer the fleet page (GET /api/v1/vehicles)"
        " from memory after reading it, though other nodes may have written since (its"
        " own writes show at once; docs/cluster.md); 0: read the database every time",
        section="Message bus",
    )

    description_sync_s: float = var(
        "SOVD_DESCRIPTION_SYNC_S",
        10.0,
        parse.float_in(1, 3600),
        "on a cluster: how often a node compares its ECU descriptions with the library the"
        " nodes share in the database (a listing of names and digests), catching up on a"
        " file added or removed through another node whose notice it missed; notices over"
        " the bus apply at once (docs/cluster.md)",
        section="Message bus",
    )

    @property
    def cluster(self) -> bool:
        """Several nodes share the work: PostgreSQL and NATS both configured."""
        return self.database_url is not None and bool(self.bus_servers)

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

"""Reading the configuration: the environment's text into typed values, or a clear error.

``Reader`` takes one variable at a time (empty counts as unset; a secret's bad value is
named, never echoed); the parsers below check a value's form and range and say, when it
is wrong, what is accepted (``app.config_docs`` shows those words on the generated page).
What is read, with which parser, is declared in ``app.config``.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Reader:
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


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"expected a number from {low} to {high}")
        return value

    return parse


def float_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return value

    return parse


probability = float_in(0.0, 1.0)


def boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of 1, 0, true, false, yes, no, on, off")


def path(raw: str) -> Path:
    return Path(raw)


def file_path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must be a file path")
    return Path(raw)


def nonempty(raw: str) -> str:
    if not raw:
        raise ValueError("must not be empty")
    return raw


def signing_key(raw: str) -> str:
    # HS256 keys shorter than the hash output are weak; PyJWT warns about them too.
    if len(raw.encode()) < 32:
        raise ValueError("must be at least 32 bytes long")
    return raw


def bearer_token(raw: str) -> str:
    # Sent as ``Authorization: Bearer <token>``: a space, a control or a non-ASCII
    # character could never arrive as configured, so no scrape would ever match.
    if not all("!" <= c <= "~" for c in raw):
        raise ValueError("expected printable ASCII without spaces (it goes in a header)")
    return raw


def password(raw: str) -> str:
    if len(raw) < 8:
        raise ValueError("must be at least 8 characters long")
    return raw


WS_COMPRESSIONS = ("deflate", "off", "full")


def ws_compression(raw: str) -> str:
    if raw not in WS_COMPRESSIONS:
        raise ValueError("expected deflate, off or full")
    return raw


def default_login_concurrency() -> int:
    # Two password checks per core keep the cores busy without queueing argon2 work.
    return 2 * (os.cpu_count() or 1)


PASSWORD_HASH_PROFILES = ("production", "fast")


def hash_profile(raw: str) -> str:
    if raw not in PASSWORD_HASH_PROFILES:
        raise ValueError("expected production or fast (fast: for tests only)")
    return raw


def log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())


def origins(raw: str) -> tuple[str, ...]:
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


def traces_exporter(raw: str) -> str:
    if raw not in TRACES_EXPORTERS:
        raise ValueError("expected otlp or none (the only trace exporters built in)")
    return raw


# OTEL_SEMCONV_STABILITY_OPT_IN's values (opentelemetry-instrumentation 0.66b2).
SEMCONV_OPT_INS = (
    "http",
    "http/dup",
    "database",
    "database/dup",
    "gen_ai_latest_experimental",
)


def semconv_opt_in(raw: str) -> str:
    unknown = [part for part in raw.split(",") if part.strip() not in SEMCONV_OPT_INS]
    if unknown:
        raise ValueError(f"expected a comma-separated list of {', '.join(SEMCONV_OPT_INS)}")
    return raw


def resource_attributes(raw: str) -> str:
    """``key=value`` pairs, comma-separated (values %-encoded), as the SDK parses them."""
    for pair in raw.split(","):
        key, sep, _ = pair.partition("=")
        if pair.strip() and (not sep or not key.strip()):
            raise ValueError(f"{pair.strip()!r} is not a key=value pair")
    return raw


def sampler(raw: str) -> str:
    if raw not in TRACES_SAMPLERS:
        raise ValueError(f"expected one of {', '.join(TRACES_SAMPLERS)}")
    return raw


def protocol(raw: str) -> str:
    if raw not in TRACES_PROTOCOLS:
        raise ValueError("expected http/protobuf or grpc")
    if raw == "grpc" and importlib.util.find_spec(GRPC_EXPORTER_MODULE) is None:
        raise ValueError(
            "grpc needs the optional exporter: pip install 'sovd-command-service[grpc]'"
            " (or use http/protobuf)"
        )
    return raw


def database_url(raw: str) -> str:
    """A PostgreSQL connection URI (libpq's form, which asyncpg reads). It carries a
    password: the messages below never quote it."""
    expected = (
        "expected a postgresql:// (or postgres://) URL, such as postgresql://sovd@db:5432/sovd"
    )
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 - ValueError for a port that is not a number
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(expected)
    if not parts.path.strip("/"):
        raise ValueError(f"{expected}; it names no database")
    return raw


def url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw


NATS_SCHEMES = ("nats", "tls")


def nats_servers(raw: str) -> tuple[str, ...]:
    """Comma-separated NATS server URLs. The message never quotes the value: it may
    carry a password or token."""
    servers = tuple(part.strip() for part in raw.split(","))
    for n, server in enumerate(servers, 1):
        where = f"server {n} of {len(servers)}" if len(servers) > 1 else "the URL"
        try:
            parts = urllib.parse.urlsplit(server)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError(f"{where} is not a URL") from None
        if parts.scheme not in NATS_SCHEMES:
            raise ValueError(f"{where} must start with nats:// or tls://, such as nats://nats:4222")
        if not parts.hostname:
            raise ValueError(f"{where} names no host, such as nats://nats:4222")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{where} must be only scheme, credentials, host and port")
    return servers


# A host as a link may name it: a DNS name or IPv4 address, or an IPv6 one in brackets.
_PUBLIC_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$")


def public_url(raw: str) -> str:
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

"""The telemetry variables: metrics, the console's Prometheus link, and traces, mostly under
the standard OTEL_* names (each with its default, parser and meaning)."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import parsing as parse
from app.config.declaring import var


@dataclass(frozen=True)
class TelemetryConfig:
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
    def tracing_enabled(self) -> bool:
        """Traces are exported when OTEL_TRACES_EXPORTER=otlp, or when it is unset and an
        OTLP endpoint (for traces, or the common one) is configured."""
        if self.traces_exporter is not None:
            return self.traces_exporter == "otlp"
        return bool(self.otlp_traces_endpoint or self.otlp_endpoint)

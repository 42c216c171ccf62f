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
    # The five sdk_* fields are variables the OpenTelemetry SDK (and its HTTP
    # instrumentation) reads itself when the service builds its parts: declared here so a
    # bad value stops the start naming it, checked once; the values are the SDK's to use.
    sdk_service_name: str | None = var(
        "OTEL_SERVICE_NAME",
        None,
        parse.nonempty,
        "telemetry resource `service.name` (read by the OpenTelemetry SDK, checked at start)",
        default_text="`sovd-command-service`",
    )
    sdk_resource_attributes: str | None = var(
        "OTEL_RESOURCE_ATTRIBUTES",
        None,
        parse.resource_attributes,
        "extra resource attributes, `k=v,k2=v2` (read by the SDK, checked at start)",
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
    sdk_traces_sampler: str | None = var(
        "OTEL_TRACES_SAMPLER",
        None,
        parse.sampler,
        "`always_on`, `always_off`, `traceidratio` or those with `parentbased_` (read by"
        " the SDK's tracer provider, checked at start; head sampling is decided before"
        " any span work: [telemetry.md](telemetry.md#traces))",
        default_text="`parentbased_always_on`",
    )
    sdk_traces_sampler_arg: float | None = var(
        "OTEL_TRACES_SAMPLER_ARG",
        None,
        parse.probability,
        "the sampler's ratio, 0..1 (read by the SDK, checked at start)",
        default_text="`1`",
    )
    sdk_semconv_opt_in: str | None = var(
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        None,
        parse.semconv_opt_in,
        "`http`: stable HTTP span attribute names (the Dockerfile and compose set it); read"
        " by opentelemetry-instrumentation-asgi, checked at start",
    )

    @property
    def tracing_enabled(self) -> bool:
        """Traces are exported when OTEL_TRACES_EXPORTER=otlp, or when it is unset and an
        OTLP endpoint (for traces, or the common one) is configured."""
        if self.traces_exporter is not None:
            return self.traces_exporter == "otlp"
        return bool(self.otlp_traces_endpoint or self.otlp_endpoint)

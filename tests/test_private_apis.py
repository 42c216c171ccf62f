"""The private parts of our dependencies the code still relies on, each pinned here so an
upgrade that breaks one fails loudly (issue #22 item 1). Each use is justified beside it
in the code; the others have their own tests (aiosqlite: test_store.py, the OTLP
exporter: test_span_encoding.py, wsproto/Hypercorn: test_ws_client_frames.py)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from prometheus_client import CollectorRegistry

from otel.exemplars import ExemplarPrometheusReader

pytestmark = pytest.mark.fast


def test_the_metric_readers_hook_is_still_the_abstract_receive_metrics() -> None:
    assert "_receive_metrics" in MetricReader.__abstractmethods__
    assert "_receive_metrics" in PrometheusMetricReader.__dict__


def test_the_exemplar_reader_receives_what_the_sdk_collects() -> None:
    reader = ExemplarPrometheusReader(CollectorRegistry(), {"h": "h_seconds"})
    seen: list[object] = []
    keep = reader._keep
    reader._keep = lambda data: (seen.append(data), keep(data))[1]  # type: ignore[method-assign]
    provider = MeterProvider(metric_readers=[reader])
    provider.get_meter("t").create_histogram("h").record(1.0)
    reader.collect()
    provider.shutdown()
    assert len(seen) == 1


def test_logging_still_skips_the_caller_lookup_when_srcfile_is_none() -> None:
    # The logging HOWTO's "Optimization" advice that app/logs.py follows.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("test_private_apis")
    logger.addHandler(handler)
    saved = logging._srcfile
    try:
        logging._srcfile = None
        logger.warning("no caller")
    finally:
        logging._srcfile = saved
        logger.removeHandler(handler)
    assert records[0].pathname == "(unknown file)" and records[0].lineno == 0

"""Issue #13: traces, in process (the stream's span is in test_traces_stream.py).

A failing command's span carries the error; tracing is off by default and then installs
nothing and exports nothing; commands recovered at start-up invent no spans; sampling
and the variables that turn tracing on are read once, as the OTel SDK names them.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from app.config import Config, ConfigError
from app.main import create_app
from app.telemetry import NoTracing
from otel.tracing import TracingMiddleware
from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import auth, in_process, make_config
from tests.support.otlp_traces import ERROR, TraceReceiver, named, of_command, traces

pytestmark = pytest.mark.fast

__all__ = ["traces"]  # the fixture


def test_a_failing_command_has_error_status_and_its_error_code(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token, "unreachable")["vehicle_id"]
        command_id = srv.submit(token, vehicle_id)["command_id"]
        assert srv.wait_status(token, command_id)["error_code"] == "vehicle-unreachable"
    (execute,) = named(of_command(traces.spans(), command_id), "command.execute")
    assert execute.status_code == ERROR
    assert execute.status_message  # why, in words
    assert execute.attributes["sovd.command.status"] == "failed"
    assert execute.attributes["sovd.error.code"] == "vehicle-unreachable"


def test_a_command_cancelled_in_the_queue_ends_its_queue_span(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    # A vehicle that never answers in time: the second command waits in the queue.
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url, command_timeout_s=5)
    with in_process(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token, "timeout")["vehicle_id"]
        srv.submit(token, vehicle_id)
        waiting = srv.submit(token, vehicle_id)["command_id"]
        r = srv.http.post(f"/api/v1/commands/{waiting}/cancel", headers=auth(token))
        assert r.status_code == 200, r.text
    spans = of_command(traces.spans(), waiting)
    assert [s.name for s in spans] == ["command.queued"]
    assert spans[0].attributes["sovd.command.status"] == "cancelled"
    assert spans[0].attributes["sovd.error.code"] == "cancelled"
    assert spans[0].status_code != ERROR  # cancelling is no failure


def test_tracing_is_off_by_default_installs_nothing_and_exports_nothing(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path)
    assert not config.tracing_enabled
    app = create_app(config)
    assert not [m for m in app.user_middleware if m.cls is TracingMiddleware]
    assert isinstance(app.state.tracing, NoTracing)
    with in_process(config) as srv:
        token = srv.token()
        srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
        assert isinstance(srv.services.pipeline._tracing, NoTracing)
        # The exposition has no exemplars either.
        r = srv.http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert "trace_id" not in r.text
    assert traces.requests == []


def test_commands_recovered_at_start_up_invent_no_spans(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path)
    with in_process(config) as srv:
        token = srv.token()
        command_id = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, command_id)
    with sqlite3.connect(config.db_path) as conn:  # as a crash leaves it: mid-run
        conn.execute(
            "UPDATE commands SET status = 'in_progress', error_code = NULL,"
            " error_message = NULL, completed_at = NULL WHERE command_id = ?",
            (command_id,),
        )
    traced = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(traced) as srv:
        token = srv.token()
        assert srv.command(token, command_id)["error_code"] == "interrupted"
        # A command run now is traced as usual.
        fresh = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, fresh)
    spans = traces.spans()
    assert of_command(spans, fresh)
    assert of_command(spans, command_id) == []
    # The recovery's write made no span either: one terminal write traced, the fresh one's.
    assert len(named(spans, "store.finish")) == 1


def test_an_unsampled_parent_is_honoured(tmp_path: Path, traces: TraceReceiver) -> None:
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(config) as srv:
        token = srv.token()
        unsampled = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
        command_id = submit_read_dtc(
            srv.http, token, srv.vehicle(token)["vehicle_id"], traceparent=unsampled
        )
        srv.wait_status(token, command_id)
    spans = traces.spans()
    assert named(spans, "POST /api/v1/auth/login")  # others are sampled
    assert of_command(spans, command_id) == []
    assert named(spans, "POST /api/v1/commands") == []


def test_the_sampler_variable_turns_sampling_off(tmp_path: Path, traces: TraceReceiver) -> None:
    config = make_config(
        tmp_path, otlp_traces_endpoint=traces.traces_url, traces_sampler="always_off"
    )
    with in_process(config) as srv:
        token = srv.token()
        srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
    assert traces.spans() == []


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_tracing_turns_on_with_the_standard_variables(env: dict[str, str], enabled: bool) -> None:
    assert Config.from_env(env).tracing_enabled is enabled


@pytest.mark.parametrize(
    ("env", "named_variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_TRACES"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_a_bad_tracing_variable_is_named(env: dict[str, str], named_variable: str) -> None:
    with pytest.raises(ConfigError, match=named_variable):
        Config.from_env(env)


def test_grpc_without_its_exporter_says_what_to_install() -> None:
    # The grpc exporter is an optional extra, not installed with the service.
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL.*\[grpc\]"):
        Config.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def test_the_sampler_and_its_ratio_are_read() -> None:
    config = Config.from_env(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    )
    assert (config.traces_sampler, config.traces_sampler_arg) == ("parentbased_traceidratio", 0.25)
    assert Config.from_env({}).traces_sampler == "parentbased_always_on"

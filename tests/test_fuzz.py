"""Schemathesis against the running service's own /openapi.json.

Every operation, with valid and invalid inputs generated from the document and an
admin's bearer token: no 5xx, and every answer (status code, content type, body) as the
document says. Logout is left out here (it would end the session the fuzzer uses); its
tests are in test_api_auth.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import ADMIN_PASSWORD, make_config, running

pytestmark = pytest.mark.socket

EXAMPLES_PER_OPERATION = 15
HOOKS = "schemathesis_hooks.py"
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def test_fuzzing_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    config = make_config(tmp_path, vehicle_queue_size=10_000)
    with running(config) as srv:
        token = srv.token("admin", ADMIN_PASSWORD)
        report = tmp_path / "report.ndjson"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{srv.base_url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                CHECKS,
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "20261126",
                "--exclude-path",
                "/api/v1/auth/logout",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(report),
                "--no-color",
            ],
            cwd=tmp_path,  # schemathesis keeps a cache in its working directory
            # PDX uploads are application/zip: sent as bytes (tests/schemathesis_hooks.py)
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": str(Path(__file__).parent / "support" / HOOKS),
            },
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        # The service still serves after the fuzzing.
        assert srv.http.get("/health/ready").status_code == 200
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases, output[-3000:]
    assert int(cases.group(1)) >= 300 and cases.group(1) == cases.group(2), output[-3000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested_ops = re.search(r"Tested: (\d+)", output)
    assert selected and tested_ops, output[-3000:]
    # Every operation but logout was selected, and every selected one was tested.
    assert int(selected.group(1)) == int(selected.group(2)) - 1 == int(tested_ops.group(1))
    print(output[-2500:])  # the summary, for the log
    assert report.stat().st_size > 0
    json.loads(report.read_text().splitlines()[0])

"""The SOVD tree's reads, one table for the tests that call every GET of it
(tests/test_sovd_api.py for the schemas, tests/test_authorization.py for who may).

Each GET path template of the route table, after ``/sovd/vehicles/{vin}``, maps to a path
that answers 200 on a demo fleet vehicle (its ECUs bound to the demo description, so
the ids are the description's: ``app.vehicles.pdx.demo``). ``{lock}``, ``{ecu_lock}`` and
``{execution}`` stand for the id of something the caller creates first (a lock on the
vehicle, a lock on the engine, a run of the engine's SelfTest): those reads are
``OWNED_READS``.
"""

from __future__ import annotations

from typing import Final

SELF_TEST: Final = "/v1/components/engine/operations/SelfTest/executions"

READS: Final = {
    "/version-info": "/version-info",
    "/v1": "/v1",
    "/v1/components": "/v1/components",
    "/v1/apps": "/v1/apps",
    "/v1/areas": "/v1/areas",
    "/v1/functions": "/v1/functions",
    "/v1/locks": "/v1/locks",
    "/v1/locks/{lock_id}": "/v1/locks/{lock}",
    "/v1/components/{component}": "/v1/components/engine",
    "/v1/components/{component}/hosts": "/v1/components/engine/hosts",
    "/v1/components/{component}/belongs-to": "/v1/components/engine/belongs-to",
    "/v1/components/{component}/data": "/v1/components/engine/data",
    "/v1/components/{component}/data-categories": "/v1/components/engine/data-categories",
    "/v1/components/{component}/data-groups": "/v1/components/engine/data-groups",
    "/v1/components/{component}/data/{data_id}": "/v1/components/engine/data/EngineRpm",
    "/v1/components/{component}/configurations": "/v1/components/engine/configurations",
    # (a data read, as CDA routes it)
    "/v1/components/{component}/configurations/{data_id}": (
        "/v1/components/engine/configurations/Coding"
    ),
    "/v1/components/{component}/faults": "/v1/components/engine/faults",
    "/v1/components/{component}/faults/{fault_code}": "/v1/components/engine/faults/P0171",
    "/v1/components/{component}/operations": "/v1/components/engine/operations",
    "/v1/components/{component}/operations/{operation}": (
        "/v1/components/abs/operations/BrakeBleedCheck"
    ),
    "/v1/components/{component}/operations/{operation}/executions": SELF_TEST,
    "/v1/components/{component}/operations/{operation}/executions/{execution_id}": (
        SELF_TEST + "/{execution}"
    ),
    "/v1/components/{component}/modes": "/v1/components/engine/modes",
    "/v1/components/{component}/modes/{mode}": "/v1/components/engine/modes/session",
    "/v1/components/{component}/locks": "/v1/components/engine/locks",
    "/v1/components/{component}/locks/{lock_id}": "/v1/components/engine/locks/{ecu_lock}",
}

# The reads of one user's lock or execution: their paths need that user's id filled in.
OWNED_READS: Final = frozenset(template for template, path in READS.items() if "{" in path)


def fill(path: str, *, lock: str, ecu_lock: str, execution: str) -> str:
    """An example path of ``READS`` with the caller's ids in place."""
    return (
        path.replace("{lock}", lock)
        .replace("{ecu_lock}", ecu_lock)
        .replace("{execution}", execution)
    )

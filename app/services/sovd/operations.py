"""SOVD operations: what an execution's status may be. Only an ECU bound to a
description has operations (its 0x31 services, by CDA's mapping: ``described``); an
unbound ECU has none."""

from __future__ import annotations

import enum


class ExecutionStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

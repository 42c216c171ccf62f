"""What the pipeline's parts share: a job, its settings, who cancels it, and the record
of an accepted command from its queueing until its terminal status is stored."""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from typing import Final

from app.models import Actor, Command
from app.store.commands import Finish
from app.telemetry import NO_COMMAND_TRACE, CommandTrace
from app.vehicles.connector import DiagnosticRequest
from app.vocabulary import CommandStatus, FailureCode

# One logger for the whole pipeline, named as it was before the module became a package.
log = logging.getLogger("app.services.pipeline")

# How a command ended by itself; only these teach the lane's average.
NATURAL_ENDS: Final = frozenset(
    {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.TIMEOUT}
)


@dataclass(frozen=True, slots=True)
class Job:
    command: Command
    request: DiagnosticRequest
    accepted_at: float  # monotonic, for the duration metric
    # A shorter deadline than the service's, asked for by the caller (a SOVD execution's
    # ``timeout``); never a longer one.
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    command_timeout_s: float
    lane_size: int
    user_share: int = 8  # places of one lane a single user may hold
    # The most chunks one command's answer may have; beyond it the command fails
    # invalid-response-content (a broken or hostile ECU cannot flood the store).
    max_chunks: int = 4096


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Who stops a command, and why (its error message and the ``command.cancel`` row)."""

    actor: Actor
    reason: str
    code: FailureCode = FailureCode.CANCELLED  # the command's error_code


class Stage(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    ENDING = "ending"  # its terminal status is decided; the write may still be pending


@dataclass(eq=False, slots=True)
class Entry:
    """An accepted command, from its queueing until its terminal status is stored."""

    job: Job
    # Resolves when the first attempt to store the end is over: True if stored, False if
    # the database refused it (then it is retried until it lands).
    outcome: asyncio.Future[bool]
    stage: Stage = Stage.QUEUED
    run: asyncio.Task[Finish | None] | None = None
    stepping: bool = False  # a store-then-publish step is under way: a stop waits for it
    stop_requested: bool = False  # stop at the end of the step under way
    cancellation: Cancellation | None = None
    interruption: str | None = None  # stopped as interrupted, why (a lane lost: stop_lanes)
    answered: bool = False  # the vehicle sent something
    trace: CommandTrace = NO_COMMAND_TRACE  # its spans (tracing on), from the submit
    # The request that submitted it and who made it, for the command's end line.
    request_id: str | None = None
    user: str | None = None

    @property
    def command_id(self) -> str:
        return self.job.command.command_id

    @property
    def user_id(self) -> str:
        return self.job.command.user_id


def cancelled(cancellation: Cancellation, at: str) -> Finish:
    return Finish(CommandStatus.CANCELLED, cancellation.code, cancellation.reason, at)


def interrupted(message: str, at: str) -> Finish:
    return Finish(CommandStatus.FAILED, FailureCode.INTERRUPTED, message, at)


def resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)

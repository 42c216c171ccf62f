"""RoutineControl (0x31) as the ``RoutineControl`` command speaks it: ``start`` / ``stop`` /
``results``, one chunk each, or ``run``: start the routine and poll ``results`` every
``poll_s``, one chunk per progress change and a final one with the end state. A ``run``
closed before its end (cancelled, timed out, the service stopping) sends ``stop`` on its
way out, waiting for it at most ``stop_wait_s``: a routine must not run on unattended.
Its status is read in this project's convention (``uds.decode_routine_status``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any, Final

from udsoncan.services.RoutineControl import RoutineControl

from app import catalogue
from app.vehicles import uds
from app.vehicles.connector import Chunk
from app.vehicles.uds_conversation import Refusal, Talk, hex_code, hex_param, param, raw
from app.vocabulary import CommandName

log = logging.getLogger(__name__)

# The RoutineControl action that runs a routine to its end.
RUN: Final = "run"


async def routine_control(talk: Talk, params: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    routine_id = hex_param(
        param(params, "routineId", CommandName.ROUTINE_CONTROL), "routineId", 0xFFFF
    )
    action = param(params, "action", CommandName.ROUTINE_CONTROL)
    if action == RUN:
        async with aclosing(_run(talk, routine_id)) as chunks:
            async for chunk in chunks:
                yield chunk
        return
    if action not in uds.ROUTINE_ACTIONS:
        raise catalogue.InvalidParams(f"command_params.action {action!r} is not an action")
    context = {"routineId": hex_code(routine_id, 4), "action": action}
    record, status, response = await _request(talk, routine_id, action, context)
    answer: dict[str, Any] = {"ecuAddress": talk.address, **context}
    if status is not None:
        answer["status"] = status.state
        answer["progress"] = status.progress
    answer["statusRecord"] = record.hex().upper()
    yield Chunk(answer, True, raw=response)


async def _run(talk: Talk, routine_id: int) -> AsyncGenerator[Chunk, None]:
    """Start, then follow ``results`` to the end. A routine whose start answers with its
    result (the bleed check) gives one final chunk."""
    context = {"routineId": hex_code(routine_id, 4), "action": RUN}
    status, response = await _status(talk, routine_id, "start", context)
    ended = False
    try:
        shown: uds.RoutineStatus | None = None
        while True:
            chunk = {"ecuAddress": talk.address, **context}
            if status.state != "running":
                ended = True  # before the yield: a close at the final chunk is no abort
                state = {"status": status.state, "progress": status.progress}
                yield Chunk({**chunk, **state}, True, raw=response)
                return
            if status != shown:
                shown = status
                state = {"status": status.state, "progress": status.progress}
                yield Chunk({**chunk, **state}, False, raw=response)
            await asyncio.sleep(talk.settings.poll_s)
            status, response = await _status(talk, routine_id, "results", context)
    finally:
        if not ended:
            # Closed early (cancelled, timed out, shutting down) or the polling failed:
            # the routine must not run on unattended.
            await _stop(talk, routine_id)


# -- the requests of a routine -----------------------------------------------------------


async def _request(
    talk: Talk, routine_id: int, action: str, context: Mapping[str, Any]
) -> tuple[bytes, uds.RoutineStatus | None, bytes]:
    """One RoutineControl request: the status record and its status, if it is in
    this project's convention (``uds.decode_routine_status``), and the ECU's answer."""
    control = uds.ROUTINE_ACTIONS[action]
    request = RoutineControl.make_request(routine_id, control)
    response = await talk.request(request, RoutineControl.interpret_response, context)
    data = response.service_data
    assert isinstance(data, RoutineControl.ResponseData)
    if data.routine_id_echo != routine_id or data.control_type_echo != control:
        raise catalogue.InvalidResponse(
            f"ECU {talk.address} answered for routine {hex_code(data.routine_id_echo, 4)}"
            f" ({uds.routine_action_name(data.control_type_echo)})"
        )
    record = bytes(data.routine_status_record)
    return record, uds.decode_routine_status(record), raw(response)


async def _status(
    talk: Talk, routine_id: int, action: str, context: Mapping[str, Any]
) -> tuple[uds.RoutineStatus, bytes]:
    record, status, answer = await _request(talk, routine_id, action, context)
    if status is None:
        raise catalogue.InvalidResponse(
            f"ECU {talk.address} answered routine {hex_code(routine_id, 4)} with a status"
            f" record this service cannot follow: {record.hex().upper() or 'none'}"
        )
    return status, answer


async def _stop(talk: Talk, routine_id: int) -> None:
    """Best effort, bounded: the routine's run is over for us whatever the ECU says.
    A cancellation arriving meanwhile is not ours to swallow: it propagates."""
    context = {"routineId": hex_code(routine_id, 4), "action": "stop"}
    try:
        async with asyncio.timeout(talk.settings.stop_wait_s):
            await _request(talk, routine_id, "stop", context)
    except TimeoutError:
        log.warning(
            "ECU %s did not confirm stopping routine 0x%04X within %g s",
            talk.address,
            routine_id,
            talk.settings.stop_wait_s,
            extra={"event": "routine_stop_unconfirmed"},
        )
    except Refusal as refusal:
        # Typically 0x24: it ended by itself meanwhile.
        log.info(
            "ECU %s refused to stop routine 0x%04X: %s",
            talk.address,
            routine_id,
            refusal.chunk.payload.get("negativeResponse"),
            extra={"event": "routine_stop_refused"},
        )
    except Exception as exc:
        # The link broke or the answer was garbage: nothing more to do on the way out.
        log.warning(
            "stopping routine 0x%04X on ECU %s failed: %s",
            routine_id,
            talk.address,
            exc,
            extra={"event": "routine_stop_failed"},
        )

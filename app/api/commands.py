"""/api/v1/commands: submit and cancel commands, read their status, answers and history."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import client_address, json_response, page, path_id, principal, services
from app.api.schema import UUID_PATTERN, Body, Field, Query, limit_offset, parse_body
from app.errors import BadRequest
from app.models import COMMAND_STATUSES
from app.store.commands import CommandFilter

SUBMIT = Body(
    {
        "vehicle_id": Field(str, pattern=UUID_PATTERN),
        "command_name": Field(str, max_length=64, description="a command of the catalogue"),
        "command_params": Field(dict, description="parameters, as the catalogue describes"),
    }
)
LIST = Query(
    {
        "vehicle_id": Field(str, required=False, pattern=UUID_PATTERN),
        "status": Field(str, required=False, choices=COMMAND_STATUSES),
        "user_id": Field(str, required=False, pattern=UUID_PATTERN),
        "since": Field(
            str,
            required=False,
            format="date-time",
            description="submitted at or after (ISO 8601 with zone)",
        ),
        "until": Field(
            str,
            required=False,
            format="date-time",
            description="submitted before (ISO 8601 with zone)",
        ),
        **limit_offset(),
    }
)


async def submit(request: Request) -> Response:
    who = await principal(request)
    s = services(request)
    body = await parse_body(request, SUBMIT, s.config.max_body_bytes)
    command = await s.commands.submit(
        who,
        body["vehicle_id"].lower(),
        body["command_name"],
        body["command_params"],
        client_address(request),
    )
    return json_response(
        command.as_dict(), 201, headers={"Location": f"/api/v1/commands/{command.command_id}"}
    )


async def get_command(request: Request) -> Response:
    who = await principal(request)
    command_id = path_id(request, "command_id", "command")
    command = await services(request).commands.get(who, command_id)
    return json_response(command.as_dict())


async def responses(request: Request) -> Response:
    who = await principal(request)
    chunks = await services(request).commands.responses(
        who, path_id(request, "command_id", "command")
    )
    return json_response({"items": [c.as_dict() for c in chunks]})


async def list_commands(request: Request) -> Response:
    who = await principal(request)
    q = LIST.parse(request)
    if "since" in q and "until" in q and q["since"] > q["until"]:
        raise BadRequest("query parameter since must not be after until")
    flt = CommandFilter(
        vehicle_id=q["vehicle_id"].lower() if "vehicle_id" in q else None,
        status=q.get("status"),
        user_id=q["user_id"].lower() if "user_id" in q else None,
        since=q.get("since"),
        until=q.get("until"),
        limit=q.get("limit", 50),
        offset=q.get("offset", 0),
    )
    items, total = await services(request).commands.find(who, flt)
    return page(items, total, flt.limit, flt.offset)


async def cancel(request: Request) -> Response:
    """Stop a queued or running command: 200 with the command, now ``cancelled``; 202
    with the command as stored while the database refuses the write (it lands later)."""
    who = await principal(request)
    command, stored = await services(request).commands.cancel(
        who, path_id(request, "command_id", "command"), client_address(request)
    )
    return json_response(command.as_dict(), 200 if stored else 202)

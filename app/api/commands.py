"""/api/v1/commands: submit and cancel commands, read their status, answers and history."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from app import events, models
from app.api.contract import (
    Body,
    Call,
    Limit,
    Offset,
    Out,
    Query,
    Result,
    Uuid,
    is_uuid,
    not_an_id,
)
from app.clock import format_ts, parse_ts
from app.errors import BadRequest
from app.models import show, shown
from app.store.commands import CommandFilter
from app.vocabulary import CommandStatus

_DATE_TIME = {"format": "date-time"}
Since = Annotated[
    str,
    msgspec.Meta(
        description="submitted at or after (ISO 8601 with zone)", extra_json_schema=_DATE_TIME
    ),
]
Until = Annotated[
    str,
    msgspec.Meta(description="submitted before (ISO 8601 with zone)", extra_json_schema=_DATE_TIME),
]


class NewCommand(Body, frozen=True, kw_only=True):
    # Checked in ``submit``, so that a VIN given here gets a message saying where the id is.
    vehicle_id: Annotated[
        str, msgspec.Meta(max_length=64, description="the vehicle's id, a UUID (not its VIN)")
    ]
    command_name: Annotated[
        str, msgspec.Meta(max_length=64, description="a command of the catalogue")
    ]
    command_params: Annotated[
        dict[str, Any], msgspec.Meta(description="parameters, as the catalogue describes")
    ]


class CommandQuery(Query, frozen=True, kw_only=True):
    vehicle_id: Uuid | None = None
    status: CommandStatus | None = None
    user_id: Uuid | None = None
    since: Since | None = None
    until: Until | None = None
    limit: Limit = 50
    offset: Offset = 0


# A command as clients see it: the record, its internal fields left out by declaration.
Command = shown(
    models.Command, base=Out, doc="A command as clients see it (its internal start time left out)."
)


class CommandPage(Out, frozen=True, kw_only=True):
    items: list[Command]  # type: ignore[valid-type]  # derived by ``shown``
    total: int
    limit: int
    offset: int


# A chunk of the answer as a page shows it: the stored chunk without its command's id.
ResponseChunk = shown(events.ResponseChunk, base=Out, hide=("command_id",))


RESPONSES_PAGE_MAX = 1000
RESPONSES_PAGE_DEFAULT = 100


class ResponsesQuery(Query, frozen=True, kw_only=True):
    limit: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            le=RESPONSES_PAGE_MAX,
            description=f"chunks in the page, 1 to {RESPONSES_PAGE_MAX}"
            f" (default {RESPONSES_PAGE_DEFAULT})",
        ),
    ] = RESPONSES_PAGE_DEFAULT
    after: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=2**31,
            description="chunks after this sequence number (default 0: from the first);"
            " the previous page's next_after",
        ),
    ] = 0


class ResponseChunks(Out, frozen=True, kw_only=True):
    """A page of a command's answer, in sequence order."""

    items: list[ResponseChunk]  # type: ignore[valid-type]  # derived by ``shown``
    # Pass as ``after`` for the next page; None: this page is the last stored one.
    next_after: int | None


def _instant(name: str, raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return format_ts(parse_ts(raw))
    except ValueError as exc:
        raise BadRequest(
            f"query parameter {name} must be an ISO 8601 timestamp with a zone, "
            f"such as 2026-01-31T12:00:00Z ({exc})"
        ) from None


async def submit(call: Call[NewCommand, None]) -> Result:
    b = call.body
    if not is_uuid(b.vehicle_id):
        hint = not_an_id("vehicle_id", b.vehicle_id)
        if "looks like a VIN" not in hint:
            hint = "vehicle_id must be a UUID"
        raise BadRequest(f"body.{hint}")
    command = await call.services.commands.submit(
        call.who, b.vehicle_id.lower(), b.command_name, b.command_params, call.client()
    )
    return Result(
        show(command, Command), headers={"Location": f"/api/v1/commands/{command.command_id}"}
    )


async def get_command(call: Call[None, None]) -> Out:
    return show(await call.services.commands.get(call.who, call.path_id("command_id")), Command)


async def responses(call: Call[None, ResponsesQuery]) -> ResponseChunks:
    q = call.query
    # One more than the page, to know whether another page follows.
    chunks = await call.services.commands.responses(
        call.who, call.path_id("command_id"), q.after, q.limit + 1
    )
    page = chunks[: q.limit]
    more = len(chunks) > q.limit
    return ResponseChunks(
        items=[show(c, ResponseChunk) for c in page],
        next_after=page[-1].sequence_number if more else None,
    )


async def list_commands(call: Call[None, CommandQuery]) -> CommandPage:
    q = call.query
    since, until = _instant("since", q.since), _instant("until", q.until)
    if since is not None and until is not None and since > until:
        raise BadRequest("query parameter since must not be after until")
    flt = CommandFilter(
        vehicle_id=q.vehicle_id.lower() if q.vehicle_id else None,
        status=q.status,
        user_id=q.user_id.lower() if q.user_id else None,
        since=since,
        until=until,
        limit=q.limit,
        offset=q.offset,
    )
    items, total = await call.services.commands.find(call.who, flt)
    return CommandPage(
        items=[show(c, Command) for c in items], total=total, limit=q.limit, offset=q.offset
    )


async def cancel(call: Call[None, None]) -> Result:
    """Stop a queued or running command: 200 with the command, now ``cancelled``; 202
    with the command as stored while the database refuses the write (it lands later)."""
    command, stored = await call.services.commands.cancel(
        call.who, call.path_id("command_id"), call.client()
    )
    return Result(show(command, Command), status=200 if stored else 202)

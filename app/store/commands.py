"""Commands and the chunks of their answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.catalogue import ECU_ADDRESS_PARAM
from app.events import ResponseChunk
from app.models import SYSTEM_ACTOR, Actor, Command
from app.store.audit import insert_audit
from app.store.engine import Engine
from app.store.rows import Where, enum_reader, fetch_all, fetch_one, page
from app.store.sql import Conn, Row, insert_later
from app.vehicles.addresses import InvalidAddress, as_shown, parse_address, stored_spellings
from app.vocabulary import ACTIVE_STATUSES, AuditAction, CommandStatus, FailureCode

_COLUMNS = (
    "command_id, vehicle_id, user_id, command_name, command_params, status, error_code,"
    " error_message, submitted_at, completed_at"
)
_SELECT_COLUMNS = f"{_COLUMNS}, started_at"
_SELECT = f"SELECT {_SELECT_COLUMNS} FROM commands"
# The active statuses, bound as parameters (never spelled in SQL): ``IN {_ACTIVE}``.
_ACTIVE_ARGS: tuple[CommandStatus, ...] = tuple(sorted(ACTIVE_STATUSES))
_ACTIVE = f"({', '.join('?' * len(_ACTIVE_ARGS))})"


_STATUS = enum_reader(CommandStatus)
_FAILURE = enum_reader(FailureCode)


def _params(raw: str) -> dict[str, Any]:
    """A command's parameters as stored, the ECU address in today's spelling: rows from
    before two-byte addresses say ``0x10`` for ``0x0010`` (kept as written, read as one)."""
    params: dict[str, Any] = json.loads(raw)
    address = params.get(ECU_ADDRESS_PARAM)
    if isinstance(address, str):
        params[ECU_ADDRESS_PARAM] = as_shown(address)
    return params


def _param_values(key: str, wanted: str) -> tuple[str, ...]:
    """The stored spellings a parameter filter matches: an ECU address in either."""
    if key != ECU_ADDRESS_PARAM:
        return (wanted,)
    try:
        return stored_spellings(parse_address(wanted, key))
    except InvalidAddress:
        return (wanted,)


def _command(row: Row) -> Command:
    error_code = row["error_code"]
    return Command(
        command_id=row["command_id"],
        vehicle_id=row["vehicle_id"],
        user_id=row["user_id"],
        command_name=row["command_name"],
        command_params=_params(row["command_params"]),
        status=_STATUS(row["status"]),
        error_code=None if error_code is None else _FAILURE(error_code),
        error_message=row["error_message"],
        submitted_at=row["submitted_at"],
        completed_at=row["completed_at"],
        started_at=row["started_at"],
    )


def _chunk(command_id: str, row: Row) -> ResponseChunk:
    return ResponseChunk(
        command_id=command_id,
        sequence_number=row["sequence_number"],
        response_payload=json.loads(row["response_payload"]),
        is_final=bool(row["is_final"]),
        received_at=row["received_at"],
    )


def _chunks(conn: Conn, command_id: str, after: int, limit: int | None) -> list[ResponseChunk]:
    """The chunks after sequence number ``after``, in order; at most ``limit`` of them
    (None: all, which the chunk cap per command bounds)."""
    sql = (
        "SELECT sequence_number, response_payload, is_final, received_at"
        " FROM command_responses WHERE command_id = ? AND sequence_number > ?"
        " ORDER BY sequence_number"
    )
    if limit is None:
        rows = fetch_all(conn, sql, (command_id, after))
    else:
        rows = fetch_all(conn, f"{sql} LIMIT ?", (command_id, after, limit))
    return [_chunk(command_id, r) for r in rows]


# The command, and a page of its chunks after a sequence number joined to it (one row of
# NULL chunk columns when there are none): ``snapshot`` in one statement.
_SNAPSHOT = (
    "SELECT "
    + ", ".join(f"c.{column.strip()}" for column in _SELECT_COLUMNS.split(","))
    + ", r.sequence_number, r.response_payload, r.is_final, r.received_at FROM commands c"
    " LEFT JOIN (SELECT command_id, sequence_number, response_payload, is_final, received_at"
    " FROM command_responses WHERE command_id = ? AND sequence_number > ?"
    " ORDER BY sequence_number{limit}) r ON r.command_id = c.command_id"
    " WHERE c.command_id = ? ORDER BY r.sequence_number"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class CommandFilter:
    vehicle_id: str | None = None
    status: str | None = None
    user_id: str | None = None
    since: str | None = None
    until: str | None = None
    limit: int = 50
    offset: int = 0
    command_name: str | None = None
    # Parameters the command was given, each exactly (a SOVD operation's executions; an
    # ECU address in any stored spelling of it).
    params: tuple[tuple[str, str], ...] = ()
    statuses: tuple[str, ...] = ()  # any of these (with ``status``: both apply)


@dataclass(frozen=True, slots=True)
class Finish:
    """A command's terminal state."""

    status: CommandStatus
    error_code: FailureCode | None
    error_message: str | None
    at: str


class CommandStore:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def insert(self, command: Command, actor: Actor) -> None:
        """Store a new command with its audit row, fsynced before returning."""

        def run(conn: Conn) -> None:
            conn.execute(
                f"INSERT INTO commands ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    command.command_id,
                    command.vehicle_id,
                    command.user_id,
                    command.command_name,
                    _dumps(command.command_params),
                    command.status,
                    None,
                    None,
                    command.submitted_at,
                    None,
                ),
            )
            insert_audit(
                conn,
                actor,
                AuditAction.COMMAND_SUBMIT,
                command.submitted_at,
                "command",
                command.command_id,
                {
                    "vehicle_id": command.vehicle_id,
                    "command_name": command.command_name,
                    "command_params": command.command_params,
                },
            )

        await self._db.write(run, durable=True)

    async def get(self, command_id: str) -> Command | None:
        def run(conn: Conn) -> Command | None:
            row = fetch_one(conn, f"{_SELECT} WHERE command_id = ?", (command_id,))
            return None if row is None else _command(row)

        return await self._db.read(run, single_statement=True)

    async def find(self, flt: CommandFilter) -> tuple[list[Command], int]:
        where = Where()
        where.equal("vehicle_id", flt.vehicle_id)
        where.equal("status", flt.status)
        where.equal("user_id", flt.user_id)
        where.equal("command_name", flt.command_name)
        for key, wanted in flt.params:
            values = _param_values(key, wanted)
            marks = ", ".join("?" * len(values))
            field, path = self._db.dialect.json_text("command_params", key)
            where.add(f"{field} IN ({marks})", path, *values)
        if flt.statuses:
            where.add(f"status IN ({', '.join('?' * len(flt.statuses))})", *flt.statuses)
        if flt.since is not None:
            where.add("submitted_at >= ?", flt.since)
        if flt.until is not None:
            where.add("submitted_at < ?", flt.until)

        def run(conn: Conn) -> tuple[list[Command], int]:
            rows, total = page(
                conn, _SELECT_COLUMNS, "commands", where, "seq DESC", flt.limit, flt.offset
            )
            return [_command(r) for r in rows], total

        return await self._db.read(run)

    async def responses(
        self, command_id: str, after: int = 0, limit: int | None = None
    ) -> list[ResponseChunk]:
        return await self._db.read(
            lambda conn: _chunks(conn, command_id, after, limit), single_statement=True
        )

    async def snapshot(
        self, command_id: str, after: int, limit: int | None = None
    ) -> tuple[Command | None, list[ResponseChunk]]:
        """The command and its chunks after ``after`` (at most ``limit``), read from one
        consistent snapshot."""

        limited, args = ("", ()) if limit is None else (" LIMIT ?", (limit,))

        def run(conn: Conn) -> tuple[Command | None, list[ResponseChunk]]:
            rows = fetch_all(
                conn, _SNAPSHOT.format(limit=limited), (command_id, after, *args, command_id)
            )
            if not rows:
                return None, []
            chunks = [_chunk(command_id, r) for r in rows if r["sequence_number"] is not None]
            return _command(rows[0]), chunks

        # One statement, a consistent snapshot by itself: no transaction around it (on
        # PostgreSQL three round trips fewer, as a follower's every stream opens with it).
        return await self._db.read(run, single_statement=True)

    async def mark_in_progress(self, command_id: str, at: str) -> bool:
        def run(conn: Conn) -> bool:
            cur = conn.execute(
                "UPDATE commands SET status = ?, started_at = ?"
                " WHERE command_id = ? AND status = ?",
                (CommandStatus.IN_PROGRESS, at, command_id, CommandStatus.PENDING),
            )
            if cur.rowcount != 1:
                return False
            insert_audit(conn, SYSTEM_ACTOR, AuditAction.COMMAND_START, at, "command", command_id)
            return True

        return await self._db.write(run)

    async def add_response(self, chunk: ResponseChunk) -> None:
        def run(conn: Conn) -> None:
            insert_later(
                conn,
                "INSERT INTO command_responses (command_id, sequence_number, response_payload,"
                " is_final, received_at) VALUES (?, ?, ?, ?, ?)",
                (
                    chunk.command_id,
                    chunk.sequence_number,
                    _dumps(chunk.response_payload),
                    int(chunk.is_final),
                    chunk.received_at,
                ),
            )

        await self._db.write(run)

    async def finish(
        self,
        command_id: str,
        vehicle_id: str,
        end: Finish,
        vehicle_answered: bool,
        cancelled_by: Actor | None = None,
    ) -> bool:
        """End a command; False if it had already ended (terminal states never change).
        ``cancelled_by``: who stopped it, audited as ``command.cancel`` in the same
        transaction."""

        def run(conn: Conn) -> bool:
            if not _finish(conn, command_id, end):
                return False
            if cancelled_by is not None:
                insert_audit(
                    conn,
                    cancelled_by,
                    AuditAction.COMMAND_CANCEL,
                    end.at,
                    "command",
                    command_id,
                    {"reason": end.error_message},
                )
            if vehicle_answered:
                conn.execute(
                    "UPDATE vehicles SET last_seen_at = ? WHERE vehicle_id = ?",
                    (end.at, vehicle_id),
                )
            return True

        return await self._db.write(run)

    async def purge_ended_before(self, cutoff: str, batch: int) -> int:
        """Delete up to ``batch`` commands that ended before ``cutoff``, with their
        answers and audit rows; return how many were deleted."""

        def run(conn: Conn) -> int:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT command_id FROM commands WHERE status NOT IN {_ACTIVE}"
                    " AND completed_at < ? ORDER BY seq LIMIT ?",
                    (*_ACTIVE_ARGS, cutoff, batch),
                )
            ]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            conn.execute(
                f"DELETE FROM audit_log WHERE entity_type = 'command' AND entity_id IN ({marks})",
                ids,
            )
            # Their answers go with them (ON DELETE CASCADE).
            conn.execute(f"DELETE FROM commands WHERE command_id IN ({marks})", ids)
            return len(ids)

        return await self._db.write(run)

    async def interrupt_active(
        self, at: str, message: str, vehicle_ids: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        """End every pending or in-progress command as failed/interrupted (used at start,
        after a crash: such commands are never re-sent to a vehicle); their (id, name).
        ``vehicle_ids``: only those of these vehicles (the lanes a node just took over on
        a cluster: the commands their dead owner left)."""
        end = Finish(CommandStatus.FAILED, FailureCode.INTERRUPTED, message, at)
        where, args = f"status IN {_ACTIVE}", list[Any](_ACTIVE_ARGS)
        if vehicle_ids is not None:
            if not vehicle_ids:
                return []
            where += f" AND vehicle_id IN ({', '.join('?' * len(vehicle_ids))})"
            args += list(vehicle_ids)

        def run(conn: Conn) -> list[tuple[str, str]]:
            ended = [
                (str(r[0]), str(r[1]))
                for r in conn.execute(
                    f"SELECT command_id, command_name FROM commands WHERE {where} ORDER BY seq",
                    args,
                )
            ]
            for command_id, _ in ended:
                _finish(conn, command_id, end)
            return ended

        return await self._db.write(run)


def _finish(conn: Conn, command_id: str, end: Finish) -> bool:
    cur = conn.execute(
        "UPDATE commands SET status = ?, error_code = ?, error_message = ?, completed_at = ?"
        f" WHERE command_id = ? AND status IN {_ACTIVE}",
        (end.status, end.error_code, end.error_message, end.at, command_id, *_ACTIVE_ARGS),
    )
    if cur.rowcount != 1:
        return False
    details: dict[str, str] = {"status": end.status}
    if end.error_code:
        details["error_code"] = end.error_code
    insert_audit(
        conn, SYSTEM_ACTOR, AuditAction.COMMAND_FINISH, end.at, "command", command_id, details
    )
    return True

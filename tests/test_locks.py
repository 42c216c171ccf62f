"""Issue #10, locks: ``LockService`` on an injected clock (expiry without sleeping).

Who conflicts with whom (two engineers, vehicle against ECU, ECU against ECU), expiry,
extending, releasing, an admin breaking a lock (the holder is told once), and the limits.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from app import catalogue
from app.bus import EventBus
from app.clock import Clock, parse_ts
from app.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    LockBroken,
    NotFound,
    PreconditionNotFulfilled,
)
from app.models import Actor, Command, Principal
from app.services.commands import CommandService
from app.services.lock_scope import normalise_address
from app.services.locks import LOCK_WITHDRAWAL, LockService
from app.services.pipeline import Pipeline, PipelineSettings
from app.store.commands import CommandFilter, CommandStore
from app.store.database import Database
from app.store.vehicles import VehicleStore
from app.telemetry import NoTelemetry
from app.vehicles.connector import Chunk, DiagnosticRequest
from app.vocabulary import Role
from tests.support.fake_clock import FakeClock
from tests.support.harness import Server, auth, insert_users

pytestmark = pytest.mark.fast

VEHICLE = str(uuid.uuid4())
OTHER_VEHICLE = str(uuid.uuid4())


def _user(name: str, role: Role = Role.ENGINEER) -> Principal:
    return Principal(user_id=str(uuid.uuid4()), username=name, role=role, session_id=name)


ALICE = _user("alice")
BOB = _user("bob")
ADMIN = _user("root", Role.ADMIN)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def locks(clock: FakeClock) -> LockService:
    return LockService(clock, max_expiration_s=600, max_per_vehicle=4)


def test_a_vehicle_lock_refuses_another_engineer_naming_the_holder_and_the_end(
    locks: LockService,
) -> None:
    lock = locks.take(ALICE, VEHICLE, None, None, 60)
    with pytest.raises(PreconditionNotFulfilled) as refused:
        locks.check(BOB, VEHICLE, "0x10")
    assert "alice" in refused.value.message
    assert lock.expires_at in refused.value.message
    assert refused.value.status_code == 409
    with pytest.raises(PreconditionNotFulfilled, match="locked by alice"):
        locks.take(BOB, VEHICLE, None, None, 60)
    with pytest.raises(PreconditionNotFulfilled, match="locked by alice"):
        locks.take(BOB, VEHICLE, "0x28", "abs", 60)
    locks.check(BOB, OTHER_VEHICLE, None)  # another vehicle is free
    locks.take(BOB, OTHER_VEHICLE, None, None, 60)


def test_an_ecu_lock_covers_that_ecu_and_whole_vehicle_calls_only(locks: LockService) -> None:
    locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
    with pytest.raises(PreconditionNotFulfilled, match=r"ECU 0x0010 .* locked by alice"):
        locks.check(BOB, VEHICLE, "0x10")
    with pytest.raises(PreconditionNotFulfilled, match="locked by alice"):
        locks.check(BOB, VEHICLE, None)  # a whole-vehicle call touches the engine too
    with pytest.raises(PreconditionNotFulfilled, match="locked by alice"):
        locks.take(BOB, VEHICLE, None, None, 60)
    locks.check(BOB, VEHICLE, "0x18")  # another ECU is free
    bobs = locks.take(BOB, VEHICLE, "0x18", "transmission", 60)
    with pytest.raises(PreconditionNotFulfilled, match="locked by bob"):
        locks.check(ALICE, VEHICLE, "0x18")
    assert [lock.lock_id for lock in locks.locks(VEHICLE, "0x18")] == [bobs.lock_id]
    assert [lock.username for lock in locks.locks(VEHICLE, "0x10")] == ["alice"]
    assert locks.locks(VEHICLE, None) == []


def test_addresses_compare_normalised(locks: LockService) -> None:
    locks.take(ALICE, VEHICLE, "0x1a", None, 60)
    with pytest.raises(PreconditionNotFulfilled):
        locks.check(BOB, VEHICLE, "0x1A")
    with pytest.raises(PreconditionNotFulfilled):
        locks.check(BOB, VEHICLE, "0x001a")  # 0x1A is 0x001A
    assert locks.locks(VEHICLE, "0X1a")[0].ecu_address == "0x001A"
    assert locks.locks(VEHICLE, "0x001A")[0].ecu_address == "0x001A"
    # Two bytes: 0x1001 is its own ECU, not 0x10 nor 0x01.
    locks.take(ALICE, VEHICLE, "0x1001", None, 60)
    locks.check(BOB, VEHICLE, "0x10")
    with pytest.raises(PreconditionNotFulfilled, match=r"ECU 0x1001 .* locked by alice"):
        locks.check(BOB, VEHICLE, "0x1001")
    for bad in ("0x0000", "0x0", "0x10000", "10", "0xZZ", "", "0x"):
        with pytest.raises(BadRequest, match=r"^ecuAddress must be .* such as 0x0010"):
            normalise_address(bad)
    with pytest.raises(BadRequest, match=r"^command_params.ecuAddress must be"):
        normalise_address("0x0", "command_params.ecuAddress")


def test_own_locks_never_block_their_owner(locks: LockService) -> None:
    locks.take(ALICE, VEHICLE, None, None, 60)
    locks.take(ALICE, VEHICLE, "0x10", "engine", 60)  # inside her own vehicle lock
    locks.check(ALICE, VEHICLE, None)
    locks.check(ALICE, VEHICLE, "0x10")
    locks.check(ALICE, VEHICLE, "0x40")


def test_a_lock_expires_by_the_clock(clock: FakeClock, locks: LockService) -> None:
    lock = locks.take(ALICE, VEHICLE, None, None, 30)
    expected = clock.wall().timestamp() + 30
    assert parse_ts(lock.expires_at).timestamp() == pytest.approx(expected, abs=1)
    clock.advance(29.9)
    with pytest.raises(PreconditionNotFulfilled):
        locks.check(BOB, VEHICLE, None)
    assert locks.get(VEHICLE, lock.lock_id) == lock
    clock.advance(0.1)
    locks.check(BOB, VEHICLE, None)
    assert locks.locks(VEHICLE, None) == []
    with pytest.raises(NotFound):
        locks.get(VEHICLE, lock.lock_id)
    locks.take(BOB, VEHICLE, None, None, 30)


def test_the_owner_extends_a_lock_from_now(clock: FakeClock, locks: LockService) -> None:
    lock = locks.take(ALICE, VEHICLE, "0x10", "engine", 30)
    clock.advance(20)
    extended = locks.extend(ALICE, VEHICLE, lock.lock_id, 30)
    assert (extended.lock_id, extended.ecu_address, extended.component) == (
        lock.lock_id,
        "0x0010",
        "engine",
    )
    assert parse_ts(extended.expires_at) > parse_ts(lock.expires_at)
    clock.advance(25)  # 45 s after taking it: the old expiry has passed
    with pytest.raises(PreconditionNotFulfilled) as refused:
        locks.check(BOB, VEHICLE, "0x10")
    assert f"until {extended.expires_at}" in refused.value.message
    assert locks.get(VEHICLE, lock.lock_id) == extended
    with pytest.raises(Forbidden, match="held by alice"):
        locks.extend(BOB, VEHICLE, lock.lock_id, 30)
    with pytest.raises(Forbidden, match="held by alice"):
        locks.extend(ADMIN, VEHICLE, lock.lock_id, 30)
    clock.advance(5)
    with pytest.raises(NotFound):  # expired: there is nothing to extend
        locks.extend(ALICE, VEHICLE, lock.lock_id, 30)


def test_the_owner_releases_and_others_may_then_lock(locks: LockService) -> None:
    lock = locks.take(ALICE, VEHICLE, None, None, 60)
    locks.release(ALICE, VEHICLE, lock.lock_id)
    locks.check(BOB, VEHICLE, None)
    locks.take(BOB, VEHICLE, None, None, 60)
    with pytest.raises(NotFound):
        locks.release(ALICE, VEHICLE, lock.lock_id)
    with pytest.raises(NotFound):
        locks.get(VEHICLE, lock.lock_id)


def test_another_engineer_cannot_release_a_lock(locks: LockService) -> None:
    lock = locks.take(ALICE, VEHICLE, None, None, 60)
    with pytest.raises(Forbidden) as refused:
        locks.release(BOB, VEHICLE, lock.lock_id)
    assert refused.value.status_code == 403
    assert "held by alice" in refused.value.message
    assert "an admin can release it" in refused.value.message
    with pytest.raises(PreconditionNotFulfilled):  # still held
        locks.check(BOB, VEHICLE, None)


def test_an_admin_breaks_a_lock_and_the_holder_is_told_once(locks: LockService) -> None:
    lock = locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
    locks.release(ADMIN, VEHICLE, lock.lock_id)
    locks.check(BOB, VEHICLE, "0x10")  # free for everyone else at once
    locks.check(ALICE, VEHICLE, "0x18")  # another ECU: nothing to tell her there
    with pytest.raises(LockBroken) as broken:
        locks.check(ALICE, VEHICLE, "0x10")
    assert broken.value.status_code == 409
    assert lock.lock_id in broken.value.message and "root" in broken.value.message
    locks.check(ALICE, VEHICLE, "0x10")  # told once: the next call is as any other
    with pytest.raises(NotFound):
        locks.release(ALICE, VEHICLE, lock.lock_id)


def test_the_holder_learns_of_a_broken_lock_from_its_id_or_a_new_lock_too(
    locks: LockService,
) -> None:
    first = locks.take(ALICE, VEHICLE, None, None, 60)
    locks.release(ADMIN, VEHICLE, first.lock_id)
    with pytest.raises(LockBroken):
        locks.extend(ALICE, VEHICLE, first.lock_id, 60)
    with pytest.raises(NotFound):
        locks.extend(ALICE, VEHICLE, first.lock_id, 60)
    second = locks.take(ALICE, VEHICLE, None, None, 60)
    locks.release(ADMIN, VEHICLE, second.lock_id)
    with pytest.raises(NotFound):  # only the holder is told
        locks.release(BOB, VEHICLE, second.lock_id)
    with pytest.raises(LockBroken):
        locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
    locks.take(ALICE, VEHICLE, "0x10", "engine", 60)


def test_an_admin_releases_their_own_lock_without_breaking_it(locks: LockService) -> None:
    lock = locks.take(ADMIN, VEHICLE, None, None, 60)
    with pytest.raises(PreconditionNotFulfilled, match="locked by root"):
        locks.check(ALICE, VEHICLE, None)  # an admin's lock binds engineers too
    locks.release(ADMIN, VEHICLE, lock.lock_id)
    locks.check(ADMIN, VEHICLE, None)


def test_a_broken_lock_past_its_expiry_is_not_reported(
    clock: FakeClock, locks: LockService
) -> None:
    lock = locks.take(ALICE, VEHICLE, None, None, 10)
    locks.release(ADMIN, VEHICLE, lock.lock_id)
    clock.advance(10)
    locks.check(ALICE, VEHICLE, None)


@pytest.mark.parametrize("seconds", [0, 0.5, -1, 601, math.inf, math.nan])
def test_expiration_out_of_range_is_refused(locks: LockService, seconds: float) -> None:
    with pytest.raises(BadRequest, match="lock_expiration must be from 1 to 600 seconds"):
        locks.take(ALICE, VEHICLE, None, None, seconds)
    lock = locks.take(ALICE, VEHICLE, None, None, 600)
    with pytest.raises(BadRequest, match="lock_expiration"):
        locks.extend(ALICE, VEHICLE, lock.lock_id, seconds)


def test_unknown_lock_ids_are_not_found(locks: LockService) -> None:
    missing = str(uuid.uuid4())
    for attempt in (
        lambda: locks.get(VEHICLE, missing),
        lambda: locks.extend(ALICE, VEHICLE, missing, 60),
        lambda: locks.release(ALICE, VEHICLE, missing),
        lambda: locks.release(ADMIN, VEHICLE, missing),
    ):
        with pytest.raises(NotFound, match=missing):
            attempt()
    lock = locks.take(ALICE, VEHICLE, None, None, 60)
    with pytest.raises(NotFound):  # a lock belongs to its vehicle
        locks.get(OTHER_VEHICLE, lock.lock_id)


def test_locks_per_vehicle_are_bounded(clock: FakeClock, locks: LockService) -> None:
    taken = [locks.take(ALICE, VEHICLE, f"0x{n:02X}", None, 60) for n in range(1, 5)]
    with pytest.raises(Conflict, match="4 locks, the most it may have"):
        locks.take(ALICE, VEHICLE, "0x50", None, 60)
    locks.take(ALICE, OTHER_VEHICLE, None, None, 60)  # per vehicle
    locks.release(ALICE, VEHICLE, taken[0].lock_id)
    locks.take(ALICE, VEHICLE, "0x50", None, 60)
    clock.advance(60)  # expired locks make room
    assert [locks.take(BOB, VEHICLE, None, None, 60) for _ in range(4)]


def test_one_user_holds_at_most_max_per_user_locks_on_a_vehicle(clock: FakeClock) -> None:
    locks = LockService(clock, max_expiration_s=600, max_per_vehicle=8, max_per_user=3)
    taken = [locks.take(ALICE, VEHICLE, f"0x{n:02X}", None, 60) for n in range(1, 4)]
    with pytest.raises(Conflict) as refused:
        locks.take(ALICE, VEHICLE, None, None, 60)
    assert refused.value.status_code == 409
    assert "you hold 3 locks on vehicle" in refused.value.message
    assert "(SOVD_LOCKS_PER_USER=3)" in refused.value.message
    locks.take(BOB, VEHICLE, "0x60", None, 60)  # others still get in
    locks.take(ALICE, OTHER_VEHICLE, None, None, 60)  # per vehicle
    locks.release(ALICE, VEHICLE, taken[0].lock_id)
    locks.take(ALICE, VEHICLE, "0x50", None, 60)
    clock.advance(60)  # expired locks do not count
    assert [locks.take(ALICE, VEHICLE, f"0x{n:02X}", None, 60) for n in range(1, 4)]


def test_an_admin_breaks_every_lock_of_a_vehicle_and_each_holder_is_told_once(
    locks: LockService,
) -> None:
    alice_engine = locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
    alice_abs = locks.take(ALICE, VEHICLE, "0x28", "abs", 60)
    bobs = locks.take(BOB, VEHICLE, "0x18", "transmission", 60)
    locks.take(ADMIN, VEHICLE, "0x40", "body", 60)
    elsewhere = locks.take(BOB, OTHER_VEHICLE, None, None, 60)
    with pytest.raises(Forbidden):
        locks.break_all(ALICE, VEHICLE)
    assert locks.break_all(ADMIN, VEHICLE) == 4
    for scope in (None, "0x10", "0x18", "0x28", "0x40"):
        assert locks.locks(VEHICLE, scope) == []
    assert locks.get(OTHER_VEHICLE, elsewhere.lock_id) == elsewhere  # that vehicle only
    locks.check(ADMIN, VEHICLE, None)  # the admin's own lock: released, nothing to tell
    with pytest.raises(LockBroken, match="with every lock of vehicle") as told:
        locks.check(ALICE, VEHICLE, "0x28")
    assert alice_abs.lock_id in told.value.message and "root" in told.value.message
    locks.check(ALICE, VEHICLE, "0x10")  # told once, for both of hers
    with pytest.raises(NotFound):
        locks.extend(ALICE, VEHICLE, alice_engine.lock_id, 60)
    with pytest.raises(LockBroken):  # bob learns it from his lock's id
        locks.release(BOB, VEHICLE, bobs.lock_id)
    locks.check(BOB, VEHICLE, None)
    assert locks.break_all(ADMIN, VEHICLE) == 0


def test_broken_lock_notices_are_bounded(locks: LockService) -> None:
    holders = [_user(f"user{n}") for n in range(5)]
    broken = []
    for holder in holders:
        lock = locks.take(holder, VEHICLE, None, None, 60)
        locks.release(ADMIN, VEHICLE, lock.lock_id)
        broken.append(lock)
    with pytest.raises(NotFound):  # the oldest notice made room for the newest
        locks.extend(holders[0], VEHICLE, broken[0].lock_id, 60)
    with pytest.raises(LockBroken):
        locks.extend(holders[4], VEHICLE, broken[4].lock_id, 60)


# -- changes_state: which commands a lock stands in the way of ---------------------------


@pytest.mark.parametrize(
    ("name", "params", "changes"),
    [
        ("ReadDTC", {"ecuAddress": "0x10"}, False),
        ("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}, False),
        ("ClearDTC", {"ecuAddress": "0x10"}, True),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"}, True),
        ("DiagnosticSessionControl", {"ecuAddress": "0x10", "session": "default"}, True),
        ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "start"}, True),
        ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "stop"}, True),
        ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "run"}, True),
        (
            "RoutineControl",
            {"ecuAddress": "0x10", "routineId": "0x0201", "action": "results"},
            False,
        ),
        # A DiagService by the SID its check stored: reads and TesterPresent do not.
        ("DiagService", {"ecu": "engine", "service": "VIN_Read", "sid": "0x22"}, False),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x19"}, False),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x3e"}, False),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x2E"}, True),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x14"}, True),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x31"}, True),
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "0x85"}, True),
        ("DiagService", {"ecu": "engine", "service": "VIN_Read"}, True),  # SID not known
        ("DiagService", {"ecu": "engine", "service": "X", "sid": "22"}, True),
    ],
)
def test_which_commands_change_state(name: str, params: dict[str, str], changes: bool) -> None:
    assert catalogue.changes_state(name, params) is changes


# -- the lock check of CommandService.submit (/api/v1/commands) --------------------------

CLEAR = ("ClearDTC", {"ecuAddress": "0x10"})
CLEAR_TRANSMISSION = ("ClearDTC", {"ecuAddress": "0x18"})
READ = ("ReadDTC", {"ecuAddress": "0x10"})
SESSION = ("DiagnosticSessionControl", {"ecuAddress": "0x10", "session": "extended"})
START = ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "start"})
RESULTS = ("RoutineControl", {"ecuAddress": "0x10", "routineId": "0x0201", "action": "results"})


class AnsweringVehicle:
    """Answers every command at once."""

    async def execute(self, request: DiagnosticRequest) -> AsyncIterator[Chunk]:
        yield Chunk({"ok": True}, True)


def _seed(conn: sqlite3.Connection) -> None:
    at = Clock().timestamp()
    insert_users(conn, ALICE, BOB, ADMIN)
    # A DoIP vehicle: every catalogue command runs on it.
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at, transport, doip_host, doip_port,"
        " doip_logical_address, doip_tester_address, doip_ecu_addresses)"
        " VALUES (?, 'WAUZZZ8V0KDP00042', 'Bench', 'Rig', 2024, 'disconnected', 'healthy', ?,"
        " 'doip', '192.0.2.1', 13400, 1, 3584, '[]')",
        (VEHICLE, at),
    )


def _with_commands(
    tmp_path: Path,
    scenario: Callable[[CommandService, LockService, CommandStore], Awaitable[None]],
) -> None:
    async def main() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        try:
            await db.write(_seed)
            store = CommandStore(db)
            pipeline = Pipeline(
                store, EventBus(64), AnsweringVehicle(), NoTelemetry(), PipelineSettings(5.0, 8)
            )
            locks = LockService(FakeClock())
            commands = CommandService(store, VehicleStore(db), pipeline, EventBus(64), locks=locks)
            try:
                async with asyncio.timeout(5):
                    await scenario(commands, locks, store)
            finally:
                await pipeline.drain(0)
                await pipeline.close()
        finally:
            await db.close()

    asyncio.run(main())


async def _submitted(store: CommandStore, who: Principal) -> list[str]:
    found, _ = await store.find(CommandFilter(user_id=who.user_id))
    return sorted(f"{c.command_name} {c.command_params.get('action', '')}".strip() for c in found)


def test_a_lock_refuses_another_engineers_state_changing_commands_only(tmp_path: Path) -> None:
    async def scenario(commands: CommandService, locks: LockService, store: CommandStore) -> None:
        lock = locks.take(ALICE, VEHICLE, None, None, 60)
        for name, params in (CLEAR, SESSION, START):
            with pytest.raises(PreconditionNotFulfilled) as refused:
                await commands.submit(BOB, VEHICLE, name, params, None)
            assert f"locked by alice until {lock.expires_at}" in refused.value.message
        for name, params in (READ, RESULTS):  # reads still work
            await commands.submit(BOB, VEHICLE, name, params, None)
        assert await _submitted(store, BOB) == ["ReadDTC", "RoutineControl results"]
        for name, params in (CLEAR, SESSION, START):  # the holder goes ahead
            await commands.submit(ALICE, VEHICLE, name, params, None)
        assert len(await _submitted(store, ALICE)) == 3

    _with_commands(tmp_path, scenario)


def test_an_ecu_lock_refuses_commands_to_that_ecu_only(tmp_path: Path) -> None:
    async def scenario(commands: CommandService, locks: LockService, store: CommandStore) -> None:
        locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
        with pytest.raises(PreconditionNotFulfilled, match=r"ECU 0x0010 .* locked by alice"):
            await commands.submit(BOB, VEHICLE, *CLEAR, None)
        for spelling in ("0x0010", "0X010"):  # the same ECU as 0x10
            with pytest.raises(PreconditionNotFulfilled, match=r"ECU 0x0010 .* locked by alice"):
                await commands.submit(BOB, VEHICLE, "ClearDTC", {"ecuAddress": spelling}, None)
        await commands.submit(BOB, VEHICLE, *CLEAR_TRANSMISSION, None)
        assert await _submitted(store, BOB) == ["ClearDTC"]

    _with_commands(tmp_path, scenario)


def test_a_broken_lock_is_told_to_its_holders_next_command_once(tmp_path: Path) -> None:
    async def scenario(commands: CommandService, locks: LockService, store: CommandStore) -> None:
        lock = locks.take(ALICE, VEHICLE, None, None, 60)
        locks.release(ADMIN, VEHICLE, lock.lock_id)
        await commands.submit(BOB, VEHICLE, *CLEAR, None)
        with pytest.raises(LockBroken, match="broken by root"):
            await commands.submit(ALICE, VEHICLE, *CLEAR, None)
        await commands.submit(ALICE, VEHICLE, *CLEAR, None)
        assert await _submitted(store, ALICE) == ["ClearDTC"]

    _with_commands(tmp_path, scenario)


# -- over HTTP: POST /api/v1/commands meets the app's one LockService -----------------------


def _me(server: Server, token: str) -> Principal:
    r = server.http.get("/api/v1/auth/me", headers=auth(token))
    assert r.status_code == 200, r.text
    me = r.json()
    return Principal(
        user_id=me["user_id"], username=me["username"], role=Role(me["role"]), session_id="-"
    )


def test_a_command_is_refused_over_http_while_another_engineer_holds_a_lock(
    server: Server,
) -> None:
    alice_token = server.create_engineer("alice")
    bob_token = server.token()  # the seeded engineer
    alice = _me(server, alice_token)
    vehicle = server.vehicle(bob_token)
    lock = server.call(
        lambda: server.services.locks.take(alice, vehicle["vehicle_id"], "0x10", "engine", 60)
    )
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(bob_token),
        json={
            "vehicle_id": vehicle["vehicle_id"],
            "command_name": "ClearDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    assert r.status_code == 409, r.text
    assert r.json()["error_code"] == "precondition-not-fulfilled"
    assert f"locked by alice until {lock.expires_at}" in r.json()["message"]
    assert server.query("SELECT count(*) FROM commands") == [(0,)]
    server.submit(bob_token, vehicle["vehicle_id"], "ReadDTC")  # reads still work
    server.submit(alice_token, vehicle["vehicle_id"], "ClearDTC")  # and so does the holder
    server.call(lambda: server.services.locks.release(alice, vehicle["vehicle_id"], lock.lock_id))
    server.submit(bob_token, vehicle["vehicle_id"], "ClearDTC")


# -- a lock covers what is queued (issue #19 item 5) ----------------------------------------


class _PausingStore(CommandStore):
    """Holds each insert until the test lets it go: a submit caught after its lock
    check, before its command reaches the lane."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.inserting = asyncio.Event()
        self.go = asyncio.Event()

    async def insert(self, command: Command, actor: Actor) -> None:
        self.inserting.set()
        await self.go.wait()
        await super().insert(command, actor)


def test_a_command_stored_while_a_lock_is_taken_is_withdrawn_before_it_runs(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        try:
            await db.write(_seed)
            store = _PausingStore(db)
            pipeline = Pipeline(
                store, EventBus(64), AnsweringVehicle(), NoTelemetry(), PipelineSettings(5.0, 8)
            )
            locks = LockService(FakeClock(), pipeline=pipeline)
            commands = CommandService(store, VehicleStore(db), pipeline, EventBus(64), locks=locks)
            async with asyncio.timeout(5):
                submitting = asyncio.create_task(commands.submit(BOB, VEHICLE, *CLEAR, None))
                await store.inserting.wait()  # bob's ClearDTC passed the lock check
                assert pipeline.queued(VEHICLE) == []
                locks.take(ALICE, VEHICLE, "0x10", "engine", 60)
                store.go.set()
                command = await submitting
                await pipeline.drain(5)  # every accepted command has ended
                ended = await store.get(command.command_id)
            await pipeline.close()
        finally:
            await db.close()
        assert ended is not None
        assert (ended.status, ended.error_code) == ("cancelled", "locked-out")
        assert (ended.error_message or "").startswith(LOCK_WITHDRAWAL), ended.error_message
        assert "ECU 0x0010 of vehicle" in str(ended.error_message)
        assert "locked by alice" in str(ended.error_message)
        assert ended.started_at is None  # never sent

    asyncio.run(main())


def test_a_lane_this_node_lost_takes_its_locks_and_notices_along(locks: LockService) -> None:
    """On a cluster, a node that lost a vehicle's lane (its lease) forgets that vehicle's
    locks and broken-lock notices: the lane's next owner decides them from then on."""
    locks.take(ALICE, VEHICLE, None, None, 60)
    broken = locks.take(BOB, OTHER_VEHICLE, "0x10", "engine", 60)
    locks.release(ADMIN, OTHER_VEHICLE, broken.lock_id)  # Bob is owed a lock-broken
    kept = locks.take(ALICE, OTHER_VEHICLE, "0x18", "transmission", 60)
    locks.forget_vehicles([VEHICLE])
    locks.check(BOB, VEHICLE, None)  # nothing in the way any more
    assert locks.locks(VEHICLE, None) == []
    with pytest.raises(LockBroken):  # the other vehicle's are untouched
        locks.check(BOB, OTHER_VEHICLE, "0x10")
    assert locks.locks(OTHER_VEHICLE, "0x18") == [kept]
    locks.release(ADMIN, OTHER_VEHICLE, kept.lock_id)
    locks.forget_vehicles([OTHER_VEHICLE])
    locks.check(ALICE, OTHER_VEHICLE, "0x18")  # her notice went with the lane

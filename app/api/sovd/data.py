"""A component's data: the list, its categories and groups, one value read now; a bound
component's data written (0x2E) and its configurations (varcoding, CDA's mapping). An
unbound component's data are the ISO 14229-1 identification items, read-only."""

from __future__ import annotations

import msgspec

from app.api.contract import Call, Result
from app.api.error_bodies import COMMAND_ID_HEADER
from app.api.sovd import described, schemas, tree
from app.api.sovd.types import (
    UNSET,
    Categories,
    CategoryRef,
    Configurations,
    DataList,
    DataRef,
    DataValue,
    DataWrite,
    GroupRef,
    Groups,
    SovdQuery,
)
from app.errors import MethodNotAllowed, NotFound
from app.services.sovd.data import IDENTIFICATION, item


async def list_data(call: Call[None, SovdQuery]) -> DataList:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.list_data(call, at)
    return DataList(
        items=[DataRef(id=d.id, name=d.name, category=d.category) for d in IDENTIFICATION]
    )


def _categories() -> list[str]:
    return list(dict.fromkeys(str(d.category) for d in IDENTIFICATION))


async def data_categories(call: Call[None, SovdQuery]) -> Categories:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.data_categories(call, at)
    return Categories(items=[CategoryRef(item=c) for c in _categories()])


async def data_groups(call: Call[None, SovdQuery]) -> Groups:
    """One group per category: the description groups data no finer."""
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.data_groups(call, at)
    return Groups(items=[GroupRef(id=c, category=c) for c in _categories()])


async def read_data(call: Call[None, SovdQuery]) -> Result:
    """The value now; with ``include-schema`` the schema of its ``data`` (SOVD's
    ReadValue: ``schemas``), not of the whole body."""
    at = await tree.target(call)
    if at.ecu.bound is not None:
        read = await described.read_data(call, at)
        if not call.query.include_schema:
            return read
        from app.descriptions import sovd_map

        layer = await call.services.sovd.described_calls.layer(at)
        found = sovd_map.find_data(layer, call.request.path_params["data_id"])
        assert found is not None  # it was just read
        body = msgspec.structs.replace(read.body, schema=schemas.described_data(found))
        return Result(body, read.status, read.headers)
    wanted = item(at.ecu, call.request.path_params["data_id"])
    value, command_id = await call.services.sovd.data.read(at, wanted)
    schema = schemas.unbound_data(wanted) if call.query.include_schema else UNSET
    return Result(
        DataValue(id=wanted.id, data=value, schema=schema),
        headers={COMMAND_ID_HEADER: command_id},
    )


def _unbound(name: str) -> str:
    return f"component {name} is bound to no ECU description"


async def write_data(call: Call[DataWrite, None]) -> Result:
    """A bound component's 0x2E service (``{id}_Write``); the others' data are read-only."""
    at = await tree.target(call)
    if at.ecu.bound is None:
        raise MethodNotAllowed(f"the data of {_unbound(at.ecu.name)} are read-only")
    return await described.write_data(call, at)


async def list_configurations(call: Call[None, SovdQuery]) -> Configurations:
    """A bound component's varcoding items (none: 404, as CDA); the others have none."""
    at = await tree.target(call)
    if at.ecu.bound is None:
        return Configurations(items=[])
    return await described.list_configurations(call, at)


async def read_configuration(call: Call[None, SovdQuery]) -> Result:
    """As CDA routes it: the data read of the same id (any data item)."""
    return await read_data(call)


async def write_configuration(call: Call[DataWrite, None]) -> Result:
    """A varcoding item's 0x2E service."""
    at = await tree.target(call)
    if at.ecu.bound is None:
        raise NotFound(f"{_unbound(at.ecu.name)}: it has no configurations")
    return await described.write_data(call, at, "configurations")

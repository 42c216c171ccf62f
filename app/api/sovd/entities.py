"""The server root of a vehicle, its components and the (empty) collections SOVD names."""

from __future__ import annotations

from app.api.contract import Call, Result
from app.api.sovd import described, tree
from app.api.sovd.types import (
    ComponentOut,
    Entities,
    EntityRef,
    Root,
    SovdInfo,
    SovdQuery,
    VendorInfo,
    VersionInfo,
)
from app.errors import BadRequest
from app.services.sovd.entities import components
from app.version import PACKAGE, version


async def version_info(call: Call[None, SovdQuery]) -> VersionInfo:
    found = await tree.vehicle(call)
    return VersionInfo(
        sovd_info=[
            SovdInfo(
                version=tree.SOVD_VERSION,
                base_uri=tree.base_uri(call, found),
                vendor_info=VendorInfo(name=PACKAGE, version=version()),
            )
        ]
    )


async def root(call: Call[None, SovdQuery]) -> Root:
    found = await tree.vehicle(call)
    base = tree.base_uri(call, found)
    return Root(
        id=found.vin,
        name=f"{found.make} {found.model} {found.year}",
        components=f"{base}/components",
        apps=f"{base}/apps",
        areas=f"{base}/areas",
        functions=f"{base}/functions",
        locks=f"{base}/locks",
    )


async def list_components(call: Call[None, SovdQuery]) -> Entities:
    found = await tree.vehicle(call)
    return Entities(
        items=[
            EntityRef(id=c.name, name=c.name, href=tree.component_uri(call, found, c))
            for c in components(found)
        ]
    )


async def empty_collection(call: Call[None, SovdQuery]) -> Entities:
    """Apps, areas, functions, a component's hosts and belongs-to: this vehicle has none."""
    # The vehicle (and the component) must exist: an empty list is not a 404.
    if "component" in call.request.path_params:
        await tree.target(call)
    else:
        await tree.vehicle(call)
    return Entities(items=[])


async def get_component(call: Call[None, SovdQuery]) -> ComponentOut:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.get_component(call, at)
    # Bound to no description: the generic tree (identification data, faults, sessions).
    ecu = at.ecu
    here = tree.component_uri(call, at.vehicle, ecu)
    return ComponentOut(
        id=ecu.name,
        name=ecu.name,
        ecu_address=ecu.ecu_address,
        data=f"{here}/data",
        data_categories=f"{here}/data-categories",
        data_groups=f"{here}/data-groups",
        faults=f"{here}/faults",
        modes=f"{here}/modes",
        locks=f"{here}/locks",
        hosts=f"{here}/hosts",
        belongs_to=f"{here}/belongs-to",
    )


async def detect_variant(call: Call[None, None]) -> Result:
    """``PUT`` on a bound component: variant detection forced now (CDA), 201."""
    at = await tree.target(call)
    if at.ecu.bound is None:
        raise BadRequest(f"component {at.ecu.name} is bound to no ECU description: no variant")
    return await described.detect_variant(call, at)

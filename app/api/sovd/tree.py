"""What every SOVD handler needs: the vehicle and component a path names, and the
absolute URIs of the tree (built from the request's Host, so clients can follow them)."""

from __future__ import annotations

import re
from typing import Any, Final

from app.api.contract import Call
from app.api.deps import scheme
from app.models import Vehicle
from app.services.sovd.entities import Component, Target, component

SOVD_VERSION: Final = "1.1"
# A Host header as a browser or curl sends it; anything else is not echoed into links.
_HOST: Final = re.compile(
    r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$"
)


def host(call: Call[Any, Any]) -> str:
    given = call.request.headers.get("host", "")
    if _HOST.fullmatch(given):
        return given
    server = call.request.scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"


def base_uri(call: Call[Any, Any], vehicle: Vehicle) -> str:
    """``<scheme>://<host>/sovd/vehicles/<VIN>/v1``."""
    return f"{scheme(call.request)}://{host(call)}/sovd/vehicles/{vehicle.vin}/v1"


def component_uri(call: Call[Any, Any], vehicle: Vehicle, ecu: Component) -> str:
    return f"{base_uri(call, vehicle)}/components/{ecu.name}"


async def vehicle(call: Call[Any, Any]) -> Vehicle:
    return await call.services.sovd.entities.vehicle(call.request.path_params["vin"])


async def target(call: Call[Any, Any]) -> Target:
    """The caller and the component the path names."""
    found = await vehicle(call)
    ecu = component(found, call.request.path_params["component"])
    return Target(call.who, call.client(), found, ecu)

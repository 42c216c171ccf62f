"""What every SOVD handler needs: the vehicle and component a path names, and the
absolute URIs of the tree.

The links' origin is never the client's ``Host`` header (a forged one would be echoed into
every link a client follows): it is ``SOVD_PUBLIC_URL`` when set; else, for a request from
a proxy in ``SOVD_TRUSTED_PROXIES``, the ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` it
set; else the address and port the connection reached the server at (its own listening
address, from the socket, not from anything the client sent)."""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.requests import HTTPConnection

from app.api.contract import Call
from app.api.deps import from_trusted_proxy, scheme
from app.config import Config
from app.models import Vehicle
from app.services.sovd.entities import Component, Target, component

SOVD_VERSION: Final = "1.1"
# A host[:port] as a proxy may forward it; anything else is not put into links.
_HOST: Final = re.compile(
    r"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$"
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def origin(conn: HTTPConnection, config: Config) -> str:
    """``<scheme>://<host>[:<port>]`` (and SOVD_PUBLIC_URL's path) that links start with."""
    if config.public_url is not None:
        return config.public_url
    how = scheme(conn)  # X-Forwarded-Proto only from a trusted proxy
    forwarded = _forwarded_host(conn)
    if forwarded is not None:
        return f"{how}://{forwarded}"
    server = conn.scope.get("server")
    host, port = (server[0], server[1]) if server else (config.host, config.port)
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    if port is None or _DEFAULT_PORTS.get(how) == port:
        return f"{how}://{host}"
    return f"{how}://{host}:{port}"


def _forwarded_host(conn: HTTPConnection) -> str | None:
    """X-Forwarded-Host from a trusted proxy: the last entry, the one that proxy set (a
    client's own entry comes before it)."""
    value = conn.headers.get("x-forwarded-host")
    if not value or not from_trusted_proxy(conn):
        return None
    last = value.rsplit(",", 1)[-1].strip()
    return last if _HOST.fullmatch(last) else None


def base_uri(call: Call[Any, Any], vehicle: Vehicle) -> str:
    """``<origin>/sovd/vehicles/<VIN>/v1``."""
    return f"{origin(call.request, call.services.config)}/sovd/vehicles/{vehicle.vin}/v1"


def component_uri(call: Call[Any, Any], vehicle: Vehicle, ecu: Component) -> str:
    return f"{base_uri(call, vehicle)}/components/{ecu.name}"


async def vehicle(call: Call[Any, Any]) -> Vehicle:
    return await call.services.sovd.entities.vehicle(call.request.path_params["vin"])


async def target(call: Call[Any, Any]) -> Target:
    """The caller and the component the path names."""
    found = await vehicle(call)
    ecu = component(found, call.request.path_params["component"])
    return Target(call.who, call.client(), found, ecu)

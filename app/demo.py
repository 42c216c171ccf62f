"""The demo's equipment, started only when asked for (``SOVD_DEMO_DATA``,
``SOVD_DEMO_EMULATOR``): the demo description stored into the library, and the ECU
emulator on loopback behind the demo fleet's DoIP vehicle. The demo fleet itself is
``app.services.vehicles``'s (``seed_demo``); ``app.main`` decides when each runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.services.descriptions import DescriptionLibrary
from app.services.vehicles import DEMO_DOIP_VIN, VehicleService
from app.vehicles.pdx.demo import DEMO_PDX_NAME, build_demo_pdx

if TYPE_CHECKING:
    from app.vehicles.emulator.server import DoipEmulator

log = logging.getLogger(__name__)

# Where SOVD_DEMO_EMULATOR's in-process ECU emulator listens (port: any free one).
EMULATOR_HOST = "127.0.0.1"


def provide_description(descriptions: DescriptionLibrary) -> None:
    """The demo description (``app.vehicles.pdx.demo``) into the description library, as
    the demo vehicles are seeded with their ECUs bound to it: built in the background
    (building takes a second), never over a file there; meanwhile it is listed as
    loading, as any description at start."""
    if descriptions.provide(DEMO_PDX_NAME, build_demo_pdx):
        log.info(
            "the demo description %s is being built",
            DEMO_PDX_NAME,
            extra={"event": "demo_description", "description": DEMO_PDX_NAME},
        )
    else:
        log.warning(
            "the demo description was not stored: a file named %s is there already (the"
            " demo ECUs are bound to the containers it has, if any)",
            DEMO_PDX_NAME,
            extra={"event": "demo_description_skipped", "description": DEMO_PDX_NAME},
        )


async def start_emulator(vehicles: VehicleService) -> tuple[DoipEmulator, bool]:
    """The ECU emulator on a free loopback port, and the demo fleet's DoIP vehicle
    pointing at it; the emulator (the caller closes it) and whether that vehicle was
    added now."""
    # Imported here: the DoIP emulator is demo equipment, not loaded unless asked for.
    from app.vehicles.emulator.server import DoipEmulator, EmulatorSettings

    emulator = DoipEmulator(EmulatorSettings(vin=DEMO_DOIP_VIN))
    port = await emulator.start(EMULATOR_HOST, 0)
    try:
        vehicle, added = await vehicles.add_doip_demo(EMULATOR_HOST, port)
    except BaseException:
        await emulator.close()  # nobody else holds it yet
        raise
    log.info(
        "ECU emulator listening on %s:%d for DoIP vehicle %s",
        EMULATOR_HOST,
        port,
        DEMO_DOIP_VIN,
        extra={"event": "demo_emulator", "vehicle_id": vehicle and vehicle.vehicle_id},
    )
    return emulator, added

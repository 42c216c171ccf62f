"""``python -m app.vehicles.emulator``: serve the emulated vehicle until SIGINT or SIGTERM.

Prints one JSON line when listening (with the port, useful with ``--port 0``), then logs
as JSON lines like the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

from app.logs import JsonFormatter
from app.vehicles.addresses import InvalidAddress, format_address, parse_address
from app.vehicles.emulator.ecus import DEFAULT_ECUS, DEFAULT_SPECS, EcuSpec, Timings, spec_for
from app.vehicles.emulator.server import PROFILES, DoipEmulator, EmulatorSettings

_DEFAULTS = EmulatorSettings()


def _address(raw: str) -> int:
    try:
        return parse_address(raw, "the address", "0x0001")
    except InvalidAddress as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ecus(raw: str) -> tuple[EcuSpec, ...]:
    """``0x0010,0x1001``: the default ECU at an address that has one, a plain one (named
    ``ecu-0x1001``) elsewhere."""
    specs: dict[int, EcuSpec] = {}
    for i, part in enumerate(raw.split(",")):
        try:
            address = parse_address(part.strip(), f"--ecus entry {i + 1}", "0x1001")
        except InvalidAddress as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        default = DEFAULT_SPECS.get(address)
        specs[address] = spec_for(default.name if default else f"ecu-0x{address:02x}", address)
    return tuple(specs.values())


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected seconds from 0 to 3600")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.vehicles.emulator",
        description="An emulated vehicle (DoIP entity with engine 0x0010, transmission 0x0018,"
        " abs 0x0028 and body 0x0040 ECUs, or those --ecus lists) for the SOVD service's"
        " DoIP connector.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=13400, help="TCP port (0: any free port)")
    parser.add_argument("--profile", choices=PROFILES, default="healthy")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (live values, flaky)")
    parser.add_argument(
        "--logical-address", type=_address, default=0x0001, help="the entity's DoIP address"
    )
    parser.add_argument(
        "--ecus",
        type=_ecus,
        default=DEFAULT_ECUS,
        help="the ECUs' logical addresses, comma-separated (such as 0x0010,0x1001): the"
        " default ECU where there is one, identification data only elsewhere",
    )
    parser.add_argument("--vin", default=_DEFAULTS.vin)
    parser.add_argument("--self-test-s", type=_seconds, default=_DEFAULTS.timings.self_test_s)
    parser.add_argument("--bleed-check-s", type=_seconds, default=_DEFAULTS.timings.bleed_check_s)
    parser.add_argument("--s3-s", type=_seconds, default=_DEFAULTS.timings.s3_s)
    parser.add_argument("--slow-s", type=_seconds, default=_DEFAULTS.slow_s)
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    args = parser.parse_args(argv)
    if len(args.vin) != 17 or not args.vin.isascii():
        parser.error("--vin must be 17 ASCII characters")
    return args


async def serve(args: argparse.Namespace) -> None:
    settings = EmulatorSettings(
        logical_address=args.logical_address,
        vin=args.vin,
        profile=args.profile,
        seed=args.seed,
        timings=Timings(args.self_test_s, args.bleed_check_s, args.s3_s),
        slow_s=args.slow_s,
        ecus=args.ecus,
    )
    emulator = DoipEmulator(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    port = await emulator.start(args.host, args.port)
    print(
        json.dumps(
            {
                "event": "emulator_listening",
                "host": args.host,
                "port": port,
                "logical_address": f"0x{settings.logical_address:04X}",
                "ecus": [format_address(a) for a in emulator.ecus],
                "profile": settings.profile,
            }
        ),
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emulator.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=args.log_level, handlers=[handler])
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

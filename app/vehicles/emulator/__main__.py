"""``python -m app.vehicles.emulator``: serve the emulated vehicle until SIGINT or SIGTERM.

Prints one JSON line when listening (with the port, useful with ``--port 0``), then logs
as JSON lines like the service.

Without ``--pdx`` the ECUs are the demo vehicle's of ``ecus.py`` (the demo description
with the demo scenario; the default four, or those ``--ecus 0x0010,0x1001`` lists, a
generic ECU where no demo ECU is). With ``--pdx FILE`` (repeatable) they are every
base variant of the file(s), answering from the description (``described.py``), each at
its logical address (special data ``LOGICAL-ADDRESS``, else the comparam
``CP_DoIPLogicalEcuAddress``); ``--ecus`` then names addresses by variant:
``--ecus ENGINE=0x1010,ABS=0x1028`` moves those two and gives an address to a variant
that has none. A variant left without an address, two at one address, or a name no
variant has: the command refuses to start (exit 2). ``--seed`` makes the described ECUs'
values reproducible; ``--self-test-s`` is how long their routines run, ``--s3-s`` their
session timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from app.logs import JsonFormatter
from app.vehicles.addresses import InvalidAddress, format_address, parse_address
from app.vehicles.emulator.described import described_specs, load_pdx
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


def _named_addresses(raw: str) -> dict[str, int]:
    """``ENGINE=0x1010,ABS=0x1028``: logical addresses of described base variants."""
    named: dict[str, int] = {}
    for i, part in enumerate(raw.split(",")):
        name, equals, address = part.strip().partition("=")
        if not equals or not name.strip():
            raise argparse.ArgumentTypeError(
                f"--ecus entry {i + 1} ({part.strip()!r}): with --pdx, name a base variant"
                " and its address, such as ENGINE=0x1010"
            )
        try:
            named[name.strip()] = parse_address(address.strip(), f"--ecus entry {i + 1}", "0x1010")
        except InvalidAddress as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return named


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("expected seconds from 0 to 3600")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.vehicles.emulator",
        description="An emulated vehicle (DoIP entity with engine 0x0010, transmission 0x0018,"
        " abs 0x0028 and body 0x0040 ECUs, or those --ecus lists, or the ECUs --pdx files"
        " describe) for the SOVD service's DoIP connector.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=13400, help="TCP port (0: any free port)")
    parser.add_argument("--profile", choices=PROFILES, default="healthy")
    parser.add_argument("--seed", type=int, default=None, help="RNG seed (live values, flaky)")
    parser.add_argument(
        "--logical-address", type=_address, default=0x0001, help="the entity's DoIP address"
    )
    parser.add_argument(
        "--pdx",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="an ODX description (PDX file; repeatable): emulate each of its base variants,"
        " answering as it describes, instead of the built-in ECUs",
    )
    parser.add_argument(
        "--ecus",
        default=None,
        help="the ECUs' logical addresses, comma-separated (such as 0x0010,0x1001): the"
        " default ECU where there is one, identification data only elsewhere; with --pdx,"
        " base variants' addresses (such as ENGINE=0x1010,ABS=0x1028)",
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
    args.described = ()
    try:
        if args.pdx:
            named = _named_addresses(args.ecus) if args.ecus is not None else {}
            args.ecus = ()
            args.described = described_specs([load_pdx(path) for path in args.pdx], named)
        else:
            args.ecus = _ecus(args.ecus) if args.ecus is not None else DEFAULT_ECUS
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(str(exc))
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
        described=args.described,
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
                "ecus": [format_address(a) for a in emulator.addresses],
                "described": {format_address(a): ecu.name for a, ecu in emulator.described.items()},
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

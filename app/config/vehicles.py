"""The variables of how vehicles are reached: ECU descriptions (PDX files), DoIP, the demo
fleet and the simulator (each with its default, parser and meaning)."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import parsing as parse
from app.config.declaring import var


@dataclass(frozen=True)
class VehicleConfig:
    pdx_max_bytes: int = var(
        "SOVD_PDX_MAX_BYTES",
        32 * 1024 * 1024,
        parse.int_in(1024, 1024 * 1024 * 1024),
        "an ECU description (PDX file) as uploaded or stored: the upload's own body"
        " cap instead of `SOVD_MAX_BODY_BYTES` (413 beyond)",
        section="ECU descriptions (PDX files)",
    )
    pdx_max_unpacked_bytes: int = var(
        "SOVD_PDX_MAX_UNPACKED_BYTES",
        256 * 1024 * 1024,
        parse.int_in(1024, 16 * 1024 * 1024 * 1024),
        "a PDX file unpacked, as its zip directory declares it and as counted while"
        " unpacking (413 beyond)",
    )
    # Below 0xFFFF: a zip64 count of 0xFFFF ("at least that many") always exceeds it.
    pdx_max_entries: int = var(
        "SOVD_PDX_MAX_ENTRIES",
        10_000,
        parse.int_in(1, 65534),
        "entries in one PDX file (413 beyond)",
    )
    doip_p2_ms: float = var(
        "SOVD_DOIP_P2_MS",
        2000.0,
        parse.float_in(1, 600_000),
        "P2: wait for a UDS answer, and the DoIP acknowledgement before it (ms)",
        section="DoIP",
    )
    doip_p2_star_ms: float = var(
        "SOVD_DOIP_P2_STAR_MS",
        5000.0,
        parse.float_in(1, 600_000),
        "P2*: wait after each 0x78 response pending (ms)",
    )
    doip_connect_timeout_s: float = var(
        "SOVD_DOIP_CONNECT_TIMEOUT_S",
        2.0,
        parse.float_in(0.01, 600),
        "TCP connect timeout to a DoIP entity",
    )
    doip_idle_close_s: float = var(
        "SOVD_DOIP_IDLE_CLOSE_S",
        60.0,
        parse.float_in(0.01, 86400),
        "close a DoIP link idle this long (not for always-on vehicles)",
    )
    doip_tester_present_s: float = var(
        "SOVD_DOIP_TESTER_PRESENT_S",
        2.0,
        parse.float_in(0.01, 3600),
        "TesterPresent interval in non-default sessions; also how often links are"
        " checked and always-on vehicles reconnected",
    )
    doip_backoff_first_s: float = var(
        "SOVD_DOIP_BACKOFF_FIRST_S",
        0.5,
        parse.float_in(0.001, 3600),
        "wait after a failed connection, doubling each time",
    )
    doip_backoff_max_s: float = var(
        "SOVD_DOIP_BACKOFF_MAX_S",
        30.0,
        parse.float_in(0.001, 86400),
        "longest wait between connection attempts",
    )
    demo_data: bool = var(
        "SOVD_DEMO_DATA",
        False,
        parse.boolean,
        "seed the demo fleet on a new database",
        section="Demo and simulator",
        default_note="(`make run`: `1`)",
    )
    demo_emulator: bool = var(
        "SOVD_DEMO_EMULATOR",
        False,
        parse.boolean,
        "start the DoIP ECU emulator on a free loopback port and add a DoIP demo"
        " vehicle pointing at it",
        default_note="(`make run`: `1`)",
    )
    sim_seed: int | None = var(
        "SOVD_SIM_SEED",
        None,
        int,
        "seed of the simulator's RNG (unset: random)",
    )
    sim_latency_ms: float = var(
        "SOVD_SIM_LATENCY_MS",
        50.0,
        parse.float_in(0, 60_000),
        "base latency per answer chunk (±50%); 0 answers at once",
    )
    sim_self_test_s: float = var(
        "SOVD_SIM_SELF_TEST_S",
        3.0,
        parse.float_in(0.01, 600),
        "how long a simulated ECU's self-test (routine 0x0201) runs",
    )
    sim_p_timeout: float = var(
        "SOVD_SIM_P_TIMEOUT",
        0.10,
        parse.probability,
        "`flaky` profile: chance a command gets no answer (the three chances together at most 1)",
    )
    sim_p_unreachable: float = var(
        "SOVD_SIM_P_UNREACHABLE",
        0.05,
        parse.probability,
        "`flaky` profile: chance the vehicle is unreachable",
    )
    sim_p_malformed: float = var(
        "SOVD_SIM_P_MALFORMED",
        0.03,
        parse.probability,
        "`flaky` profile: chance of an undecodable answer",
    )

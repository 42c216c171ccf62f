"""What a PDX describes: frozen dataclasses of ECUs, their sessions, DIDs, DTCs and
routines, each checked when it is made (a ``ValueError`` names what is wrong)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from app.vehicles import trouble_codes, uds

# ODX SHORT-NAMEs: letters, digits and underscores.
_SHORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROUTINE_ACTIONS: Final[dict[str, int]] = {"Start": 0x01, "Stop": 0x02, "RequestResults": 0x03}


def _check_short_name(name: str, what: str) -> None:
    if not _SHORT_NAME.match(name):
        raise ValueError(f"{what} {name!r} is not an ODX short name (letters, digits, _)")


@dataclass(frozen=True, slots=True)
class PdxSession:
    """A diagnostic session: a state of the ``Session`` chart and its ``<name>_Start``."""

    name: str  # the state's short name: "Default", "Extended"
    id: int  # the 0x10 subfunction

    def __post_init__(self) -> None:
        _check_short_name(self.name, "session")
        if not 0 < self.id < 0x80:
            raise ValueError(f"session id 0x{self.id:02X} is not a 0x10 subfunction")


DEFAULT: Final = PdxSession("Default", uds.DEFAULT_SESSION)
EXTENDED: Final = PdxSession("Extended", uds.EXTENDED_SESSION)


@dataclass(frozen=True, slots=True)
class PdxDid:
    """A data identifier read with 0x22, encoded as ``app.vehicles.uds.DidCodec`` does.

    ``text``: ASCII, ``size`` bytes (None: to the end of the answer). ``names``: one
    byte, a text table (raw -> name). Otherwise an unsigned big-endian number of
    ``size`` bytes (1 when None), ``physical = raw * scale + offset`` in ``unit``.
    """

    did: int
    name: str  # the service is ``<name>_Read``, its value parameter ``<name>``
    long_name: str | None = None
    size: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    text: bool = False
    names: tuple[tuple[int, str], ...] = ()
    # Its services' functional class: "IdentData", "CurrentData", ...; "VarCoding" (any
    # case) makes it a SOVD configuration (CDA's varcoding). None: "Data".
    category: str | None = None
    sessions: tuple[str, ...] = ()  # states it needs (any of them); (): any session
    writable: bool = False  # also ``<name>_Write`` (0x2E <did> <value>), answered 6E <did>

    def __post_init__(self) -> None:
        _check_short_name(self.name, "DID name")
        if not 0 <= self.did <= 0xFFFF:
            raise ValueError(f"DID 0x{self.did:X} does not fit two bytes")
        if self.size is not None and self.size < 1:
            raise ValueError(f"{self.name}: size must be at least 1 byte")
        if self.scale == 0:
            raise ValueError(f"{self.name}: scale must not be 0")

    @classmethod
    def from_codec(
        cls,
        codec: uds.DidCodec,
        name: str,
        long_name: str | None = None,
        category: str | None = None,
    ) -> PdxDid:
        """The DID as the project's codec encodes it."""
        return cls(
            did=codec.did,
            name=name,
            long_name=long_name,
            size=codec.size,
            scale=codec.scale,
            offset=codec.offset,
            unit=codec.unit,
            text=codec.text,
            names=codec.names,
            category=category,
        )


@dataclass(frozen=True, slots=True)
class PdxDtc:
    """A DTC the ECU may report: its SAE display code (``P0171``), the failure type byte
    (the trouble code is ``trouble_codes.dtc_number(code, ftb)``), its text and level (1 most
    severe .. 4)."""

    code: str
    text: str
    level: int | None = None
    ftb: int = 0

    def __post_init__(self) -> None:
        trouble_codes.dtc_number(self.code, self.ftb)  # ValueError for a code that is not one

    @property
    def trouble_code(self) -> int:
        return trouble_codes.dtc_number(self.code, self.ftb)

    @property
    def short_name(self) -> str:
        """``P0171``; with a failure type, ``P0171_13`` (one code, several DTCs)."""
        return self.code if self.ftb == 0 else f"{self.code}_{self.ftb:02X}"


_RESERVED_ROUTINE_NAMES: Final = frozenset({"SID_RQ", "RoutineControlType", "RoutineId"})


@dataclass(frozen=True, slots=True)
class PdxNumber:
    """A routine's request parameter: an unsigned big-endian number of ``size`` bytes,
    ``physical = raw * scale + offset`` in ``unit``; ``low``/``high``: the physical
    limits the ECU takes (written as the DOP's INTERNAL-CONSTR, the raw limits; a value
    outside them is refused with 0x31 requestOutOfRange), None: the coded range."""

    name: str
    size: int = 1
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        _check_short_name(self.name, "parameter name")
        if not 1 <= self.size <= 4:
            raise ValueError(f"{self.name}: size is 1 to 4 bytes")
        if self.scale <= 0:
            raise ValueError(f"{self.name}: scale must be above 0")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.name}: low {self.low} is above high {self.high}")
        for limit in (self.low, self.high):
            if limit is not None:
                self.raw(limit)  # ValueError: outside the coded range, or between two raws

    @property
    def integral(self) -> bool:
        """Whether every physical value is a whole number (then an integer type)."""
        return float(self.scale).is_integer() and float(self.offset).is_integer()

    def raw(self, physical: float) -> int:
        """The raw value of a physical one (``ValueError`` unless it is exactly one)."""
        raw = (physical - self.offset) / self.scale
        whole = round(raw)
        if abs(raw - whole) > 1e-9 or not 0 <= whole < 1 << (8 * self.size):
            raise ValueError(
                f"{self.name}: {physical} is no raw value of {self.size} byte(s) with scale"
                f" {self.scale} and offset {self.offset}"
            )
        return whole


@dataclass(frozen=True, slots=True)
class PdxChoice:
    """A routine's request parameter: one of ``names`` (raw -> name, a text table) in
    ``size`` bytes."""

    name: str
    names: tuple[tuple[int, str], ...]
    size: int = 1

    def __post_init__(self) -> None:
        _check_short_name(self.name, "parameter name")
        if not 1 <= self.size <= 4:
            raise ValueError(f"{self.name}: size is 1 to 4 bytes")
        if not self.names:
            raise ValueError(f"{self.name}: an enumeration has at least one value")
        raws = [raw for raw, _ in self.names]
        texts = [text for _, text in self.names]
        if len(set(raws)) != len(raws) or len(set(texts)) != len(texts):
            raise ValueError(f"{self.name}: raw values and names must be unique")
        if not all(0 <= raw < 1 << (8 * self.size) for raw in raws):
            raise ValueError(f"{self.name}: a raw value does not fit {self.size} byte(s)")
        if not all(text.strip() for text in texts):
            raise ValueError(f"{self.name}: a value's name is empty")


RoutineParameter = PdxNumber | PdxChoice


@dataclass(frozen=True, slots=True)
class PdxRoutine:
    """A routine (0x31): a service ``<name>_<action>`` per action, each answered with the
    routine id and the status record of ``app.vehicles.uds.RoutineStatus``.
    ``parameters``: what its Start request carries after the routine id, in order
    (``PdxNumber``, ``PdxChoice``); Stop and RequestResults carry none."""

    routine_id: int
    name: str  # "SelfTest"
    long_name: str | None = None
    actions: tuple[str, ...] = ("Start", "Stop", "RequestResults")
    sessions: tuple[str, ...] = ()  # states it needs (any of them); (): any session
    parameters: tuple[RoutineParameter, ...] = ()

    def __post_init__(self) -> None:
        _check_short_name(self.name, "routine name")
        if not 0 <= self.routine_id <= 0xFFFF:
            raise ValueError(f"routine id 0x{self.routine_id:X} does not fit two bytes")
        unknown = set(self.actions) - set(ROUTINE_ACTIONS)
        if unknown or not self.actions:
            raise ValueError(f"{self.name}: actions are some of {', '.join(ROUTINE_ACTIONS)}")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names) or _RESERVED_ROUTINE_NAMES & set(names):
            raise ValueError(
                f"{self.name}: parameter names must be unique and none of"
                f" {', '.join(sorted(_RESERVED_ROUTINE_NAMES))}"
            )
        if self.parameters and "Start" not in self.actions:
            raise ValueError(f"{self.name}: parameters are its Start's, and it has no Start")


# One matching parameter of an ECU-VARIANT-PATTERN: (the base variant's service, its
# response parameter, the expected value as odxtools compares it: the physical value's
# text, such as "ENG 04.12.00" or "257").
Match = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class PdxVariant:
    """An ECU variant of the ECU's base variant: matched when all matching parameters of
    one of its ``patterns`` (ECU-VARIANT-PATTERNs) hold; ``dids``: ``<name>_Read``
    services only this variant has (the base variant's services are inherited)."""

    name: str
    patterns: tuple[tuple[Match, ...], ...]
    dids: tuple[PdxDid, ...] = ()

    def __post_init__(self) -> None:
        _check_short_name(self.name, "ECU variant")
        if not self.patterns or not all(self.patterns):
            raise ValueError(f"{self.name}: an ECU variant has patterns, each of matches")
        for service, parameter, _ in (m for pattern in self.patterns for m in pattern):
            _check_short_name(service, "pattern service")
            _check_short_name(parameter, "pattern parameter")


# The DTC settings of ISO 14229-1 (0x85 0x01 / 0x02): ``DTC_Setting_Mode_On`` / ``_Off``.
DTC_SETTING_ON_OFF: Final = (("On", 0x01), ("Off", 0x02))


@dataclass(frozen=True, slots=True)
class PdxEcu:
    """One ECU: a diag layer container and its base variant, both named ``short_name``."""

    short_name: str  # "ENGINE"
    long_name: str | None = None
    logical_address: int | None = None
    sessions: tuple[PdxSession, ...] = (DEFAULT, EXTENDED)
    dids: tuple[PdxDid, ...] = ()
    dtcs: tuple[PdxDtc, ...] = ()
    routines: tuple[PdxRoutine, ...] = ()
    clear_sessions: tuple[str, ...] = ()  # states ClearDTC needs (any of them); (): any
    fault_memory: bool = True  # the 0x19 0x02 and 0x14 services
    # ``DTC_Setting_Mode_<name>`` (0x85 <type>) per (name, type), answered C5 <type>:
    # ``DTC_SETTING_ON_OFF`` and any extra values (CDA's TimeTravelDTCsOn 0x42, say).
    dtc_settings: tuple[tuple[str, int], ...] = ()
    # ``FaultMem_ReportDTCSnapshotRecordByDTCNumber`` (19 04 <dtc> <record>) and
    # ``FaultMem_ReportDTCExtDataRecordByDTCNumber`` (19 06 <dtc> <record>); with the
    # fault memory only.
    snapshots: bool = False
    extended_data: bool = False
    variants: tuple[PdxVariant, ...] = ()  # ECU variants of its base variant

    def __post_init__(self) -> None:
        _check_short_name(self.short_name, "ECU short name")
        if not self.sessions:
            raise ValueError(f"{self.short_name}: an ECU has at least one session")
        states = {s.name for s in self.sessions}
        for what, names in (
            ("sessions", [s.name for s in self.sessions]),
            ("DIDs", [d.name for d in self.dids]),
            ("DID ids", [f"{d.did}" for d in self.dids]),
            ("DTCs", [d.trouble_code for d in self.dtcs]),
            ("routines", [r.name for r in self.routines]),
            ("DTC settings", [n for n, _ in self.dtc_settings]),
            ("DTC setting types", [f"{t}" for _, t in self.dtc_settings]),
            ("variants", [self.short_name, *(v.name for v in self.variants)]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{self.short_name}: {what} must be unique")
        needed = [
            *self.clear_sessions,
            *(s for did in self.dids for s in did.sessions),
            *(s for routine in self.routines for s in routine.sessions),
        ]
        unknown = sorted(set(needed) - states)
        if unknown:
            raise ValueError(f"{self.short_name}: no session named {', '.join(unknown)}")
        for name, kind in self.dtc_settings:
            _check_short_name(name, "DTC setting")
            if not 0 < kind < 0x80:
                raise ValueError(f"DTC setting type 0x{kind:02X} is not a 0x85 subfunction")
        if (self.snapshots or self.extended_data) and not self.fault_memory:
            raise ValueError(f"{self.short_name}: snapshots and extended data need fault_memory")


@dataclass(frozen=True, slots=True)
class PdxSpec:
    """A whole description: its ECUs, and what the PDX's catalogue is called."""

    ecus: tuple[PdxEcu, ...]
    name: str = "SOVD_DEMO"
    revision: str = "1.0"
    date: str = "2024-01-01T00:00:00+00:00"  # the doc revision's date (fixed: deterministic)

    def __post_init__(self) -> None:
        _check_short_name(self.name, "PDX name")
        names = [ecu.short_name for ecu in self.ecus]
        if not names or len(set(names)) != len(names):
            raise ValueError("a PDX spec has at least one ECU, with unique short names")

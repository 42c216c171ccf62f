"""The SOVD command catalogue and parameter validation. Pure: no I/O.

The catalogue is data: each command names its parameters with a JSON-Schema-style
pattern, so the same table validates requests, documents itself at
``GET /api/v1/catalogue``, and can be extended by adding one entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.vehicles.addresses import ADDRESS_PATTERN, InvalidAddress, canonical_address
from app.vocabulary import CommandName

# The parameter naming the ECU a command goes to: a logical address (two bytes; 0x10 is
# 0x0010), checked and spelt by ``app.vehicles.addresses``.
ECU_ADDRESS_PARAM: Final = "ecuAddress"
ECU_ADDRESS = ADDRESS_PATTERN
DATA_ID = r"^0x[0-9A-Fa-f]{4}$"
# A DTC: its display code (P0420: every failure type of it) or its three bytes (042013).
DTC_CODE = r"^([PCBU][0-9A-F]{4}|[0-9A-F]{6})$"


class InvalidParams(ValueError):
    """The command name or its parameters do not match the catalogue."""


class InvalidResponse(ValueError):
    """A vehicle's answer could not be decoded."""


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    pattern: str  # a string's pattern ("" for an object)
    description: str
    required: bool = True
    kind: str = "string"  # or "object" (DiagService's params: checked by the description)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    command_name: CommandName
    description: str
    params: tuple[Param, ...]

    def params_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                p.name: {"type": "string", "pattern": p.pattern, "description": p.description}
                if p.kind == "string"
                else {"type": p.kind, "description": p.description}
                for p in self.params
            },
            "required": [p.name for p in self.params if p.required],
            "additionalProperties": False,
        }


# DiagService: a bound ECU by its component id, a service of its description by short name;
# its SID (one byte in hex, as stored) is filled in when it is checked.
SID_PARAM: Final = "sid"
SID = r"^0x[0-9A-Fa-f]{2}$"
COMPONENT_ID = r"^[a-z][a-z0-9-]{0,31}$"
SERVICE_NAME = r"^[A-Za-z0-9_]{1,128}$"

# The diagnostic sessions a client may ask for (UDS 0x10 sub-functions 0x01, 0x03).
SESSIONS: Final = ("default", "extended")

_ECU = Param(
    ECU_ADDRESS_PARAM,
    ECU_ADDRESS,
    "ECU logical address, two bytes in hex from 0x0001 to 0xFFFF such as 0x0010 (0x10 is 0x0010)",
)

CATALOGUE: Final[dict[str, CommandSpec]] = {
    spec.command_name: spec
    for spec in (
        CommandSpec(
            CommandName.READ_DTC,
            "Read the diagnostic trouble codes stored in an ECU: one chunk per DTC, "
            "then a summary chunk.",
            (_ECU,),
        ),
        CommandSpec(
            CommandName.CLEAR_DTC,
            "Clear the stored diagnostic trouble codes of an ECU: all of them, or the one given.",
            (
                _ECU,
                Param(
                    "dtcCode",
                    DTC_CODE,
                    "one DTC: its display code such as P0420 (each failure type of it)"
                    " or its three bytes in hex such as 042000 (that one only)",
                    required=False,
                ),
            ),
        ),
        CommandSpec(
            CommandName.READ_DATA_BY_ID,
            "Read one data identifier, such as engine RPM (0x010C), vehicle speed (0x010D) "
            "or coolant temperature (0x0105).",
            (_ECU, Param("dataId", DATA_ID, "data identifier, two bytes in hex such as 0x010C")),
        ),
        CommandSpec(
            CommandName.DIAGNOSTIC_SESSION_CONTROL,
            "Switch an ECU's diagnostic session (UDS 0x10); on a DoIP vehicle a "
            "non-default session is kept alive with TesterPresent while the vehicle stays "
            "connected.",
            (
                _ECU,
                Param("session", f"^({'|'.join(SESSIONS)})$", " or ".join(SESSIONS)),
            ),
        ),
        CommandSpec(
            CommandName.ROUTINE_CONTROL,
            "Start or stop an ECU routine, or read its results (UDS 0x31), such as the "
            "self-test 0x0201; run starts it and follows it to its end: one chunk per "
            "progress change, then the end state (stopped on the ECU if the command is "
            "cancelled first).",
            (
                _ECU,
                Param("routineId", DATA_ID, "routine identifier such as 0x0201"),
                Param("action", r"^(start|stop|results|run)$", "start, stop, results or run"),
            ),
        ),
        CommandSpec(
            CommandName.DIAG_SERVICE,
            "Any service of an ECU bound to its description (a PDX file), by the service's"
            " short name: the request encoded from params (physical values) and the answer"
            " decoded by the description, one chunk with the parameters and the request and"
            " response bytes in hex. GET /api/v1/vehicles/{id}/services lists each bound"
            " ECU's services and their parameters.",
            (
                Param(
                    "ecu",
                    COMPONENT_ID,
                    "the bound ECU: its component id, the container's short name lower-cased"
                    " such as flxc1000",
                ),
                Param("service", SERVICE_NAME, "the service's short name (any case)"),
                Param(
                    "params",
                    "",
                    "the request's parameters by short name, physical values (numbers,"
                    " strings, hex for byte fields); leave out those with a default",
                    required=False,
                    kind="object",
                ),
                Param(
                    ECU_ADDRESS_PARAM,
                    ECU_ADDRESS,
                    "filled in by the service with the bound ECU's address (as the history"
                    " shows it); if given, it must be that address",
                    required=False,
                ),
                Param(
                    SID_PARAM,
                    SID,
                    "filled in by the service with the service's SID from the description"
                    " (0x22, 0x2E, ...: whether another user's lock refuses it); if given,"
                    " it must be that SID",
                    required=False,
                ),
            ),
        ),
    )
}
_COMPILED: Final = {
    spec.command_name: {p.name: (re.compile(p.pattern), p) for p in spec.params}
    for spec in CATALOGUE.values()
}


def validate(command_name: object, params: object) -> tuple[CommandName, dict[str, Any]]:
    """Check a command against the catalogue; return its name and normalised params."""
    if not isinstance(command_name, str) or command_name not in CATALOGUE:
        known = ", ".join(CATALOGUE)
        raise InvalidParams(f"command_name {command_name!r} is not a known command ({known})")
    if not isinstance(params, dict):
        raise InvalidParams("command_params must be an object")
    command = CommandName(command_name)
    spec = _COMPILED[command]
    for key in params:
        if key not in spec:
            allowed = ", ".join(spec)
            raise InvalidParams(
                f"command_params.{key} is not a parameter of {command_name} (allowed: {allowed})"
            )
    clean: dict[str, Any] = {}
    for name, (regex, param) in spec.items():
        if name not in params:
            if param.required:
                raise InvalidParams(f"command_params.{name} is required for {command_name}")
            continue
        value = params[name]
        if param.kind == "object":
            if not isinstance(value, dict):
                raise InvalidParams(
                    f"command_params.{name} must be an object ({param.description})"
                )
            clean[name] = value
            continue
        if param.pattern == ECU_ADDRESS:
            try:
                clean[name] = canonical_address(value, f"command_params.{name}")
            except InvalidAddress as exc:
                raise InvalidParams(str(exc)) from None
            continue
        if not isinstance(value, str) or regex.fullmatch(value) is None:
            raise InvalidParams(
                f"command_params.{name} must match {param.pattern} ({param.description})"
            )
        clean[name] = _canonical(param, value)
    return command, clean


# Commands that change an ECU's state (its faults, its session, a routine): another
# user's lock refuses them. Reading a routine's results changes nothing.
# A DiagService changes state unless its service's SID (``sid``, stored with its params
# when it is checked) is a read: ReadDataByIdentifier, ReadDTCInformation, TesterPresent
# (as CDA, whose reads ignore locks); one without a known SID counts as changing state.
STATE_CHANGING: Final = frozenset(
    {
        CommandName.CLEAR_DTC,
        CommandName.DIAGNOSTIC_SESSION_CONTROL,
        CommandName.ROUTINE_CONTROL,
        CommandName.DIAG_SERVICE,
    }
)
_READ_ONLY_ACTIONS: Final[dict[str, frozenset[str]]] = {
    CommandName.ROUTINE_CONTROL: frozenset({"results"})
}
# UDS services that only read: 0x22 ReadDataByIdentifier, 0x19 ReadDTCInformation,
# 0x3E TesterPresent.
READ_ONLY_SIDS: Final = frozenset({0x22, 0x19, 0x3E})


def _sid_of(value: object) -> int | None:
    if not isinstance(value, str) or re.fullmatch(SID, value) is None:
        return None
    return int(value, 16)


def changes_state(command_name: str, params: Mapping[str, Any]) -> bool:
    """Whether the command changes the vehicle's state (so a lock stands in its way); a
    DiagService by its ``sid`` (without one: it does)."""
    if command_name not in STATE_CHANGING:
        return False
    if command_name == CommandName.DIAG_SERVICE:
        return _sid_of(params.get(SID_PARAM)) not in READ_ONLY_SIDS
    return params.get("action") not in _READ_ONLY_ACTIONS.get(command_name, frozenset())


def _canonical(param: Param, value: str) -> str:
    """One spelling per value, as stored and compared: ``0x1a`` -> ``0x1A``, ``p0420`` ->
    ``P0420`` (an operation's executions are found by their parameters). An ECU address
    is spelt by ``canonical_address`` (``0x10`` -> ``0x0010``)."""
    if param.pattern in (DATA_ID, SID):
        return "0x" + value[2:].upper()
    if param.pattern == DTC_CODE:
        return value.upper()
    return value

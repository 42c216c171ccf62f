"""Modes: ``session`` (0x10 session control) and ``dtcsetting`` (0x85 control DTC
setting), their values from the services' names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService

from app.descriptions.sovd_map.common import (
    CONTROL_DTC_SETTING,
    SESSION_CONTROL,
    _once,
    _with_sid,
)

SESSION_SUFFIX: Final = "_start"
DTC_SETTING_PREFIX: Final = "dtc_setting_mode_"


@dataclass(frozen=True, slots=True)
class ModeValue:
    value: str  # lowercased: "extended", "off"
    name: str  # case kept: "Extended", "Off"
    service: DiagService
    state: str | None = None  # the state the service moves to ("Extended"), if it says


@dataclass(frozen=True, slots=True)
class Mode:
    id: str  # "session" or "dtcsetting"
    name: str  # "Diagnostic session", "DTC setting" (CDA's names)
    values: tuple[ModeValue, ...]

    @property
    def possible_values(self) -> tuple[str, ...]:
        return tuple(v.value for v in self.values)

    def value(self, wanted: str) -> ModeValue | None:
        """The value ``wanted``, ignoring case."""
        return next((v for v in self.values if v.value == wanted.lower()), None)


def _target_state(service: DiagService) -> str | None:
    targets = {t.target_state.short_name for t in service.state_transitions}
    return targets.pop() if len(targets) == 1 else None


def _session_value(service: DiagService) -> ModeValue:
    name = service.short_name
    if name.lower().endswith(SESSION_SUFFIX) and len(name) > len(SESSION_SUFFIX):
        name = name[: -len(SESSION_SUFFIX)]
    return ModeValue(name.lower(), name, service, _target_state(service) or name)


def _dtc_setting_value(service: DiagService) -> ModeValue:
    name = service.short_name
    if name.lower().startswith(DTC_SETTING_PREFIX) and len(name) > len(DTC_SETTING_PREFIX):
        name = name[len(DTC_SETTING_PREFIX) :]
    return ModeValue(name.lower(), name, service)


def _unique(values: Iterable[ModeValue]) -> tuple[ModeValue, ...]:
    found: dict[str, ModeValue] = {}
    for value in values:
        found.setdefault(value.value, value)
    return tuple(found.values())


@_once
def modes(layer: DiagLayer) -> tuple[Mode, ...]:
    """``session`` and ``dtcsetting``, each only if the layer has such services."""
    found = []
    sessions = _unique(_session_value(s) for s in _with_sid(layer, SESSION_CONTROL))
    if sessions:
        found.append(Mode("session", "Diagnostic session", sessions))
    settings = _unique(_dtc_setting_value(s) for s in _with_sid(layer, CONTROL_DTC_SETTING))
    if settings:
        found.append(Mode("dtcsetting", "DTC setting", settings))
    return tuple(found)


def find_mode(layer: DiagLayer, mode_id: str) -> Mode | None:
    return next((m for m in modes(layer) if m.id == mode_id.lower()), None)

"""The fault memory (0x19 read DTC information, 0x14 clear): the fault services, the
0x19 0x02 answer decoded as CDA's faults (by the description, else by ISO 14229-1's
layout), and the 0x19 0x04 / 0x06 environment data request of one DTC."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.dtcdop import DtcDop
from odxtools.exceptions import OdxError
from odxtools.parameters.valueparameter import ValueParameter

from app.descriptions.codec import Decoded, Encoded
from app.descriptions.fault_status import STATUS_KEYS
from app.descriptions.parameters import CodecError
from app.descriptions.sovd_map.common import (
    CLEAR_DTCS,
    READ_DTC_INFORMATION,
    REPORT_BY_STATUS_MASK,
    REPORT_EXTENDED_DATA_RECORD,
    REPORT_SNAPSHOT_RECORD,
    _codec,
    _once,
    _with_sid,
    in_functional_class,
    subfunction,
)

FAULTMEM: Final = "faultmem"
# ISO 14229-1 D.2, lowest bit first, as CDA's FaultStatus names them.
STATUS_BITS: Final = STATUS_KEYS


@dataclass(frozen=True, slots=True)
class FaultServices:
    report_by_status_mask: DiagService | None  # 0x19 0x02
    snapshots: DiagService | None  # 0x19 0x04
    extended_data: DiagService | None  # 0x19 0x06
    clear: DiagService | None  # 0x14 (FUNCT-CLASS FaultMem preferred, as CDA)


@_once
def fault_services(layer: DiagLayer) -> FaultServices:
    by_sub: dict[int, DiagService] = {}
    for service in _with_sid(layer, READ_DTC_INFORMATION):
        code = subfunction(service)
        if code is not None:
            by_sub.setdefault(code, service)
    clears = sorted(
        _with_sid(layer, CLEAR_DTCS), key=lambda s: not in_functional_class(s, FAULTMEM)
    )
    return FaultServices(
        report_by_status_mask=by_sub.get(REPORT_BY_STATUS_MASK),
        snapshots=by_sub.get(REPORT_SNAPSHOT_RECORD),
        extended_data=by_sub.get(REPORT_EXTENDED_DATA_RECORD),
        clear=clears[0] if clears else None,
    )


@dataclass(frozen=True, slots=True)
class FaultStatus:
    """A DTC status byte (ISO 14229-1 D.2) with CDA's names for its bits."""

    mask: int

    def bit(self, name: str) -> bool:
        return bool(self.mask & (1 << STATUS_BITS.index(name)))

    def as_dict(self) -> dict[str, Any]:
        """CDA's ``status``: each bit by its snake_case name, ``mask`` as 2 hex digits."""
        bits: dict[str, Any] = {name: self.bit(name) for name in STATUS_BITS}
        bits["mask"] = f"{self.mask:02X}"
        return bits


@dataclass(frozen=True, slots=True)
class Fault:
    trouble_code: int
    display_code: str | None  # DISPLAY-TROUBLE-CODE; None where the description has none
    fault_name: str | None  # the DTC's TEXT; None for a DTC the description lacks
    severity: int  # the DTC's LEVEL, 0 without one (CDA)
    status: FaultStatus
    scope: str = "FaultMem"

    @property
    def code(self) -> str:
        """The trouble code as 6 upper-case hex digits: ``"017100"``."""
        return f"{self.trouble_code:06X}"

    def as_dict(self) -> dict[str, Any]:
        """CDA's Fault: ``display_code`` left out when there is none."""
        fault: dict[str, Any] = {"code": self.code, "scope": self.scope}
        if self.display_code is not None:
            fault["display_code"] = self.display_code
        fault["fault_name"] = self.fault_name
        fault["severity"] = self.severity
        fault["status"] = self.status.as_dict()
        return fault


def _fault(dtc: DiagnosticTroubleCode, status: int) -> Fault:
    return Fault(
        trouble_code=dtc.trouble_code,
        display_code=dtc.display_trouble_code or None,
        fault_name=dtc.text.text if dtc.text is not None else None,
        severity=dtc.level if dtc.level is not None else 0,
        status=FaultStatus(status),
    )


def _undescribed(trouble_code: int, status: int) -> Fault:
    """A DTC the description does not define: its code and status, nothing else."""
    return Fault(trouble_code, None, None, 0, FaultStatus(status))


@_once
def known_dtcs(layer: DiagLayer) -> tuple[DiagnosticTroubleCode, ...]:
    """Every DTC the layer's DTC DOPs define, in their order."""
    return tuple(dtc for dop in layer.diag_data_dictionary_spec.dtc_dops for dtc in dop.dtcs)


def _normal(name: str) -> str:
    return name.replace("_", "").lower()


_BIT_BY_NORMAL: Final = {_normal(name): i for i, name in enumerate(STATUS_BITS)}


def _status_of(record: Mapping[str, Any]) -> int | None:
    """The status byte of a decoded record: its eight bit parameters (true/1), or one
    integer parameter whose name says status."""
    status, bits = 0, 0
    for name, value in record.items():
        index = _BIT_BY_NORMAL.get(_normal(name))
        if index is not None:
            bits += 1
            if value in (True, 1, "true", "1"):
                status |= 1 << index
    if bits:
        return status
    for name, value in record.items():
        if "status" in name.lower() and isinstance(value, int) and not isinstance(value, bool):
            return value & 0xFF
    return None


def _records(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The DTC records of a decoded 0x19 0x02 answer: the list of structures in it."""
    for value in params.values():
        if isinstance(value, list) and all(isinstance(r, dict) for r in value):
            return value
    return []


def _by_description(service: DiagService, answer: bytes) -> list[Fault]:
    """The records as the response's structures say, OdxError if they do not decode
    (odxtools refuses a DTC its DOP does not list)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = service.decode_message(answer)
    found = []
    for index, record in enumerate(_records(message.param_dict)):
        dtc = next((v for v in record.values() if isinstance(v, DiagnosticTroubleCode)), None)
        status = _status_of(record)
        offset = 3 + 4 * index + 3  # ISO 14229-1: DTC (3 bytes) and status, after 59 02 mask
        if status is None and offset < len(answer):
            status = answer[offset]
        if dtc is None or status is None:
            raise CodecError(
                f"the answer to {service.short_name}: record {index} has no DTC", "answer"
            )
        found.append(_fault(dtc, status))
    return found


def _by_iso_layout(layer: DiagLayer, answer: bytes) -> list[Fault]:
    """The records by ISO 14229-1's layout (59 02 mask, then DTC (3 bytes) and status
    per record), each DTC looked up in the DTC DOPs: for an answer holding a DTC the
    description lacks."""
    known = {dtc.trouble_code: dtc for dtc in known_dtcs(layer)}
    found = []
    for offset in range(3, len(answer), 4):
        code, status = int.from_bytes(answer[offset : offset + 3], "big"), answer[offset + 3]
        dtc = known.get(code)
        found.append(_fault(dtc, status) if dtc is not None else _undescribed(code, status))
    return found


def _decode_report(layer: DiagLayer, service: DiagService, answer: bytes) -> list[Fault]:
    where = f"the answer to {service.short_name}"
    if len(answer) < 3 or answer[:2] != bytes((READ_DTC_INFORMATION + 0x40, 0x02)):
        raise CodecError(f"{where} is not a positive 0x19 0x02 answer", "answer")
    try:
        return _by_description(service, answer)
    except (OdxError, ValueError, IndexError, KeyError, TypeError) as exc:
        if (len(answer) - 3) % 4 == 0:
            return _by_iso_layout(layer, answer)
        raise CodecError(f"{where} does not decode: {exc}", "answer") from None


def _record_names(service: DiagService) -> tuple[str, str, str]:
    """The positive response's names for the availability mask (byte 2), the records
    (byte 3) and a record's DTC, else ISO 14229-1's."""
    mask, records, dtc = "DTCStatusAvailabilityMask", "DTCAndStatusRecord", "DTC"
    response = service.positive_responses[0] if service.positive_responses else None
    for parameter in response.parameters if response is not None else ():
        if parameter.byte_position == 2 and isinstance(parameter, ValueParameter):
            mask = parameter.short_name
        elif parameter.byte_position == 3 and isinstance(parameter, ValueParameter):
            records = parameter.short_name
            structure = getattr(parameter.dop, "structure", None)
            for inner in getattr(structure, "parameters", ()):
                if isinstance(inner, ValueParameter) and isinstance(inner.dop, DtcDop):
                    dtc = inner.short_name
    return mask, records, dtc


def _iso_report(layer: DiagLayer, service: DiagService) -> Callable[[bytes], Decoded]:
    """A 0x19 0x02 answer read by ISO 14229-1's layout, for DiagService (the answer
    holds a DTC the description lacks, so odxtools refuses it): ``{<mask>: n,
    <records>: [{<DTC>: {"code", "troubleCode", "text", "level"}, "statusOfDTC": n}]}``
    in the response's names; a DTC the description lacks has its code in hex and no
    text or level. ValueError (CodecError) for an answer of another layout."""
    mask, records, dtc_name = _record_names(service)

    def read(answer: bytes) -> Decoded:
        if (
            len(answer) < 3
            or answer[:2] != bytes((READ_DTC_INFORMATION + 0x40, REPORT_BY_STATUS_MASK))
            or (len(answer) - 3) % 4
        ):
            raise CodecError(f"the answer to {service.short_name} is not ISO 14229-1's layout")
        found = []
        for fault in _by_iso_layout(layer, answer):
            dtc = {
                "code": fault.display_code or fault.code,
                "troubleCode": f"0x{fault.code}",
                "text": fault.fault_name,
                "level": fault.severity if fault.fault_name is not None else None,
            }
            found.append({dtc_name: dtc, "statusOfDTC": fault.status.mask})
        return Decoded(parameters={mask: answer[2], records: found})

    return read


def with_fallback(layer: DiagLayer, encoded: Encoded) -> Encoded:
    """``encoded`` reading its answer by ISO 14229-1's layout when the description
    cannot (a 0x19 0x02 request: a reported DTC the DTC DOP lacks); others unchanged."""
    if encoded.payload[:2] != bytes((READ_DTC_INFORMATION, REPORT_BY_STATUS_MASK)):
        return encoded
    return replace(encoded, fallback=_iso_report(layer, encoded.service))


def decode_faults(
    layer: DiagLayer,
    answer: bytes,
    *,
    mask: int = 0xFF,
    service: DiagService | None = None,
) -> tuple[Fault, ...]:
    """The faults of a positive 0x19 0x02 answer (to ``service``, by default the layer's
    report-by-status-mask service), decoded with the DTC DOP, in the answer's order;
    with the request ``mask`` 0xFF or 0x00 followed by every other DTC the description
    defines, with status 0 (CDA: ``GET faults`` lists all known DTCs). A reported DTC
    the description lacks: its code and status only. CodecError for an answer that is
    not one."""
    service = service or fault_services(layer).report_by_status_mask
    if service is None:
        raise CodecError(f"{layer.short_name} has no 0x19 0x02 service", "service")
    faults = _decode_report(layer, service, answer)
    if mask in (0x00, 0xFF):
        reported = {fault.trouble_code for fault in faults}
        for dtc in known_dtcs(layer):
            if dtc.trouble_code not in reported:
                reported.add(dtc.trouble_code)
                faults.append(_fault(dtc, 0))
    return tuple(faults)


def fault_request_params(
    service: DiagService, trouble_code: int, record: int = 0xFF
) -> dict[str, object] | None:
    """The parameters of a 0x19 0x04 (snapshots) or 0x19 0x06 (extended data) request for
    one DTC, as CDA sends it (``19 04 <dtc> FF``): its settable parameters by their place
    in ISO 14229-1's layout, the DTC at byte 2, the record number at byte 5. None for a
    service of another layout."""
    request = service.request
    settable = [p for p in request.parameters if p.is_settable] if request is not None else []
    values: dict[str, object] = {}
    for parameter in settable:
        if parameter.byte_position == 2:
            values[parameter.short_name] = trouble_code
        elif parameter.byte_position == 5:
            values[parameter.short_name] = record
    return values if len(values) == 2 else None


def encode_fault_request(
    layer: DiagLayer, service: DiagService, trouble_code: int, record: int = 0xFF
) -> Encoded:
    """That request encoded (``fault_request_params``); CodecError for a service of
    another layout or a DTC the DTC DOP does not list."""
    values = fault_request_params(service, trouble_code, record)
    if values is None:
        raise CodecError(f"{service.short_name} does not take a DTC and a record number", "service")
    return _codec(layer).encode(service.short_name, values)

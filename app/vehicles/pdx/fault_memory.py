"""The fault memory of a base variant: the DTC DOP, ``FaultMem_ReportDTCByStatusMask``,
``FaultMem_ClearDTCs`` and, when asked for, the environment data of one DTC (snapshot
and extended data records)."""

from __future__ import annotations

from typing import Final

from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.dtcdop import DtcDop
from odxtools.endofpdufield import EndOfPduField
from odxtools.nameditemlist import NamedItemList
from odxtools.odxtypes import DataType
from odxtools.parameters.matchingrequestparameter import MatchingRequestParameter
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.physicaltype import PhysicalType
from odxtools.structure import Structure
from odxtools.text import Text

from app.vehicles import trouble_codes, uds
from app.vehicles.pdx.layers import (
    _UINT,
    _const,
    _identical,
    _Layer,
    _sid_pr,
    _sid_rq,
    _texttable,
    _uint,
    _value,
)

_STATUS_BITS: Final = trouble_codes.DTC_STATUS_BITS

REPORT_SNAPSHOT_RECORD_BY_DTC: Final = 0x04
REPORT_EXTENDED_DATA_RECORD_BY_DTC: Final = 0x06


def _add_environment_data(layer: _Layer) -> None:
    """19 04 / 19 06 <dtc> <record>: answered with the DTC (echoed), its status, the
    record number and one value (a snapshot: one DID and its two bytes; extended data:
    an occurrence counter)."""
    ecu = layer.ecu
    if not (ecu.snapshots or ecu.extended_data):
        return
    byte = layer.dop("EnvByte", _uint(8), DataType.A_UINT32, _identical(*_UINT))
    word = layer.dop("EnvWord", _uint(16), DataType.A_UINT32, _identical(*_UINT))
    number = layer.dop("DTCNumber", _uint(24), DataType.A_UINT32, _identical(*_UINT))
    sid = uds.READ_DTC_INFORMATION
    kinds = [
        (
            "FaultMem_ReportDTCSnapshotRecordByDTCNumber",
            REPORT_SNAPSHOT_RECORD_BY_DTC,
            "DTCSnapshotRecordNumber",
            [
                _value("DTCSnapshotRecordNumberOfIdentifiers", byte, 7),
                _value("DTCSnapshotRecordDid", word, 8),
                _value("DTCSnapshotRecordDidData", word, 10),
            ],
            ecu.snapshots,
        ),
        (
            "FaultMem_ReportDTCExtDataRecordByDTCNumber",
            REPORT_EXTENDED_DATA_RECORD_BY_DTC,
            "DTCExtDataRecordNumber",
            [_value("OccurrenceCounter", byte, 7)],
            ecu.extended_data,
        ),
    ]
    for name, sub, record, values, wanted in kinds:
        if not wanted:
            continue
        layer.service(
            name,
            [
                _sid_rq(sid),
                _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
                _value("DTCNumber", number, 2),
                _value(record, byte, 5),
            ],
            [
                _sid_pr(sid),
                _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
                MatchingRequestParameter(
                    short_name="DTCNumber",
                    semantic="DATA",
                    byte_position=2,
                    request_byte_position=2,
                    byte_length=3,
                ),
                _value("StatusOfDTC", byte, 5),
                _value(record, byte, 6),
                *values,
            ],
            "FaultMem",
            long_name=name.removeprefix("FaultMem_"),
        )


def _add_fault_memory(layer: _Layer) -> None:
    ecu = layer.ecu
    mask = layer.dop("DTCStatusMask", _uint(8), DataType.A_UINT32, _identical(*_UINT))
    flag = layer.dop(
        "StatusBit", _uint(1), DataType.A_UNICODE2STRING, _texttable([(0, "false"), (1, "true")])
    )
    layer.dtc_dops.append(
        DtcDop(
            odx_id=layer.id("DOP", "DTC"),
            short_name="DTC",
            diag_coded_type=_uint(24),
            physical_type=PhysicalType(base_data_type=DataType.A_UINT32),
            compu_method=_identical(*_UINT),
            dtcs_raw=[
                DiagnosticTroubleCode(
                    odx_id=layer.id("DTC", dtc.short_name),
                    short_name=dtc.short_name,
                    trouble_code=dtc.trouble_code,
                    display_trouble_code=dtc.code,
                    text=Text(text=dtc.text),
                    level=dtc.level,
                )
                for dtc in ecu.dtcs
            ],
        )
    )
    status_bits: list[Parameter] = [
        ValueParameter(
            short_name=bit, semantic="DATA", byte_position=3, bit_position=i, dop_ref=flag
        )
        for i, bit in enumerate(_STATUS_BITS)
    ]
    layer.structures.append(
        Structure(
            odx_id=layer.id("STRUCT", "DTCAndStatusRecord"),
            short_name="DTCAndStatusRecord",
            byte_size=4,
            parameters=NamedItemList([_value("DTC", layer.ref("DOP", "DTC"), 0), *status_bits]),
        )
    )
    layer.eopf.append(
        EndOfPduField(
            odx_id=layer.id("EOPF", "DTCAndStatusRecords"),
            short_name="DTCAndStatusRecords",
            structure_ref=layer.ref("STRUCT", "DTCAndStatusRecord"),
        )
    )
    sid = uds.READ_DTC_INFORMATION
    sub = trouble_codes.REPORT_DTC_BY_STATUS_MASK
    layer.service(
        "FaultMem_ReportDTCByStatusMask",
        [
            _sid_rq(sid),
            _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
            _value("DTCStatusMask", mask, 2, str(trouble_codes.ALL_DTC_STATUS_BITS)),
        ],
        [
            _sid_pr(sid),
            _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
            _value("DTCStatusAvailabilityMask", mask, 2),
            _value("DTCAndStatusRecord", layer.ref("EOPF", "DTCAndStatusRecords"), 3),
        ],
        "FaultMem",
        long_name="Report DTC by status mask",
    )
    group = layer.dop("GroupOfDTC", _uint(24), DataType.A_UINT32, _identical(*_UINT))
    sid = uds.CLEAR_DIAGNOSTIC_INFORMATION
    layer.service(
        "FaultMem_ClearDTCs",
        [_sid_rq(sid), _value("GroupOfDTC", group, 1, str(trouble_codes.ALL_DTC_GROUPS))],
        [_sid_pr(sid)],
        "FaultMem",
        long_name="Clear diagnostic information",
        sessions=ecu.clear_sessions,
    )

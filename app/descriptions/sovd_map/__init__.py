"""The SOVD tree of one ECU description, by the mapping Eclipse OpenSOVD's Classic
Diagnostic Adapter (CDA) uses (docs/cda-mapping.md; issue #20 item 4): which ODX services
become data items, configurations, operations, modes and the fault memory, and how their
answers read. No I/O: odxtools objects in, frozen dataclasses out; the codec
(``app.descriptions.codec``) encodes requests and reads answers.

- ``data_items(layer)`` / ``find_data``: the 0x22 services, the affix stripped from the
  short name (``VINDataIdentifier_Read`` -> ``VINDataIdentifier``, case kept in the list
  as CDA does; lookups ignore case), with the 0x2E service of the same name to write it.
  ``configurations(layer)`` / ``find_configuration``: those of FUNCT-CLASS ``varcoding``.
- ``operations(layer)`` / ``find_operation``: the 0x31 services grouped under one id
  (``SelfTest_Start``/``_Stop``/``_RequestResults`` -> ``SelfTest``); asynchronous when
  a stop or request-results service exists.
- ``modes(layer)`` / ``find_mode``: ``session`` (0x10, ``Extended_Start`` ->
  ``extended``) and ``dtcsetting`` (0x85, ``DTC_Setting_Mode_Off`` -> ``off``).
- ``fault_services(layer)`` and ``decode_faults``: the 0x19 0x02 answer as CDA's faults
  (``code``, ``display_code``, ``fault_name``, ``severity``, the status bits), and, with
  the mask 0xFF or 0x00, every other DTC the description defines with status 0;
  ``encode_fault_request``: the 0x19 0x04 / 0x06 request for one DTC's environment data
  (read its answer with ``decode_answer``).
- ``preconditions`` / ``check_precondition``: the states of PRE-CONDITION-STATE-REFS and
  the message refusing a service whose state is not the current one.
- ``decode_answer`` / ``decode_read``, ``encode_write``, ``encode_execution``: through
  the codec (an unknown or ill-typed parameter is a ``CodecError`` naming it).

The layer-wide results (the data items, configurations, operations, modes, fault
services, known DTCs) and each service's request prefix are computed once per odxtools
object and kept while it lives (``_once``): they are immutable, and computing them is
tens of milliseconds of Python on the event loop for a layer of 500 services, on every
request otherwise (found in review).

Modules, one concept each: ``common`` (the SIDs, affix stripping, a service's request
prefix, SID and sub-function, ``_once``, ``decode_answer``), ``data`` (data items and
configurations, their read and write), ``operations``, ``modes``, ``preconditions``,
``faults`` (fault services, DTC decoding, environment data requests). This package
re-exports their public names: ``from app.descriptions import sovd_map`` and
``sovd_map.find_data(...)``.
"""

from __future__ import annotations

from app.descriptions.sovd_map.common import (
    CLEAR_DTCS,
    CONTROL_DTC_SETTING,
    DATA_SUFFIXES,
    READ_DATA,
    READ_DTC_INFORMATION,
    REPORT_BY_STATUS_MASK,
    REPORT_EXTENDED_DATA_RECORD,
    REPORT_SNAPSHOT_RECORD,
    ROUTINE_CONTROL,
    SESSION_CONTROL,
    WRITE_DATA,
    K,
    R,
    decode_answer,
    diag_services,
    in_functional_class,
    request_prefix,
    sid,
    strip_suffix,
    subfunction,
)
from app.descriptions.sovd_map.data import (
    VARCODING,
    DataItem,
    configurations,
    data_items,
    decode_read,
    encode_write,
    find_configuration,
    find_data,
)
from app.descriptions.sovd_map.faults import (
    FAULTMEM,
    STATUS_BITS,
    Fault,
    FaultServices,
    FaultStatus,
    decode_faults,
    encode_fault_request,
    fault_request_params,
    fault_services,
    known_dtcs,
    with_fallback,
)
from app.descriptions.sovd_map.modes import (
    DTC_SETTING_PREFIX,
    SESSION_SUFFIX,
    Mode,
    ModeValue,
    find_mode,
    modes,
)
from app.descriptions.sovd_map.operations import (
    REQUEST_RESULTS,
    ROUTINE_SUFFIXES,
    START,
    STOP,
    Operation,
    encode_execution,
    find_operation,
    operations,
)
from app.descriptions.sovd_map.preconditions import (
    Precondition,
    check_precondition,
    preconditions,
    start_states,
)

__all__ = [
    "CLEAR_DTCS",
    "CONTROL_DTC_SETTING",
    "DATA_SUFFIXES",
    "DTC_SETTING_PREFIX",
    "FAULTMEM",
    "READ_DATA",
    "READ_DTC_INFORMATION",
    "REPORT_BY_STATUS_MASK",
    "REPORT_EXTENDED_DATA_RECORD",
    "REPORT_SNAPSHOT_RECORD",
    "REQUEST_RESULTS",
    "ROUTINE_CONTROL",
    "ROUTINE_SUFFIXES",
    "SESSION_CONTROL",
    "SESSION_SUFFIX",
    "START",
    "STATUS_BITS",
    "STOP",
    "VARCODING",
    "WRITE_DATA",
    "DataItem",
    "Fault",
    "FaultServices",
    "FaultStatus",
    "K",
    "Mode",
    "ModeValue",
    "Operation",
    "Precondition",
    "R",
    "check_precondition",
    "configurations",
    "data_items",
    "decode_answer",
    "decode_faults",
    "decode_read",
    "diag_services",
    "encode_execution",
    "encode_fault_request",
    "encode_write",
    "fault_request_params",
    "fault_services",
    "find_configuration",
    "find_data",
    "find_mode",
    "find_operation",
    "in_functional_class",
    "known_dtcs",
    "modes",
    "operations",
    "preconditions",
    "request_prefix",
    "sid",
    "start_states",
    "strip_suffix",
    "subfunction",
    "with_fallback",
]

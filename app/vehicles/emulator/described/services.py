"""Finding the described service a UDS request is, and the NRC when there is none.

- **Finding the service.** Each service's request has a constant prefix (odxtools'
  ``Request.coded_const_prefix``: the SID and the coded constants after it, such as a DID
  or a subfunction); the request is the service with the longest prefix it starts with,
  and it must then have its length (when the request's length is fixed) and decode
  with that request (``Request.decode``), else 0x13 incorrectMessageLengthOrInvalidFormat
  (of its fixed length yet not decodable, such as a raw value no text table entry has:
  0x31 requestOutOfRange).
  No service with the request's SID: 0x11 serviceNotSupported. A described SID whose
  services all carry a ``SUBFUNCTION`` constant in byte 1, none of them this one: 0x12
  subFunctionNotSupported (ISO 14229-1);
  any other unknown DID, routine or record of a described SID: 0x31 requestOutOfRange.
  The suppress-positive-response bit (0x80 in a ``SUBFUNCTION`` byte) is honoured.
  TesterPresent (0x3E 0x00/0x80) is answered even when the description has no such
  service (every ISO 14229-1 server has it, and the DoIP connector sends it to keep a
  session alive).
- **Limits.** A request's value that its DOP's constraints (INTERNAL-CONSTR,
  PHYS-CONSTR: ``app.descriptions.limits``) do not allow is refused with 0x31
  requestOutOfRange (``out_of_range``), before anything runs; ``request_values`` are the
  request's values as the ECU received them (decoded by odxtools).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.odxtypes import ParameterValue
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.request import Request

from app.descriptions.limits import within
from app.vehicles import uds


@dataclass(frozen=True, slots=True, eq=False)
class Service:
    service: DiagService
    prefix: bytes
    subfunction: bool  # byte 1 is a SUBFUNCTION constant


def services(layer: DiagLayer) -> list[Service]:
    """The layer's services with a constant prefix, the longest prefix first."""
    found: list[Service] = []
    for service in layer.services:
        request = service.request
        if request is None:
            continue
        prefix = bytes(request.coded_const_prefix())
        if prefix:
            found.append(Service(service, prefix, _subfunction(request)))
    found.sort(key=lambda s: len(s.prefix), reverse=True)
    return found


def find(services: Sequence[Service], request: bytes) -> tuple[Service | None, bool]:
    """The service ``request`` is, and whether it is so only without its
    suppress-positive-response bit."""
    for entry in services:
        if request.startswith(entry.prefix):
            return entry, False
    if len(request) > 1 and request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
        plain = request[:1] + bytes((request[1] & 0x7F,)) + request[2:]
        for entry in services:
            if entry.subfunction and plain.startswith(entry.prefix):
                return entry, True
    return None, False


def unknown_nrc(services: Sequence[Service], request: bytes) -> int:
    """The NRC for a request that is none of ``services``."""
    sid = request[0]
    same = [s for s in services if s.prefix[0] == sid]
    if not same:
        return 0x11  # serviceNotSupported
    if any(s.prefix.startswith(request) for s in same):
        return 0x13  # the start of a described request: too short
    if (
        len(request) > 1
        and all(s.subfunction for s in same)
        and all(s.prefix[1] != request[1] & 0x7F for s in same)
    ):
        return 0x12  # subFunctionNotSupported
    return 0x31  # requestOutOfRange: a DID, routine or group it does not have


def _subfunction(request: Request) -> bool:
    return any(
        isinstance(p, CodedConstParameter)
        and p.byte_position == 1
        and (p.semantic or "").upper() == "SUBFUNCTION"
        for p in request.parameters
    )


def request_values(
    service: DiagService, decoded: Mapping[str, ParameterValue]
) -> dict[str, ParameterValue]:
    """The decoded request's value parameters (not its constants), by short name."""
    request = service.request
    if request is None:
        return {}
    names = [p.short_name for p in request.parameters if isinstance(p, ValueParameter)]
    return {name: decoded[name] for name in names if name in decoded}


def out_of_range(service: DiagService, decoded: Mapping[str, ParameterValue]) -> str | None:
    """The first request value its DOP's limits do not allow, by name (None: all do)."""
    request = service.request
    if request is None:
        return None
    for parameter in request.parameters:
        if not isinstance(parameter, ValueParameter):
            continue
        dop = parameter.dop
        value = decoded.get(parameter.short_name)
        if (
            isinstance(dop, DataObjectProperty)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and not within(dop, value)
        ):
            return parameter.short_name
    return None

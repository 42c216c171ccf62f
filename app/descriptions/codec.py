"""One ECU's diagnostic services as its ODX description says: find a service, encode its
request from physical values, decode the ECU's answer (odxtools' public API; no I/O, and
nothing of ``app`` imported but this package, so the vehicles layer can hold what it makes).

- ``LayerCodec(layer)``: one diag layer: the container's base variant
  (``LayerCodec.of_container``), or the ECU variant that variant identification
  (``app.descriptions.variants``) picked: ``of_container(..., variant=name)`` or
  ``codec.with_variant(name)`` on the base's codec (``source`` is the container).
- ``LayerCodec.service(name)``: a diagnostic service by short name, in any case.
- ``LayerCodec.encode(name, params)``: the request's bytes from ``{parameter: physical
  value}`` as JSON gives them (numbers, strings, hex strings for byte fields, objects
  and lists for structures and fields). Every refusal is a ``CodecError`` naming the
  service and parameter: unknown, not settable (a constant of the request, such as its
  SID or DID), missing, of the wrong type, or not encodable (out of range, not in the
  text table).
- ``Encoded.decode(answer)``: a positive answer as ``{parameter: physical value}``
  with the units of those that have one; a negative answer (0x7F) as its NRC and the
  description's text for it; a positive answer the description cannot read by the
  ``fallback`` when one is given (``sovd_map.with_fallback``: 0x19 0x02). Left out of
  the positive answer: the constants that name the message (the response SID, a
  sub-function or DID echo: CODED-CONST and PHYS-CONST parameters, and NRC-CONST), the
  echoes of the request (MATCHING-REQUEST-PARAM) and
  reserved bits; the bytes themselves are kept beside the decoded form by the caller.
  Values are made JSON-ready (``app.descriptions.parameters.jsonable``).

Parameters (what a service takes, JSON into physical values and back) and ``CodecError``
are ``app.descriptions.parameters``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from odxtools.database import Database
from odxtools.diaglayercontainer import DiagLayerContainer
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.exceptions import OdxError

from app.descriptions.parameters import (
    CodecError,
    ServiceInfo,
    jsonable,
    physical,
    service_info,
    short_message,
    unit_of,
)

NEGATIVE_RESPONSE_SID: Final = 0x7F
# Parameters of a positive answer that are not values: the constants naming the message,
# the request's echoes, padding.
SKIPPED_PARAMETER_TYPES: Final = frozenset(
    {"CODED-CONST", "PHYS-CONST", "NRC-CONST", "MATCHING-REQUEST-PARAM", "RESERVED"}
)


# -- decoding ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decoded:
    """One answer: a positive one's values (and units), or a negative one's NRC."""

    parameters: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    nrc: int | None = None  # set for a negative answer
    nrc_text: str | None = None  # the description's word for it, if it has one


@dataclass(frozen=True, slots=True)
class Encoded:
    """A request ready to send, and how its answer is read."""

    service_name: str
    payload: bytes
    # The description's service (odxtools) that reads the answer.
    service: DiagService = field(repr=False, compare=False)
    # How a positive answer the description cannot read is read instead (a 0x19 0x02
    # answer holding a DTC the DTC DOP lacks: ISO 14229-1's layout); None: it fails.
    fallback: Callable[[bytes], Decoded] | None = field(default=None, repr=False, compare=False)

    @property
    def sid(self) -> int:
        return self.payload[0]

    def decode(self, answer: bytes) -> Decoded:
        """The ECU's answer read by the description, or CodecError (an answer the
        description cannot read, or one for another service)."""
        where = f"the answer to {self.service_name}"
        if not answer:
            raise CodecError(f"{where} is empty")
        if answer[0] == NEGATIVE_RESPONSE_SID:
            if len(answer) < 3 or answer[1] != self.sid:
                raise CodecError(f"{where} is a negative response for another service")
            return Decoded(nrc=answer[2], nrc_text=self._nrc_text(answer))
        if answer[0] != (self.sid | 0x40):
            raise CodecError(f"{where} is for another service (SID 0x{answer[0]:02X})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                message = self.service.decode_message(answer)
        except (OdxError, ValueError, IndexError, KeyError, TypeError) as exc:
            error = CodecError(f"{where} does not decode: {short_message(exc)}")
            if self.fallback is None:
                raise error from None
            try:
                return self.fallback(answer)
            except ValueError:
                raise error from None
        coding = message.coding_object
        # (``in`` on odxtools' lists compares whole objects: look for this one)
        if coding is None or not any(coding is r for r in self.service.positive_responses):
            raise CodecError(f"{where} is not one of its positive responses")
        values: dict[str, Any] = {}
        units: dict[str, str] = {}
        for parameter in coding.parameters:
            name = parameter.short_name
            if parameter.parameter_type in SKIPPED_PARAMETER_TYPES:
                continue
            if name in message.param_dict:
                values[name] = jsonable(message.param_dict[name])
                unit = unit_of(parameter)
                if unit is not None:
                    units[name] = unit
        return Decoded(parameters=values, units=units)

    def _nrc_text(self, answer: bytes) -> str | None:
        """What the description calls the NRC: the physical value of the negative
        response's parameter at byte 2, when it decodes to text."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                message = self.service.decode_message(answer)
        except (OdxError, ValueError, IndexError, KeyError, TypeError):
            return None
        coding = message.coding_object
        if coding is None:
            return None
        for parameter in coding.parameters:
            if parameter.byte_position == 2 and parameter.parameter_type != "NRC-CONST":
                value = message.param_dict.get(parameter.short_name)
                return value if isinstance(value, str) else None
        return None


# -- one diag layer -----------------------------------------------------------------------


class LayerCodec:
    """The services of one diag layer (see the module docstring)."""

    def __init__(
        self, layer: DiagLayer, container: str, source: DiagLayerContainer | None = None
    ) -> None:
        self.layer = layer
        self.container = container
        self.source = source  # the container the layer is of, when known
        self._by_name: dict[str, DiagService] = {}
        for service in layer.services:
            if isinstance(service, DiagService):
                self._by_name.setdefault(service.short_name.lower(), service)

    @classmethod
    def of_container(
        cls, database: Database, container: str, variant: str | None = None
    ) -> LayerCodec:
        """The layer of ``container`` (short name, any case) to talk to: its base variant
        (its first, should it have several), or the ECU variant ``variant`` once variant
        identification names one. CodecError if there is none."""
        wanted = container.lower()
        for dlc in database.diag_layer_containers:
            if dlc.short_name.lower() != wanted:
                continue
            if variant is not None:
                for ecu_variant in dlc.ecu_variants:
                    if ecu_variant.short_name.lower() == variant.lower():
                        return cls(ecu_variant, dlc.short_name, dlc)
                raise CodecError(f"{dlc.short_name} has no ECU variant {variant}")
            if not dlc.base_variants:
                raise CodecError(f"{dlc.short_name} has no base variant")
            return cls(dlc.base_variants[0], dlc.short_name, dlc)
        raise CodecError(f"no diag layer container named {container}")

    def with_variant(self, variant: str | None) -> LayerCodec:
        """The codec of another layer of the same container: the ECU variant ``variant``
        (any case), or its base variant for None; CodecError if it has none such."""
        dlc = self.source
        if dlc is None:
            raise CodecError(f"{self.container}: the codec does not know its container")
        if variant is None:
            if not dlc.base_variants:
                raise CodecError(f"{dlc.short_name} has no base variant")
            layer: DiagLayer = dlc.base_variants[0]
        else:
            found = [v for v in dlc.ecu_variants if v.short_name.lower() == variant.lower()]
            if not found:
                raise CodecError(f"{dlc.short_name} has no ECU variant {variant}")
            layer = found[0]
        return self if layer is self.layer else type(self)(layer, dlc.short_name, dlc)

    @property
    def name(self) -> str:
        return self.layer.short_name

    def service_names(self) -> list[str]:
        return sorted(s.short_name for s in self._by_name.values())

    def services(self) -> list[ServiceInfo]:
        """Each service with its SID and its settable request parameters, by name."""
        return [service_info(s) for s in sorted(self._by_name.values(), key=lambda s: s.short_name)]

    def service(self, name: str) -> DiagService:
        found = self._by_name.get(name.lower())
        if found is None:
            raise CodecError(
                f"service {name[:80]!r} is not a service of {self.name}"
                f" ({len(self._by_name)} services; GET /api/v1/vehicles/{{id}}/services lists"
                " them)",
                "service",
            )
        return found

    def encode(self, name: str, params: Mapping[str, object]) -> Encoded:
        """The request of service ``name`` with ``params`` (physical values), or
        CodecError naming what is wrong."""
        service = self.service(name)
        request = service.request
        if request is None:
            raise CodecError(f"{service.short_name} has no request in the description")
        by_name = {p.short_name: p for p in request.parameters}
        settable = [p.short_name for p in request.parameters if p.is_settable]
        values: dict[str, Any] = {}
        for key, value in params.items():
            parameter = by_name.get(key)
            if parameter is None:
                allowed = ", ".join(settable) or "none"
                raise CodecError(
                    f"params.{key[:80]} is not a parameter of {service.short_name}"
                    f" (it takes: {allowed})",
                    f"params.{key[:80]}",
                )
            if not parameter.is_settable:
                raise CodecError(
                    f"params.{key} of {service.short_name} is fixed by the description"
                    f" ({parameter.parameter_type}); leave it out",
                    f"params.{key}",
                )
            values[key] = physical(service.short_name, parameter, value)
        missing = [
            p.short_name for p in request.parameters if p.is_required and p.short_name not in values
        ]
        if missing:
            raise CodecError(
                f"params.{missing[0]} is required by {service.short_name}"
                f" (required: {', '.join(missing)})",
                f"params.{missing[0]}",
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                payload = bytes(service.encode_request(**values))
        except (OdxError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            what = f"params.{next(iter(values))}" if len(values) == 1 else "params"
            raise CodecError(
                f"{what} of {service.short_name} does not encode: {short_message(exc)}", what
            ) from None
        if not payload:
            raise CodecError(f"{service.short_name} encodes to an empty request")
        return Encoded(service.short_name, payload, service)

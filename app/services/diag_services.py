"""The ``DiagService`` command and the services of a vehicle's bound ECUs (issue #20).

An ECU bound to a description (``ecus[].description``, a diag layer container) speaks
it: ``DiagService`` names the ECU by its component id (the container's short name
lower-cased) and a service by short name, with the request's parameters as physical
values. Here, before anything is stored, the ECU is found, the description's codec
(``app.descriptions.codec``, from the library's in-process odxtools database) encodes
the request, and every refusal is a 400 naming the field; the command then carries the
encoded request down to the vehicle, which decodes the answer with it.

The layer is the ECU's identified variant (``app.services.variants``): ``layer_for`` is
the one way to it, for DiagService and the SOVD tree alike; on first use it runs the
identification services as the caller's commands.

odxtools is imported only when a description is first used (its import alone takes
about 0.3 s), never at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from app.catalogue import ECU_ADDRESS_PARAM, SID_PARAM
from app.errors import BadRequest, Conflict
from app.models import EcuRef, Principal, Vehicle
from app.services.descriptions import DescriptionLibrary
from app.services.variants import VariantService

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

    from app.descriptions.codec import Encoded, LayerCodec
    from app.descriptions.variants import VariantChoice


class ParamOut(msgspec.Struct, frozen=True, kw_only=True):
    """A request parameter a DiagService may set."""

    name: str
    type: str  # the physical data type: A_UINT32, A_FLOAT64, A_UNICODE2STRING, ...
    required: bool  # False: the description gives it a default
    unit: str | None = None
    values: list[str] = []  # a text table's values, the only ones it takes


class ServiceOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the short name DiagService takes as "service"
    sid: str | None  # the request's service id, such as 0x22
    long_name: str | None
    params: list[ParamOut]


class EcuServices(msgspec.Struct, frozen=True, kw_only=True):
    """One bound ECU of a vehicle and what its description offers."""

    ecu: str  # the component id DiagService takes as "ecu"
    address: str
    description: str  # the container's short name
    # The diag layer spoken: the identified ECU variant, else the base variant (not
    # identified yet, or none matched); None if not loaded.
    variant: str | None
    error: str | None  # why its services cannot be listed (description not loaded)
    services: list[ServiceOut]


def _bound(vehicle: Vehicle, ecu: str) -> EcuRef:
    for ref in vehicle.ecus:
        if ref.name == ecu:
            if ref.description is None:
                raise BadRequest(
                    f"command_params.ecu: {ecu} of vehicle {vehicle.vin} is bound to no"
                    " ECU description; bind it with PATCH /api/v1/vehicles/{id}"
                    ' {"ecus": [..., {"description": "<container>"}]}'
                )
            return ref
    bound = ", ".join(r.name for r in vehicle.ecus if r.description is not None) or "none"
    raise BadRequest(
        f"command_params.ecu: vehicle {vehicle.vin} has no ECU {ecu[:64]!r}"
        f" (bound to a description: {bound})"
    )


class DiagServices:
    def __init__(self, library: DescriptionLibrary, variants: VariantService | None = None) -> None:
        self._library = library
        self._variants = variants  # None: always the base variant

    async def _codec(self, vehicle: Vehicle, ref: EcuRef) -> LayerCodec:
        assert ref.description is not None
        codec = await self._library.codec(ref.description)
        if codec is None:
            loading = self._library.loading()
            why = f"still loading: {', '.join(loading)}" if loading else "no ready PDX file"
            raise Conflict(
                f"ECU {ref.name} of vehicle {vehicle.vin} is bound to {ref.description}, which"
                f" no loaded description provides ({why}); GET /api/v1/descriptions"
            )
        return codec

    async def layer_for(
        self,
        vehicle: Vehicle,
        ecu: str,
        principal: Principal | None,
        client: str | None = None,
    ) -> tuple[LayerCodec, VariantChoice]:
        """The codec a bound ECU (component id ``ecu``) is spoken to with, and the variant
        choice behind it (``name``, ``base``, ``is_base``, ``matched``, ``reason``): on
        first use (and after the vehicle's link was down) the identification services run
        as ``principal``'s DiagService commands. BadRequest for an ECU not bound, Conflict
        if its description is not loaded. Without ``principal``: the kept choice, or the
        base variant unidentified."""
        from app.descriptions.variants import plan_of, unidentified

        ref = _bound(vehicle, ecu)
        base = await self._codec(vehicle, ref)
        if self._variants is None:
            assert base.source is not None
            return base, unidentified(plan_of(base.source), "variant identification is off")
        return await self._variants.identify(vehicle, ref, base, principal, client)

    def emulated_layer(self, vehicle: Vehicle, ref: EcuRef, base: LayerCodec) -> DiagLayer:
        """The layer a simulated bound ECU is emulated from: the ECU variant its
        identification picked, once it has (no I/O: a kept choice), else ``base``'s."""
        known = None if self._variants is None else self._variants.known_codec(vehicle, ref, base)
        return (known or base).layer

    async def prepare(
        self,
        vehicle: Vehicle,
        params: Mapping[str, Any],
        principal: Principal | None = None,
        client: str | None = None,
    ) -> tuple[dict[str, Any], Encoded]:
        """A DiagService's checked params (as stored: ``ecu``, ``service`` in the
        description's spelling, ``params``, the ECU's ``ecuAddress`` and the service's
        ``sid``, which says whether a lock stands in its way) and its encoded
        request, with the ECU's identified variant (identified now as ``principal`` on
        first use); BadRequest naming the field, Conflict if the description is not
        loaded."""
        from app.descriptions.parameters import CodecError

        ref = _bound(vehicle, str(params["ecu"]))
        given_address = params.get(ECU_ADDRESS_PARAM)
        if given_address is not None and given_address != ref.address:
            raise BadRequest(
                f"command_params.{ECU_ADDRESS_PARAM}: {ref.name} is at {ref.address}, got"
                f" {given_address} (leave it out: the service fills it in)"
            )
        codec, choice = await self.layer_for(vehicle, ref.name, principal, client)
        values: dict[str, Any] = dict(params.get("params") or {})
        try:
            encoded = codec.encode(str(params["service"]), values)
        except CodecError as exc:
            # Its message starts with the field when that is a parameter (params.X ...).
            message = str(exc)
            if exc.field == "service" and not choice.matched:
                message += f"; variant: {choice.name} ({choice.reason})"
            named = message if message.startswith("params") else f"{exc.field}: {message}"
            raise BadRequest(f"command_params.{named}") from None
        sid = f"0x{encoded.sid:02X}"
        given_sid = params.get(SID_PARAM)
        if given_sid is not None and str(given_sid).upper() != sid.upper():
            raise BadRequest(
                f"command_params.{SID_PARAM}: {encoded.service_name} is SID {sid}, got"
                f" {given_sid} (leave it out: the service fills it in)"
            )
        clean = {
            "ecu": ref.name,
            "service": encoded.service_name,
            "params": values,
            ECU_ADDRESS_PARAM: ref.address,
            SID_PARAM: sid,
        }
        from app.descriptions import sovd_map

        return clean, sovd_map.with_fallback(codec.layer, encoded)

    async def services(self, vehicle: Vehicle) -> list[EcuServices]:
        """Each bound ECU of the vehicle with its description's services (its identified
        variant's once identified, else its base variant's; no identification runs here);
        an ECU whose description is not loaded says why instead."""
        found = []
        for ref in vehicle.ecus:
            if ref.description is None:
                continue
            try:
                codec = await self._codec(vehicle, ref)
            except Conflict as exc:
                found.append(
                    EcuServices(
                        ecu=ref.name,
                        address=ref.address,
                        description=ref.description,
                        variant=None,
                        error=exc.message,
                        services=[],
                    )
                )
                continue
            if self._variants is not None:
                codec, _ = await self._variants.identify(vehicle, ref, codec, None)
            found.append(
                EcuServices(
                    ecu=ref.name,
                    address=ref.address,
                    description=ref.description,
                    variant=codec.name,
                    error=None,
                    services=[
                        ServiceOut(
                            name=s.name,
                            sid=None if s.sid is None else f"0x{s.sid:02X}",
                            long_name=s.long_name,
                            params=[
                                ParamOut(
                                    name=p.name,
                                    type=p.type,
                                    required=p.required,
                                    unit=p.unit,
                                    values=list(p.values),
                                )
                                for p in s.params
                            ],
                        )
                        for s in codec.services()
                    ],
                )
            )
        return found

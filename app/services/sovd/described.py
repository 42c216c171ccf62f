"""The SOVD tree of an ECU bound to its description (issue #20 item 4), by the mapping the
Eclipse OpenSOVD Classic Diagnostic Adapter (CDA) uses: ``app.descriptions.sovd_map``
says which ODX services are the data, operations, faults and modes
(docs/cda-mapping.md), this module finds them and reads their answers.

Each is sent by ``DescribedCalls`` (``described_calls``: the ECU's diag layer, the
service's precondition, the DiagService command submitted as the caller); the executions
of asynchronous operations are ``app.services.sovd.operations.Executions``.

odxtools (and ``sovd_map``, which imports it) is imported only when a bound ECU is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from app.errors import BadRequest, NotFound
from app.services.sovd.described_calls import SESSION, Answer, DescribedCalls, body_error
from app.services.sovd.entities import Target

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer
    from odxtools.diagservice import DiagService

    from app.descriptions.sovd_map import DataItem, Fault, Mode, Operation

DTC_SETTING: Final = "dtcsetting"
DTC_SETTING_DEFAULT: Final = "on"  # CDA's initial value


class Described:
    """A bound ECU's data, configurations, operations, faults and modes, each sent by
    ``DescribedCalls``."""

    def __init__(self, calls: DescribedCalls) -> None:
        self._calls = calls
        # (vehicle_id, component) -> the DTC setting last set (CDA: "on" at first).
        self._dtc_setting: dict[tuple[str, str], str] = {}

    # -- data ------------------------------------------------------------------------------

    async def data_items(self, at: Target) -> tuple[DataItem, ...]:
        from app.descriptions import sovd_map

        return sovd_map.data_items(await self._calls.layer(at))

    async def read_data(self, at: Target, data_id: str) -> tuple[DataItem, Answer]:
        """The data item ``data_id`` (any case) read now."""
        from app.descriptions import sovd_map

        layer = await self._calls.layer(at)
        item = sovd_map.find_data(layer, data_id)
        if item is None or item.read is None:
            known = ", ".join(i.id for i in sovd_map.data_items(layer)) or "none"
            raise NotFound(f"component {at.ecu.name} has no data {data_id[:64]} (it has: {known})")
        return item, await self._calls.send(at, layer, item.read)

    async def write_data(
        self, at: Target, data_id: str, data: Mapping[str, Any], where: str = "data"
    ) -> tuple[DataItem, Answer]:
        """Write the data item ``data_id`` (any case) with its 0x2E service: ``data`` the
        request's parameters by short name (an unknown or ill-typed one is a 400 naming
        ``body.data.<name>``, nothing sent); ``where``: ``data`` or ``configurations``
        (a configuration: a varcoding item)."""
        from app.descriptions import sovd_map
        from app.descriptions.parameters import CodecError

        layer = await self._calls.layer(at)
        if where == "configurations":
            item = sovd_map.find_configuration(layer, data_id)
            known = ", ".join(i.id for i in sovd_map.configurations(layer) if i.write)
        else:
            item = sovd_map.find_data(layer, data_id)
            known = ", ".join(i.id for i in sovd_map.data_items(layer) if i.write)
        if item is None or item.write is None:
            raise NotFound(
                f"component {at.ecu.name} has no writable {where} {data_id[:64]}"
                f" (it has: {known or 'none'})"
            )
        try:  # the body checked first, so that its errors name it
            sovd_map.encode_write(layer, item, data)
        except CodecError as exc:
            raise body_error(exc, "body.data") from None
        return item, await self._calls.send(at, layer, item.write, data)

    async def configurations(self, at: Target) -> tuple[DataItem, ...]:
        """The varcoding items; NotFound when there are none (CDA: 404)."""
        from app.descriptions import sovd_map

        found = sovd_map.configurations(await self._calls.layer(at))
        if not found:
            raise NotFound(
                f"component {at.ecu.name} has no configurations (no service of the"
                " functional class varcoding)"
            )
        return found

    # -- operations ------------------------------------------------------------------------

    async def operations(self, at: Target) -> tuple[Operation, ...]:
        from app.descriptions import sovd_map

        return sovd_map.operations(await self._calls.layer(at))

    async def operation(self, at: Target, op_id: str) -> tuple[DiagLayer, Operation]:
        from app.descriptions import sovd_map

        layer = await self._calls.layer(at)
        found = sovd_map.find_operation(layer, op_id)
        if found is None:
            known = ", ".join(o.id for o in sovd_map.operations(layer)) or "none"
            raise NotFound(
                f"component {at.ecu.name} has no operation {op_id[:64]} (it has: {known})"
            )
        return layer, found

    # -- faults ----------------------------------------------------------------------------

    async def faults(self, at: Target) -> tuple[DiagLayer, tuple[Fault, ...], str]:
        """The ECU's faults read now (0x19 0x02, mask 0xFF: every DTC the description
        defines is listed, those not reported with status 0, as CDA does)."""
        from app.descriptions import sovd_map
        from app.descriptions.parameters import CodecError

        layer = await self._calls.layer(at)
        report = sovd_map.fault_services(layer).report_by_status_mask
        if report is None:
            raise NotFound(f"component {at.ecu.name} has no fault memory (no 0x19 0x02 service)")
        params = _mask_params(report)
        answer = await self._calls.send(at, layer, report, params)
        try:
            faults = sovd_map.decode_faults(layer, answer.response, service=report)
        except CodecError as exc:
            from app.errors import InvalidResponseContent

            raise InvalidResponseContent(str(exc), command_id=answer.command_id) from None
        return layer, faults, answer.command_id

    async def environment_data(
        self, at: Target, layer: DiagLayer, fault: Fault
    ) -> dict[str, Any] | None:
        """``{"snapshots": {"data"}, "extended_data_records": {"data"}}`` from 0x19 0x04
        and 0x19 0x06 for the DTC (all records), those the description has; None: none."""
        from app.descriptions import sovd_map

        services = sovd_map.fault_services(layer)
        found: dict[str, Any] = {}
        for key, service in (
            ("snapshots", services.snapshots),
            ("extended_data_records", services.extended_data),
        ):
            if service is None:
                continue
            params = sovd_map.fault_request_params(service, fault.trouble_code)
            if params is None:
                continue
            answer = await self._calls.send(at, layer, service, params)
            found[key] = {"data": answer.parameters}
        return found or None

    async def clear(self, at: Target, fault: Fault | None) -> str:
        """Clear all faults, or the one given (0x14 with its trouble code)."""
        from app.descriptions import sovd_map

        layer = await self._calls.layer(at)
        clear = sovd_map.fault_services(layer).clear
        if clear is None:
            raise NotFound(f"component {at.ecu.name} cannot clear faults (no 0x14 service)")
        params: dict[str, Any] = {}
        if fault is not None:
            group = _settable(clear)
            if group is None:
                raise BadRequest(f"{clear.short_name} clears all faults only (it takes no DTC)")
            params[group] = fault.trouble_code
        return (await self._calls.send(at, layer, clear, params)).command_id

    # -- modes -----------------------------------------------------------------------------

    async def modes(self, at: Target) -> tuple[Mode, ...]:
        from app.descriptions import sovd_map

        return sovd_map.modes(await self._calls.layer(at))

    async def mode(self, at: Target, mode_id: str) -> tuple[DiagLayer, Mode]:
        from app.descriptions import sovd_map

        layer = await self._calls.layer(at)
        found = sovd_map.find_mode(layer, mode_id)
        if found is None:
            known = ", ".join(m.id for m in sovd_map.modes(layer)) or "none"
            raise NotFound(f"component {at.ecu.name} has no mode {mode_id[:32]} (it has: {known})")
        return layer, found

    async def read_mode(self, at: Target, mode_id: str) -> tuple[str, str]:
        """The mode's name and value as the service knows it (nothing is sent)."""
        layer, found = await self.mode(at, mode_id)
        if found.id == SESSION:
            states = await self._calls.states(at, layer)
            now = {s.lower() for s in states.values()}
            for value in found.values:
                if (value.state or value.name).lower() in now:
                    return found.name, value.value
            return found.name, next(iter(states.values()), "").lower()
        key = (at.vehicle.vehicle_id, at.ecu.name)
        return found.name, self._dtc_setting.get(key, DTC_SETTING_DEFAULT)

    async def set_mode(self, at: Target, mode_id: str, wanted: str) -> tuple[str, str]:
        """Send the mode value's service; the value (lower-cased) and the command."""
        layer, found = await self.mode(at, mode_id)
        value = found.value(wanted)
        if value is None:
            possible = ", ".join(found.possible_values)
            if found.id == SESSION:  # CDA: an unknown session is 404
                raise NotFound(f"body.value: {wanted[:32]!r} is not a session ({possible})")
            raise BadRequest(
                f"body.value: {wanted[:32]!r} is not a value of {found.id} ({possible})",
                parameters={"details": "value", "possiblevalues": list(found.possible_values)},
            )
        answer = await self._calls.send(at, layer, value.service)
        if found.id == DTC_SETTING:
            self._dtc_setting[(at.vehicle.vehicle_id, at.ecu.name)] = value.value
        return value.value, answer.command_id


def _settable(service: DiagService) -> str | None:
    request = service.request
    if request is None:
        return None
    return next((p.short_name for p in request.parameters if p.is_settable), None)


def _mask_params(service: DiagService) -> dict[str, Any]:
    """0x19 0x02's status mask 0xFF (CDA's default), if the request lets it be set."""
    request = service.request
    if request is None:
        return {}
    settable = [p for p in request.parameters if p.is_settable]
    at_mask = [p for p in settable if p.byte_position == 2] or settable[:1]
    return {at_mask[0].short_name: 0xFF} if at_mask else {}

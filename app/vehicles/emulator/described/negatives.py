"""Negative answers of a described ECU, encoded as its description says them.

- **Negative answers** are encoded by odxtools with the service's negative response (or
  the layer's global negative responses), the NRC parameter set from the NRC through
  its DOP's compu method; when the description has none that encodes to ``7F <sid>
  <nrc>``, those three bytes are sent.
"""

from __future__ import annotations

import logging

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.odxtypes import ParameterValue
from odxtools.parameters.parameterwithdop import ParameterWithDOP
from odxtools.response import Response

from app.vehicles import uds
from app.vehicles.emulator.described.values import Unsupported

log = logging.getLogger(__name__)


def negative(layer: DiagLayer, service: DiagService | None, request: bytes, nrc: int) -> bytes:
    """``7F <sid> <nrc>``, encoded with the description's negative response when one
    encodes to that."""
    plain = bytes((uds.NEGATIVE_RESPONSE, request[0] if request else 0, nrc))
    candidates: list[Response] = [
        *(service.negative_responses if service is not None else ()),
        *layer.global_negative_responses,
    ]
    for response in candidates:
        try:
            values: dict[str, ParameterValue] = {}
            for parameter in response.parameters:
                if not parameter.is_required:
                    continue
                if not (
                    isinstance(parameter, ParameterWithDOP)
                    and isinstance(parameter.dop, DataObjectProperty)
                ):
                    raise Unsupported(parameter.short_name)
                values[parameter.short_name] = (
                    parameter.dop.compu_method.convert_internal_to_physical(nrc)
                )
            encoded = bytes(response.encode(request, **values))
        except Exception:  # this one cannot say it: try the next, else the plain bytes
            log.debug("negative response does not encode", exc_info=True)
            continue
        if encoded[:3] == plain:
            return encoded
    return plain

"""Variant identification as the ODX says (ISO 22901-1 ECU-VARIANT-PATTERN), I/O-free.

An ECU's description (one diag layer container) has a base variant and may have ECU
variants: each variant inherits the base's services (PARENT-REFS) and adds or replaces
some, and names how it is recognised: its ECU-VARIANT-PATTERNs, each a list of
MATCHING-PARAMETERs (a DIAG-COMM of the base variant, an out-param of its positive
response, the value it must have). As Eclipse OpenSOVD's CDA does:

- ``plan_of(container)``: the identification plan: the ECU variants in description order,
  their patterns' matching parameters, and the distinct services to run (each once,
  in the order first named). A service the base variant lacks, one that needs a
  request parameter, or an out-param no positive response has is a ``problem`` of the
  plan: the patterns naming it cannot match.
- ``select(plan, answers)``: the variant the answers point at. ``answers`` maps a
  service's short name to its decoded positive response (``{parameter: physical value}``
  as ``app.descriptions.codec`` gives it, JSON-ready), or None when it got none (a
  negative response, no answer). A variant matches when every matching parameter of one
  of its patterns matches; none: the base variant, ``matched`` False and why; several:
  the first in description order, and the reason says so.

Comparing a value with EXPECTED-VALUE (odxtools' ``MatchingParameter.matches`` on the
JSON-ready form): a number equals the expected value read as a number (``257``,
``0x000101`` for integers), a byte field its hex in any case, a text exactly; a path
``A.B`` walks structures, and a field (list) matches when any of its items does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayercontainer import DiagLayerContainer
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.odxtypes import DataType
from odxtools.parameters.valueparameter import ValueParameter

_FLOAT_TOLERANCE: Final = 1e-8
_MAX_SHOWN: Final = 60  # characters of a value quoted in a reason


@dataclass(frozen=True, slots=True)
class MatchingParam:
    """One MATCHING-PARAMETER: ``service``'s out-param at ``path`` must be ``expected``."""

    service: str  # the DIAG-COMM's short name as the base variant spells it
    path: tuple[str, ...]  # OUT-PARAM-IF-SNREF, or the SNPATHREF split at its dots
    expected: str  # EXPECTED-VALUE
    byte_field: bool = False  # the out-param is an A_BYTEFIELD: hex in any case

    @property
    def where(self) -> str:
        return f"{self.service}.{'.'.join(self.path)}"


@dataclass(frozen=True, slots=True)
class VariantPatterns:
    """An ECU variant and its ECU-VARIANT-PATTERNs (each a tuple of matching parameters)."""

    name: str
    patterns: tuple[tuple[MatchingParam, ...], ...]


@dataclass(frozen=True, slots=True)
class IdentificationPlan:
    container: str
    base: str  # the base variant's short name
    variants: tuple[VariantPatterns, ...]  # in description order
    services: tuple[str, ...]  # the distinct identification services to run
    problems: tuple[str, ...] = ()  # what the description gets wrong (said, not raised)


VariantState = Literal["Online", "NoVariantDetected", "NotTested"]


@dataclass(frozen=True, slots=True)
class VariantChoice:
    """The layer to speak: an ECU variant that matched, or the base variant."""

    name: str  # the diag layer's short name (FLXC1000_App_0101, or the base's)
    base: str  # the base variant's short name
    is_base: bool
    matched: bool  # False: no ECU variant matched (or the description has none)
    reason: str
    # False: no identification ran (not yet, or it got no answers): the base variant
    # for now, identified on next use.
    identified: bool = True
    candidates: int = 0  # the ECU variants the description has

    @property
    def state(self) -> VariantState:
        """As CDA's component shows it: ``Online`` (a variant matched, or the description
        has none to match), ``NoVariantDetected`` (none matched: the base variant),
        ``NotTested`` (not identified yet)."""
        if not self.identified:
            return "NotTested"
        return "Online" if self.matched or not self.candidates else "NoVariantDetected"


class PlanError(ValueError):
    """A container that cannot be identified at all: it has no base variant."""


def _base_of(container: DiagLayerContainer) -> DiagLayer:
    if not container.base_variants:
        raise PlanError(f"{container.short_name} has no base variant")
    return container.base_variants[0]


def _find_service(layer: DiagLayer, name: str) -> DiagService | None:
    for service in layer.services:
        if isinstance(service, DiagService) and service.short_name == name:
            return service
    return None


def _out_param_kind(service: DiagService, path: tuple[str, ...]) -> tuple[bool, bool]:
    """Whether a positive response of ``service`` has the path's first parameter, and
    whether the out-param (a top-level one) is a byte field."""
    for response in service.positive_responses:
        for parameter in response.parameters:
            if parameter.short_name != path[0]:
                continue
            dop = parameter.dop if isinstance(parameter, ValueParameter) else None
            byte_field = (
                len(path) == 1
                and isinstance(dop, DataObjectProperty)
                and dop.physical_type.base_data_type is DataType.A_BYTEFIELD
            )
            return True, byte_field
    return False, False


def plan_of(container: DiagLayerContainer) -> IdentificationPlan:
    """The identification plan of ``container`` (see the module docstring); PlanError if
    it has no base variant."""
    base = _base_of(container)
    services: dict[str, None] = {}
    problems: list[str] = []
    variants = []
    for variant in container.ecu_variants:
        patterns = []
        for index, pattern in enumerate(variant.ecu_variant_patterns, start=1):
            params = []
            for matching in pattern.matching_parameters:
                path_text = matching.out_param_if_snref or matching.out_param_if_snpathref or ""
                path = (
                    tuple(path_text.split("."))
                    if matching.out_param_if_snpathref
                    else ((path_text,))
                )
                where = f"{variant.short_name} pattern {index}: {matching.diag_comm_snref}"
                service = _find_service(base, matching.diag_comm_snref)
                byte_field = False
                if service is None:
                    problems.append(
                        f"{where} is not a service of the base variant {base.short_name}"
                    )
                elif service.request is None:
                    problems.append(f"{where} has no request")
                elif any(p.is_required and p.is_settable for p in service.request.parameters):
                    problems.append(f"{where} needs request parameters; it cannot identify")
                else:
                    found, byte_field = _out_param_kind(service, path)
                    if not found:
                        problems.append(f"{where} has no out-param {'.'.join(path)}")
                    else:
                        services.setdefault(service.short_name, None)
                params.append(
                    MatchingParam(
                        service=service.short_name
                        if service is not None
                        else matching.diag_comm_snref,
                        path=path,
                        expected=matching.expected_value,
                        byte_field=byte_field,
                    )
                )
            patterns.append(tuple(params))
        variants.append(VariantPatterns(variant.short_name, tuple(patterns)))
    return IdentificationPlan(
        container=container.short_name,
        base=base.short_name,
        variants=tuple(variants),
        services=tuple(services),
        problems=tuple(problems),
    )


# -- matching ------------------------------------------------------------------------------


def _as_int(text: str) -> int | None:
    for base in (10, 0):
        try:
            return int(text.strip(), base)
        except ValueError:
            continue
    return None


def _leaf_matches(value: object, param: MatchingParam) -> bool:
    expected = param.expected
    if isinstance(value, bool):
        return str(value).lower() == expected.strip().lower()
    if isinstance(value, int):
        number = _as_int(expected)
        return number == value if number is not None else str(value) == expected
    if isinstance(value, float):
        try:
            return math.isclose(float(expected), value, rel_tol=0, abs_tol=_FLOAT_TOLERANCE)
        except ValueError:
            return False
    if isinstance(value, str):
        if param.byte_field:
            return value.upper() == expected.strip().upper()
        return value == expected
    return False  # a structure where a value is expected, or nothing


def _matches(value: object, path: Sequence[str], param: MatchingParam) -> bool:
    if not path:
        return _leaf_matches(value, param)
    if not isinstance(value, Mapping):
        return False
    sub = value.get(path[0])
    if isinstance(sub, list):  # a field: any of its items
        return any(_matches(item, path[1:], param) for item in sub)
    return _matches(sub, path[1:], param)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _mismatch(param: MatchingParam, answers: Mapping[str, Mapping[str, Any] | None]) -> str | None:
    """Why ``param`` does not match the answers; None if it does."""
    answer = answers.get(param.service)
    if answer is None:
        return f"{param.service} gave no positive answer"
    if _matches(answer, param.path, param):
        return None
    value: object = answer
    for step in param.path:
        value = value.get(step) if isinstance(value, Mapping) else None
    return f"{param.where} is {_shown(value)}, expected {param.expected!r}"


def select(
    plan: IdentificationPlan, answers: Mapping[str, Mapping[str, Any] | None]
) -> VariantChoice:
    """The variant ``answers`` identify (see the module docstring)."""
    count = len(plan.variants)
    if not count:
        return VariantChoice(
            plan.base, plan.base, True, False, f"{plan.container} describes no ECU variants"
        )
    matched: list[tuple[str, str]] = []  # (variant, what matched)
    misses: list[str] = []
    for variant in plan.variants:
        why_not = "it has no ECU-VARIANT-PATTERN"
        for index, pattern in enumerate(variant.patterns, start=1):
            mismatches = [m for m in (_mismatch(p, answers) for p in pattern) if m is not None]
            if pattern and not mismatches:
                shown = ", ".join(f"{p.where} = {p.expected!r}" for p in pattern)
                matched.append((variant.name, f"pattern {index}: {shown}"))
                break
            why_not = mismatches[0] if mismatches else "an empty pattern"
        else:
            misses.append(f"{variant.name}: {why_not}")
    if not matched:
        reason = "no ECU variant matched (" + "; ".join(misses) + ")"
        if plan.problems:
            reason += "; the description: " + "; ".join(plan.problems)
        return VariantChoice(plan.base, plan.base, True, False, reason, candidates=count)
    name, what = matched[0]
    reason = f"{name} matched by {what}"
    if len(matched) > 1:
        others = ", ".join(n for n, _ in matched[1:])
        reason += f"; {others} matched too: the first in the description ({name}) is taken"
    return VariantChoice(name, plan.base, False, True, reason, candidates=count)


def unidentified(plan: IdentificationPlan, why: str) -> VariantChoice:
    """The base variant while identification has not run (or got no answers)."""
    return VariantChoice(
        plan.base, plan.base, True, False, why, identified=False, candidates=len(plan.variants)
    )

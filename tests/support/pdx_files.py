"""PDX files the tests build from specs, built once per test process.

``build_pdx`` writes a file with odxtools (a third of a second for a small spec, more for
a large one), and several tests and modules upload the same spec: ``pdx_of(spec)`` builds
each (frozen, hashable) spec once and hands out the same bytes again. That is what
``build_pdx`` itself returns for the same spec (``tests/test_demo_description.py`` checks
it is deterministic); tests of building itself call ``build_pdx``."""

from __future__ import annotations

import functools

from app.vehicles.pdx import PdxSpec, build_pdx


@functools.cache
def pdx_of(spec: PdxSpec) -> bytes:
    """The bytes of ``build_pdx(spec)``, built on the first call for this spec."""
    return build_pdx(spec)

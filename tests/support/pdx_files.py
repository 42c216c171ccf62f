"""PDX files the tests build from specs, built once and kept.

``build_pdx`` writes a file with odxtools, which compiles its jinja templates on every call:
a third of a second for a small spec, five seconds for the large one of
``tests/test_descriptions.py``; about a tenth of the fast tier's CPU went there, the same
specs built over and over. ``pdx_of(spec)`` builds each spec once and keeps the bytes in
memory and in ``.cache/test-pdx/<builder>/`` (git-ignored, as the DoIP interop venv), named
by the spec; ``<builder>`` is a digest of what builds it (the source of ``app/vehicles/pdx``,
the odxtools and jinja2 versions): a change to any of them builds again, and the files of
the old builder are removed. The bytes are exactly ``build_pdx``'s
(it is deterministic: ``tests/test_demo_description.py``); tests of building itself call
``build_pdx``."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import secrets
import shutil
from pathlib import Path

import app.vehicles.pdx
from app.vehicles.pdx import PdxSpec, build_pdx

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "test-pdx"


@functools.cache
def _builder() -> str:
    """What the bytes of a spec depend on besides the spec."""
    digest = hashlib.sha256()
    for package in ("odxtools", "jinja2"):
        digest.update(f"{package}=={importlib.metadata.version(package)}\n".encode())
    for source in sorted(Path(app.vehicles.pdx.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


@functools.cache
def pdx_of(spec: PdxSpec) -> bytes:
    """The bytes of ``build_pdx(spec)``, built on the first call for this spec and code."""
    key = hashlib.sha256(repr(spec).encode()).hexdigest()
    directory = CACHE / _builder()[:32]
    path = directory / f"{key}.pdx"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    data = build_pdx(spec)
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        # A new builder: what the old ones built is never read again.
        for old in CACHE.iterdir():
            if old.is_dir() and old.name != directory.name:
                shutil.rmtree(old, ignore_errors=True)
            elif old.is_file():
                old.unlink(missing_ok=True)
    # Atomically: two xdist workers may build the same spec at once.
    temp = path.with_name(f".{key}.{secrets.token_hex(4)}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
    return data

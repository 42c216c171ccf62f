"""What a PDX file must pass before it is stored or handed to odxtools.

A PDX file is a zip archive of ODX (XML) documents with an ``index.xml`` at its top. The
checks here read only the archive, with the standard library: its size; its entry count
from the end-of-central-directory record, before ``zipfile`` builds an object per entry;
every entry's name (no ``..``, no absolute path, no duplicate); the declared unpacked
total; and then every entry unpacked as a stream, counting what really comes out (a
zip bomb lies in its headers) and checking each CRC. The XML documents (what odxtools
parses: ``*.odx*`` and ``index.xml``) are read by expat up to their root element and
refused if their document type declares an entity: odxtools parses with ElementTree,
and ODX needs no entities, so no entity expansion (billion laughs) ever reaches it.

Every refusal is a ``PdxRejected`` whose message names what is wrong; ``too_large``
marks the size limits (413), everything else is bad input (400).
"""

from __future__ import annotations

import contextlib
import re
import struct
import xml.parsers.expat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

CHUNK = 1024 * 1024
# The end-of-central-directory record: signature, then the entry count at offset 10.
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_CENTRAL = b"PK\x01\x02"
_CENTRAL_SIZE = 46  # a central-directory header before its name, extra field and comment
_MAX_COMMENT = 0xFFFF
# A count of 0xFFFF means a zip64 archive with at least that many entries.
ZIP64_COUNT = 0xFFFF
_DRIVE = re.compile(r"^[A-Za-z]:")


class PdxRejected(ValueError):
    """The file is not a PDX file this service takes; the message says why."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


@dataclass(frozen=True, slots=True)
class PdxLimits:
    """The limits of one PDX file (``SOVD_PDX_*``): its size as uploaded, its size
    unpacked, and how many entries it may have."""

    max_bytes: int = 32 * 1024 * 1024
    max_unpacked_bytes: int = 256 * 1024 * 1024
    max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class PdxContents:
    entries: int
    unpacked_bytes: int
    documents: tuple[str, ...]  # the ODX documents odxtools will parse


def is_odx_document(name: str) -> bool:
    """What odxtools parses as XML: ``*.odx*`` and ``index.xml`` (at any depth)."""
    path = PurePosixPath(name)
    return path.suffix.lower().startswith(".odx") or path.name.lower() == "index.xml"


def check_pdx(source: BinaryIO, size: int, limits: PdxLimits) -> PdxContents:
    """Check the archive in ``source`` (``size`` bytes, seekable) or raise PdxRejected."""
    if size > limits.max_bytes:
        raise PdxRejected(
            f"the file is {size} bytes, larger than SOVD_PDX_MAX_BYTES ({limits.max_bytes})",
            too_large=True,
        )
    count, exact = _entry_count(source, size, limits.max_entries)
    if count > limits.max_entries:
        shown = str(count) if exact and count != ZIP64_COUNT else f"at least {count}"
        raise PdxRejected(
            f"the archive has {shown} entries, more than SOVD_PDX_MAX_ENTRIES"
            f" ({limits.max_entries})",
            too_large=True,
        )
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise PdxRejected(f"not a zip archive (or a truncated one): {exc}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_entries:  # the record undercounted: believe the directory
            raise PdxRejected(
                f"the archive has {len(infos)} entries, more than SOVD_PDX_MAX_ENTRIES"
                f" ({limits.max_entries})",
                too_large=True,
            )
        _check_names(infos)
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_unpacked_bytes:
            raise PdxRejected(
                f"the archive unpacks to {declared} bytes, more than"
                f" SOVD_PDX_MAX_UNPACKED_BYTES ({limits.max_unpacked_bytes})",
                too_large=True,
            )
        if not any(info.filename.lower() == "index.xml" for info in infos):
            raise PdxRejected("no index.xml at the top of the archive: not a PDX file")
        unpacked = 0
        documents = []
        for info in infos:
            if info.is_dir():
                continue
            unpacked = _unpack(archive, info, unpacked, limits.max_unpacked_bytes)
            if is_odx_document(info.filename):
                documents.append(info.filename)
    return PdxContents(len(infos), unpacked, tuple(documents))


def _entry_count(source: BinaryIO, size: int, cap: int) -> tuple[int, bool]:
    """The entry count, and whether it is exact: the end-of-central-directory record's, or
    the directory's own headers counted up to ``cap`` + 1 if there are more (a record may
    lie). Read directly: zipfile would first build an object for every header."""
    tail_size = min(size, _EOCD_SIZE + _MAX_COMMENT)
    source.seek(size - tail_size)
    tail = source.read(tail_size)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        source.seek(0)
        raise PdxRejected(
            "not a zip archive (or a truncated one): no end-of-central-directory record"
        )
    declared, directory_size, directory_at = struct.unpack_from("<HII", tail, at + 10)
    counted = 0
    if directory_at + directory_size <= size:
        source.seek(directory_at)
        directory = source.read(directory_size)
        offset = 0
        while counted <= cap and directory[offset : offset + 4] == _CENTRAL:
            if offset + _CENTRAL_SIZE > len(directory):
                break
            name, extra, comment = struct.unpack_from("<HHH", directory, offset + 28)
            offset += _CENTRAL_SIZE + name + extra + comment
            counted += 1
    source.seek(0)
    if counted > declared:
        return counted, counted <= cap
    return int(declared), True


def _check_names(infos: list[zipfile.ZipInfo]) -> None:
    seen: set[str] = set()
    for info in infos:
        # ZipInfo turns "\" into "/" on Windows only: look at both.
        name = info.filename
        shown = repr(name[:200])
        parts = re.split(r"[/\\]", name)
        if "\x00" in name:
            raise PdxRejected(f"entry {shown} has a NUL character in its name")
        if name.startswith(("/", "\\")) or _DRIVE.match(name):
            raise PdxRejected(f"entry {shown} has an absolute path")
        if ".." in parts:
            raise PdxRejected(f"entry {shown} escapes the archive (a '..' in its path)")
        if info.flag_bits & 0x1:
            raise PdxRejected(f"entry {shown} is encrypted")
        key = name.lower()
        if key in seen:
            raise PdxRejected(f"entry {shown} is in the archive twice")
        seen.add(key)


class _Stop(Exception):
    pass


class _EntityDeclared(Exception):
    pass


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, so_far: int, limit: int) -> int:
    """Unpack one entry as a stream, counting its bytes into ``so_far`` (refused past
    ``limit``) and checking its CRC (zipfile does at its end); an XML document's prolog
    goes through expat. Returns the new total."""
    shown = repr(info.filename[:200])
    prolog = _prolog_checker() if is_odx_document(info.filename) else None
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                so_far += len(chunk)
                if so_far > limit:
                    raise PdxRejected(
                        f"the archive unpacks to more than SOVD_PDX_MAX_UNPACKED_BYTES"
                        f" ({limit}) bytes (entry {shown} holds more than it declares)",
                        too_large=True,
                    )
                if prolog is not None:
                    try:
                        prolog.Parse(chunk, False)
                    except _Stop:
                        prolog = None
            if prolog is not None:
                with contextlib.suppress(_Stop):
                    prolog.Parse(b"", True)
    except PdxRejected:
        raise
    except _EntityDeclared:
        raise PdxRejected(
            f"entry {shown} declares an XML entity (<!ENTITY ...>) in its document type:"
            " refused (entity expansion); ODX documents need none"
        ) from None
    except xml.parsers.expat.ExpatError as exc:
        raise PdxRejected(f"entry {shown} is not well-formed XML: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        # zlib.error is an Exception subclass zipfile lets through as is
        raise PdxRejected(f"entry {shown} cannot be unpacked: {exc}") from None
    except Exception as exc:
        if type(exc).__module__ == "zlib":
            raise PdxRejected(f"entry {shown} cannot be unpacked: {exc}") from None
        raise
    return so_far


def _prolog_checker() -> xml.parsers.expat.XMLParserType:
    """An expat parser that stops at the root element and refuses entity declarations."""
    parser = xml.parsers.expat.ParserCreate()

    def entity(*_: object) -> None:
        raise _EntityDeclared

    def root(*_: object) -> None:
        raise _Stop

    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.StartElementHandler = root
    return parser

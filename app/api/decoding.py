"""Decoding a request into the types its endpoint declares (``app.api.contract``).

A JSON body is capped, checked for nesting, escapes and duplicate keys before and after
msgspec decodes it into the endpoint's ``Body``; a query string becomes its ``Query``,
each parameter at most once; a raw body (a PDX upload) is capped and typed by its media
type. Every refusal is a ``BadRequest`` (or ``PayloadTooLarge``) naming what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request

from app.api.contract import RawBody
from app.errors import BadRequest, PayloadTooLarge

MAX_JSON_DEPTH = 8
_JSON = "application/json"

# What the nesting pre-scan looks at: an escape (two characters, so an escaped quote never
# ends a string), a quote, or a bracket. Each match is one or two characters and nothing
# backtracks: linear in the body, whatever the body (a pattern that matched whole strings
# went quadratic on an unclosed one: 12 s for 64 KiB of quotes).
_NESTING_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
# One escape inside a JSON string; \\ is consumed whole so "\\ud800" is not an escape.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")


def bracket_depth(text: str, limit: int) -> int:
    """How deeply the arrays and objects in ``text`` nest, counted before parsing
    (brackets inside strings do not count) and stopping once past ``limit``: hostile
    nesting is refused before any parser recurses into it."""
    depth = deepest = 0
    in_string = False
    for match in _NESTING_TOKEN.finditer(text):
        mark = match.group()
        if mark == '"':
            in_string = not in_string
        elif in_string or mark[0] == "\\":
            continue
        elif mark in "[{":
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_escapes(text: str) -> None:
    """Refuse NUL characters and unpaired UTF-16 surrogates written as \\u escapes: they
    cannot be stored (SQLite, argon2 and the logs would all fail on them)."""
    escapes = list(_ESCAPE.finditer(text))
    i = 0
    while i < len(escapes):
        hex_digits = escapes[i].group(1)
        code = -1 if hex_digits is None else int(hex_digits, 16)
        if code == 0:
            raise BadRequest("request body holds a NUL character (\\u0000); strings must not")
        if 0xD800 <= code <= 0xDBFF:  # a high surrogate: the low half must follow at once
            following = escapes[i + 1] if i + 1 < len(escapes) else None
            low = following.group(1) if following is not None else None
            if (
                following is None
                or following.start() != escapes[i].end()
                or low is None
                or not 0xDC00 <= int(low, 16) <= 0xDFFF
            ):
                _surrogate(code)
            i += 2
            continue
        if 0xDC00 <= code <= 0xDFFF:
            _surrogate(code)
        i += 1


def _surrogate(code: int) -> None:
    raise BadRequest(
        f"request body holds an unpaired UTF-16 surrogate (\\u{code:04x}); "
        "strings must be valid Unicode"
    )


def _check_unique_keys(text: str) -> None:
    """Refuse an object with a key twice: msgspec keeps the last, other parsers (a proxy's,
    an auditor's) the first, so ``{"role": "engineer", "role": "admin"}`` reads two ways.

    ``text`` is valid JSON here (msgspec decoded it). Without a backslash no string holds a
    quote, so splitting at quotes gives every string, keys and values, at the odd places,
    spelled one way each: if no string occurs twice, no key does (a few C-level steps,
    the usual case). Otherwise, or with escapes (``"r\\u006fle"`` is ``"role"``), the
    stdlib parser walks the objects exactly (nesting is at most MAX_JSON_DEPTH)."""
    if "\\" not in text:
        strings = text.split('"')[1::2]
        if len(set(strings)) == len(strings):
            return
    try:  # numbers are not converted: only the keys matter here
        json.loads(text, object_pairs_hook=_unique, parse_int=len, parse_float=len)
    except ValueError:  # what msgspec took and the stdlib does not: refuse, never a 500
        raise BadRequest("request body is not valid JSON") from None


def _unique(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BadRequest(f"request body: duplicate key {key[:64]!r}")
            seen.add(key)


def _validation_message(where: str, exc: msgspec.ValidationError, allowed: str) -> str:
    """msgspec's message with its ``$.field`` path rewritten as ``body.field``."""
    text = str(exc)
    message, sep, path = text.rpartition(" - at `")
    if not sep:
        message, path = text, "$`"
    name = where + path[1:-1]
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        return f"{name}: unknown field `{unknown.group(1)}` (allowed: {allowed})"
    return f"{name}: {message}"


# What a cross-site HTML form (or a no-cors fetch) can send without a CORS preflight
# (the Fetch standard's CORS-safelisted request Content-Types). A browser that holds
# credentials for this origin (HTTP Basic ``oauth2:<token>`` from a URL's userinfo, a
# client certificate) would attach them: no state-changing route takes these types.
FORM_MEDIA_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)


def refuse_form(request: Request, accepted: str | None) -> None:
    """BadRequest for a write whose Content-Type a cross-site form can send, unless the
    route takes exactly that type (``accepted``: the OAuth token endpoint's form, which
    authenticates the client itself)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in FORM_MEDIA_TYPES and media != accepted:
        raise BadRequest(
            f"Content-Type {media[:64]} is not taken by {request.method} (a cross-site form"
            " could send it): send application/json, or no body where none is needed"
        )


@dataclass(frozen=True, slots=True)
class BodyReader:
    kind: type[msgspec.Struct]
    decoder: msgspec.json.Decoder[Any]
    allowed: str
    optional: bool  # every field has a default, so an empty body means {}

    async def read(self, request: Request, max_bytes: int) -> Any:
        raw = await read_capped(request, max_bytes)
        if not raw and self.optional:
            return self.decoder.decode(b"{}")  # every field has a default: none sent is {}
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != _JSON:
            raise BadRequest("Content-Type must be application/json")
        try:
            text = raw.decode("utf-8")  # JSON between systems is UTF-8 (RFC 8259)
        except UnicodeDecodeError:
            raise BadRequest("request body is not valid JSON (UTF-8)") from None
        if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and (
            bracket_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH
        ):
            raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        if b"\\" in raw:
            _check_escapes(text)
        try:
            body = self.decoder.decode(raw)
        except msgspec.ValidationError as exc:
            raise BadRequest(_validation_message("body", exc, self.allowed)) from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"request body is not valid JSON ({exc})") from None
        _check_unique_keys(text)
        return body


async def read_capped(request: Request, max_bytes: int) -> bytearray:
    """The body, refused (413) as soon as it is larger than ``max_bytes``: by its
    Content-Length before any of it is read, else while it streams, so no more than the
    cap is ever held."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    return data


async def read_raw(request: Request, raw: RawBody, max_bytes: int) -> bytes:
    """A non-JSON body of ``raw``'s media type (``read_capped``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != raw.media_type:
        raise BadRequest(f"Content-Type must be {raw.media_type}")
    return bytes(await read_capped(request, max_bytes))


@dataclass(frozen=True, slots=True)
class QueryReader:
    kind: type[msgspec.Struct]
    names: frozenset[str]
    allowed: str
    by_lower: Mapping[str, str] | None = None  # lower-cased name -> name, when any case goes

    def read(self, request: Request) -> Any:
        values: dict[str, str] = {}
        for key, value in request.query_params.multi_items():
            if self.by_lower is not None:
                key = self.by_lower.get(key.lower(), key)
            if key not in self.names:
                raise BadRequest(f"query parameter {key} is not known (allowed: {self.allowed})")
            if key in values:
                raise BadRequest(f"query parameter {key} is given more than once")
            if "\x00" in value:
                raise BadRequest(f"query parameter {key} must not contain NUL characters")
            values[key] = value
        try:
            return msgspec.convert(values, self.kind, strict=False)
        except msgspec.ValidationError as exc:
            message = _validation_message("", exc, self.allowed)
            name, _, detail = message.partition(": ")
            raise BadRequest(f"query parameter {name.lstrip('.')}: {detail}") from None


def field_names(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.structs.fields(kind))

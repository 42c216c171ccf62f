"""Request parsing: JSON bodies and query strings checked against small declarative specs.

One spec both validates a request and describes it (``json_schema``), so the checks and
the documentation cannot drift apart. Every failure is a BadRequest naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from app.clock import format_ts, parse_ts
from app.errors import BadRequest, PayloadTooLarge

MAX_JSON_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Field:
    kind: type  # str, int, bool or dict
    required: bool = True
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    min_length: int = 0
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    format: str | None = None  # "date-time": an ISO 8601 timestamp with a zone
    description: str = ""

    def check(self, name: str, value: Any) -> Any:
        kind = self.kind
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise BadRequest(f"{name} must be an integer")
        if kind is not int and not isinstance(value, kind):
            raise BadRequest(f"{name} must be {_TYPE_WORDS[kind]}")
        if isinstance(value, str):
            if "\x00" in value:
                raise BadRequest(f"{name} must not contain NUL characters")
            if len(value) < self.min_length:
                raise BadRequest(f"{name} must be at least {self.min_length} characters long")
            if self.max_length is not None and len(value) > self.max_length:
                raise BadRequest(f"{name} must be at most {self.max_length} characters long")
            if self.choices is not None and value not in self.choices:
                raise BadRequest(f"{name} must be one of {', '.join(self.choices)}")
            if self.pattern is not None and re.fullmatch(self.pattern, value) is None:
                raise BadRequest(f"{name} must match {self.pattern}")
        if isinstance(value, int) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise BadRequest(f"{name} must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise BadRequest(f"{name} must be at most {self.maximum}")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.kind]}
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        if self.kind is str:
            if self.min_length:
                schema["minLength"] = self.min_length
            if self.max_length is not None:
                schema["maxLength"] = self.max_length
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.format is not None:
            schema["format"] = self.format
        if self.description:
            schema["description"] = self.description
        return schema


_TYPE_WORDS = {str: "a string", bool: "true or false", dict: "an object", int: "an integer"}
_JSON_TYPES = {str: "string", bool: "boolean", dict: "object", int: "integer"}


@dataclass(frozen=True, slots=True)
class Body:
    """The shape of a JSON object body: its fields, nothing else allowed."""

    fields: Mapping[str, Field]
    min_fields: int = 0

    def parse(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise BadRequest("request body must be a JSON object")
        for key in data:
            if key not in self.fields:
                raise BadRequest(f"{key} is not a known field (allowed: {', '.join(self.fields)})")
        clean: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name not in data:
                if spec.required:
                    raise BadRequest(f"{name} is required")
                continue
            clean[name] = spec.check(name, data[name])
        if len(clean) < self.min_fields:
            raise BadRequest(f"give at least one of {', '.join(self.fields)}")
        return clean

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {name: f.json_schema() for name, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [name for name, f in self.fields.items() if f.required]
        if required:
            schema["required"] = required
        if self.min_fields:
            schema["minProperties"] = self.min_fields
        return schema


# A JSON string (with its escapes) or one bracket: what the nesting pre-scan looks at.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
# Half of a UTF-16 surrogate pair: JSON's \ud800 escapes decode to these, and they cannot
# be encoded as UTF-8 (SQLite, argon2 and the logs would all fail on them).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _bracket_depth(text: str, limit: int) -> int:
    """How deeply the arrays and objects in ``text`` nest, counted before parsing
    (brackets inside strings do not count) and stopping once past ``limit``: the parser
    recurses once per level, and about 1000 levels exhaust Python's stack."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return depth
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _check_tree(value: Any, limit: int) -> None:
    """Reject a parsed body nested deeper than ``limit`` (a scalar counts as a level) or
    holding a string or key with an unpaired surrogate."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            raise BadRequest(f"request body is nested deeper than {limit} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, level + 1))
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)


def _check_text(text: str) -> None:
    found = _SURROGATE.search(text)
    if found is not None:
        raise BadRequest(
            f"request body holds an unpaired UTF-16 surrogate (\\u{ord(found.group()):04x}); "
            "strings must be valid Unicode"
        )


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body, read with a size cap (413 before reading past it)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BadRequest("Content-Type must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    try:
        text = body.decode("utf-8")  # JSON between systems is UTF-8 (RFC 8259)
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid JSON (UTF-8)") from None
    if _bracket_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("request body is not valid JSON") from None
    _check_tree(data, MAX_JSON_DEPTH)
    return data


async def parse_body(request: Request, body: Body, max_bytes: int) -> dict[str, Any]:
    return body.parse(await read_json(request, max_bytes))


# -- query strings ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Query:
    """The query parameters a route accepts; any other is rejected."""

    fields: Mapping[str, Field]

    def parse(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        for key in params:
            if key not in self.fields:
                raise BadRequest(
                    f"query parameter {key} is not known (allowed: {', '.join(self.fields)})"
                )
        clean: dict[str, Any] = {}
        for name, spec in self.fields.items():
            values = params.getlist(name)
            if not values:
                continue
            if len(values) > 1:
                raise BadRequest(f"query parameter {name} is given more than once")
            raw = values[0]
            if spec.kind is int:
                if not re.fullmatch(r"-?[0-9]{1,12}", raw):
                    raise BadRequest(f"query parameter {name} must be an integer")
                clean[name] = spec.check(name, int(raw))
            elif spec.format == "date-time":
                clean[name] = _timestamp(name, raw)
            else:
                clean[name] = spec.check(name, raw)
        return clean


def _timestamp(name: str, raw: str) -> str:
    try:
        return format_ts(parse_ts(raw))
    except ValueError as exc:
        raise BadRequest(
            f"query parameter {name} must be an ISO 8601 timestamp with a zone, "
            f"such as 2026-01-31T12:00:00Z ({exc})"
        ) from None


def limit_offset() -> dict[str, Field]:
    return {
        "limit": Field(
            int,
            required=False,
            minimum=1,
            maximum=200,
            description="page size, 1 to 200 (default 50)",
        ),
        "offset": Field(
            int, required=False, minimum=0, maximum=10**12, description="items to skip (default 0)"
        ),
    }


UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_PATTERN)


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None

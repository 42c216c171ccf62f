"""The HTTP contract, declared once per endpoint, and everything derived from it.

An ``Endpoint`` names its method, path, handler, who may call it, its body and query
types (``msgspec.Struct``), its response types by status and the error codes it can
return. From the table (``app.api.routes.ENDPOINTS``) come the Starlette routes,
authentication and the admin check, decoding into typed objects, response encoding and
``/openapi.json``. A handler receives a ``Call`` with the typed body/query and the
principal, and returns a struct (or a ``Result`` to choose the status or add headers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api.deps import UUID_PATTERN, actor, client_address, principal, services
from app.api.deps import is_uuid as is_uuid  # re-exported: the WebSocket checks ids too
from app.api.errors import SOVD_STANDARD_CODES, GenericError, is_sovd
from app.errors import STATUS_OF, BadRequest, Forbidden, NotFound, PayloadTooLarge
from app.models import Actor, Principal
from app.services.registry import Services
from app.vocabulary import Access, ErrorCode

if TYPE_CHECKING:
    from app.config import Config

B = TypeVar("B")
Q = TypeVar("Q")

MAX_JSON_DEPTH = 8
_WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_JSON = "application/json"


class Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A request body: every field named, nothing else accepted."""


class Query(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A query string: each parameter at most once, nothing else accepted.

    ``include_schema`` (``include-schema`` in the URL) is SOVD's: a query that has it asks
    for the JSON Schema of the response body in the body's ``schema`` field.
    """

    # True: parameter names match whatever their case (SOVD's ``status[confirmedDTC]``).
    any_case_names: ClassVar[bool] = False


class Out(msgspec.Struct, frozen=True, kw_only=True):
    """A response body: every field always present (null where there is no value)."""


Limit = Annotated[int, msgspec.Meta(ge=1, le=200, description="page size, 1 to 200 (default 50)")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=10**12, description="items to skip (default 0)")]
Uuid = Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]


class Error(Out, frozen=True, kw_only=True):
    """Every error response."""

    error_code: ErrorCode
    message: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Result:
    """A handler's answer when the status is not the endpoint's first or headers are set."""

    body: Any
    status: int | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class MediaType:
    """A response type that is not JSON (the /docs page and its files): the handler
    returns a ready ``Response``; the document names the media type."""

    media_type: str


@dataclass(frozen=True, slots=True)
class RawBody:
    """A request body that is not JSON (a PDX upload): the handler gets its bytes. It has
    a cap of its own (``max_bytes`` of the configuration), not SOVD_MAX_BODY_BYTES, and
    the one media type it takes."""

    media_type: str
    max_bytes: Callable[[Config], int]
    description: str = ""


@dataclass(slots=True)
class Call(Generic[B, Q]):
    """One request, as a handler sees it."""

    request: Request
    body: B
    query: Q
    principal: Principal | None

    @property
    def who(self) -> Principal:
        """The caller of an endpoint that needs a user (the table authenticated them)."""
        assert self.principal is not None, "this endpoint is declared anonymous"
        return self.principal

    @property
    def services(self) -> Services:
        return services(self.request)

    def path_id(self, name: str) -> str:
        """A path parameter (a UUID, checked by the table), lower-cased."""
        value: str = self.request.path_params[name]
        return value.lower()

    def client(self) -> str | None:
        return client_address(self.request)

    def actor(self) -> Actor:
        return actor(self.request, self.who)


Handler = Callable[[Call[Any, Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    # status -> response body type (a msgspec type, or None for no body); the first is
    # the status of a plain return value.
    responses: Mapping[int, Any]
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None
    errors: tuple[ErrorCode, ...] = ()
    description: str = ""
    # Response descriptions beyond "OK", by status.
    notes: Mapping[int, str] = field(default_factory=dict)
    # Path parameters that also take another form than a UUID: name -> its pattern
    # (GET /api/v1/vehicles/{vehicle_id} takes a VIN too); the handler tells them apart.
    path_also: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()  # OpenAPI tags (the SOVD tree is one)
    raw_body: RawBody | None = None  # instead of ``body``: bytes of another media type

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))

    def error_codes(self) -> tuple[ErrorCode, ...]:
        """Every error code the endpoint can return: the declared ones and those the
        table itself causes (authentication, the role, validation, path ids, writes)."""
        codes = set(self.errors)
        if self.access is not Access.ANONYMOUS:
            codes.add(ErrorCode.UNAUTHORIZED)
        if self.access is Access.ADMIN:
            codes.add(ErrorCode.INSUFFICIENT_ACCESS_RIGHTS)
        if self.body is not None or self.query is not None or self.raw_body is not None:
            codes.add(ErrorCode.INCOMPLETE_REQUEST)
        if self.body is not None or self.raw_body is not None:
            codes |= {ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.REQUEST_TIMEOUT}
        if self.path_params:
            codes.add(ErrorCode.NOT_FOUND)
        if self.method in _WRITES:
            codes.add(ErrorCode.STORAGE_UNAVAILABLE)  # a full disk refuses any write
        return tuple(sorted(codes, key=lambda c: (STATUS_OF[c], c.value)))


# -- decoding --------------------------------------------------------------------------

# What the nesting pre-scan looks at: an escape (two characters, so an escaped quote never
# ends a string), a quote, or a bracket. Each match is one or two characters and nothing
# backtracks: linear in the body, whatever the body (a pattern that matched whole strings
# went quadratic on an unclosed one: 12 s for 64 KiB of quotes).
_NESTING_TOKEN = re.compile(r'\\.|["\[\]{}]', re.DOTALL)
# One escape inside a JSON string; \\ is consumed whole so "\\ud800" is not an escape.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")


def _bracket_depth(text: str, limit: int) -> int:
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


@dataclass(frozen=True, slots=True)
class _BodyReader:
    kind: type[msgspec.Struct]
    decoder: msgspec.json.Decoder[Any]
    allowed: str
    optional: bool  # every field has a default, so an empty body means {}

    async def read(self, request: Request, max_bytes: int) -> Any:
        raw = await _read_capped(request, max_bytes)
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
            _bracket_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH
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


async def _read_capped(request: Request, max_bytes: int) -> bytearray:
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


async def _read_raw(request: Request, raw: RawBody, max_bytes: int) -> bytes:
    """A non-JSON body of ``raw``'s media type (``_read_capped``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != raw.media_type:
        raise BadRequest(f"Content-Type must be {raw.media_type}")
    return bytes(await _read_capped(request, max_bytes))


@dataclass(frozen=True, slots=True)
class _QueryReader:
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


def _fields(kind: type[msgspec.Struct]) -> tuple[str, ...]:
    return tuple(f.encode_name for f in msgspec.structs.fields(kind))


# -- responses -------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


# The dialect of every schema ``include-schema=true`` returns (SOVD's clients check it).
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@cache
def schema_of(kind: type[Any]) -> dict[str, Any]:
    """The JSON Schema 2020-12 document of a response type: what ``include-schema=true``
    adds to a body, from the same type the OpenAPI document describes."""
    return {"$schema": SCHEMA_DIALECT, **msgspec.json.schema(kind)}


def _with_schema(out: Any) -> Any:
    """The body with the schema of its type, unless the handler set one (a data item's
    schema describes its ``data``: ``app.api.sovd.schemas``)."""
    if isinstance(out, Result):
        return Result(_with_schema(out.body), out.status, out.headers)
    if isinstance(out, msgspec.Struct) and "schema" in out.__struct_fields__:
        if msgspec.structs.asdict(out)["schema"] is not msgspec.UNSET:
            return out
        return msgspec.structs.replace(out, schema=schema_of(type(out)))
    return out


def _respond(endpoint: Endpoint, out: Any) -> Response:
    status = next(iter(endpoint.responses))
    headers = None
    if isinstance(out, Result):
        status = out.status or status
        headers = out.headers
        out = out.body
    if out is None:
        return Response(status_code=status, headers=headers)
    if isinstance(out, Response):  # pre-rendered (the OpenAPI document)
        return out
    return Response(_encode(out), status_code=status, headers=headers, media_type=_JSON)


# -- routes ----------------------------------------------------------------------------


def _asgi(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    body = None
    if endpoint.body is not None:
        fields = _fields(endpoint.body)
        optional = not any(f.required for f in msgspec.structs.fields(endpoint.body))
        decoder = msgspec.json.Decoder(endpoint.body)
        body = _BodyReader(endpoint.body, decoder, ", ".join(fields), optional)
    query = None
    if endpoint.query is not None:
        names = _fields(endpoint.query)
        any_case = getattr(endpoint.query, "any_case_names", False)
        query = _QueryReader(
            endpoint.query,
            frozenset(names),
            ", ".join(names),
            {n.lower(): n for n in names} if any_case else None,
        )
    raw = endpoint.raw_body
    params = endpoint.path_params
    access = endpoint.access
    handler = endpoint.handler

    async def run(request: Request) -> Response:
        who = None
        if access is not Access.ANONYMOUS:
            who = await principal(request)
            if access is Access.ADMIN and not who.is_admin:
                raise Forbidden("this operation needs the admin role")
        for name in params:
            value: str = request.path_params[name]
            if not is_uuid(value):
                also = endpoint.path_also.get(name)
                if also is not None and re.fullmatch(also, value):
                    continue
                raise NotFound(not_an_id(name, value))
        q = query.read(request) if query is not None else None
        b = (
            await body.read(request, services(request).config.max_body_bytes)
            if body is not None
            else None
        )
        if raw is not None:
            b = await _read_raw(request, raw, raw.max_bytes(services(request).config))
        out = await handler(Call(request, b, q, who))
        if getattr(q, "include_schema", False):
            out = _with_schema(out)
        return _respond(endpoint, out)

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "endpoint")
    return run


# A VIN given where a vehicle's UUID is expected: the message says where to find the id.
_VIN_LIKE = re.compile(r"^[A-HJ-NPR-Za-hj-npr-z0-9]{17}$")


def not_an_id(name: str, value: str) -> str:
    what = name.removesuffix("_id")
    if name == "vehicle_id" and _VIN_LIKE.fullmatch(value):
        return (
            f"{name} {value} looks like a VIN; use the vehicle_id from"
            f" /api/v1/vehicles?search={value}"
        )
    return f"{what} {value[:64]} does not exist"


def routes(endpoints: tuple[Endpoint, ...]) -> list[Route]:
    """One Starlette route per endpoint (a path with several methods gets several).
    Starlette answers HEAD for every GET; here only the anonymous ones keep it (health,
    the documents): a signed-in GET may reach a vehicle, and a HEAD must not run a
    command whose answer it throws away."""
    made = []
    for e in endpoints:
        route = Route(e.path, _asgi(e), methods=[e.method])
        if e.access is not Access.ANONYMOUS and route.methods is not None:
            route.methods.discard("HEAD")
        made.append(route)
    return made


# -- OpenAPI ---------------------------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_parameter(name: str, also: str | None = None) -> dict[str, Any]:
    schema = {"type": "string", "pattern": UUID_PATTERN}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema if also is None else {"anyOf": [schema, {**schema, "pattern": also}]},
    }


def _query_parameters(kind: type[msgspec.Struct], components: dict[str, Any]) -> list[Any]:
    _, defs = msgspec.json.schema_components([kind], ref_template=_REF_TEMPLATE)
    struct = defs.pop(kind.__name__)  # a query is parameters, not a body
    components.update(defs)  # the enums its parameters refer to
    return [
        {"name": name, "in": "query", "required": False, "schema": prop}
        for name, prop in struct["properties"].items()
    ]


_REF_TEMPLATE = "#/components/schemas/{name}"


def document(
    endpoints: tuple[Endpoint, ...],
    extra_paths: Mapping[str, Any],
    description: str,
    version: str = "1",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the table (``extra_paths`` for routes outside it)."""
    types: list[Any] = [Error, GenericError]
    for e in endpoints:
        if e.body is not None:
            types.append(e.body)
        types.extend(
            t for t in e.responses.values() if t is not None and not isinstance(t, MediaType)
        )
    schemas, defs = msgspec.json.schema_components(types, ref_template=_REF_TEMPLATE)
    components: dict[str, Any] = dict(defs)
    refs = iter(schemas[2:])
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {"summary": e.summary, "operationId": e.handler.__name__}
        if e.description:
            op["description"] = e.description
        if e.tags:
            op["tags"] = list(e.tags)
        parameters = [_path_parameter(p, e.path_also.get(p)) for p in e.path_params]
        if e.query is not None:
            parameters += _query_parameters(e.query, components)
        if parameters:
            op["parameters"] = parameters
        if e.body is not None:
            op["requestBody"] = {"required": True, "content": {_JSON: {"schema": next(refs)}}}
        if e.raw_body is not None:
            binary = {"type": "string", "contentMediaType": e.raw_body.media_type}
            op["requestBody"] = {
                "required": True,
                "description": e.raw_body.description,
                "content": {e.raw_body.media_type: {"schema": binary}},
            }
        responses: dict[str, Any] = {}
        for status, kind in e.responses.items():
            ok: dict[str, Any] = {"description": e.notes.get(status, "OK")}
            if isinstance(kind, MediaType):
                ok["content"] = {kind.media_type: {"schema": {"type": "string"}}}
            elif kind is not None:
                ok["content"] = {_JSON: {"schema": next(refs)}}
            responses[str(status)] = ok
        by_status: dict[int, list[str]] = {}
        for code in e.error_codes():
            by_status.setdefault(STATUS_OF[code], []).append(_code_name(code, e.path))
        error_body = _ref("GenericError" if is_sovd(e.path) else "Error")
        for status, codes in sorted(by_status.items()):
            declared = responses.get(str(status))
            schema: dict[str, Any] = error_body
            description = f"error_code: {', '.join(codes)}"
            if declared is not None and "content" in declared:
                # An error body of its own as well (the OAuth token endpoint's, RFC 6749
                # 5.2): either may come.
                schema = {"anyOf": [declared["content"][_JSON]["schema"], error_body]}
                description = f"{declared['description']}; else {description}"
            responses[str(status)] = {
                "description": description,
                "content": {_JSON: {"schema": schema}},
            }
        op["responses"] = responses
        if e.access is not Access.ANONYMOUS:
            op["security"] = [{"bearer": []}]
        op["x-access"] = e.access.value
        paths.setdefault(e.path, {})[e.method.lower()] = op
    for path, item in extra_paths.items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {"title": "SOVD command service", "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _code_name(code: ErrorCode, path: str) -> str:
    """How an error code reads in the document: the SOVD tree names ours vendor-specific."""
    if is_sovd(path) and code not in SOVD_STANDARD_CODES:
        return f"vendor-specific ({code.value})"
    return code.value


def error_reference() -> dict[str, Any]:
    return {"content": {_JSON: {"schema": _ref("Error")}}}

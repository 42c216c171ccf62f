"""The Starlette routes of the table: each endpoint's declaration, run.

One route per endpoint (``app.api.contract.Endpoint``): authentication and the admin
check, path ids, the query and body decoded (``app.api.decoding``), the handler called
with a ``Call``, its answer (with its schema when ``include-schema=true``) encoded.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from app.api.contract import WRITES, Call, Endpoint, Result, is_uuid, not_an_id, schema_of
from app.api.decoding import BodyReader, QueryReader, field_names, read_raw, refuse_form
from app.api.deps import principal, services
from app.errors import Forbidden, NotFound
from app.vocabulary import Access

_JSON = "application/json"
_encode = msgspec.json.Encoder().encode


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


def _asgi(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    body = None
    if endpoint.body is not None:
        fields = field_names(endpoint.body)
        optional = not any(f.required for f in msgspec.structs.fields(endpoint.body))
        decoder = msgspec.json.Decoder(endpoint.body)
        body = BodyReader(endpoint.body, decoder, ", ".join(fields), optional)
    query = None
    if endpoint.query is not None:
        names = field_names(endpoint.query)
        any_case = getattr(endpoint.query, "any_case_names", False)
        query = QueryReader(
            endpoint.query,
            frozenset(names),
            ", ".join(names),
            {n.lower(): n for n in names} if any_case else None,
        )
    raw = endpoint.raw_body
    params = endpoint.path_params
    access = endpoint.access
    handler = endpoint.handler
    write = endpoint.method in WRITES
    accepted = raw.media_type if raw is not None else None

    async def run(request: Request) -> Response:
        if write:  # before anything is authenticated or done (docs/security.md: CSRF)
            refuse_form(request, accepted)
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
            b = await read_raw(request, raw, raw.max_bytes(services(request).config))
        out = await handler(Call(request, b, q, who))
        if getattr(q, "include_schema", False):
            out = _with_schema(out)
        return _respond(endpoint, out)

    run.__name__ = run.__qualname__ = getattr(handler, "__name__", "endpoint")
    return run


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


def route_templates(
    routes: list[Route | WebSocketRoute],
) -> Callable[[Mapping[str, Any]], str | None]:
    """The matched route's template, so HTTP metrics carry
    /api/v1/commands/{command_id}, never a raw path."""
    templates: dict[object, str] = {route.endpoint: route.path for route in routes}

    def route_template(scope: Mapping[str, Any]) -> str | None:
        return templates.get(scope.get("endpoint"))

    return route_template

"""The HTTP contract, declared once per endpoint: the types a route is declared with.

An ``Endpoint`` names its method, path, handler, who may call it, its body and query
types (``msgspec.Struct``), its response types by status and the error codes it can
return. The table of them is ``app.api.routes.ENDPOINTS``; from it come the Starlette
routes with authentication, the admin check, decoding and encoding (``app.api.routing``,
``app.api.decoding``) and ``/openapi.json`` (``app.api.openapi``). A handler receives a
``Call`` with the typed body/query and the principal, and returns a struct (or a
``Result`` to choose the status or add headers).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar

import msgspec
from starlette.requests import Request

from app.api.deps import UUID_PATTERN, actor, client_address, services
from app.api.deps import is_uuid as is_uuid  # re-exported: the WebSocket checks ids too
from app.errors import STATUS_OF
from app.models import Actor, Principal
from app.services.registry import Services
from app.vocabulary import Access, ErrorCode

if TYPE_CHECKING:
    from app.config import Config

B = TypeVar("B")
Q = TypeVar("Q")

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


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
        if self.method in WRITES:
            codes.add(ErrorCode.INCOMPLETE_REQUEST)  # a form's Content-Type (routing)
        if self.body is not None or self.raw_body is not None:
            codes |= {ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.REQUEST_TIMEOUT}
        if self.path_params:
            codes.add(ErrorCode.NOT_FOUND)
        if self.method in WRITES:
            codes.add(ErrorCode.STORAGE_UNAVAILABLE)  # a full disk refuses any write
        return tuple(sorted(codes, key=lambda c: (STATUS_OF[c], c.value)))


# -- what the table derives, shared by its users ----------------------------------------

# The dialect of every schema ``include-schema=true`` returns (SOVD's clients check it).
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@cache
def schema_of(kind: type[Any]) -> dict[str, Any]:
    """The JSON Schema 2020-12 document of a response type: what ``include-schema=true``
    adds to a body, from the same type the OpenAPI document describes."""
    return {"$schema": SCHEMA_DIALECT, **msgspec.json.schema(kind)}


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

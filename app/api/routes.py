"""The route table: every HTTP endpoint of the service, declared once.

Each entry is the whole contract of one endpoint (see ``app.api.contract``): adding an
endpoint is one entry here and its handler. The Starlette routes, authentication, the
admin check, validation, response encoding, ``/openapi.json`` and the authorization
matrix test all come from this table.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.responses import Response

from app.api import (
    audit,
    auth,
    catalogue,
    commands,
    descriptions,
    docs,
    health,
    oauth,
    service_accounts,
    users,
    vehicles,
)
from app.api.contract import Call, Endpoint, RawBody
from app.api.sovd.routes import SOVD_ENDPOINTS
from app.models import ServiceAccount, User, Vehicle
from app.services.description_files import NAME_PATTERN as DESCRIPTION_NAME
from app.services.vehicle_inputs import VIN_ANY_CASE
from app.vocabulary import Access, ErrorCode

ANON, USER, ADMIN = Access.ANONYMOUS, Access.USER, Access.ADMIN
E = ErrorCode


async def openapi(call: Call[None, None]) -> Response:
    """The document, rendered once at start-up (``app.main`` stores it)."""
    document: Response = call.request.app.state.openapi
    return document


ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    Endpoint("GET", "/health/live", health.live, "Liveness", ANON, {200: health.Health}),
    Endpoint(
        "GET",
        "/health/ready",
        health.ready,
        "Readiness",
        ANON,
        {200: health.Readiness},
        errors=(E.NOT_READY,),
    ),
    Endpoint("GET", "/openapi.json", openapi, "This document", ANON, {200: dict[str, Any]}),
    Endpoint(
        "POST",
        "/api/v1/auth/login",
        auth.login,
        "Log in",
        ANON,
        {200: auth.TokenPair},
        body=auth.Login,
        errors=(E.UNAUTHORIZED, E.RATE_LIMITED),
    ),
    Endpoint(
        "POST",
        "/api/v1/auth/refresh",
        auth.refresh,
        "New token pair",
        ANON,
        {200: auth.TokenPair},
        body=auth.Refresh,
        errors=(E.UNAUTHORIZED,),
    ),
    Endpoint(
        "POST",
        "/api/v1/auth/token",
        oauth.token,
        "A service account's access token (OAuth 2.0 client credentials, RFC 6749 4.4)",
        ANON,
        {200: oauth.AccessToken, 400: oauth.OAuthError, 401: oauth.OAuthError},
        raw_body=RawBody(
            oauth.FORM,
            lambda _: oauth.MAX_FORM_BYTES,
            "grant_type=client_credentials; the client's id and secret by HTTP Basic or as"
            " client_id and client_secret (not both)",
        ),
        errors=(E.RATE_LIMITED, E.OVERLOADED),
        notes={
            400: "RFC 6749 5.2: invalid_request, unsupported_grant_type, invalid_scope"
            " (a body that is not a form: the service's incomplete-request)",
            401: "invalid_client (WWW-Authenticate: Basic)",
        },
    ),
    Endpoint("POST", "/api/v1/auth/logout", auth.logout, "End the session", USER, {204: None}),
    Endpoint("GET", "/api/v1/auth/me", auth.me, "Who am I", USER, {200: auth.Me}),
    Endpoint(
        "POST",
        "/api/v1/auth/password",
        auth.change_password,
        "Change your own password (your other sessions end)",
        USER,
        {200: auth.PasswordChanged},
        body=auth.PasswordChange,
        errors=(E.INSUFFICIENT_ACCESS_RIGHTS, E.RATE_LIMITED, E.OVERLOADED),
    ),
    Endpoint("GET", "/api/v1/users", users.list_users, "List users", ADMIN, {200: users.UserList}),
    Endpoint(
        "POST",
        "/api/v1/users",
        users.create_user,
        "Create a user",
        ADMIN,
        {201: User},
        body=users.NewUser,
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/users/{user_id}",
        users.update_user,
        "Disable or re-enable a user, or set their password",
        ADMIN,
        {200: User},
        body=users.UserPatch,
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/users/{user_id}",
        users.delete_user,
        "Delete a user without command history",
        ADMIN,
        {204: None},
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "GET",
        "/api/v1/service-accounts",
        service_accounts.list_service_accounts,
        "List service accounts (machine clients)",
        ADMIN,
        {200: service_accounts.ServiceAccountList},
    ),
    Endpoint(
        "POST",
        "/api/v1/service-accounts",
        service_accounts.create_service_account,
        "Create a service account: its client secret is in this answer only",
        ADMIN,
        {201: service_accounts.ServiceAccountSecret},
        body=service_accounts.NewServiceAccount,
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "GET",
        "/api/v1/service-accounts/{account_id}",
        service_accounts.get_service_account,
        "One service account",
        ADMIN,
        {200: ServiceAccount},
    ),
    Endpoint(
        "PATCH",
        "/api/v1/service-accounts/{account_id}",
        service_accounts.update_service_account,
        "Disable (its tokens end, its streams close) or re-enable a service account",
        ADMIN,
        {200: ServiceAccount},
        body=service_accounts.ServiceAccountPatch,
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "POST",
        "/api/v1/service-accounts/{account_id}/secret",
        service_accounts.rotate_secret,
        "A new client secret, in this answer only (the old one and its tokens end)",
        ADMIN,
        {200: service_accounts.ServiceAccountSecret},
    ),
    Endpoint(
        "DELETE",
        "/api/v1/service-accounts/{account_id}",
        service_accounts.delete_service_account,
        "Delete a service account without command history",
        ADMIN,
        {204: None},
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "GET",
        "/api/v1/vehicles",
        vehicles.list_vehicles,
        "List vehicles",
        USER,
        {200: vehicles.VehiclePage},
        query=vehicles.VehicleQuery,
    ),
    Endpoint(
        "POST",
        "/api/v1/vehicles",
        vehicles.create_vehicle,
        "Register a vehicle",
        ADMIN,
        {201: Vehicle},
        body=vehicles.NewVehicle,
        errors=(E.CONFLICT,),
    ),
    Endpoint(
        "GET",
        "/api/v1/vehicles/{vehicle_id}",
        vehicles.get_vehicle,
        "One vehicle, by vehicle_id or VIN",
        USER,
        {200: Vehicle},
        path_also={"vehicle_id": VIN_ANY_CASE},
    ),
    Endpoint(
        "PATCH",
        "/api/v1/vehicles/{vehicle_id}",
        vehicles.update_vehicle,
        "Change a vehicle (at least one field), by vehicle_id or VIN",
        ADMIN,
        {200: Vehicle},
        body=vehicles.VehiclePatch,
        path_also={"vehicle_id": VIN_ANY_CASE},
    ),
    Endpoint(
        "GET",
        "/api/v1/vehicles/{vehicle_id}/services",
        vehicles.vehicle_services,
        "The services of its ECUs bound to a description (what DiagService takes)",
        USER,
        {200: vehicles.VehicleServices},
        path_also={"vehicle_id": VIN_ANY_CASE},
    ),
    Endpoint(
        "GET",
        "/api/v1/catalogue",
        catalogue.catalogue,
        "The command catalogue",
        USER,
        {200: catalogue.Catalogue},
    ),
    Endpoint(
        "GET",
        "/api/v1/commands",
        commands.list_commands,
        "Command history",
        USER,
        {200: commands.CommandPage},
        query=commands.CommandQuery,
    ),
    Endpoint(
        "POST",
        "/api/v1/commands",
        commands.submit,
        "Submit a command",
        USER,
        {201: commands.Command},
        body=commands.NewCommand,
        errors=(E.NOT_FOUND, E.CONFLICT, E.VEHICLE_DISCONNECTED, E.RATE_LIMITED, E.OVERLOADED),
    ),
    Endpoint(
        "GET",
        "/api/v1/commands/{command_id}",
        commands.get_command,
        "One command",
        USER,
        {200: commands.Command},
    ),
    Endpoint(
        "POST",
        "/api/v1/commands/{command_id}/cancel",
        commands.cancel,
        "Stop a queued or running command (it ends cancelled)",
        USER,
        {200: commands.Command, 202: commands.Command},
        errors=(E.CONFLICT,),
        notes={
            202: "Cancelled, but the database refuses writes now: the command ends"
            " cancelled once it takes them again (the body is the command as stored)"
        },
    ),
    Endpoint(
        "GET",
        "/api/v1/commands/{command_id}/responses",
        commands.responses,
        "A command's answer, a page at a time (next_after: where the next page starts)",
        USER,
        {200: commands.ResponseChunks},
        query=commands.ResponsesQuery,
    ),
    Endpoint(
        "GET",
        "/api/v1/audit",
        audit.list_audit,
        "The audit log",
        ADMIN,
        {200: audit.AuditPage},
        query=audit.AuditQuery,
    ),
    # ECU descriptions: PDX files (issue #20).
    Endpoint(
        "GET",
        "/api/v1/descriptions",
        descriptions.list_descriptions,
        "The ECU descriptions (PDX files), each with its state and what it holds",
        ADMIN,
        {200: descriptions.DescriptionList},
    ),
    Endpoint(
        "POST",
        "/api/v1/descriptions",
        descriptions.add_description,
        "Add an ECU description: the raw bytes of a PDX file (application/zip)",
        ADMIN,
        {201: descriptions.Description},
        query=descriptions.DescriptionName,
        raw_body=descriptions.UPLOAD,
        errors=(E.CONFLICT,),
        description="Checked (size, entries, unpacked size, paths, index.xml, no XML"
        " entities) and parsed with odxtools before anything is stored: a bad file is 400"
        " (413 past a size limit) naming what is wrong; a name in use or an ECU (base"
        " variant) another file provides is refused.",
    ),
    Endpoint(
        "DELETE",
        "/api/v1/descriptions/{name}",
        descriptions.remove_description,
        "Remove an ECU description",
        ADMIN,
        {204: None},
        path_also={"name": DESCRIPTION_NAME},
    ),
    # The interactive API page and its files (Swagger UI, shipped in the package).
    Endpoint("GET", docs.DOCS_PATH, docs.docs_page, "This API, to try out", ANON, {200: docs.HTML}),
    Endpoint(
        "GET", "/docs/swagger-ui.css", docs.docs_stylesheet, "Its stylesheet", ANON, {200: docs.CSS}
    ),
    Endpoint(
        "GET",
        "/docs/swagger-ui-bundle.js",
        docs.docs_bundle,
        "Its script (Swagger UI)",
        ANON,
        {200: docs.JAVASCRIPT},
    ),
    Endpoint(
        "GET",
        "/docs/swagger-initializer.js",
        docs.docs_initializer,
        "Its start-up script",
        ANON,
        {200: docs.JAVASCRIPT},
    ),
    # The SOVD resource tree of every vehicle (app.api.sovd).
    *SOVD_ENDPOINTS,
)

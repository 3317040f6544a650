"""HTTP routes for assistants: parse, call `threadline.core.assistants`, serialise."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request
from starlette.responses import Response

from threadline.core import assistants as core
from threadline.core.errors import InvalidInput
from threadline.core.services import Services
from threadline.http.ids import require_uuid
from threadline.http.responses import JSONResponse, json_response, no_content, pagination_headers
from threadline.http.schemas.assistants import (
    Assistant,
    AssistantCountRequest,
    AssistantCreate,
    AssistantPatch,
    AssistantSearchRequest,
    AssistantVersion,
    AssistantVersionChange,
    AssistantVersionsSearchRequest,
    GraphDrawing,
    GraphSchema,
    GraphSchemaNoId,
)
from threadline.serialization import isoformat
from threadline.storage.database import Row

router = APIRouter(tags=["Assistants"])

KIND = "assistant"
ASSISTANT_FIELDS = (
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "created_at",
    "updated_at",
    "version",
    "description",
)
VERSION_FIELDS = (
    "assistant_id",
    "version",
    "graph_id",
    "config",
    "context",
    "metadata",
    "created_at",
    "name",
    "description",
)
_TIMES = ("created_at", "updated_at")

AssistantPath = Annotated[
    str, Path(description="The ID of the assistant.", json_schema_extra={"format": "uuid"})
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _encode(row: Row, fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: isoformat(row[key]) if key in _TIMES else row.get(key) for key in fields}


def encode_assistant(row: Row) -> dict[str, Any]:
    return _encode(row, ASSISTANT_FIELDS)


def _xray_schema(schema: dict[str, Any]) -> None:
    schema.pop("anyOf", None)
    schema["oneOf"] = [{"type": "boolean"}, {"type": "integer", "minimum": 1}]
    schema["default"] = False


def _parse_xray(raw: str | None) -> bool | int:
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    try:
        depth = int(value)
    except ValueError:
        raise InvalidInput("Invalid xray value") from None
    if depth <= 0:
        raise InvalidInput("Invalid xray value")
    return depth


@router.post("/assistants", response_model=Assistant, summary="Create Assistant")
async def create_assistant(request: Request, body: AssistantCreate) -> JSONResponse:
    assistant_id = body.assistant_id
    if assistant_id is not None:
        assistant_id = require_uuid(assistant_id, KIND)
    row = await core.create_assistant(
        _services(request),
        graph_id=body.graph_id,
        assistant_id=assistant_id,
        config=body.config.as_dict() if body.config is not None else None,
        context=body.context,
        metadata=body.metadata,
        if_exists=body.if_exists,
        name=body.name,
        description=body.description,
    )
    return json_response(encode_assistant(row))


@router.post(
    "/assistants/search",
    response_model=list[Assistant],
    summary="Search Assistants",
    description="Newest first unless sorted otherwise. Sets `X-Pagination-Total` (the total "
    "number of matches) and, when there are more, `X-Pagination-Next` (the next offset).",
)
async def search_assistants(request: Request, body: AssistantSearchRequest) -> JSONResponse:
    page = await core.search_assistants(
        _services(request),
        graph_id=body.graph_id,
        metadata=body.metadata,
        name=body.name,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    fields: tuple[str, ...] = ASSISTANT_FIELDS
    if body.select:
        fields = tuple(f for f in ASSISTANT_FIELDS if f in body.select)
    return json_response(
        [_encode(row, fields) for row in page.items],
        headers=pagination_headers(body.offset, body.limit, len(page.items), page.total),
    )


@router.post("/assistants/count", response_model=int, summary="Count Assistants")
async def count_assistants(request: Request, body: AssistantCountRequest) -> JSONResponse:
    count = await core.count_assistants(
        _services(request), graph_id=body.graph_id, metadata=body.metadata, name=body.name
    )
    return json_response(count)


@router.get("/assistants/{assistant_id}", response_model=Assistant, summary="Get Assistant")
async def get_assistant(request: Request, assistant_id: AssistantPath) -> JSONResponse:
    row = await core.get_assistant(_services(request), require_uuid(assistant_id, KIND))
    return json_response(encode_assistant(row))


@router.patch(
    "/assistants/{assistant_id}",
    response_model=Assistant,
    summary="Patch Assistant",
    description="Creates a new version and makes it current. `metadata` is merged.",
)
async def patch_assistant(
    request: Request, assistant_id: AssistantPath, body: AssistantPatch
) -> JSONResponse:
    row = await core.update_assistant(
        _services(request),
        require_uuid(assistant_id, KIND),
        graph_id=body.graph_id,
        config=body.config.as_dict() if body.config is not None else None,
        context=body.context,
        metadata=body.metadata,
        name=body.name,
        description=body.description,
    )
    return json_response(encode_assistant(row))


@router.delete("/assistants/{assistant_id}", status_code=204, summary="Delete Assistant")
async def delete_assistant(
    request: Request,
    assistant_id: AssistantPath,
    delete_threads: Annotated[
        bool,
        Query(
            description="Also delete every thread whose metadata.assistant_id is this "
            "assistant, with its runs and checkpoints."
        ),
    ] = False,
) -> Response:
    await core.delete_assistant(
        _services(request), require_uuid(assistant_id, KIND), delete_threads=delete_threads
    )
    return no_content()


@router.get(
    "/assistants/{assistant_id}/graph",
    response_model=GraphDrawing,
    summary="Get Assistant Graph",
    description="The assistant may also be given by graph id (its system assistant).",
)
async def get_assistant_graph(
    request: Request,
    assistant_id: Annotated[str, Path(description="An assistant ID, or a graph ID.")],
    xray: Annotated[
        str | None,
        Query(
            description="Include subgraphs: `true`, or a positive integer depth.",
            json_schema_extra=_xray_schema,
        ),
    ] = None,
) -> JSONResponse:
    drawing = await core.get_graph_drawing(_services(request), assistant_id, xray=_parse_xray(xray))
    return json_response(drawing)


@router.get(
    "/assistants/{assistant_id}/schemas",
    response_model=GraphSchema,
    summary="Get Assistant Schemas",
)
async def get_assistant_schemas(request: Request, assistant_id: AssistantPath) -> JSONResponse:
    schemas = await core.get_schemas(_services(request), require_uuid(assistant_id, KIND))
    return json_response(schemas)


@router.get(
    "/assistants/{assistant_id}/subgraphs",
    response_model=dict[str, GraphSchemaNoId],
    summary="Get Assistant Subgraphs",
)
async def get_assistant_subgraphs(
    request: Request,
    assistant_id: AssistantPath,
    recurse: Annotated[bool, Query(description="Also list subgraphs of subgraphs.")] = False,
) -> JSONResponse:
    subgraphs = await core.get_subgraphs(
        _services(request), require_uuid(assistant_id, KIND), recurse=recurse
    )
    return json_response(subgraphs)


@router.get(
    "/assistants/{assistant_id}/subgraphs/{namespace}",
    response_model=dict[str, GraphSchemaNoId],
    summary="Get Assistant Subgraphs by Namespace",
    description="`{}` when no subgraph has that namespace.",
)
async def get_assistant_subgraphs_in(
    request: Request,
    assistant_id: AssistantPath,
    namespace: str,
    recurse: Annotated[bool, Query(description="Also look in subgraphs of subgraphs.")] = False,
) -> JSONResponse:
    subgraphs = await core.get_subgraphs(
        _services(request), require_uuid(assistant_id, KIND), namespace=namespace, recurse=recurse
    )
    return json_response(subgraphs)


@router.post(
    "/assistants/{assistant_id}/versions",
    response_model=list[AssistantVersion],
    summary="Get Assistant Versions",
    description="Newest first. A metadata filter that matches nothing gives `[]`.",
)
async def list_assistant_versions(
    request: Request,
    assistant_id: AssistantPath,
    body: Annotated[AssistantVersionsSearchRequest | None, Body()] = None,
) -> JSONResponse:
    # The body is optional (the openapi of the reference documents none; its server
    # requires one): no body means the defaults.
    body = body or AssistantVersionsSearchRequest()
    versions = await core.list_versions(
        _services(request),
        require_uuid(assistant_id, KIND),
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response([_encode(row, VERSION_FIELDS) for row in versions])


@router.post(
    "/assistants/{assistant_id}/latest",
    response_model=Assistant,
    summary="Set Latest Assistant Version",
    description='The version comes in the JSON body `{"version": N}` (what the SDK sends) '
    "or in the `version` query parameter (what the reference's openapi documents).",
)
async def set_latest_version(
    request: Request,
    assistant_id: AssistantPath,
    body: Annotated[AssistantVersionChange | None, Body()] = None,
    version: Annotated[int | None, Query(description="The version to make current.")] = None,
) -> JSONResponse:
    assistant_id = require_uuid(assistant_id, KIND)
    chosen = body.version if body is not None and body.version is not None else version
    if chosen is None:
        raise InvalidInput("'version' is a required property")
    row = await core.set_latest_version(_services(request), assistant_id, chosen)
    return json_response(encode_assistant(row))

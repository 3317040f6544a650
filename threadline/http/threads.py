"""HTTP routes for threads and their state."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from threadline.core import threads as core
from threadline.core.services import Services
from threadline.core.state import select_state_fields
from threadline.http.ids import require_uuid
from threadline.http.responses import JSONResponse, json_response, no_content, pagination_headers
from threadline.http.schemas.threads import (
    ThreadCountRequest,
    ThreadCreate,
    ThreadHistoryRequest,
    ThreadPatch,
    ThreadPruneRequest,
    ThreadSearchRequest,
    ThreadStateCheckpointRequest,
    ThreadStateUpdate,
)
from threadline.storage.database import Row

router = APIRouter(tags=["Threads"])

THREAD_FIELDS = (
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "status",
    "config",
    "values",
    "interrupts",
    "error",
)
_TIME_FIELDS = ("created_at", "updated_at", "state_updated_at")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _time(value: datetime.datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value is not None else None


def thread_json(
    thread: Row, *, select: list[str] | None = None, include: set[str] | None = None
) -> dict[str, Any]:
    fields = [f for f in THREAD_FIELDS if not select or f in select]
    body: dict[str, Any] = {}
    for field in fields:
        value = thread.get(field)
        body[field] = _time(value) if field in _TIME_FIELDS else value
    ttl = thread.get("ttl")
    if include and "ttl" in include and ttl:
        body["ttl"] = {
            "strategy": ttl.get("strategy", "delete"),
            "ttl_minutes": ttl.get("ttl"),
            "expires_at": _time(thread.get("expires_at")),
        }
    return body


def _thread_id(thread_id: str) -> str:
    return require_uuid(thread_id, "thread")


@router.post("/threads", response_class=JSONResponse)
async def create_thread(request: Request, body: ThreadCreate) -> JSONResponse:
    thread = await core.create_thread(
        _services(request),
        thread_id=_thread_id(body.thread_id) if body.thread_id else None,
        metadata=body.metadata,
        if_exists=body.if_exists,
        ttl=body.ttl.model_dump() if body.ttl else None,
        supersteps=[s.model_dump() for s in body.supersteps] if body.supersteps else None,
    )
    return json_response(thread_json(thread))


@router.post("/threads/search", response_class=JSONResponse)
async def search_threads(request: Request, body: ThreadSearchRequest) -> JSONResponse:
    paths = core.parse_extract(body.extract)
    rows, total = await core.search_threads(
        _services(request),
        ids=body.ids,
        metadata=body.metadata,
        values=body.values,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    select: list[str] | None = list(body.select) if body.select else None
    results = []
    for row in rows:
        item = thread_json(row, select=select)
        if paths:
            item["extracted"] = core.extract_values(row, paths)
        results.append(item)
    return json_response(
        results, headers=pagination_headers(body.offset, body.limit, len(rows), total)
    )


@router.post("/threads/count", response_class=JSONResponse)
async def count_threads(request: Request, body: ThreadCountRequest) -> JSONResponse:
    count = await core.count_threads(
        _services(request), metadata=body.metadata, values=body.values, status=body.status
    )
    return json_response(count)


@router.post("/threads/prune", response_class=JSONResponse)
async def prune_threads(request: Request, body: ThreadPruneRequest) -> JSONResponse:
    ids = [_thread_id(thread_id) for thread_id in body.thread_ids]
    pruned = await core.prune_threads(_services(request), ids, body.strategy)
    return json_response({"pruned_count": pruned})


@router.get("/threads/{thread_id}", response_class=JSONResponse)
async def get_thread(request: Request, thread_id: str, include: str | None = None) -> JSONResponse:
    thread = await core.get_thread(_services(request), _thread_id(thread_id))
    included = {part.strip() for part in (include or "").split(",") if part.strip()}
    return json_response(thread_json(thread, include=included))


@router.get("/threads/{thread_id}/storage", response_class=JSONResponse)
async def thread_storage(request: Request, thread_id: str) -> JSONResponse:
    """Bytes a thread holds: checkpoints, channel values by channel, pending writes."""
    return json_response(await core.thread_storage(_services(request), _thread_id(thread_id)))


@router.patch("/threads/{thread_id}", response_model=None)
async def patch_thread(
    request: Request,
    thread_id: str,
    body: ThreadPatch,
    prefer: Annotated[str | None, Header()] = None,
) -> Response:
    thread = await core.patch_thread(
        _services(request),
        _thread_id(thread_id),
        metadata=body.metadata,
        ttl=body.ttl.model_dump() if body.ttl else None,
    )
    if prefer and "return=minimal" in prefer.replace(" ", "").lower():
        return no_content()
    return json_response(thread_json(thread))


@router.delete("/threads/{thread_id}", status_code=204, response_model=None)
async def delete_thread(request: Request, thread_id: str) -> Response:
    await core.delete_thread(_services(request), _thread_id(thread_id))
    return no_content()


@router.post("/threads/{thread_id}/copy", response_class=JSONResponse)
async def copy_thread(request: Request, thread_id: str) -> JSONResponse:
    thread = await core.copy_thread(_services(request), _thread_id(thread_id))
    return json_response(thread_json(thread))


# --- state ----------------------------------------------------------------------------


@router.get("/threads/{thread_id}/state", response_class=JSONResponse)
async def get_state(
    request: Request,
    thread_id: str,
    subgraphs: bool = False,
    select: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    state = await core.get_state(_services(request), _thread_id(thread_id), subgraphs=subgraphs)
    return json_response(select_state_fields(state, select))


@router.post("/threads/{thread_id}/state", response_class=JSONResponse)
async def update_state(request: Request, thread_id: str, body: ThreadStateUpdate) -> JSONResponse:
    checkpoint = body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else {}
    if body.checkpoint_id and not checkpoint.get("checkpoint_id"):
        checkpoint["checkpoint_id"] = body.checkpoint_id
    result = await core.update_state(
        _services(request),
        _thread_id(thread_id),
        values=body.values,
        as_node=body.as_node,
        checkpoint=checkpoint or None,
    )
    return json_response(result)


@router.post("/threads/{thread_id}/state/checkpoint", response_class=JSONResponse)
async def get_state_at_checkpoint(
    request: Request, thread_id: str, body: ThreadStateCheckpointRequest
) -> JSONResponse:
    state = await core.get_state(
        _services(request),
        _thread_id(thread_id),
        checkpoint=body.checkpoint.model_dump(exclude_none=True),
        subgraphs=body.subgraphs,
    )
    return json_response(select_state_fields(state, body.select))


@router.get("/threads/{thread_id}/state/{checkpoint_id}", response_class=JSONResponse)
async def get_state_at(
    request: Request,
    thread_id: str,
    checkpoint_id: str,
    subgraphs: bool = False,
    select: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    state = await core.get_state(
        _services(request),
        _thread_id(thread_id),
        checkpoint={"checkpoint_id": checkpoint_id},
        subgraphs=subgraphs,
    )
    return json_response(select_state_fields(state, select))


@router.get("/threads/{thread_id}/history", response_class=JSONResponse)
async def get_history(
    request: Request,
    thread_id: str,
    # The reference defaults to 1 here (its openapi says 10); the SDK uses POST.
    limit: Annotated[int, Query(ge=0, le=1000)] = 1,
    before: str | None = None,
    select: Annotated[list[str] | None, Query()] = None,
) -> JSONResponse:
    states = await core.get_history(
        _services(request), _thread_id(thread_id), limit=limit, before=before
    )
    return json_response([select_state_fields(s, select) for s in states])


@router.post("/threads/{thread_id}/history", response_class=JSONResponse)
async def post_history(
    request: Request, thread_id: str, body: ThreadHistoryRequest
) -> JSONResponse:
    states = await core.get_history(
        _services(request),
        _thread_id(thread_id),
        limit=body.limit,
        before=body.before,
        metadata=body.metadata,
        checkpoint=body.checkpoint.model_dump(exclude_none=True) if body.checkpoint else None,
    )
    return json_response([select_state_fields(s, body.select) for s in states])

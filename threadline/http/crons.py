"""HTTP routes for crons: parse, call `threadline.core.crons`, serialise."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from threadline.core import crons as core
from threadline.core.services import Services
from threadline.http.ids import require_uuid
from threadline.http.responses import JSONResponse, json_response, no_content, pagination_headers
from threadline.http.schemas.crons import (
    Cron,
    CronCountRequest,
    CronCreate,
    CronPatch,
    CronSearch,
    ThreadCronCreate,
)
from threadline.serialization import isoformat
from threadline.storage.database import Row

router = APIRouter(tags=["Crons"])

CRON_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
)
_TIMES = ("end_time", "next_run_date", "created_at", "updated_at")

CronPath = Annotated[
    str, Path(description="The ID of the cron.", json_schema_extra={"format": "uuid"})
]
ThreadPath = Annotated[
    str, Path(description="The ID of the thread.", json_schema_extra={"format": "uuid"})
]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def cron_json(row: Row, select: list[str] | None = None) -> dict[str, Any]:
    fields = [f for f in CRON_FIELDS if not select or f in select]
    return {key: isoformat(row[key]) if key in _TIMES else row.get(key) for key in fields}


def _cron_id(cron_id: str) -> str:
    return require_uuid(cron_id, "cron")


@router.post("/runs/crons", response_model=Cron, summary="Create Cron")
async def create_cron(request: Request, body: CronCreate) -> JSONResponse:
    """Create a cron that runs on a new thread at each firing."""
    row = await core.create_cron(_services(request), None, body.fields())
    return json_response(cron_json(row))


@router.post("/threads/{thread_id}/runs/crons", response_model=Cron, summary="Create Thread Cron")
async def create_thread_cron(
    request: Request, thread_id: ThreadPath, body: ThreadCronCreate
) -> JSONResponse:
    """Create a cron that runs on this thread, with its multitask strategy."""
    thread_id = require_uuid(thread_id, "thread")
    row = await core.create_cron(_services(request), thread_id, body.fields())
    return json_response(cron_json(row))


@router.post(
    "/runs/crons/search",
    response_model=list[Cron],
    summary="Search Crons",
    description="Newest first unless sorted otherwise. Sets `X-Pagination-Total` (the total "
    "number of matches) and, when there are more, `X-Pagination-Next` (the next offset).",
)
async def search_crons(request: Request, body: CronSearch) -> JSONResponse:
    rows, total = await core.search_crons(
        _services(request),
        assistant_id=body.assistant_id,
        thread_id=body.thread_id,
        enabled=body.enabled,
        metadata=body.metadata,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    select: list[str] | None = list(body.select) if body.select else None
    return json_response(
        [cron_json(row, select) for row in rows],
        headers=pagination_headers(body.offset, body.limit, len(rows), total),
    )


@router.post("/runs/crons/count", response_model=int, summary="Count Crons")
async def count_crons(request: Request, body: CronCountRequest) -> JSONResponse:
    count = await core.count_crons(
        _services(request),
        assistant_id=body.assistant_id,
        thread_id=body.thread_id,
        metadata=body.metadata,
    )
    return json_response(count)


@router.get("/runs/crons/{cron_id}", response_model=Cron, summary="Get Cron")
async def get_cron(request: Request, cron_id: CronPath) -> JSONResponse:
    row = await core.get_cron(_services(request), _cron_id(cron_id))
    return json_response(cron_json(row))


@router.patch("/runs/crons/{cron_id}", response_model=Cron, summary="Update Cron")
async def patch_cron(request: Request, cron_id: CronPath, body: CronPatch) -> JSONResponse:
    """Change a cron. `metadata` is merged into the cron's; other fields replace theirs."""
    row = await core.patch_cron(_services(request), _cron_id(cron_id), body.fields())
    return json_response(cron_json(row))


@router.delete("/runs/crons/{cron_id}", status_code=204, summary="Delete Cron")
async def delete_cron(request: Request, cron_id: CronPath) -> Response:
    await core.delete_cron(_services(request), _cron_id(cron_id))
    return no_content()

"""HTTP routes for the long-term store (`client.store`)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from langgraph.store.base import NOT_PROVIDED, Item
from starlette.responses import Response

from threadline.core import store as core
from threadline.core.errors import BadRequest
from threadline.core.services import Services
from threadline.http.responses import JSONResponse, json_response, no_content
from threadline.http.schemas.store import (
    StoreDeleteRequest,
    StoreListNamespacesRequest,
    StorePutRequest,
    StoreSearchRequest,
)

router = APIRouter(tags=["Store"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _time(value: datetime.datetime) -> str:
    if value.tzinfo is None:  # SQLite's CURRENT_TIMESTAMP is UTC
        value = value.replace(tzinfo=datetime.UTC)
    return value.isoformat(timespec="microseconds")


def item_json(item: Item) -> dict[str, Any]:
    body: dict[str, Any] = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _time(item.created_at),
        "updated_at": _time(item.updated_at),
    }
    if hasattr(item, "score"):
        body["score"] = item.score
    return body


@router.put("/store/items", status_code=204, response_class=Response)
async def put_item(request: Request, body: StorePutRequest) -> Response:
    await core.put_item(
        _services(request),
        body.namespace,
        body.key,
        body.value,
        index=body.index,
        ttl=body.ttl if "ttl" in body.model_fields_set else NOT_PROVIDED,
    )
    return no_content()


@router.get("/store/items", response_class=JSONResponse)
async def get_item(
    request: Request,
    key: str | None = None,
    namespace: Annotated[list[str] | None, Query()] = None,
    refresh_ttl: bool | None = None,
) -> JSONResponse:
    if not key:
        # the reference answers {"error": ...}; every error here is {"detail": ...}
        raise BadRequest("Key is required")
    item = await core.get_item(
        _services(request),
        core.parse_namespace(namespace or []),
        key,
        refresh_ttl=refresh_ttl,
    )
    return json_response(item_json(item) if item is not None else None)


@router.delete("/store/items", status_code=204, response_class=Response)
async def delete_item(request: Request, body: StoreDeleteRequest) -> Response:
    await core.delete_item(_services(request), body.namespace, body.key)
    return no_content()


@router.post("/store/items/search", response_class=JSONResponse)
async def search_items(request: Request, body: StoreSearchRequest) -> JSONResponse:
    items = await core.search_items(
        _services(request),
        body.namespace_prefix or [],
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        query=body.query,
        refresh_ttl=body.refresh_ttl,
    )
    return json_response({"items": [item_json(item) for item in items]})


@router.post("/store/namespaces", response_class=JSONResponse)
async def list_namespaces(request: Request, body: StoreListNamespacesRequest) -> JSONResponse:
    namespaces = await core.list_namespaces(
        _services(request),
        prefix=body.prefix,
        suffix=body.suffix,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return json_response({"namespaces": [list(ns) for ns in namespaces]})

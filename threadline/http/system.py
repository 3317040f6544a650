"""Health, info and metrics."""

from __future__ import annotations

import langgraph.version
from fastapi import APIRouter, Request

from threadline import __version__
from threadline.core.errors import Unavailable
from threadline.http.responses import JSONResponse, json_response

router = APIRouter(tags=["System"])


@router.get("/ok", response_class=JSONResponse)
@router.get("/", response_class=JSONResponse, include_in_schema=False)
async def ok(request: Request, check_db: int = 0) -> JSONResponse:
    services = request.app.state.services
    try:
        await services.db.healthcheck()
    except Exception as exc:
        raise Unavailable(f"database unavailable: {exc}") from exc
    worker = getattr(services, "worker", None)
    return json_response(
        {
            "ok": True,
            "services": {
                "database": services.db.name,
                "workers": worker.health() if worker is not None else None,
            },
        }
    )


@router.get("/info", response_class=JSONResponse)
async def info() -> JSONResponse:
    return json_response(
        {
            "version": __version__,
            "langgraph_py_version": langgraph.version.__version__,
            "server": "threadline",
            "flags": {
                "assistants": True,
                "crons": False,
                "langsmith": False,
                "langsmith_tracing_replicas": False,
                "langsmith_tracing_session_on_runs": False,
            },
            "host": {
                "kind": "self-hosted",
                "project_id": None,
                "host_revision_id": None,
                "revision_id": None,
                "tenant_id": None,
            },
        }
    )
